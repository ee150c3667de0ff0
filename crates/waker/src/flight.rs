//! One wake-and-wait per app at a time: N visitors of a slept app share one wake, one scale
//! write and one watch. The flight runs as its own task, so visitors that give up (a browser
//! that got the starting page) never cut it short.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use idle_scaler_core::flight::{Flight, SingleFlight};
use idle_scaler_core::{
    DeploymentRecord, Error, Job, Readiness, ReadyState, SleepState, Target, WakeReason,
    WakeResult, metrics,
};
use tokio::time::Instant;
use tracing::{info, warn};
use uuid::Uuid;

/// How long a flight that made its app ready keeps answering "ready".
const READY_LINGER: Duration = Duration::from_secs(5);

/// How long a failed wake is remembered: the app's requests meanwhile get the generic 503
/// at once, with no Kubernetes call and no log line (a vanished Deployment would otherwise
/// cost a read and a warning per request). The generic answer's `Retry-After` says the same.
pub(crate) const FAILED_WAKE_MEMORY: Duration = Duration::from_secs(30);

/// How long an app must have been ready before a 502/503 the proxy reports is taken as the
/// app's own answer: by then the proxy routes to it (ingress-nginx syncs its endpoints about
/// once a second), so redirecting would only send the visitor back here. Below
/// [`READY_LINGER`], so a flight's requests see the app settle before a new flight starts.
pub(crate) const READY_SETTLE: Duration = Duration::from_secs(3);

/// How a flight ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Landing {
    /// Ready at `ready_at`; `woke` when this flight's wake scaled the app up.
    Ready { woke: bool, ready_at: Instant },
    /// Not ready within the timeout.
    TimedOut,
    /// The wake or the wait failed; remembered for [`FAILED_WAKE_MEMORY`].
    Failed,
    /// Not started: the namespace's wakes of this minute are used up.
    Limited,
}

/// Told the `provider_id` of an app whose wake succeeded (its row is awake now).
pub(crate) type OnWoken = Arc<dyn Fn(&str) + Send + Sync>;

/// The wake-and-wait flights, one per app.
pub(crate) struct Flights {
    flights: SingleFlight<Uuid, Landing>,
    woken: OnWoken,
}

impl Flights {
    /// The flights; `woken` is told of every successful wake.
    pub fn new(woken: OnWoken) -> Self {
        // A landed flight lingers so the starting page's poll sees "ready" (and the proxy has
        // time to route to the app); a failure is remembered; a timeout is retried at once.
        let flights = SingleFlight::new(|_, _| Landing::Failed).lingering(|l| match l {
            Landing::Ready { .. } => READY_LINGER,
            Landing::Failed => FAILED_WAKE_MEMORY,
            Landing::TimedOut | Landing::Limited => Duration::ZERO,
        });
        Self { flights, woken }
    }
}

/// Whether the app has been ready for [`READY_SETTLE`] at `now` (`wall_now` by the waker's
/// clock): exactly, when this waker's flight woke it (`woke`, ready at `ready_at`); otherwise
/// (it ran already) judged by how long its row has been awake. A row turns awake before its
/// app is ready, so an app someone else woke that started slowly can be judged settled
/// early: its first error is then passed through, never looped.
pub(crate) fn settled(
    row: &DeploymentRecord,
    woke: bool,
    ready_at: Instant,
    now: Instant,
    wall_now: DateTime<Utc>,
) -> bool {
    if woke {
        return now.saturating_duration_since(ready_at) >= READY_SETTLE;
    }
    let settle = TimeDelta::from_std(READY_SETTLE).unwrap_or(TimeDelta::MAX);
    row.sleep_state == SleepState::Awake && wall_now - row.sleep_state_changed_at >= settle
}

/// What a new flight needs.
pub(crate) struct Start {
    pub target: Target,
    pub job: Arc<Job>,
    pub readiness: Arc<dyn Readiness>,
    pub timeout: Duration,
}

impl Flights {
    /// The flight of app `id`: the one in flight (or remembered), else one started now if
    /// `may_start` allows it. `None`: there was none and `may_start` refused.
    pub fn join(
        &self,
        id: Uuid,
        start: Start,
        may_start: impl FnOnce() -> bool,
    ) -> Option<Flight<Landing>> {
        let mut refused = false;
        let woken = self.woken.clone();
        let flight = self.flights.join(id, |started| {
            refused = !may_start();
            let Start {
                target,
                job,
                readiness,
                timeout,
            } = start;
            async move {
                if refused {
                    return Landing::Limited;
                }
                fly(
                    id,
                    &target,
                    &job,
                    readiness.as_ref(),
                    started,
                    timeout,
                    &woken,
                )
                .await
            }
        });
        (!refused).then_some(flight)
    }
}

async fn fly(
    id: Uuid,
    target: &Target,
    job: &Job,
    readiness: &dyn Readiness,
    started: Instant,
    timeout: Duration,
    woken: &OnWoken,
) -> Landing {
    let deadline = started + timeout;
    let woke = match tokio::time::timeout_at(deadline, job.wake_for(id, WakeReason::Visitor)).await
    {
        Ok(Ok(report)) => {
            woken(&target.provider_id());
            report.result == WakeResult::WokeUp
        }
        Ok(Err(e)) => {
            // The job logs the Kubernetes errors of a wake itself; the store's are ours to tell.
            let error = idle_scaler_core::error_chain(&e);
            let memory_s = FAILED_WAKE_MEMORY.as_secs();
            if matches!(e, Error::Store { .. }) {
                warn!(deployment_id = %id, target = %target, error = %error, memory_s, "waker: wake failed; the app's requests get 503 for a while");
            } else {
                info!(deployment_id = %id, target = %target, error = %error, memory_s, "waker: wake failed; the app's requests get 503 for a while");
            }
            metrics::wake_on_request("failed");
            return Landing::Failed;
        }
        Err(_) => {
            metrics::wake_on_request("timeout");
            return Landing::TimedOut;
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    match readiness.wait_ready(target, left).await {
        Ok(ReadyState::Ready) => {
            let ready_at = Instant::now();
            if woke {
                metrics::cold_start(ready_at - started);
                info!(deployment_id = %id, target = %target,
                    cold_start_ms = u64::try_from((ready_at - started).as_millis()).unwrap_or(u64::MAX),
                    "waker: app woken on request and ready");
            }
            metrics::wake_on_request(if woke { "woke" } else { "already_ready" });
            Landing::Ready { woke, ready_at }
        }
        Ok(ReadyState::TimedOut) => {
            warn!(deployment_id = %id, target = %target, "waker: app not ready in time");
            metrics::wake_on_request("timeout");
            Landing::TimedOut
        }
        Err(e) => {
            warn!(deployment_id = %id, target = %target, error = %idle_scaler_core::error_chain(&e),
                memory_s = FAILED_WAKE_MEMORY.as_secs(), "waker: readiness wait failed; the app's requests get 503 for a while");
            metrics::wake_on_request("failed");
            Landing::Failed
        }
    }
}

#[cfg(test)]
mod tests;
