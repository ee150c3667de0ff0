//! Wake on request: a slept app's callers reach the waker, which wakes the app. Two
//! listeners, two trust domains, one wake per app: both join the same flights (single
//! flight, a failed wake remembered for a while, `waker_max_wakes_per_minute` per
//! namespace), and both identify the app's row through one place (`Waker::find_app`, an
//! in-memory index of slept apps: no store call per request).
//!
//! **The parking listener** ([`ParkingListener`], ports +0..+7, one per parked Service
//! port): a slept app's Services are parked, their endpoints point here, so every caller
//! (gateways, proxies, other apps' pods) arrives. The app is named by `Host` alone (a cluster
//! DNS form of a parked Service, its ClusterIP, a bare name in the caller's namespace, or,
//! for a trusted gateway only, a public hostname + path through a
//! [`RouteIndex`](idle_scaler_core::RouteIndex) whose backend is a parked Service), never by
//! a header. The caller is checked before anything is woken: trusted gateways
//! (`waker_gateway_namespaces`, `waker_trusted_cidrs`), pods of the app's namespace and of the
//! namespaces its Service admits pass; anyone else gets the generic `503`. The request is
//! held until the app has a ready endpoint of its own, then forwarded to it: body streamed,
//! trailers and WebSocket upgrades carried, `Host` kept, hop-by-hop headers dropped,
//! `X-Forwarded-*` kept from gateways and replaced from anyone else; the answer streams back
//! with `Connection: close`, so the caller's next request goes to the app itself. A browser
//! is held at most `waker_page_after_ms`, then gets the starting page; others `503` +
//! `Retry-After` after `waker_timeout_seconds`.
//!
//! **The fallback listener** ([`Waker::router`]): a proxy routes a request here when the app
//! has no ready endpoint (ingress-nginx: `custom-http-errors` + `default-backend`; any other
//! proxy: a fallback route that sets [`WakerConfig::waker_target_header`]). It never
//! forwards: it finds the app by the target header (else ingress-nginx's `X-Namespace` +
//! `X-Service-Name`) in its in-memory index of slept apps (no store call per request), wakes
//! it through [`Job::wake`], waits for a ready replica through the [`Readiness`] port, and
//! answers:
//!
//! - a browser (`Accept: text/html`) at once with a small self-contained starting page (503,
//!   `Retry-After`) that reloads itself when the app is ready;
//! - any other client, held until ready, with `307` to the original URI (method and body
//!   kept), or `503` + `Retry-After` on timeout;
//! - an app ready for a few seconds whose own answer was the 502/503 (`X-Code`), with that
//!   status passed through: a redirect would only bring the visitor back here.
//!
//! On both, robots (configured User-Agent substrings and paths), unknown apps, apps the table
//! does not let sleep, apps whose wake failed lately, wakes beyond the namespace's limit and
//! forged URIs get one generic `503` that tells nothing about other apps. The waker's own
//! answers carry the cold start so far in `X-Idle-Scaler-Cold-Start-Ms`. Robots, unknown apps
//! and refused wakes count per request in the wake-on-request results, wakes once per flight
//! (all the requests one wake serves).
#![warn(missing_docs)]

mod answer;
pub mod config;
mod flight;
mod index;
mod limit;
pub mod parking;
mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, Request, header};
use idle_scaler_core::{
    Clock, Config, DeploymentRecord, Job, Readiness, SleepState, Store, Target, metrics, policy,
};
use tokio::time::Instant;
use tracing::debug;

pub use answer::{COLD_START_HEADER, POLL_HEADER, STARTING_HEADER};
pub use config::WakerConfig;
use flight::{Flights, Landing, Start};
use index::AppIndex;
use limit::WakeLimit;
pub use parking::{ParkingLimits, ParkingListener};

/// Retry-After of the generic answer: nothing will change soon for an unknown app (nor for
/// one whose wake failed: that is remembered as long).
const GENERIC_RETRY_AFTER: u64 = flight::FAILED_WAKE_MEMORY.as_secs();

/// The waker: its ports and configuration. Build one, then mount [`Waker::router`].
pub struct Waker {
    job: Arc<Job>,
    store: Arc<dyn Store>,
    readiness: Arc<dyn Readiness>,
    clock: Arc<dyn Clock>,
    config: WakerConfig,
    /// The cluster of bare targets (`waker_cluster`).
    cluster: Option<idle_scaler_core::ClusterName>,
    ignore_user_agents: Vec<String>,
    ignore_paths: Vec<String>,
    flights: Flights,
    limit: WakeLimit,
    /// The apps requests may name, in memory (see [`Waker::find_app`]).
    index: Arc<AppIndex>,
    /// The index's refresh task, stopped with the waker.
    refresh: tokio::task::JoinHandle<()>,
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.refresh.abort();
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker")
            .field("config", &self.config)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// What one request is for, as far as the waker could tell.
enum Verdict {
    /// A robot: answer without waking.
    Ignored,
    /// No app this waker may wake.
    Unknown,
    /// A sleepable app.
    App(DeploymentRecord, Target),
}

impl Waker {
    /// A waker over the job (which wakes), the store (which names the app), the readiness
    /// port (which waits) and a clock (which judges expiry). Must be called inside a Tokio
    /// runtime: it starts the task that keeps the app index current.
    pub fn new(
        job: Arc<Job>,
        store: Arc<dyn Store>,
        readiness: Arc<dyn Readiness>,
        clock: Arc<dyn Clock>,
        config: WakerConfig,
    ) -> Self {
        Self::builder(job, store, readiness, clock, config).build()
    }

    /// A [`WakerBuilder`] with the same parts as [`Waker::new`], for the settings `new`
    /// leaves at their defaults.
    pub fn builder(
        job: Arc<Job>,
        store: Arc<dyn Store>,
        readiness: Arc<dyn Readiness>,
        clock: Arc<dyn Clock>,
        config: WakerConfig,
    ) -> WakerBuilder {
        WakerBuilder {
            job,
            store,
            readiness,
            clock,
            config,
            index_refresh: index::REFRESH,
        }
    }

    /// Reads the asleep apps into the app index now, as the refresh task does every few
    /// seconds: for a host that has just slept apps and wants the waker to know them at once.
    ///
    /// # Errors
    /// The store's, when it could not be read; the index keeps the rows it had.
    pub async fn refresh_index(&self) -> idle_scaler_core::Result<()> {
        self.index.refresh(self.store.as_ref()).await
    }

    /// The waker as an axum [`Router`] answering every method and path: mount it in a
    /// host's server or serve it alone.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    fn job_config(&self) -> &Config {
        self.job.config()
    }

    fn is_robot(&self, headers: &HeaderMap, path: &str) -> bool {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        self.ignore_user_agents.iter().any(|s| agent.contains(s))
            || self.ignore_paths.iter().any(|p| path.starts_with(p))
    }

    async fn judge(&self, headers: &HeaderMap, path: &str) -> Verdict {
        if self.is_robot(headers, path) {
            return Verdict::Ignored;
        }
        let target = request::target_of(
            headers,
            &self.config.waker_target_header,
            self.cluster.as_ref(),
        );
        let Some(target) = target else {
            return Verdict::Unknown;
        };
        // Another instance's cluster or a protected namespace: says nothing about it.
        if policy::out_of_reach(self.job_config(), self.job.served_clusters(), &target).is_some() {
            return Verdict::Unknown;
        }
        match self.find_app(&target).await {
            Some(row) => Verdict::App(row, target),
            None => Verdict::Unknown,
        }
    }

    /// The row of the app `target` names, if the waker may wake it: the one place both
    /// listeners identify an app. From the app index, in memory: an unknown app and one the
    /// waker may not wake cost the same lookup and no store call. Waits only while the index
    /// has never been read (at most the waker timeout).
    async fn find_app(&self, target: &Target) -> Option<DeploymentRecord> {
        self.index.loaded(self.config.timeout()).await;
        let row = self.index.get(&target.provider_id())?;
        policy::may_wake(&row, self.clock.now()).then_some(row)
    }
}

/// Builds a [`Waker`]: [`Waker::builder`].
pub struct WakerBuilder {
    job: Arc<Job>,
    store: Arc<dyn Store>,
    readiness: Arc<dyn Readiness>,
    clock: Arc<dyn Clock>,
    config: WakerConfig,
    index_refresh: Duration,
}

impl std::fmt::Debug for WakerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakerBuilder")
            .field("config", &self.config)
            .field("index_refresh", &self.index_refresh)
            .finish_non_exhaustive()
    }
}

impl WakerBuilder {
    /// How often the app index reads the asleep apps (default 3 s): an app slept meanwhile
    /// is unknown to the waker until then.
    #[must_use]
    pub fn index_refresh(mut self, every: Duration) -> Self {
        self.index_refresh = every.max(Duration::from_millis(1));
        self
    }

    /// The waker, its index refresh started. Must be called inside a Tokio runtime.
    pub fn build(self) -> Waker {
        let Self {
            job,
            store,
            readiness,
            clock,
            config,
            index_refresh,
        } = self;
        let index = Arc::new(AppIndex::default());
        let refresh = index::spawn_refresh(Arc::downgrade(&index), store.clone(), index_refresh);
        let flights = Flights::new({
            let (index, clock) = (index.clone(), clock.clone());
            Arc::new(move |provider_id: &str| index.mark_awake(provider_id, clock.now()))
        });
        Waker {
            ignore_user_agents: config.ignore_user_agents(),
            ignore_paths: config.ignore_paths(),
            cluster: config.cluster(),
            job,
            store,
            readiness,
            clock,
            flights,
            limit: WakeLimit::new(config.waker_max_wakes_per_minute),
            index,
            refresh,
            config,
        }
    }
}

fn generic() -> Response {
    answer::unavailable(GENERIC_RETRY_AFTER)
}

async fn handle(State(waker): State<Arc<Waker>>, req: Request<axum::body::Body>) -> Response {
    let Some(location) = request::original_uri(&req) else {
        // A forged URI: nothing of it may reach a header, and nothing is woken for it.
        metrics::wake_on_request("ignored");
        return generic();
    };
    let path = location.split('?').next().unwrap_or("/").to_owned();
    let headers = req.headers().clone();
    // The body is never read: the client sends it again after the 307.
    drop(req);
    let (row, target) = match waker.judge(&headers, &path).await {
        Verdict::Ignored => {
            metrics::wake_on_request("ignored");
            return generic();
        }
        Verdict::Unknown => {
            metrics::wake_on_request("unknown");
            return generic();
        }
        Verdict::App(row, target) => (row, target),
    };
    let start = Start {
        target: target.clone(),
        job: waker.job.clone(),
        readiness: waker.readiness.clone(),
        timeout: waker.config.timeout(),
    };
    // Only a wake of an app that is not awake counts against its namespace's limit.
    let may_start = || {
        row.sleep_state == SleepState::Awake || waker.limit.try_start(&target, waker.clock.now())
    };
    let Some(flight) = waker.flights.join(row.id, start, may_start) else {
        metrics::wake_on_request("limited");
        return generic();
    };
    let polled = headers.contains_key(POLL_HEADER);
    let browser = polled || request::wants_html(&headers);
    let landing = if browser {
        // Never held: the page polls.
        futures::FutureExt::now_or_never(flight.landing.clone())
    } else {
        Some(flight.landing.clone().await)
    };
    let cold_start = flight.started.elapsed();
    match landing {
        Some(Landing::Ready { woke, ready_at }) => {
            if let Some(status) = request::proxied_error(&headers).filter(|_| {
                flight::settled(&row, woke, ready_at, Instant::now(), waker.clock.now())
            }) {
                // The app's own error: a redirect would send the visitor straight back here.
                return answer::passed_through(status);
            }
            if polled {
                return answer::poll(true, cold_start);
            }
            if browser {
                return answer::starting_page(&target.name, cold_start);
            }
            let res = answer::ready(&location, ready_at - flight.started);
            metrics::waker_overhead(Instant::now().saturating_duration_since(ready_at));
            res
        }
        Some(Landing::Failed | Landing::Limited) => generic(),
        Some(Landing::TimedOut) if !browser => answer::timed_out(flight.started),
        _ if polled => answer::poll(false, cold_start),
        _ => {
            debug!(target = %target, "waker: starting page");
            answer::starting_page(&target.name, cold_start)
        }
    }
}
