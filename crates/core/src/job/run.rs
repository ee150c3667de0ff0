//! The provided loop: a tick every interval until the host's token is cancelled. A failed or
//! panicking tick is logged, counted and handed to the host; the loop goes on.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::Job;
use crate::{Error, TickReport, metrics};

/// How one tick of [`Job::run_reporting`] ended, handed to the host's callback.
#[derive(Debug)]
pub enum TickResult {
    /// The tick ran (a disabled or fail-open tick too: see the report's flags).
    Report(TickReport),
    /// The tick failed (a store error, typically); the next tick retries.
    Failed(Error),
    /// The tick panicked; the panic was caught and the loop goes on. The panic's message.
    Panicked(String),
}

impl Job {
    /// Runs ticks every `interval` until `shutdown` is cancelled. A failed tick is logged and
    /// the loop goes on; on shutdown no new transition starts and in-flight ones finish.
    pub async fn run(&self, shutdown: CancellationToken) {
        self.run_reporting(shutdown, |_| {}).await;
    }

    /// [`Job::run`], handing how each tick ended to `on_tick` (to log it the host's way,
    /// export it, or forward it on a channel). A panic inside a tick (a bug, or a port that
    /// panics) is caught, logged at ERROR, counted as `ticks_total{result="panic"}` and
    /// handed over as [`TickResult::Panicked`]: it never ends the loop or the host's task.
    pub async fn run_reporting(
        &self,
        shutdown: CancellationToken,
        mut on_tick: impl FnMut(TickResult) + Send,
    ) {
        let mut interval = tokio::time::interval(self.config.interval());
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            // The job holds no state a half-run tick could leave inconsistent for the next
            // one: every transition is a compare-and-set in the database and in Kubernetes.
            let tick = AssertUnwindSafe(self.tick_with_shutdown(&shutdown)).catch_unwind();
            let result = match tick.await {
                Ok(Ok(report)) => TickResult::Report(report),
                Ok(Err(e)) => {
                    error!(error = %crate::error_chain(&e), "tick failed; the next tick will retry");
                    TickResult::Failed(e)
                }
                Err(panic) => {
                    let message = panic_message(panic.as_ref());
                    error!(panic = %message, "tick panicked; the next tick will run as usual");
                    metrics::tick_panicked();
                    TickResult::Panicked(message)
                }
            };
            on_tick(result);
        }
        info!("idle-scaler job stopped");
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}
