//! A Job-level liveness scenario, run on every store: rows the tick can never sleep (another
//! provider's, gone, forbidden, always in conflict, protected, malformed, traffic unknown)
//! stand older than every real candidate, and the tick still sleeps `max_per_tick` real ones.
//!
//! The rows of other providers never leave SQL; every other lasting kind costs one attempt
//! and then backs off, so once each has been tried the next tick sleeps only real apps.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use idle_scaler_core::{
    ActivitySource, ActivitySourceKind, Config, Error, FixedScalerFactory, Job, Outcome, Result,
    Scale, Scaler, SkipReason, Store, Target, Traffic,
};

use crate::clock::ManualClock;
use crate::host::{HostOps, NewDeployment};

/// The kinds of row a tick can never sleep, by the name prefix their Deployments get.
pub const LASTING_KINDS: [&str; 7] = [
    "foreign",
    "gone",
    "denied",
    "conflict",
    "protected",
    "malformed",
    "dark",
];

/// A scaler that answers by name: `gone-*` 404, `conflict-*` 409 on every write; anything
/// else is a Deployment at 2 replicas that sleeps. Counts its calls.
#[derive(Debug, Default)]
pub struct ByNameScaler {
    /// `get_scale` and `set_replicas` calls made.
    pub calls: AtomicU64,
}

#[async_trait]
impl Scaler for ByNameScaler {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if target.name.starts_with("gone") {
            return Err(Error::not_found(target.to_string()));
        }
        Ok(Scale {
            replicas: 2,
            resource_version: "1".into(),
        })
    }

    async fn set_replicas<'a>(&self, target: &Target, _: i32, _: Option<&'a str>) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if target.name.starts_with("conflict") {
            return Err(Error::conflict(target.to_string()));
        }
        Ok(())
    }
}

/// Traffic is known (quiet) for every target but `dark-*`, which the source has no data for.
#[derive(Debug, Default)]
struct DarkSource;

#[async_trait]
impl ActivitySource for DarkSource {
    async fn traffic(
        &self,
        targets: &[Target],
        _: Duration,
        _: DateTime<Utc>,
    ) -> Result<HashMap<Target, Traffic>> {
        Ok(targets
            .iter()
            .filter(|t| !t.name.starts_with("dark"))
            .map(|t| (t.clone(), Traffic::Quiet))
            .collect())
    }
}

/// What the scenario saw.
#[derive(Debug)]
pub struct LivenessRun {
    /// Ticks it took until every unsleepable row had been tried once.
    pub discovery_ticks: u64,
    /// Real apps the tick after discovery slept.
    pub slept_after: u64,
    /// Scaler calls that tick made.
    pub scaler_calls_after: u64,
}

/// Inserts `per_kind` rows of each lasting kind, idle for longer than the real apps, runs
/// ticks of `max_per_tick` until no unsleepable row is left to try, then one more tick.
/// Panics if an unsleepable row comes back again and again.
pub async fn lasting_skips_never_starve<S>(
    store: Arc<S>,
    per_kind: usize,
    max_per_tick: u32,
) -> LivenessRun
where
    S: Store + HostOps + 'static,
{
    let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let old = now - Duration::days(3);
    for kind in LASTING_KINDS {
        for i in 0..per_kind {
            let at = old + Duration::seconds(i64::try_from(i).expect("small"));
            let provider_id = match kind {
                "foreign" => format!("ecs:cluster/{kind}-{i}"),
                "protected" => format!("k8s:kube-system/{kind}-{i}"),
                "malformed" => format!("k8s:Not_A_Namespace/{kind}-{i}"),
                _ => format!("k8s:apps/{kind}-{i}"),
            };
            store
                .insert(NewDeployment::new(provider_id, at))
                .await
                .expect("insert");
        }
    }
    // Real apps, idle but younger than every unsleepable row: enough for the tick that ends
    // discovery and the one after it.
    let real = 3 * usize::try_from(max_per_tick).expect("small");
    for i in 0..real {
        let at = now - Duration::days(1) + Duration::seconds(i64::try_from(i).expect("small"));
        store
            .insert(NewDeployment::k8s("apps", &format!("web-{i}"), at))
            .await
            .expect("insert");
    }
    let scaler = Arc::new(ByNameScaler::default());
    let config = Config {
        enabled: true,
        max_per_tick,
        concurrency: 16,
        activity_source: ActivitySourceKind::Prometheus,
        ..Config::default()
    };
    let max = u64::from(config.max_per_tick);
    let clock = ManualClock::new(now);
    let job = Job::builder(
        config,
        store.clone(),
        Arc::new(FixedScalerFactory(scaler.clone())),
    )
    .clock(Arc::new(clock.clone()))
    .activity_source(Arc::new(DarkSource))
    .build();

    // Discovery: the unsleepable rows are tried at most once each (then they back off); the
    // real ones behind them sleep as the queue reaches them.
    let unsleepable = per_kind * (LASTING_KINDS.len() - 1);
    let mut discovery_ticks = 0;
    let mut tried = 0;
    loop {
        let report = job.tick().await.expect("tick");
        discovery_ticks += 1;
        let skipped: u64 = [
            SkipReason::NotFound,
            SkipReason::Raced,
            SkipReason::ProtectedNamespace,
            SkipReason::Malformed,
            SkipReason::ActivityUnknown,
            SkipReason::Foreign,
        ]
        .iter()
        .map(|r| report.skipped(*r))
        .sum::<u64>();
        assert_eq!(report.outcome(Outcome::ScaleFailed), 0);
        tried += usize::try_from(skipped).expect("small");
        assert!(
            report.skipped(SkipReason::Foreign) == 0,
            "a row of another provider left SQL"
        );
        // A tick later than one interval: the first 409 only starts its count.
        clock.advance(Duration::seconds(1));
        if skipped == 0 {
            break;
        }
        assert!(
            discovery_ticks <= 10 * (unsleepable as u64 / max + 2),
            "unsleepable rows keep coming back: {tried} tries for {unsleepable} rows"
        );
    }
    // The conflicts, whose first backoff is free, were tried twice at most.
    assert!(
        tried <= unsleepable + per_kind,
        "{tried} tries for {unsleepable} rows"
    );
    let before = scaler.calls.load(Ordering::Relaxed);
    let report = job.tick().await.expect("tick");
    let slept_after = report.outcome(Outcome::ScaledDown);
    LivenessRun {
        discovery_ticks,
        slept_after,
        scaler_calls_after: scaler.calls.load(Ordering::Relaxed) - before,
    }
}
