//! Lasting skips and failures back the row off, so it neither starves the rows behind it nor
//! trips the blast radius on every tick.

use tracing::{debug, warn};

use super::{Attempt, TickCtx};
use crate::{Candidate, SkipReason};

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

impl TickCtx<'_> {
    /// A row that failed or was skipped for a lasting reason is no candidate for a while
    /// (one interval, doubling up to a day), so it neither starves the rows behind it nor
    /// trips the blast radius on every tick. A 409 is lasting only when it repeats: the
    /// first one waits no time but counts.
    pub(super) async fn back_off_if_lasting(&self, c: &Candidate, attempt: &Attempt) {
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
            Err(e) => warn!(deployment_id = %c.id, error = %crate::error_chain(&e),
                "recording the backoff failed; the row is tried again next tick"),
        }
    }

    fn raced_by_kubernetes(&self, c: &Candidate) -> bool {
        self.conflicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&c.id)
    }
}
