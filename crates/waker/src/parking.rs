//! The parking listener: where a slept app's parked Services send every caller (gateways,
//! proxies, other apps' pods). A request is identified by its `Host` alone, its caller is
//! checked before anything is woken, the app is woken through the waker's flights (one wake
//! per app, shared with the fallback listener), and once the app has a ready endpoint of its
//! own the request is forwarded to it: body streamed, trailers and upgrades carried, the
//! answer streamed back with `Connection: close` (HTTP/2: `GOAWAY`), so the caller's next
//! request goes to the app itself once it is unparked. HTTP/2 with prior knowledge is served
//! only for ports declared `kubernetes.io/h2c`.
//!
//! Steps, one file each: `serve` (accept loops, caps, timeouts, drain), `identify` (which
//! parked Service the `Host` names, by cluster DNS or, for gateways, the route index), `caller` (who may call it), `hold` (wake, wait,
//! answer), `headers` (hop-by-hop and `X-Forwarded-*`), `gate` (forwards open to one app at
//! once), `pool` (kept-alive connections to the apps), `forward` (the request to the app) and `upgrade` (WebSocket and other upgrades).

mod caller;
mod forward;
mod gate;
mod headers;
mod hold;
mod identify;
mod pool;
mod serve;
mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use idle_scaler_core::{ParkingDirectory, RouteIndex};

use crate::Waker;

/// Listener ports a parked Service's ports map to: port + 0 ..= port + 7.
pub const MAX_LISTENERS: usize = 8;

/// The parking listener's capacity and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkingLimits {
    /// Connections open at once over all its ports; further ones wait in the listen backlog
    /// (bind the listeners with a backlog at least this large).
    pub max_connections: usize,
    /// Requests held for one app at once; beyond it, `503` + `Retry-After` at once.
    pub max_held_per_app: usize,
    /// How long a client may take to send a request's headers (also an idle keep-alive
    /// connection's limit).
    pub header_read_timeout: Duration,
    /// Forwards open to one app at once (and connections kept alive to each of its
    /// endpoints); the rest wait for one to finish. Below the common listen backlog of 128,
    /// so the burst of requests released when an app turns ready does not overflow the app's
    /// backlog.
    pub max_forwards_per_app: usize,
}

impl Default for ParkingLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_held_per_app: 2048,
            header_read_timeout: Duration::from_secs(10),
            max_forwards_per_app: 100,
        }
    }
}

/// The parking listener over a [`Waker`] (identification of the app's row, its flights and
/// wake limit, its configuration) and a [`ParkingDirectory`] (parked Services, callers'
/// namespaces, the apps' ready endpoints). Serve it with [`ParkingListener::serve`].
pub struct ParkingListener {
    waker: Arc<Waker>,
    directory: Arc<dyn ParkingDirectory>,
    /// Public hostnames (+ paths) -> backend Services, for trusted gateways' requests.
    routes: Option<Arc<dyn RouteIndex>>,
    limits: ParkingLimits,
    trust: caller::Trust,
    held: hold::Held,
    gate: gate::Gate,
    pool: Arc<pool::Pool>,
}

impl std::fmt::Debug for ParkingListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParkingListener")
            .field("limits", &self.limits)
            .field("routes", &self.routes.is_some())
            .finish_non_exhaustive()
    }
}

impl ParkingListener {
    /// A parking listener that wakes through `waker` and looks parked Services up in
    /// `directory`. The caller check's trusted gateways and CIDRs, the browser's wait and the
    /// hold timeout come from the waker's configuration.
    pub fn new(
        waker: Arc<Waker>,
        directory: Arc<dyn ParkingDirectory>,
        limits: ParkingLimits,
    ) -> Self {
        Self {
            trust: caller::Trust::new(&waker.config),
            held: hold::Held::new(limits.max_held_per_app),
            gate: gate::Gate::new(limits.max_forwards_per_app),
            pool: Arc::new(pool::Pool::new(limits.max_forwards_per_app)),
            waker,
            directory,
            routes: None,
            limits,
        }
    }

    /// Names apps by public hostnames too: a trusted gateway's request whose `Host` is no
    /// cluster DNS form of a parked Service is resolved (host + path) through `routes`, and
    /// wakes the first parked backend of the rule the gateway chose. Without it, only the
    /// cluster DNS forms name an app.
    #[must_use]
    pub fn routes(mut self, routes: Arc<dyn RouteIndex>) -> Self {
        self.routes = Some(routes);
        self
    }
}
