//! Refused wake requests (no or a wrong token) are logged at most once per period, with the
//! peer and how many were refused silently since the last line: a scan or a misconfigured
//! client must not flood the log. The token given is never logged.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

/// At most one WARN per [`RejectedLog::PERIOD`].
#[derive(Debug, Default)]
pub struct RejectedLog {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl RejectedLog {
    /// Shortest time between two lines.
    pub const PERIOD: Duration = Duration::from_secs(10);

    /// Counts a refused request from `peer`; logs it if no line was logged in the period.
    pub fn record(&self, peer: SocketAddr) {
        if let Some(suppressed) = self.should_log(Instant::now()) {
            warn!(
                %peer,
                suppressed,
                "wake request refused: missing or wrong bearer token"
            );
        }
    }

    /// `Some(refusals not logged since the last line)` when a line is due at `now`.
    fn should_log(&self, now: Instant) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = state
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= Self::PERIOD);
        if due {
            state.last_logged = Some(now);
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests;
