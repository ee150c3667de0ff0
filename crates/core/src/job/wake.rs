//! Wake: the reverse of a sleep, for the library call, the CLI and HTTP.
//!
//! One attempt per app at a time in this process (single flight, see [`crate::flight`]):
//! concurrent callers share it, and a caller that goes away never leaves it half done.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info};
use uuid::Uuid;

use super::adaptive::Adaptive;
use super::park::Parkings;
use super::recover::STALE_INTENT_AFTER;
use super::{Job, log_scale_error, sample_idle_apps};
use crate::flight::SingleFlight;
use crate::metrics;
use crate::{
    Clock, Config, DeploymentRecord, Error, Outcome, Parking, Reach, Result, Scaler,
    ScalerFactories, ServedClusters, SleepState, Store, Target, WakeReason, WakeReport, WakeResult,
};

/// How often a wake looks again when its compare-and-set loses to a concurrent transition.
const WAKE_ATTEMPTS: usize = 3;

/// How often a wake that waits for a sleep in flight reads the row again.
const INTENT_POLL: Duration = Duration::from_millis(100);

/// The wakes in flight in this process, one per app.
#[derive(Debug, Clone)]
pub(super) struct Wakes {
    flights: SingleFlight<Uuid, Result<WakeReport>>,
    /// How long a wake waits for a sleep in flight to settle; `None`: one transition's bound.
    intent_wait: Option<Duration>,
}

impl Wakes {
    /// Wakes in tasks of their own (`inline`: in their callers' futures, see
    /// [`SingleFlight::inline`]).
    pub(super) fn new(inline: bool, intent_wait: Option<Duration>) -> Self {
        let flights = SingleFlight::new(|id, e| {
            Err(Error::unavailable(format!(
                "the wake of {id} did not finish: {e}"
            )))
        });
        Self {
            flights: flights.inline(inline),
            intent_wait,
        }
    }
}

/// What one wake needs, owned so that the wake can outlive its caller.
struct WakeCtx {
    intent_wait: Duration,
    config: Config,
    store: Arc<dyn Store>,
    scalers: ScalerFactories,
    served: ServedClusters,
    clock: Arc<dyn Clock>,
    /// Unparks the app once it is ready, when the job parks.
    parking: Option<Arc<Parkings>>,
    /// Why the app is woken (the first caller's reason, for callers that share the wake).
    reason: WakeReason,
    /// The adaptive policy, which learns from wakes by request and runs pre-warms.
    adaptive: Option<Adaptive>,
}

impl Job {
    /// Wakes one app: restores its recorded replica count (never lowering a running app)
    /// and marks the row awake. Concurrent calls for one app share one attempt, and the
    /// attempt finishes even if every caller goes away. A wake for a request of the host's
    /// (the library call, the CLI, the HTTP API): [`Job::wake_for`] with [`WakeReason::Api`].
    pub async fn wake(&self, id: Uuid) -> Result<WakeReport> {
        self.wake_for(id, WakeReason::Api).await
    }

    /// [`Job::wake`], saying why. A wake by request ([`WakeReason::is_request`]) of an app
    /// that was asleep is a cold start, and the adaptive policy learns its time; a
    /// [`WakeReason::Prewarm`] (adaptive policy only) wakes an `asleep` app without counting
    /// as activity and keeps it up only until its expected request is overdue. Callers that
    /// join a wake in flight share its reason.
    pub async fn wake_for(&self, id: Uuid, reason: WakeReason) -> Result<WakeReport> {
        let flight = self.wakes.flights.join(id, |_| {
            let ctx = WakeCtx {
                intent_wait: self
                    .wakes
                    .intent_wait
                    .unwrap_or_else(|| self.config.transition_bound()),
                config: self.config.clone(),
                store: self.store.clone(),
                scalers: self.scalers.clone(),
                served: self.served.clone(),
                clock: self.clock.clone(),
                parking: self
                    .parking
                    .clone()
                    .filter(|_| self.config.parking == Parking::EndpointSlices),
                reason,
                adaptive: self.adaptive.clone(),
            };
            async move { ctx.wake(id).await }
        });
        flight.landing.await
    }

    /// Runs each wake inside the futures of its callers instead of a task of its own, for a
    /// harness that polls every future itself (a deterministic simulation). A wake then
    /// stops half way when all its callers are dropped, which is what such a harness
    /// wants to model; production code keeps the default.
    #[cfg(any(test, feature = "test-util"))]
    #[must_use]
    pub fn with_inline_wakes(mut self) -> Self {
        self.wakes = Wakes::new(true, self.wakes.intent_wait);
        self
    }

    /// How long a wake that meets a sleep in flight waits for it to settle before it
    /// answers a retryable conflict (default: one transition's bound, four request
    /// timeouts). Zero answers at once, for a harness that decides itself when to look again.
    #[cfg(any(test, feature = "test-util"))]
    #[must_use]
    pub fn with_intent_wait(mut self, wait: Duration) -> Self {
        self.wakes.intent_wait = Some(wait);
        self
    }

    /// Waits until every wake started so far has finished: a graceful shutdown calls it
    /// so that no wake is cut half way. Then waits, at most [`super::UNPARK_SHUTDOWN_WAIT`],
    /// for the unparks those wakes started (the reconcile finishes any left).
    pub async fn finish_wakes(&self) {
        self.wakes.flights.wait().await;
        if let Some(parking) = &self.parking {
            parking.finish_unparks(super::UNPARK_SHUTDOWN_WAIT).await;
        }
    }
}

impl WakeCtx {
    async fn wake(&self, id: Uuid) -> Result<WakeReport> {
        let started = Instant::now();
        let result = self.wake_inner(id).await.map(|(report, woken)| {
            // The app runs: its Services go back to it once its own endpoints are ready.
            if let (Some(parking), Some(target)) = (&self.parking, woken) {
                parking.unpark_after_wake(target);
            }
            report
        });
        metrics::wake_duration(started.elapsed());
        match &result {
            Ok(r) => {
                if r.result == WakeResult::WokeUp {
                    metrics::outcome(Outcome::WokeUp);
                }
                if r.result != WakeResult::AlreadyAwake {
                    // Keep the gauge true between ticks: dashboards watch apps waking.
                    sample_idle_apps(
                        self.store.as_ref(),
                        self.config.default_wake_replicas,
                        self.clock.as_ref(),
                    )
                    .await;
                }
            }
            Err(Error::UnknownDeployment(_) | Error::ClusterNotServed { .. }) => {}
            // Retryable: nothing failed, a transition was in flight; not a `wake_failed`.
            Err(Error::Conflict { .. }) => metrics::wake_conflict(),
            Err(_) => metrics::outcome(Outcome::WakeFailed),
        }
        result
    }

    /// The report, and the target the wake brought up (not for an app that was awake).
    async fn wake_inner(&self, id: Uuid) -> Result<(WakeReport, Option<Target>)> {
        // A sleep in flight is waited out for as long as one transition can take.
        let wait_until = Instant::now() + self.intent_wait;
        let mut attempts = 0;
        // Set once this wake has scaled the app up: a later look that finds it running
        // (after a lost compare-and-set) still reports the wake's own work.
        let mut scaled_up = None;
        while attempts < WAKE_ATTEMPTS {
            let row = self
                .store
                .get(id)
                .await?
                .ok_or(Error::UnknownDeployment(id))?;
            self.check_served(&row)?;
            let now = self.clock.now();
            if self.reason == WakeReason::Prewarm {
                self.check_prewarm(&row)?;
                if row.sleep_state == SleepState::Awake {
                    // Up already (a request woke it): nothing to do, and no activity to record.
                    let report = WakeReport {
                        id,
                        result: WakeResult::AlreadyAwake,
                        replicas: None,
                    };
                    return Ok((report, None));
                }
            }
            match row.sleep_state {
                SleepState::Awake => {
                    if self.store.touch_awake(id, now).await? {
                        info!(deployment_id = %id, "wake: already awake; activity bumped");
                        let report = WakeReport {
                            id,
                            result: WakeResult::AlreadyAwake,
                            replicas: None,
                        };
                        return Ok((report, None));
                    }
                    attempts += 1;
                    continue;
                }
                SleepState::Sleeping if row.sleep_state_changed_at > now - STALE_INTENT_AFTER => {
                    // A tick is between its intent and its confirm: acting now could report
                    // success just before its scale-down lands. Let it settle, then wake.
                    if Instant::now() >= wait_until {
                        info!(deployment_id = %id, "wake: a sleep is still in flight; retry");
                        return Err(Error::conflict(format!(
                            "deployment {id} is being put to sleep right now; retry the wake"
                        )));
                    }
                    debug!(deployment_id = %id, "wake: waiting for the sleep in flight to settle");
                    tokio::time::sleep(INTENT_POLL).await;
                    continue;
                }
                SleepState::Sleeping | SleepState::Asleep => {}
            }
            attempts += 1;
            if let Some((report, target)) = self.scale_up(&row, &mut scaled_up).await? {
                return Ok((report, Some(target)));
            }
            // The Deployment or the row moved since read: look again.
        }
        Err(Error::conflict(format!(
            "deployment {id} kept changing during wake"
        )))
    }

    /// A pre-warm runs under the adaptive policy, for an `asleep` app (or an awake one, which
    /// needs nothing): a sleep in flight is left to finish.
    fn check_prewarm(&self, row: &DeploymentRecord) -> Result<()> {
        if self.adaptive.is_none() {
            return Err(Error::invalid(format!(
                "pre-warm of {}: only the adaptive policy pre-warms (policy = adaptive)",
                row.id
            )));
        }
        if row.sleep_state == SleepState::Sleeping {
            return Err(Error::conflict(format!(
                "deployment {} is being put to sleep right now; no pre-warm",
                row.id
            )));
        }
        // An app the host no longer lets run normally (unhealthy, expired) is not woken for
        // a guess.
        if !crate::policy::may_wake(row, self.clock.now()) {
            return Err(Error::invalid(format!(
                "deployment {} is not one the host lets wake (status {:?}, expires_at {:?}); no \
                 pre-warm",
                row.id, row.status, row.expires_at
            )));
        }
        Ok(())
    }

    /// Ends a wake's row transition: a pre-warm keeps the activity as it was and keeps the
    /// app up for its expected request; any other wake bumps the activity.
    async fn finish(
        &self,
        row: &DeploymentRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let id = row.id;
        if let (WakeReason::Prewarm, Some(adaptive)) = (self.reason, &self.adaptive) {
            let s = &adaptive.settings;
            let rhythm = adaptive.store.rhythms(&[id]).await?.remove(&id);
            let keep_until = rhythm
                .and_then(|r| r.due_prewarm(row.last_activity_at, now, s))
                .map_or(now + s.prewarm + s.tick, |p| p.keep_until)
                .min(now + s.max_keep);
            return adaptive
                .store
                .finish_prewarm(id, row.sleep_state_changed_at, now, keep_until)
                .await;
        }
        if row.sleep_state == SleepState::Sleeping {
            // A stale intent. Settle this very intent (a tick may have claimed the row anew
            // meanwhile, and that live intent must not be marked awake under it), then bump
            // activity as a wake does.
            Ok(self
                .store
                .settle_intent(id, row.sleep_state_changed_at, SleepState::Awake, now)
                .await?
                && self.store.touch_awake(id, now).await?)
        } else {
            self.store
                .finish_wake(id, row.sleep_state, row.sleep_state_changed_at, now)
                .await
        }
    }

    /// A row of a cluster this instance does not serve is another instance's to wake: refused
    /// before anything is read or written. Ids that name no target are left to `scale_up`,
    /// which refuses them as before.
    fn check_served(&self, row: &DeploymentRecord) -> Result<()> {
        match Target::parse(&row.provider_id) {
            Ok(t) if !self.served.serves(t.cluster.as_ref()) => {
                info!(deployment_id = %row.id, cluster = t.cluster_label(),
                    "wake refused: the app's cluster is not served by this instance");
                Err(Error::ClusterNotServed {
                    id: row.id,
                    cluster: t.cluster_label().to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Reads the Deployment and brings it up unless it runs, then marks the row awake.
    /// `None`: something moved meanwhile (a precondition or a compare-and-set lost).
    async fn scale_up(
        &self,
        row: &DeploymentRecord,
        scaled_up: &mut Option<i32>,
    ) -> Result<Option<(WakeReport, Target)>> {
        let id = row.id;
        let target = Target::parse(&row.provider_id).map_err(|e| {
            Error::invalid(format!(
                "deployment {id} has provider_id {:?}: {e}",
                row.provider_id
            ))
        })?;
        let factory = self.scalers.get(target.cluster.as_ref()).ok_or_else(|| {
            Error::unavailable(format!(
                "no scaler factory was given for cluster {}",
                target.cluster_label()
            ))
        })?;
        let scaler = factory.scaler().await?;
        let scale = scaler.get_scale(&target).await.inspect_err(|e| {
            log_scale_error(
                id,
                &target,
                e,
                "wake could not read the scale; row left asleep",
            );
        })?;
        let (result, replicas) = if scale.replicas > 0 {
            // Someone (a person, a redeploy, an earlier look of this wake) runs it: never
            // lower it, write nothing.
            match *scaled_up {
                Some(ours) => (WakeResult::WokeUp, ours),
                None => (WakeResult::AlreadyRunning, scale.replicas),
            }
        } else {
            let replicas = crate::policy::restore_count(
                row.replicas_before_sleep,
                self.config.default_wake_replicas,
            );
            // Marked first: should this wake stop between the scale-up and the row flip (a
            // crash, a store error), the drift check tells it from someone else's scale-up.
            if !self
                .store
                .begin_wake(id, row.sleep_state_changed_at, self.clock.now())
                .await?
            {
                return Ok(None);
            }
            match scaler
                .set_replicas(&target, replicas, Some(&scale.resource_version))
                .await
            {
                Ok(()) => {
                    *scaled_up = Some(replicas);
                    (WakeResult::WokeUp, replicas)
                }
                Err(Error::Conflict { .. }) => return Ok(None),
                Err(e) if landed_after_all(scaler.as_ref(), &target, &e).await => {
                    info!(deployment_id = %id, target = %target, error = %e,
                        "wake: the scale-up's answer was lost, but the app runs");
                    *scaled_up = Some(replicas);
                    (WakeResult::WokeUp, replicas)
                }
                Err(e) => {
                    log_scale_error(
                        id,
                        &target,
                        &e,
                        "wake could not scale the app up; row left asleep",
                    );
                    return Err(e);
                }
            }
        };
        let now = self.clock.now();
        if !self.finish(row, now).await? {
            return Ok(None);
        }
        info!(deployment_id = %id, target = %target, replicas, outcome = result.as_str(),
            reason = self.reason.as_str(), "app woken");
        if result == WakeResult::WokeUp && self.reason.is_request() {
            // A request found its app down: a cold start, and a request the rhythm learns.
            metrics::cold_start_seen();
            if let Some(adaptive) = &self.adaptive {
                adaptive.learn(id, row.last_activity_at, now).await;
            }
        }
        let report = WakeReport {
            id,
            result,
            replicas: Some(replicas),
        };
        Ok(Some((report, target)))
    }
}

/// Whether a scale-up that failed with `e` took effect after all: a write whose answer was
/// lost (no answer in time, a dropped connection) may have been applied, and reporting it
/// failed would leave the row asleep with the app running. Read back once to know.
async fn landed_after_all(scaler: &dyn Scaler, target: &Target, e: &Error) -> bool {
    let unknown = matches!(
        e,
        Error::Unavailable { reach, .. } if *reach != Reach::NotReached
    );
    unknown && matches!(scaler.get_scale(target).await, Ok(s) if s.replicas > 0)
}
