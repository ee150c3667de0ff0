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
    /// Skipped for now; the row stays a candidate.
    Skipped(SkipReason),
    /// Skipped for a reason that will not go away by the next tick: the row backs off.
    SkippedLasting(SkipReason),
    Failed,
    /// A failure that will repeat (403, 422): counted, and the row backs off.
    FailedLasting,
}

/// The row's sleep intent as written: every later step of the transition compares its stamp.
#[derive(Debug, Clone, Copy)]
struct Intent {
    id: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
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
    idle_before: chrono::DateTime<chrono::Utc>,
    shutdown: &'a CancellationToken,
    guard: BlastRadius,
    /// Rows whose scale-down met a 409 this tick (a repeated one backs off).
    conflicts: std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>,
}

/// The Deployment no longer exists: not a failure, and it will not come back by itself.
pub(super) fn gone(id: uuid::Uuid, target: &Target) -> Attempt {
    info!(deployment_id = %id, target = %target, outcome = "not_found", "Deployment is gone; skipped");
    Attempt::SkippedLasting(SkipReason::NotFound)
}

/// The backoff after `count` earlier ones: one interval doubling up to a day. With
/// `first_is_free` the first one waits no time (it only starts the count).
pub(crate) fn backoff_for(
    config: &crate::Config,
    count: u32,
    first_is_free: bool,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> crate::BackOff {
    const CAP: chrono::Duration = chrono::Duration::hours(24);
    let interval = chrono::Duration::from_std(config.interval()).unwrap_or(CAP);
    let steps = if first_is_free {
        (1_i32 << count.min(20)) - 1
    } else {
        1_i32 << count.min(20)
    };
    let delay = interval.checked_mul(steps).map_or(CAP, |d| d.min(CAP));
    let retry_after = now + delay;
    crate::BackOff {
        reason: reason.to_owned(),
        retry_after,
        retry_key: retry_after - config.idle_window(),
    }
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
            idle_before: selection.idle_before,
            shutdown,
            guard: BlastRadius::default(),
            conflicts: std::sync::Mutex::default(),
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
                Attempt::Failed | Attempt::FailedLasting => {
                    metrics::outcome(Outcome::ScaleFailed);
                    *report.outcomes.entry(Outcome::ScaleFailed).or_default() += 1;
                }
                Attempt::Skipped(reason) | Attempt::SkippedLasting(reason) => {
                    metrics::skipped(reason);
                    *report.skips.entry(reason).or_default() += 1;
                }
            }
        }

        if !shutdown.is_cancelled() {
            self.reconcile(scaler, now, report).await;
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
            // Foreign, malformed, protected, fighting back: the same next tick.
            Decision::Skip(reason) => Attempt::SkippedLasting(*reason),
            Decision::RecentTraffic(target, at) => self.keep_serving(c, target, *at).await,
            Decision::KeepUnknown(target, lasting) => {
                debug!(deployment_id = %c.id, target = %target, outcome = "activity_unknown",
                    "traffic unknown; kept awake (DEPLOY_SCALE_TO_ZERO_ACTIVITY_UNKNOWN=keep_awake)");
                if *lasting {
                    Attempt::SkippedLasting(SkipReason::ActivityUnknown)
                } else {
                    Attempt::Skipped(SkipReason::ActivityUnknown)
                }
            }
        };
        self.back_off_if_lasting(c, &attempt).await;
        match attempt {
            Attempt::Failed | Attempt::FailedLasting => {
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
            Attempt::Skipped(_) | Attempt::SkippedLasting(_) => {}
        }
        attempt
    }

    /// A row that failed or was skipped for a lasting reason is no candidate for a while
    /// (one interval, doubling up to a day), so it neither starves the rows behind it nor
    /// trips the blast radius on every tick. A 409 is lasting only when it repeats: the
    /// first one waits no time but counts.
    async fn back_off_if_lasting(&self, c: &Candidate, attempt: &Attempt) {
        let (reason, first_is_free) = match attempt {
            Attempt::SkippedLasting(reason) => (reason.as_str(), false),
            Attempt::FailedLasting => (crate::Outcome::ScaleFailed.as_str(), false),
            Attempt::Skipped(SkipReason::Raced) if self.raced_by_kubernetes(c) => ("raced", true),
            _ => return,
        };
        let backoff = backoff_for(
            &self.job.config,
            c.backoff_count,
            first_is_free,
            reason,
            self.job.clock.now(),
        );
        match self
            .job
            .store
            .back_off(c.id, c.last_activity_at, &backoff)
            .await
        {
            Ok(true) => debug!(deployment_id = %c.id, reason, retry_after = %backoff.retry_after,
                backoffs = c.backoff_count + 1, "backing off"),
            Ok(false) => {}
            Err(e) => warn!(deployment_id = %c.id, error = %e,
                "recording the backoff failed; the row is tried again next tick"),
        }
    }

    fn raced_by_kubernetes(&self, c: &Candidate) -> bool {
        self.conflicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&c.id)
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
            let intent = self.claim(c, restore).await?;
            if restore.is_some() {
                self.scale_down(intent, target, &scale).await?;
            }
            Ok(self.confirm(c, intent, target, &scale, restore).await)
        };
        steps.await.unwrap_or_else(|ended| ended)
    }

    async fn read_scale(&self, c: &Candidate, target: &Target) -> Step<Scale> {
        match self.scaler.get_scale(target).await {
            Ok(s) => Ok(s),
            Err(Error::NotFound { .. }) => Err(gone(c.id, target)),
            Err(e @ (Error::Forbidden { .. } | Error::Invalid { .. })) => {
                log_scale_error(c.id, target, &e, "reading the scale failed; backing off");
                Err(Attempt::FailedLasting)
            }
            Err(e) => {
                log_scale_error(c.id, target, &e, "reading the scale failed");
                Err(Attempt::Failed)
            }
        }
    }

    /// CAS 1: the database re-checks the whole predicate at the moment of the write. The
    /// intent is stamped with the time of this write, not the tick's start: a tick that
    /// runs long must not write intents that look stale on arrival.
    async fn claim(&self, c: &Candidate, restore: Option<i32>) -> Step<Intent> {
        let at = self.job.clock.now();
        let claimed = self
            .job
            .store
            .claim_sleep(c.id, c.last_activity_at, self.idle_before, restore, at)
            .await;
        match claimed {
            Ok(true) => Ok(Intent { id: c.id, at }),
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
    async fn scale_down(&self, intent: Intent, target: &Target, scale: &Scale) -> Step<()> {
        let id = intent.id;
        match self
            .scaler
            .set_replicas(target, 0, Some(&scale.resource_version))
            .await
        {
            Ok(()) => Ok(()),
            Err(Error::Conflict { .. }) => {
                self.revert(intent).await;
                self.conflicts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id);
                info!(deployment_id = %id, target = %target, outcome = "raced",
                    "Deployment changed since read; sleep abandoned");
                Err(Attempt::Skipped(SkipReason::Raced))
            }
            Err(Error::NotFound { .. }) => {
                self.revert(intent).await;
                Err(gone(id, target))
            }
            // It may have taken effect: `Ok` goes on to confirm, as if it had answered.
            Err(e) => {
                self.after_failed_scale_down(intent, target, scale, &e)
                    .await
            }
        }
    }

    /// `sleeping -> asleep`, only if no activity arrived meanwhile.
    async fn confirm(
        &self,
        c: &Candidate,
        intent: Intent,
        target: &Target,
        scale: &Scale,
        restore: Option<i32>,
    ) -> Attempt {
        let id = c.id;
        match self
            .job
            .store
            .confirm_sleep(id, c.last_activity_at, intent.at, self.job.clock.now())
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
                info!(deployment_id = %id, target = %target, outcome = "raced",
                    "activity arrived during the sleep; restoring");
                if let Some(r) = restore
                    && !self.restore(id, target, r).await
                {
                    // The row stays `sleeping`: recovery settles it once the intent is stale.
                    return Attempt::Failed;
                }
                // Never scaled down by this tick (it was at 0 already): nothing to restore.
                self.revert(intent).await;
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
        self.restore(id, target, replicas).await;
    }

    /// Brings back an app this tick scaled down: reads first and writes only at 0, with the
    /// version read as precondition, so it never overrides whoever started it meanwhile.
    /// False when the app may still be at 0 (an error), so the caller keeps the intent.
    async fn restore(&self, id: uuid::Uuid, target: &Target, replicas: i32) -> bool {
        match self.scaler.get_scale(target).await {
            Ok(s) if s.replicas == 0 => match self
                .scaler
                .set_replicas(target, replicas, Some(&s.resource_version))
                .await
            {
                // A conflict: someone else changed it since the read; theirs stands.
                Ok(()) | Err(Error::Conflict { .. }) => true,
                Err(e) => {
                    log_scale_error(id, target, &e, "restoring the app failed");
                    false
                }
            },
            Ok(_) | Err(Error::NotFound { .. }) => true,
            Err(e) => {
                log_scale_error(id, target, &e, "reading the app to restore it failed");
                false
            }
        }
    }

    async fn revert(&self, intent: Intent) {
        let reverted = self
            .job
            .store
            .revert_sleep(intent.id, intent.at, self.job.clock.now())
            .await;
        if let Err(e) = reverted {
            // Left `sleeping`: recovery settles it after STALE_INTENT_AFTER.
            error!(deployment_id = %intent.id, error = %e, "reverting the sleep intent failed");
        }
    }
}
