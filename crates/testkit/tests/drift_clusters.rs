//! Invariant 8 with several clusters: every `asleep` row is checked for drift once per
//! reconcile period, in a big cluster beside a small one (the slice is shared between
//! clusters; the small one must not take more than it needs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use idle_scaler_core::{
    ClusterConfig, ClusterName, Config, FixedScalerFactory, Job, Result, Scale, Scaler, SleepState,
    Target,
};
use idle_scaler_testkit::clock::ManualClock;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::MemoryStore;

/// Every Deployment at 0 (no drift); each read is recorded with the clock's time.
struct Reads {
    clock: ManualClock,
    at: Mutex<HashMap<String, Vec<DateTime<Utc>>>>,
}

#[async_trait]
impl Scaler for Reads {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        self.at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(target.to_string())
            .or_default()
            .push(idle_scaler_core::Clock::now(&self.clock));
        Ok(Scale {
            replicas: 0,
            resource_version: "1".into(),
        })
    }

    async fn set_replicas<'a>(&self, target: &Target, _: i32, _: Option<&'a str>) -> Result<()> {
        panic!("no write expected, got one for {target}");
    }
}

#[tokio::test]
async fn a_big_cluster_beside_a_small_one_is_checked_once_per_period() {
    const BIG: usize = 100;
    const SMALL: usize = 10;
    const TICKS: i64 = 30;
    let start = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let slept = start - Duration::days(1);
    let store = Arc::new(MemoryStore::new());
    for (scheme, n) in [("k8s", BIG), ("k8s@east", SMALL)] {
        for i in 0..n {
            store
                .insert(
                    NewDeployment::new(format!("{scheme}:apps/app-{i}"), slept).sleep_state(
                        SleepState::Asleep,
                        slept,
                        Some(2),
                    ),
                )
                .await
                .expect("insert");
        }
    }
    let east = ClusterName::new("east").expect("a cluster name");
    let mut config = Config {
        enabled: true,
        interval_seconds: 120,
        reconcile_minutes: 10,
        ..Config::default()
    };
    config.clusters.insert(
        east.clone(),
        ClusterConfig {
            kubeconfig: None,
            context: Some("east".into()),
        },
    );
    let clock = ManualClock::new(start);
    let reads = Arc::new(Reads {
        clock: clock.clone(),
        at: Mutex::default(),
    });
    let source = Arc::new(FixedScalerFactory(reads.clone()));
    let job = Job::builder(config, store, source.clone())
        .clock(Arc::new(clock.clone()))
        .cluster(east, source)
        .build();
    for _ in 0..TICKS {
        job.tick().await.expect("tick");
        clock.advance(Duration::seconds(120));
    }

    // After the first period (the backlog of rows never checked), no row waits longer than
    // the period between two checks.
    let period = Duration::minutes(10);
    let settled = start + period;
    let reads = reads.at.lock().unwrap_or_else(PoisonError::into_inner);
    assert_eq!(reads.len(), BIG + SMALL, "every row was checked");
    let mut worst = Duration::zero();
    for (target, at) in reads.iter() {
        let last = start + Duration::seconds(120 * (TICKS - 1));
        let gaps = at
            .iter()
            .chain(std::iter::once(&last))
            .zip(at.iter().skip(1).chain(std::iter::once(&last)))
            .filter(|(a, _)| **a >= settled)
            .map(|(a, b)| *b - *a);
        for gap in gaps {
            worst = worst.max(gap);
            assert!(gap <= period, "{target}: {gap} between two checks: {at:?}");
        }
    }
    eprintln!("longest wait between two checks of one row: {worst}");
}
