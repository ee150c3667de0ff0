//! One request: identify the parked Service by `Host`, check the caller, wake the app through
//! the waker's flight, hold the request until the app has a ready endpoint, and forward it
//! (or answer: the starting page, `503` + `Retry-After`, the generic `503`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::response::Response;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Uri, Version, header};
use hyper::body::Incoming;
use idle_scaler_core::{ListenerPort, ParkedServiceInfo, SleepState, Target, metrics, policy};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::caller::Caller;
use super::forward::{self, Unreached};
use super::{ParkingListener, headers, identify};
use crate::flight::{Landing, Start};
use crate::{POLL_HEADER, answer, generic, request};

/// The `appProtocol` of a port whose app speaks HTTP/2 with prior knowledge.
const H2C: &str = "kubernetes.io/h2c";

/// `Retry-After` when the app's held requests are at their cap, or the listener stops.
const BUSY_RETRY_AFTER: u64 = 2;

/// The connection a request came on.
#[derive(Debug)]
pub(super) struct Conn {
    pub listener: Arc<ParkingListener>,
    pub peer: SocketAddr,
    /// Which parked port: the listener's port + `offset`.
    pub offset: u16,
    /// The listener is stopping: held requests are answered at once.
    pub shutdown: CancellationToken,
    /// Ends this connection gracefully (HTTP/2 `GOAWAY`) once the current answers are out.
    pub close: CancellationToken,
    /// Who is calling, resolved at the connection's first request (a connection is one
    /// pod's for its whole life).
    pub caller: OnceCell<Caller>,
}

/// Requests held per app, capped.
#[derive(Debug)]
pub(super) struct Held {
    max: usize,
    per_app: Mutex<HashMap<Target, usize>>,
}

/// One held request; dropping it releases its place.
struct HeldPlace<'a> {
    held: &'a Held,
    target: &'a Target,
}

impl Held {
    pub(super) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            per_app: Mutex::default(),
        }
    }

    fn try_hold<'a>(&'a self, target: &'a Target) -> Option<HeldPlace<'a>> {
        let mut per_app = self.per_app.lock().unwrap_or_else(PoisonError::into_inner);
        let n = per_app.entry(target.clone()).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(HeldPlace { held: self, target })
    }
}

impl Drop for HeldPlace<'_> {
    fn drop(&mut self) {
        let mut per_app = self
            .held
            .per_app
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = per_app.get_mut(self.target) {
            *n -= 1;
            if *n == 0 {
                per_app.remove(self.target);
            }
        }
    }
}

/// How the wait for the app ended.
enum Waited {
    Ready(SocketAddr),
    TimedOut,
    Failed,
    Stopping,
}

/// Answers one request that came through a parked Service.
pub(super) async fn handle(conn: &Conn, req: Request<Incoming>) -> Response {
    let started = Instant::now();
    let listener = &conn.listener;
    let waker = &listener.waker;
    if waker.is_robot(req.headers(), req.uri().path()) {
        metrics::wake_on_request("ignored");
        return generic();
    }
    let Some(host) = identify::host_of(&req) else {
        metrics::wake_on_request("unknown");
        return generic();
    };
    let caller = conn
        .caller
        .get_or_init(|| {
            Caller::resolve(conn.peer.ip(), &listener.trust, listener.directory.as_ref())
        })
        .await;
    let Some(service) = identify::parked_service(
        listener.directory.as_ref(),
        listener.routes.as_deref(),
        caller,
        &host,
        req.uri().path(),
        conn.offset,
    ) else {
        metrics::wake_on_request("unknown");
        return generic();
    };
    if !caller.may_call(&service) {
        // Same answer as an unknown app: a refused caller learns nothing.
        debug!(caller_namespace = caller.namespace.as_deref().unwrap_or(""), namespace = %service.namespace,
            service = %service.name, "parking: caller may not reach this Service");
        metrics::wake_on_request("unknown");
        return generic();
    }
    let Some(port) = service.port_at(conn.offset).cloned() else {
        metrics::wake_on_request("unknown");
        return generic();
    };
    if req.version() == Version::HTTP_2 && port.app_protocol.as_deref() != Some(H2C) {
        // HTTP/2 cleartext only where the Service declares the app speaks it.
        debug!(namespace = %service.namespace, service = %service.name,
            "parking: HTTP/2 for a port not declared kubernetes.io/h2c");
        metrics::wake_on_request("unknown");
        return generic();
    }
    let timeout = waker.config.timeout();
    let target = &service.target;
    if policy::out_of_reach(waker.job_config(), waker.job.served_clusters(), target).is_some() {
        // A protected namespace or a cluster this waker does not serve: never reached here.
        metrics::wake_on_request("unknown");
        return generic();
    }
    let row = waker.find_app(target).await;
    let Some(_place) = listener.held.try_hold(target) else {
        metrics::wake_on_request("limited");
        return answer::unavailable(BUSY_RETRY_AFTER);
    };
    let flight = match row {
        Some(row) => {
            let start = Start {
                target: target.clone(),
                job: waker.job.clone(),
                readiness: waker.readiness.clone(),
                timeout,
            };
            let may_start = || {
                row.sleep_state == SleepState::Awake
                    || waker.limit.try_start(target, waker.clock.now())
            };
            let Some(flight) = waker.flights.join(row.id, start, may_start) else {
                metrics::wake_on_request("limited");
                return generic();
            };
            Some(flight)
        }
        // Not an app the waker may wake, yet parked: it may be starting (woken by the CLI or
        // a host) or running and not unparked yet. Its own endpoint serves the request if it
        // gets one in time; nothing is woken, and otherwise the answer is the generic one.
        None => None,
    };
    let polled = req.headers().contains_key(POLL_HEADER);
    let browser = polled || request::wants_html(req.headers());
    let hold_for = if browser {
        waker.config.page_after().min(timeout)
    } else {
        timeout
    };
    let landing = flight.as_ref().map(|f| f.landing.clone());
    let waited = wait(conn, &service, &port, landing, started + hold_for).await;
    let Some(flight) = flight else {
        return match waited {
            Waited::Ready(addr) => send(conn, caller, target, req, addr, started + timeout).await,
            _ => {
                metrics::wake_on_request("unknown");
                generic()
            }
        };
    };
    match waited {
        Waited::Ready(addr) => send(conn, caller, target, req, addr, started + timeout).await,
        Waited::Failed => generic(),
        Waited::TimedOut if polled => answer::poll(false, flight.started.elapsed()),
        Waited::TimedOut if browser => {
            debug!(target = %target, "parking: starting page");
            answer::starting_page(&target.name, flight.started.elapsed())
        }
        Waited::TimedOut => answer::timed_out(started),
        Waited::Stopping => answer::unavailable(BUSY_RETRY_AFTER),
    }
}

/// The app's ready endpoint now, if it has one (no wait).
async fn ready_now(
    listener: &ParkingListener,
    service: &ParkedServiceInfo,
    port: &ListenerPort,
) -> Option<SocketAddr> {
    match listener
        .directory
        .ready_endpoint(service, port, std::time::Duration::ZERO)
        .await
    {
        Ok(addr) => addr,
        Err(e) => {
            debug!(error = %idle_scaler_core::error_chain(&e), "parking: endpoint lookup failed");
            None
        }
    }
}

/// Waits until the app has a ready endpoint, the flight fails, `deadline` passes or the
/// listener stops (then one last look: a ready app still gets the request).
async fn wait(
    conn: &Conn,
    service: &ParkedServiceInfo,
    port: &ListenerPort,
    landing: Option<futures::future::Shared<futures::future::BoxFuture<'static, Landing>>>,
    deadline: Instant,
) -> Waited {
    let listener = &conn.listener;
    let left = deadline.saturating_duration_since(Instant::now());
    let trouble = async move {
        match landing {
            Some(landing) => match landing.await {
                // Ready by the Deployment's count: the endpoint is what the request waits for.
                Landing::Ready { .. } => std::future::pending().await,
                other => other,
            },
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        found = listener.directory.ready_endpoint(service, port, left) => match found {
            Ok(Some(addr)) => Waited::Ready(addr),
            Ok(None) => Waited::TimedOut,
            Err(e) => {
                warn!(namespace = %service.namespace, service = %service.name,
                    error = %idle_scaler_core::error_chain(&e), "parking: waiting for the app's endpoint failed");
                Waited::Failed
            }
        },
        landing = trouble => match landing {
            Landing::TimedOut => Waited::TimedOut,
            _ => Waited::Failed,
        },
        () = conn.shutdown.cancelled() => match ready_now(listener, service, port).await {
            Some(addr) => Waited::Ready(addr),
            None => Waited::Stopping,
        },
    }
}

/// Rewrites the request for the app (hop-by-hop headers, `X-Forwarded-*`, origin-form URI,
/// `Host` kept) and forwards it to `addr`.
async fn send(
    conn: &Conn,
    caller: &Caller,
    target: &Target,
    req: Request<Incoming>,
    addr: SocketAddr,
    deadline: Instant,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let h2 = parts.version == Version::HTTP_2;
    let authority = parts.uri.authority().cloned();
    if !h2
        && !parts.headers.contains_key(header::HOST)
        && let Some(authority) = &authority
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, v);
    }
    let upgrade = headers::carried_upgrade(&parts.headers);
    let host = match (&authority, parts.headers.get(header::HOST)) {
        (_, Some(host)) => Some(host.clone()),
        (Some(authority), None) => HeaderValue::from_str(authority.as_str()).ok(),
        (None, None) => None,
    };
    headers::strip_hop_by_hop(&mut parts.headers, upgrade.as_ref());
    headers::set_forwarded(&mut parts.headers, caller, host.as_ref());
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = match authority.filter(|_| h2) {
        // HTTP/2 carries the authority in the URI (`:authority`), not in `Host`.
        Some(authority) => Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query(path)
            .build()
            .unwrap_or_default(),
        None => Uri::from(path),
    };
    if !h2 {
        parts.version = Version::HTTP_11;
    }
    let deadline = deadline.max(Instant::now());
    let Some(place) = conn.listener.gate.enter(target, deadline).await else {
        debug!(target = %target, "parking: no forward to the app came free in time");
        return answer::unavailable(BUSY_RETRY_AFTER);
    };
    let req = Request::from_parts(parts, body);
    let forwarded = if h2 {
        let forwarded = forward::forward_h2(req, addr, deadline, place).await;
        // The app is ready: the caller's next streams should reach it, not the waker.
        conn.close.cancel();
        forwarded
    } else {
        forward::forward(req, addr, deadline, place, &conn.listener.pool).await
    };
    match forwarded {
        Ok(res) => res,
        Err(Unreached::NotListening) => {
            debug!(endpoint = %addr, offset = conn.offset, "parking: app never listened in time");
            answer::unavailable(BUSY_RETRY_AFTER)
        }
    }
}

#[cfg(test)]
mod tests;
