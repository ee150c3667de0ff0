//! One wake-and-wait per app at a time: N visitors of a slept app share one wake, one scale
//! write and one watch. The flight runs as its own task, so visitors that give up (a browser
//! that got the starting page) never cut it short.

use std::sync::Arc;

use idle_scaler_core::flight::{Flight, SingleFlight};
use idle_scaler_core::{Job, Readiness, ReadyState, Target, WakeResult, metrics};
use tokio::time::Instant;
use tracing::{info, warn};
use uuid::Uuid;

/// How long a flight that made its app ready keeps answering "ready".
const READY_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// How a flight ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Landing {
    /// Ready at `ready_at`; `woke` when this flight's wake scaled the app up.
    Ready { woke: bool, ready_at: Instant },
    /// Not ready within the timeout.
    TimedOut,
    /// The wake or the wait failed.
    Failed,
}

/// The wake-and-wait flights, one per app.
pub(crate) struct Flights(SingleFlight<Uuid, Landing>);

impl Default for Flights {
    fn default() -> Self {
        // A landed flight lingers so the starting page's poll sees "ready" (and the proxy has
        // time to route to the app); a failure is retried at once.
        Self(
            SingleFlight::new(|_, _| Landing::Failed).lingering(|l| match l {
                Landing::Ready { .. } => READY_LINGER,
                Landing::TimedOut | Landing::Failed => std::time::Duration::ZERO,
            }),
        )
    }
}

impl Flights {
    /// The flight of app `id`, started now when there is none.
    pub fn join(
        &self,
        id: Uuid,
        target: Target,
        job: Arc<Job>,
        readiness: Arc<dyn Readiness>,
        timeout: std::time::Duration,
    ) -> Flight<Landing> {
        self.0.join(id, move |started| async move {
            fly(id, &target, &job, readiness.as_ref(), started, timeout).await
        })
    }
}

async fn fly(
    id: Uuid,
    target: &Target,
    job: &Job,
    readiness: &dyn Readiness,
    started: Instant,
    timeout: std::time::Duration,
) -> Landing {
    let deadline = started + timeout;
    let woke = match tokio::time::timeout_at(deadline, job.wake(id)).await {
        Ok(Ok(report)) => report.result == WakeResult::WokeUp,
        Ok(Err(e)) => {
            warn!(deployment_id = %id, target = %target, error = %idle_scaler_core::error_chain(&e), "waker: wake failed");
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
            warn!(deployment_id = %id, target = %target, error = %idle_scaler_core::error_chain(&e), "waker: readiness wait failed");
            metrics::wake_on_request("failed");
            Landing::Failed
        }
    }
}
