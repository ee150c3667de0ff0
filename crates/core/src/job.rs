//! The job: its ports, the loop, and one tick's entry. Each protocol has its own file:
//! `sleep` (candidates -> claim -> scale down -> confirm), `select` (the opening a tick and a
//! dry run share), `recover` (stale intents), `wake`, `traffic` (the activity question) and
//! `park` (slept apps' Services pointed at the waker).

use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::metrics;
use crate::{
    ActivitySource, Clock, Config, DeploymentRecord, Error, Outcome, Result, ScalerFactories,
    ServedClusters, Store, Target, TickReport,
};

mod adaptive;
mod builder;
mod clusters;
mod park;
mod reconcile;
mod recover;
mod run;
mod select;
pub(crate) mod sleep;
mod traffic;
mod wake;

pub use builder::JobBuilder;
pub use park::{DRAIN_PER_TICK, UNPARK_SHUTDOWN_WAIT, UNPARK_WAIT};
pub use reconcile::drift_due_before;
pub use recover::STALE_INTENT_AFTER;
pub use run::TickResult;

/// The idle-scaler job: owns its ports, runs ticks and wakes.
pub struct Job {
    config: Config,
    store: Arc<dyn Store>,
    /// The scaler factory of each cluster; the served ones come from the configuration.
    scalers: ScalerFactories,
    /// The clusters this job serves (`Config::served_clusters`).
    served: ServedClusters,
    clock: Arc<dyn Clock>,
    activity: Option<Arc<dyn ActivitySource>>,
    last_success: Mutex<Option<Instant>>,
    wakes: wake::Wakes,
    /// The last count of `asleep` rows, -1 before the first: sizes the drift checks.
    idle_apps_seen: Arc<std::sync::atomic::AtomicI64>,
    /// Apps a lost race left at 0 under an `awake` row, restored at the next ticks.
    owed_restores: sleep::OwedRestores,
    /// The Parker of the cluster parking serves, when one was given.
    parking: Option<Arc<park::Parkings>>,
    /// The adaptive policy's settings and store, under `policy = adaptive`.
    adaptive: Option<adaptive::Adaptive>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ports are trait objects; what a reader of a debug dump wants is what this job
        // serves and whether traffic is asked about.
        f.debug_struct("Job")
            .field("config", &self.config)
            .field("served", &self.served)
            .field("activity_source", &self.activity.is_some())
            .field("parking", &self.parking)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The clusters this job serves.
    pub fn served_clusters(&self) -> &ServedClusters {
        &self.served
    }

    /// When the last tick completed without error (a disabled tick counts: it did its job).
    /// Monotonic, and read without the clock port so a disabled tick makes no call at all.
    pub fn last_success(&self) -> Option<Instant> {
        *self
            .last_success
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mark_success(&self) {
        *self
            .last_success
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    /// One tick: recover stale intents, then sleep the idle candidates.
    pub async fn tick(&self) -> Result<TickReport> {
        self.tick_with_shutdown(&CancellationToken::new()).await
    }

    /// One tick that starts no new transition once `shutdown` is cancelled.
    pub async fn tick_with_shutdown(&self, shutdown: &CancellationToken) -> Result<TickReport> {
        let started = Instant::now();
        if !self.config.enabled {
            debug!("scale-to-zero disabled (DEPLOY_SCALE_TO_ZERO_ENABLED is off); tick skipped");
            self.mark_success();
            // Metrics are not I/O: the "no good tick" alert must not fire for a switched-off job.
            metrics::tick_disabled(started.elapsed());
            return Ok(TickReport {
                disabled: true,
                ..TickReport::default()
            });
        }
        if self.config.dry_run {
            let report = self.plan().await?;
            self.mark_success();
            return Ok(report);
        }
        let (scalers, unreachable) = self.tick_scalers().await;
        if scalers.served().is_empty() {
            // Every served cluster failed; each was logged (a lone cluster's WARN says this).
            if self.served.len() > 1 {
                warn!(
                    "no served cluster has a Kubernetes client; tick skipped (fail-open), \
                    retrying next tick"
                );
            }
            metrics::tick("no_scaler", started.elapsed(), self.clock.now());
            return Ok(TickReport {
                no_scaler: true,
                clusters_unreachable: unreachable,
                ..TickReport::default()
            });
        }
        let mut report = TickReport {
            clusters_unreachable: unreachable,
            ..TickReport::default()
        };
        let result = self.sleep_pass(&scalers, shutdown, &mut report).await;
        report
            .clusters_unreachable
            .extend(scalers.unreachable_labels());
        report.duration = started.elapsed();
        let finished = self.clock.now();
        match &result {
            Ok(()) => {
                metrics::tick("ok", report.duration, finished);
                self.mark_success();
                log_tick(&report);
            }
            Err(e) => {
                metrics::tick("error", report.duration, finished);
                warn!(error = %crate::error_chain(&e), "tick aborted");
            }
        }
        result.map(|()| report)
    }

    /// Rows asleep or mid-sleep, for `status`: what a person asks "what is down, and since
    /// when?". Ignores the flag (it answers a question; it changes nothing).
    pub async fn status(&self) -> Result<Vec<DeploymentRecord>> {
        self.store.list_sleeping().await
    }

    async fn sample_idle_apps(&self) -> Option<i64> {
        let n = sample_idle_apps(
            self.store.as_ref(),
            self.config.default_wake_replicas,
            self.clock.as_ref(),
        )
        .await;
        if let Some(n) = n {
            self.idle_apps_seen
                .store(n, std::sync::atomic::Ordering::Relaxed);
        }
        n
    }

    fn idle_apps_seen(&self) -> Option<u64> {
        u64::try_from(
            self.idle_apps_seen
                .load(std::sync::atomic::Ordering::Relaxed),
        )
        .ok()
    }
}

/// Step 6: sets the idle-apps gauge, then the replicas-asleep gauge (a row without a recorded
/// count wakes to `default_replicas`, so it counts as that many). A failure is a WARN, never a
/// failed tick or wake; the replicas are not asked for when the count already failed (the
/// store is down, and the tick or wake should not wait on it twice).
async fn sample_idle_apps(
    store: &dyn Store,
    default_replicas: i32,
    clock: &dyn Clock,
) -> Option<i64> {
    let n = match store.count_asleep().await {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %crate::error_chain(&e), "could not sample the idle-apps gauge");
            return None;
        }
    };
    metrics::idle_apps(n);
    match store.sum_asleep_replicas(default_replicas).await {
        Ok(replicas) => metrics::replicas_asleep(replicas, clock.now()),
        Err(e) => {
            warn!(error = %crate::error_chain(&e), "could not sample the replicas-asleep gauge")
        }
    }
    Some(n)
}

fn log_tick(report: &TickReport) {
    let slept = report.outcome(Outcome::ScaledDown);
    let failed = report.outcome(Outcome::ScaleFailed);
    if slept + failed > 0 || !report.recovered.is_empty() || report.stopped_early {
        info!(
            candidates = report.candidates,
            scaled_down = slept,
            scale_failed = failed,
            skipped = report.skips.values().sum::<u64>(),
            stopped_early = report.stopped_early,
            took_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            "tick done"
        );
    } else {
        debug!(
            candidates = report.candidates,
            "tick done; nothing to sleep"
        );
    }
}

/// Logs a Kubernetes error of one app; a 401/403 is an ERROR because only a person can fix RBAC.
fn log_scale_error(id: uuid::Uuid, target: &Target, e: &Error, what: &str) {
    let cluster = target.cluster_label();
    match e {
        Error::Forbidden { .. } => error!(deployment_id = %id, target = %target, cluster,
            error = %crate::error_chain(&e), "{what}: forbidden; check the RBAC for deployments/scale"),
        _ => {
            warn!(deployment_id = %id, target = %target, cluster, error = %crate::error_chain(&e), "{what}")
        }
    }
}

#[cfg(test)]
mod tests;
