//! The sleep path of one tick: for each decided candidate, read the scale, claim the row
//! (CAS 1), scale the Deployment to 0 (CAS 2), confirm. Bounded concurrency, blast radius.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::select::Decision;
use super::{Job, log_scale_error};
use crate::metrics;
use crate::report::SleptApp;
use crate::{
    Candidate, ConfirmOutcome, Error, Outcome, Result, Scale, Scaler, SkipReason, SleepState,
    Target, TickReport,
};

mod failed;

/// How one candidate's attempt ended.
#[derive(Debug)]
pub(super) enum Attempt {
    Slept(SleptApp),
    Skipped(SkipReason),
    Failed,
}

/// One step of an attempt: `Err` carries how the attempt ended at that step, `Ok` what the
/// next step needs.
type Step<T> = std::result::Result<T, Attempt>;

/// Stops a tick after too many scale failures in a row.
#[derive(Default)]
struct BlastRadius {
    consecutive_failures: AtomicU32,
    stop: AtomicBool,
}

/// What every attempt of one tick shares.
pub(super) struct TickCtx<'a> {
    job: &'a Job,
    scaler: &'a dyn Scaler,
    now: chrono::DateTime<chrono::Utc>,
    idle_before: chrono::DateTime<chrono::Utc>,
    shutdown: &'a CancellationToken,
    guard: BlastRadius,
}

impl Job {
    /// Steps 3 to 6 of a tick: recover, select, attempt each candidate, sample the gauge.
    pub(super) async fn sleep_pass(
        &self,
        scaler: &dyn Scaler,
        shutdown: &CancellationToken,
        report: &mut TickReport,
    ) -> Result<()> {
        let now = self.clock.now();
        self.recover(scaler, now, report).await?;
        let selection = self.select(now, !shutdown.is_cancelled()).await?;
        report.candidates = selection.candidates.len();

        let ctx = TickCtx {
            job: self,
            scaler,
            now,
            idle_before: selection.idle_before,
            shutdown,
            guard: BlastRadius::default(),
        };
        // Collected first: a `Map` closure inside the stream makes the tick future not `Send`
        // (rustc's higher-ranked lifetime limitation), and hosts `tokio::spawn` it.
        let attempts: Vec<_> = selection
            .candidates
            .iter()
            .map(|(c, decision)| ctx.attempt(c, decision))
            .collect();
        let ended: Vec<Attempt> = futures::stream::iter(attempts)
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;

        report.stopped_early = ctx.guard.stop.load(Ordering::SeqCst);
        for attempt in ended {
            match attempt {
                Attempt::Slept(p) => {
                    metrics::outcome(Outcome::ScaledDown);
                    *report.outcomes.entry(Outcome::ScaledDown).or_default() += 1;
                    report.slept.push(p);
                }
                Attempt::Failed => {
                    metrics::outcome(Outcome::ScaleFailed);
                    *report.outcomes.entry(Outcome::ScaleFailed).or_default() += 1;
                }
                Attempt::Skipped(reason) => {
                    metrics::skipped(reason);
                    *report.skips.entry(reason).or_default() += 1;
                }
            }
        }

        report.idle_apps = self.sample_idle_apps().await;
        Ok(())
    }
}

impl TickCtx<'_> {
    /// One candidate, unless the tick is stopping; feeds the blast radius.
    async fn attempt(&self, c: &Candidate, decision: &Decision) -> Attempt {
        if self.shutdown.is_cancelled() {
            return Attempt::Skipped(SkipReason::ShuttingDown);
        }
        if self.guard.stop.load(Ordering::SeqCst) {
            return Attempt::Skipped(SkipReason::BlastRadius);
        }
        let attempt = match decision {
            Decision::Attempt(target) => self.sleep_one(c, target).await,
            Decision::Skip(reason) => Attempt::Skipped(*reason),
            Decision::RecentTraffic(target, at) => self.keep_serving(c, target, *at).await,
            Decision::KeepUnknown(target) => {
                debug!(deployment_id = %c.id, target = %target, outcome = "activity_unknown",
                    "traffic unknown; kept awake (DEPLOY_SCALE_TO_ZERO_ACTIVITY_UNKNOWN=keep_awake)");
                Attempt::Skipped(SkipReason::ActivityUnknown)
            }
        };
        match attempt {
            Attempt::Failed => {
                let n = self
                    .guard
                    .consecutive_failures
                    .fetch_add(1, Ordering::SeqCst)
                    + 1;
                if n >= self.job.config.max_consecutive_failures
                    && !self.guard.stop.swap(true, Ordering::SeqCst)
                {
                    error!(
                        failures = n,
                        "too many scale failures in a row; stopping this tick early"
                    );
                }
            }
            Attempt::Slept(_) => self.guard.consecutive_failures.store(0, Ordering::SeqCst),
            Attempt::Skipped(_) => {}
        }
        attempt
    }

    /// Traffic inside the window: recorded so the row, `status` and the next plan agree on
    /// why it stayed up, and so it is not selected again before a whole idle window passes.
    async fn keep_serving(
        &self,
        c: &Candidate,
        target: &Target,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Attempt {
        if let Err(e) = self.job.store.record_traffic(c.id, at).await {
            warn!(deployment_id = %c.id, target = %target, error = %e,
                "recording the traffic failed; the app stays up and is checked again next tick");
        }
        debug!(deployment_id = %c.id, target = %target, last_traffic_at = %at,
            outcome = "recent_traffic", "serving traffic; kept awake");
        Attempt::Skipped(SkipReason::RecentTraffic)
    }

    /// The protocol for one candidate, as named steps.
    async fn sleep_one(&self, c: &Candidate, target: &Target) -> Attempt {
        let steps = async {
            let scale = self.read_scale(c, target).await?;
            // Already at 0: recorded asleep with no restore count (a wake uses the default).
            let restore = (scale.replicas > 0).then_some(scale.replicas);
            self.claim(c, restore).await?;
            if restore.is_some() {
                self.scale_down(c, target, &scale).await?;
            }
            Ok(self.confirm(c, target, &scale, restore).await)
        };
        steps.await.unwrap_or_else(|ended| ended)
    }

    async fn read_scale(&self, c: &Candidate, target: &Target) -> Step<Scale> {
        match self.scaler.get_scale(target).await {
            Ok(s) => Ok(s),
            Err(Error::NotFound { .. }) => {
                info!(deployment_id = %c.id, target = %target, outcome = "not_found",
                    "Deployment is gone; skipped");
                Err(Attempt::Skipped(SkipReason::NotFound))
            }
            Err(e) => {
                log_scale_error(c.id, target, &e, "reading the scale failed");
                Err(Attempt::Failed)
            }
        }
    }

    /// CAS 1: the database re-checks the whole predicate at the moment of the write.
    async fn claim(&self, c: &Candidate, restore: Option<i32>) -> Step<()> {
        let claimed = self
            .job
            .store
            .claim_sleep(
                c.id,
                c.last_activity_at,
                self.idle_before,
                restore,
                self.now,
            )
            .await;
        match claimed {
            Ok(true) => Ok(()),
            Ok(false) => {
                debug!(deployment_id = %c.id, outcome = "raced", "row changed since selection; skipped");
                Err(Attempt::Skipped(SkipReason::Raced))
            }
            Err(e) => {
                warn!(deployment_id = %c.id, error = %e, "recording the sleep intent failed");
                Err(Attempt::Failed)
            }
        }
    }

    /// CAS 2: Kubernetes refuses the write if the Deployment changed since it was read.
    async fn scale_down(&self, c: &Candidate, target: &Target, scale: &Scale) -> Step<()> {
        let id = c.id;
        match self
            .scaler
            .set_replicas(target, 0, Some(&scale.resource_version))
            .await
        {
            Ok(()) => Ok(()),
            Err(Error::Conflict { .. }) => {
                self.revert(id).await;
                info!(deployment_id = %id, target = %target, outcome = "raced",
                    "Deployment changed since read; sleep abandoned");
                Err(Attempt::Skipped(SkipReason::Raced))
            }
            Err(Error::NotFound { .. }) => {
                self.revert(id).await;
                info!(deployment_id = %id, target = %target, outcome = "not_found",
                    "Deployment is gone; skipped");
                Err(Attempt::Skipped(SkipReason::NotFound))
            }
            // It may have taken effect: `Ok` goes on to confirm, as if it had answered.
            Err(e) => self.after_failed_scale_down(id, target, scale, &e).await,
        }
    }

    /// `sleeping -> asleep`, only if no activity arrived meanwhile.
    async fn confirm(
        &self,
        c: &Candidate,
        target: &Target,
        scale: &Scale,
        restore: Option<i32>,
    ) -> Attempt {
        let id = c.id;
        match self
            .job
            .store
            .confirm_sleep(id, c.last_activity_at, self.now)
            .await
        {
            Ok(ConfirmOutcome::Confirmed) => {
                info!(deployment_id = %id, target = %target, replicas_before = scale.replicas,
                    outcome = "scaled_down", "app put to sleep");
                Attempt::Slept(SleptApp {
                    id,
                    target: target.to_string(),
                    replicas: Some(scale.replicas),
                })
            }
            Ok(ConfirmOutcome::NotSleeping) => {
                // A wake won. Its scale-up can precede our scale-down when it wrote the same
                // count (no new resourceVersion), so make sure the app is not left at 0.
                if let Some(r) = restore
                    && matches!(self.job.store.get(id).await, Ok(Some(row)) if row.sleep_state == SleepState::Awake)
                {
                    self.ensure_running(target, id, r).await;
                }
                info!(deployment_id = %id, outcome = "raced", "a wake won the race; left awake");
                Attempt::Skipped(SkipReason::Raced)
            }
            Ok(ConfirmOutcome::ActivityArrived) => {
                let r = restore.unwrap_or(self.job.config.default_wake_replicas);
                info!(deployment_id = %id, target = %target, replicas = r, outcome = "raced",
                    "activity arrived during the sleep; restoring");
                if let Err(e) = self.scaler.set_replicas(target, r, None).await {
                    // The row stays `sleeping`: recovery restores it once the intent is stale.
                    log_scale_error(id, target, &e, "restoring after a lost confirm failed");
                    return Attempt::Failed;
                }
                self.revert(id).await;
                Attempt::Skipped(SkipReason::Raced)
            }
            Err(e) => {
                // The row stays `sleeping`; recovery settles it from what Kubernetes holds.
                warn!(deployment_id = %id, error = %e, "confirming the sleep failed; recovery will settle it");
                Attempt::Failed
            }
        }
    }

    async fn ensure_running(&self, target: &Target, id: uuid::Uuid, replicas: i32) {
        match self.scaler.get_scale(target).await {
            Ok(s) if s.replicas == 0 => {
                if let Err(e) = self.scaler.set_replicas(target, replicas, None).await {
                    log_scale_error(id, target, &e, "restoring a woken app left at 0 failed");
                }
            }
            Ok(_) | Err(Error::NotFound { .. }) => {}
            Err(e) => log_scale_error(id, target, &e, "checking a woken app failed"),
        }
    }

    async fn revert(&self, id: uuid::Uuid) {
        if let Err(e) = self.job.store.revert_sleep(id, self.now).await {
            // Left `sleeping`: recovery settles it after STALE_INTENT_AFTER.
            error!(deployment_id = %id, error = %e, "reverting the sleep intent failed");
        }
    }
}
