//! The pause between the rounds of a wait that ends at a deadline: readiness and unpark both
//! watch again after a watch that ended without an answer or while the API server was away.

use std::time::Duration;

use tokio::time::Instant;

/// The first pause; doubled after each pause up to [`PAUSE_MAX`], so an API server that ends
/// every watch at once or is down is not asked in a loop.
const PAUSE_FIRST: Duration = Duration::from_millis(100);
const PAUSE_MAX: Duration = Duration::from_secs(2);

/// Doubling pauses that never sleep past the wait's deadline.
pub(crate) struct Backoff {
    pause: Duration,
    deadline: Instant,
}

impl Backoff {
    pub(crate) fn new(deadline: Instant) -> Self {
        Self {
            pause: PAUSE_FIRST,
            deadline,
        }
    }

    /// Back to the first pause: the last round made progress.
    pub(crate) fn reset(&mut self) {
        self.pause = PAUSE_FIRST;
    }

    /// Sleeps the pause and returns `true` (another round may start), or, when the pause
    /// would reach the deadline, sleeps until the deadline and returns `false`: the wait has
    /// timed out, and ends no earlier than its caller was promised.
    pub(crate) async fn pause(&mut self) -> bool {
        let resume = Instant::now() + self.pause;
        if resume >= self.deadline {
            tokio::time::sleep_until(self.deadline).await;
            return false;
        }
        tokio::time::sleep_until(resume).await;
        self.pause = (self.pause * 2).min(PAUSE_MAX);
        true
    }
}

#[cfg(test)]
mod tests;
