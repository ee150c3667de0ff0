//! Kept-alive connections to the apps' ready endpoints. When a slept app turns ready, every
//! request held for it is released at once; a connection per request would cost each one a
//! connect, a handshake and a close on both sides (and, beyond the app's listen backlog,
//! dropped SYNs retried only after a second). Reused connections carry the burst instead.
//!
//! A connection goes back only after its answer has been read to the end, and is reused only
//! for [`IDLE_FOR`], shorter than the common app servers' keep-alive timeouts (gunicorn's 2 s
//! is the shortest), so the app rarely closes one as a request goes out. When it does and hyper
//! has written nothing yet, the request comes back and goes on another connection; once a byte
//! went, it is never sent again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

/// How long an idle connection to an app is reused.
pub(super) const IDLE_FOR: Duration = Duration::from_secs(1);

/// Idle connections by endpoint, at most `max_per_endpoint` each.
#[derive(Debug)]
pub(super) struct Pool {
    max_per_endpoint: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    idle: HashMap<SocketAddr, Vec<Idle>>,
    /// When every endpoint's stale connections were last dropped.
    swept: Option<Instant>,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Incoming>,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.saturating_duration_since(self.since) < IDLE_FOR
    }
}

impl Pool {
    pub(super) fn new(max_per_endpoint: usize) -> Self {
        Self {
            max_per_endpoint: max_per_endpoint.max(1),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently returned connection to `to` still usable, if any.
    pub(super) fn take(&self, to: SocketAddr) -> Option<SendRequest<Incoming>> {
        let now = Instant::now();
        let mut state = self.state();
        let idle = state.idle.get_mut(&to)?;
        let found = std::iter::from_fn(|| idle.pop()).find(|i| i.usable(now));
        if idle.is_empty() {
            state.idle.remove(&to);
        }
        found.map(|i| i.sender)
    }

    /// Gives back a connection to `to` whose answer has been read to the end.
    pub(super) fn put(&self, to: SocketAddr, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut state = self.state();
        if state
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= IDLE_FOR)
        {
            // Endpoints nobody forwards to any more: their connections close here.
            state.idle.retain(|_, idle| {
                idle.retain(|i| i.usable(now));
                !idle.is_empty()
            });
            state.swept = Some(now);
        }
        let idle = state.idle.entry(to).or_default();
        if idle.len() < self.max_per_endpoint {
            idle.push(Idle { sender, since: now });
        }
    }

    /// Idle connections kept now.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.state().idle.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests;
