//! The adaptive policy through the real job on PostgreSQL: a poller's requests replayed minute
//! by minute on a virtual clock (the in-memory store runs the same scenario in the test kit's
//! `tests/adaptive.rs`). The store's statements, not the advice, are under test here: learning,
//! the early path, pre-warms and keeps must carry the job through as they do in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use idle_scaler_core::{
    ActivitySource, ActivitySourceKind, Clock, Config, FixedScalerFactory, Job, Result,
    RhythmStore, Scale, Scaler, SleepPolicy, SleepState, Target, Traffic, WakeReason,
};
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::clock::ManualClock;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::PgPool;

/// One app's Deployment: its replicas and a version a write bumps.
#[derive(Default)]
struct Deployment(Mutex<(i32, u64)>);

#[async_trait]
impl Scaler for Deployment {
    async fn get_scale(&self, _: &Target) -> Result<Scale> {
        let (replicas, version) = *self.0.lock().expect("lock");
        Ok(Scale {
            replicas,
            resource_version: version.to_string(),
        })
    }

    async fn set_replicas<'a>(&self, _: &Target, replicas: i32, _: Option<&'a str>) -> Result<()> {
        let mut d = self.0.lock().expect("lock");
        *d = (replicas, d.1 + 1);
        Ok(())
    }
}

/// The app's latest request, as a request counter in Prometheus would tell it.
#[derive(Default)]
struct LastRequest(Mutex<Option<DateTime<Utc>>>);

#[async_trait]
impl ActivitySource for LastRequest {
    async fn traffic(
        &self,
        targets: &[Target],
        lookback: Duration,
        at: DateTime<Utc>,
    ) -> Result<HashMap<Target, Traffic>> {
        let last = *self.0.lock().expect("lock");
        let traffic = match last {
            Some(t) if t >= at - lookback => Traffic::LastSeen(t),
            _ => Traffic::Quiet,
        };
        Ok(targets.iter().map(|t| (t.clone(), traffic)).collect())
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0)
        .single()
        .expect("a time")
}

/// What a run saw: requests that found the app asleep, minutes it was up.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    cold_starts: u32,
    awake_minutes: u32,
}

/// Runs the job on `store` from `start()` for `minutes`, a request every 40 minutes until
/// `polls_until` (a minute), a tick every second minute; returns what the last `measured`
/// minutes saw.
async fn run(store: &PgStore, minutes: i64, polls_until: i64, measured: i64) -> Seen {
    let clock = ManualClock::new(start());
    let id = store
        .insert(NewDeployment::k8s("apps", "web", start()))
        .await
        .expect("insert");
    let deployment = Arc::new(Deployment(Mutex::new((1, 1))));
    let requests = Arc::new(LastRequest::default());
    let config = Config {
        enabled: true,
        policy: SleepPolicy::Adaptive,
        activity_source: ActivitySourceKind::Prometheus,
        ..Config::default()
    };
    let job = Job::builder(
        config,
        Arc::new(store.clone()),
        Arc::new(FixedScalerFactory(deployment.clone())),
    )
    .clock(Arc::new(clock.clone()))
    .activity_source(requests.clone())
    .rhythm_store(Arc::new(store.clone()))
    .build();
    let mut seen = Seen::default();
    for minute in 1..=minutes {
        clock.advance(Duration::minutes(1));
        let counted = minute > minutes - measured;
        if minute % 40 == 0 && minute <= polls_until {
            let row = store.read(id).await.expect("read").expect("row");
            if row.sleep_state == SleepState::Awake {
                *requests.0.lock().expect("lock") = Some(clock.now());
            } else {
                seen.cold_starts += u32::from(counted);
                job.wake_for(id, WakeReason::Visitor).await.expect("wake");
            }
        }
        if minute % 2 == 0 {
            job.tick().await.expect("tick");
        }
        let up = deployment.0.lock().expect("lock").0 > 0;
        seen.awake_minutes += u32::from(counted && up);
    }
    seen
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_poller_is_prewarmed_before_every_poll_and_sleeps_at_the_floor(pool: PgPool) {
    let store = PgStore::from_pool(pool);
    // Eight hours to learn, then eight measured: 12 polls.
    let seen = run(&store, 16 * 60, 16 * 60, 8 * 60).await;
    assert_eq!(
        seen.cold_starts, 0,
        "pre-warmed before every poll: {seen:?}"
    );
    // The fixed window keeps it up 30 of every 40 minutes (360 of 480); the floor and the
    // pre-warm's lead, about 10.
    assert!(seen.awake_minutes < 180, "{seen:?}");
    let ids: Vec<_> = store
        .rows()
        .await
        .expect("rows")
        .iter()
        .map(|r| r.id)
        .collect();
    let rhythms = store.rhythms(&ids).await.expect("rhythms");
    assert!(!rhythms[&ids[0]].gaps.is_empty(), "learned from PostgreSQL");
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_prewarm_nobody_uses_is_no_activity_and_sleeps_again(pool: PgPool) {
    let store = PgStore::from_pool(pool);
    let seen = run(&store, 11 * 60, 8 * 60, 3 * 60).await;
    assert_eq!(seen.cold_starts, 0);
    assert!(seen.awake_minutes <= 12, "{seen:?}");
    let row = &store.rows().await.expect("rows")[0];
    assert_eq!(row.sleep_state, SleepState::Asleep);
    assert_eq!(row.last_activity_at, start() + Duration::minutes(8 * 60));
}
