//! The parking listener's sockets, and how long they stay open at shutdown.
//!
//! Parked slices send a slept app's i-th HTTP port to the parking port + i, so all eight ports
//! are bound at once, before any is served (a port in use is a startup error, not a parked port
//! that answers nothing), and the listeners are handed to the parking listener. At shutdown the parking listener
//! outlives the other listeners: slices may still list this pod until the waker addresses are
//! re-pointed and kube-proxy and the gateways follow, and a connection refused there would be a
//! lost request. [`linger_while_listed`] says when it may close.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use idle_scaler_kube::parking::MAX_PORTS;
use tokio::net::TcpListener;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::listener;

/// The parking listener's sockets: the base port + 0..7, in that order (index = offset).
#[derive(Debug)]
pub struct ParkingSockets {
    base: SocketAddr,
    listeners: Vec<TcpListener>,
}

impl ParkingSockets {
    /// Binds the eight ports from `addr`'s port on, each with a listen backlog of `backlog`.
    /// All eight or none: an error names the port that could not be bound.
    pub fn bind(addr: SocketAddr, backlog: u32) -> anyhow::Result<Self> {
        let last = MAX_PORTS - 1;
        if addr.port() == 0 || addr.port().checked_add(last).is_none() {
            bail!(
                "the parking listener takes ports {}..{}+{last}: the first must be from 1 to {}",
                addr.port(),
                addr.port(),
                u16::MAX - last
            );
        }
        let listeners = (0..MAX_PORTS)
            .map(|offset| {
                let at = SocketAddr::new(addr.ip(), addr.port() + offset);
                listener::bind(at, backlog).with_context(|| {
                    format!("binding the parking listener's port {offset} on {at}")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            base: addr,
            listeners,
        })
    }

    /// The first port's address.
    pub fn base(&self) -> SocketAddr {
        self.base
    }

    /// The listeners, offset 0 first: what the parking listener serves.
    pub fn into_listeners(self) -> Vec<TcpListener> {
        self.listeners
    }
}

/// How long the parking listener stays open after SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linger {
    /// How often "does a slice still list this pod" is asked.
    pub poll: Duration,
    /// Once no slice lists the pod: open this much longer, for kube-proxy and the gateways to
    /// apply the re-pointed slices (they follow the API within about a second).
    pub settle: Duration,
    /// Open at most this long in all, listed or not: the held requests still need time to be
    /// answered within the daemon's grace.
    pub max: Duration,
}

impl Linger {
    /// This linger with its maximum no later than `deadline` after SIGTERM: the daemon caps it
    /// at the drain deadline (`IDLE_SCALER_HTTP_DRAIN_SECONDS`), when everything still held is
    /// answered anyway.
    pub fn capped(self, deadline: Duration) -> Self {
        Self {
            max: self.max.min(deadline),
            ..self
        }
    }
}

/// The daemon's linger: a question a second, 2 s for the data planes, at most 15 s, which
/// leaves the 5 s up to the drain deadline (20 s after SIGTERM) to answer what was accepted
/// last, inside the 25 s grace. The shipped Deployment's preStop sleep (10 s) comes first.
pub const PARKING_LINGER: Linger = Linger {
    poll: Duration::from_secs(1),
    settle: Duration::from_secs(2),
    max: Duration::from_secs(15),
};

/// Why the linger ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LingerEnd {
    /// No slice listed the pod any more, and the settle time passed.
    Unlisted,
    /// The maximum passed while a slice still listed the pod (or the question had no answer).
    Max,
}

/// Resolves when the parking listener may close: `listed` ("does a parked slice still list
/// this pod?") has answered false and `linger.settle` has passed since, or `linger.max` has
/// passed. `listed` answers true when it cannot tell (the API unreachable): keeping the
/// listener open a while longer costs nothing, closing it early loses requests.
pub async fn linger_while_listed<F, Fut>(mut listed: F, linger: Linger) -> LingerEnd
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + linger.max;
    let unlisted = async {
        let mut every = tokio::time::interval(linger.poll);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if !listed().await {
                break;
            }
        }
        tokio::time::sleep(linger.settle).await;
    };
    match tokio::time::timeout_at(deadline, unlisted).await {
        Ok(()) => LingerEnd::Unlisted,
        Err(_) => LingerEnd::Max,
    }
}

/// Spawns the linger and cancels `stop` (the parking listener's: stop accepting, answer what
/// is held) when it ends. Called at SIGTERM, while the other listeners drain.
pub fn stop_parking_after_linger<F, Fut>(
    listed: F,
    linger: Linger,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<LingerEnd>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let started = Instant::now();
        let end = linger_while_listed(listed, linger).await;
        info!(
            ended = ?end,
            lingered_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "parking listener closing"
        );
        stop.cancel();
        end
    })
}

#[cfg(test)]
mod tests;
