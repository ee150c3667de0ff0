//! The sleep path of one tick: for each decided candidate, read the scale, claim the row
//! (CAS 1), scale the Deployment to 0 (CAS 2), confirm. Bounded concurrency, blast radius.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::clusters::TickScalers;
use super::select::{Decision, Selection};
use super::{Job, log_scale_error};
use crate::metrics;
use crate::report::SleptApp;
use crate::{
    Candidate, ClusterName, ConfirmOutcome, Error, Outcome, Result, Scale, Scaler, SkipReason,
    SleepState, Target, TickReport, cluster_label,
};

mod backoff;
mod failed;
mod repair;

pub(crate) use repair::{OwedRestores, restore};

#[cfg(test)]
pub(crate) use backoff::backoff_for;

/// How one candidate's attempt ended.
#[derive(Debug)]
pub(super) enum Attempt {
    /// Slept; the target is parked in the same tick.
    Slept(SleptApp, Target),
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

/// Stops a cluster's part of a tick after too many scale failures in a row there: one
/// cluster failing never stops the others.
#[derive(Default)]
struct BlastRadius {
    consecutive_failures: AtomicU32,
    stop: AtomicBool,
}

/// What every attempt of one tick shares.
pub(super) struct TickCtx<'a> {
    job: &'a Job,
    scalers: &'a TickScalers,
    /// The tick's selection: each candidate's cutoff and rhythm.
    selection: &'a Selection,
    shutdown: &'a CancellationToken,
    /// The blast radius of each cluster with a client this tick.
    guards: std::collections::HashMap<Option<ClusterName>, BlastRadius>,
    /// The blast radius of rows of no served cluster (foreign, malformed).
    no_cluster_guard: BlastRadius,
    /// Rows whose scale-down met a 409 this tick (a repeated one backs off).
    conflicts: std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>,
}

/// The Deployment no longer exists: not a failure, and it will not come back by itself.
pub(super) fn gone(id: uuid::Uuid, target: &Target) -> Attempt {
    info!(deployment_id = %id, target = %target, outcome = "not_found", "Deployment is gone; skipped");
    Attempt::SkippedLasting(SkipReason::NotFound)
}

impl Job {
    /// Steps 3 to 6 of a tick: recover, select, attempt each candidate, sample the gauge.
    pub(super) async fn sleep_pass(
        &self,
        scalers: &TickScalers,
        shutdown: &CancellationToken,
        report: &mut TickReport,
    ) -> Result<()> {
        let now = self.clock.now();
        // First, and whatever the store's queries do after: an app owed a restore is down.
        if !shutdown.is_cancelled() {
            self.pay_owed_restores(scalers).await;
        }
        self.recover(scalers, now, report).await?;
        if !shutdown.is_cancelled() {
            self.adaptive_pass(scalers.served(), now).await;
        }
        let selection = self
            .select(scalers.served(), now, !shutdown.is_cancelled())
            .await?;
        report.candidates = selection.candidates.len();

        let ctx = TickCtx {
            job: self,
            scalers,
            selection: &selection,
            shutdown,
            guards: scalers
                .served()
                .iter()
                .map(|c| (c.cloned(), BlastRadius::default()))
                .collect(),
            no_cluster_guard: BlastRadius::default(),
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

        report.stopped_early = ctx
            .guards
            .values()
            .chain([&ctx.no_cluster_guard])
            .any(|g| g.stop.load(Ordering::SeqCst));
        let mut slept = Vec::new();
        for attempt in ended {
            match attempt {
                Attempt::Slept(p, target) => {
                    metrics::outcome(Outcome::ScaledDown);
                    *report.outcomes.entry(Outcome::ScaledDown).or_default() += 1;
                    report.slept.push(p);
                    slept.push(target);
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

        // Even when stopping: these apps are down now, and their callers should reach the waker.
        self.park_slept(&slept, report).await;
        if !shutdown.is_cancelled() {
            self.reconcile(scalers, now, report).await;
        }
        report.idle_apps = self.sample_idle_apps().await;
        Ok(())
    }
}

impl TickCtx<'_> {
    /// The client of `target`'s cluster (one that refuses every call if it has none).
    fn scaler(&self, target: &Target) -> &dyn Scaler {
        self.scalers.for_target(target)
    }

    /// The blast radius `c` counts in: its cluster's.
    fn guard(&self, c: &Candidate, decision: &Decision) -> (&BlastRadius, Option<ClusterName>) {
        let cluster = match decision {
            Decision::Attempt(t)
            | Decision::RecentTraffic(t, _)
            | Decision::KeepUnknown(t, _)
            | Decision::Keep(t, _) => t.cluster.clone(),
            // No target: the cluster its id's scheme names, if any.
            Decision::Skip(_) => crate::scheme_of(&c.provider_id)
                .and_then(|s| s.strip_prefix("k8s@"))
                .and_then(|name| ClusterName::new(name).ok()),
        };
        match self.guards.get(&cluster) {
            Some(guard) => (guard, cluster),
            None => (&self.no_cluster_guard, cluster),
        }
    }

    /// One candidate, unless the tick or its cluster is stopping; feeds the blast radius.
    async fn attempt(&self, c: &Candidate, decision: &Decision) -> Attempt {
        if self.shutdown.is_cancelled() {
            return Attempt::Skipped(SkipReason::ShuttingDown);
        }
        let (guard, cluster) = self.guard(c, decision);
        if guard.stop.load(Ordering::SeqCst) {
            return Attempt::Skipped(SkipReason::BlastRadius);
        }
        let attempt = match decision {
            // A row of a cluster without a client this tick: not this tick's to touch, and no
            // backoff is written on it (the store never hands one over; this is a guard).
            Decision::Attempt(target) if self.scalers.of(target).is_none() => {
                Attempt::Skipped(SkipReason::Foreign)
            }
            Decision::Attempt(target) => self.sleep_one(c, target).await,
            // Foreign, malformed, protected, fighting back: the same next tick.
            Decision::Skip(reason) => Attempt::SkippedLasting(*reason),
            Decision::RecentTraffic(target, at) => self.keep_serving(c, target, *at).await,
            Decision::Keep(target, until) => {
                if let Some(adaptive) = &self.job.adaptive {
                    adaptive.keep(c, target, *until).await;
                }
                Attempt::Skipped(SkipReason::PredictedUse)
            }
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
                let n = guard.consecutive_failures.fetch_add(1, Ordering::SeqCst) + 1;
                if n >= self.job.config.max_consecutive_failures
                    && !guard.stop.swap(true, Ordering::SeqCst)
                {
                    error!(
                        failures = n,
                        cluster = cluster_label(cluster.as_ref()),
                        "too many scale failures in a row; stopping this tick early (for this \
                         cluster; the others go on)"
                    );
                }
            }
            Attempt::Slept(..) => guard.consecutive_failures.store(0, Ordering::SeqCst),
            Attempt::Skipped(_) | Attempt::SkippedLasting(_) => {}
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
            warn!(deployment_id = %c.id, target = %target, error = %crate::error_chain(&e),
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
        match self.scaler(target).get_scale(target).await {
            Ok(s) => Ok(s),
            Err(Error::NotFound { .. }) => Err(gone(c.id, target)),
            Err(e @ (Error::Forbidden { .. } | Error::Invalid { .. })) => {
                log_scale_error(c.id, target, &e, "reading the scale failed; backing off");
                Err(Attempt::FailedLasting)
            }
            Err(e) => {
                log_scale_error(c.id, target, &e, "reading the scale failed");
                self.scalers.note_failure(target.cluster.as_ref(), &e);
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
            .claim_sleep(
                c.id,
                c.last_activity_at,
                self.selection.cutoff(c.id),
                restore,
                at,
            )
            .await;
        match claimed {
            Ok(true) => Ok(Intent { id: c.id, at }),
            Ok(false) => {
                debug!(deployment_id = %c.id, outcome = "raced", "row changed since selection; skipped");
                Err(Attempt::Skipped(SkipReason::Raced))
            }
            Err(e) => {
                warn!(deployment_id = %c.id, error = %crate::error_chain(&e), "recording the sleep intent failed");
                Err(Attempt::Failed)
            }
        }
    }

    /// CAS 2: Kubernetes refuses the write if the Deployment changed since it was read.
    async fn scale_down(&self, intent: Intent, target: &Target, scale: &Scale) -> Step<()> {
        let id = intent.id;
        match self
            .scaler(target)
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
        let now = self.job.clock.now();
        match self
            .job
            .store
            .confirm_sleep(id, c.last_activity_at, intent.at, now)
            .await
        {
            Ok(ConfirmOutcome::Confirmed) => {
                info!(deployment_id = %id, target = %target, replicas_before = scale.replicas,
                    outcome = "scaled_down", "app put to sleep");
                super::adaptive::after_sleep(self.job, self.selection, c, target, now).await;
                Attempt::Slept(
                    SleptApp {
                        id,
                        target: target.to_string(),
                        replicas: Some(scale.replicas),
                    },
                    target.clone(),
                )
            }
            Ok(ConfirmOutcome::NotSleeping) => {
                // A wake won. Its scale-up can precede our scale-down when it wrote the same
                // count (no new resourceVersion), so make sure the app is not left at 0.
                if let Some(r) = restore {
                    let owed = match self.job.store.get(id).await {
                        Ok(Some(row)) if row.sleep_state == SleepState::Awake => {
                            !self.restore(id, target, r).await
                        }
                        Ok(_) => false,
                        Err(e) => {
                            error!(deployment_id = %id, error = %crate::error_chain(&e), "reading the row failed");
                            true
                        }
                    };
                    if owed {
                        // Its row may be `awake`, so nothing else looks at it: the job owes
                        // the restore and pays it at the start of the next ticks (after
                        // reading the row again); counted a failure.
                        self.job.owed_restores.owe(id, target, r);
                        error!(deployment_id = %id, target = %target, replicas = r,
                            "a wake won the race but the app may be left at 0 under an awake \
                             row; restoring it again next tick");
                        return Attempt::Failed;
                    }
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
                warn!(deployment_id = %id, error = %crate::error_chain(&e), "confirming the sleep failed; recovery will settle it");
                Attempt::Failed
            }
        }
    }

    /// [`restore`] through the client of `target`'s cluster; false keeps the intent.
    async fn restore(&self, id: uuid::Uuid, target: &Target, replicas: i32) -> bool {
        restore(self.scaler(target), id, target, replicas).await
    }

    async fn revert(&self, intent: Intent) {
        let reverted = self
            .job
            .store
            .revert_sleep(intent.id, intent.at, self.job.clock.now())
            .await;
        if let Err(e) = reverted {
            // Left `sleeping`: recovery settles it after STALE_INTENT_AFTER.
            error!(deployment_id = %intent.id, error = %crate::error_chain(&e), "reverting the sleep intent failed");
        }
    }
}
