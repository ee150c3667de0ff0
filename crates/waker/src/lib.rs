//! Wake on request: the HTTP service a proxy sends a slept app's visitors to.
//!
//! A proxy routes a request here when the app has no ready endpoint (ingress-nginx:
//! `custom-http-errors` + `default-backend`; any other proxy: a fallback route that sets
//! [`WakerConfig::waker_target_header`]). The waker is never in the path of an awake app and
//! never forwards a request: it finds the app's row by `provider_id`, wakes it through
//! [`Job::wake`] (single flight), waits for a ready replica through the [`Readiness`] port,
//! and answers:
//!
//! - a browser (`Accept: text/html`) at once with a small self-contained starting page (503,
//!   `Retry-After`) that reloads itself when the app is ready;
//! - any other client, held until ready, with `307` to the original URI (method and body
//!   kept), or `503` + `Retry-After` on timeout;
//! - robots (configured User-Agent substrings and paths), unknown apps and apps the table
//!   does not let sleep, with one generic `503` that tells nothing about other apps.
//!
//! Every answer carries the cold start so far in `X-Idle-Scaler-Cold-Start-Ms`. Robots and
//! unknown apps count per request in the wake-on-request results, wakes once per flight
//! (all the requests one wake serves).
#![warn(missing_docs)]

mod answer;
pub mod config;
mod flight;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, Request, header};
use idle_scaler_core::{
    Clock, Config, DeploymentRecord, Job, Readiness, Store, Target, metrics, policy,
};
use tokio::time::Instant;
use tracing::debug;

pub use answer::{COLD_START_HEADER, POLL_HEADER, STARTING_HEADER};
pub use config::WakerConfig;
use flight::{Flights, Landing};

/// ingress-nginx's custom-error headers.
const NAMESPACE_HEADER: &str = "x-namespace";
const SERVICE_HEADER: &str = "x-service-name";
const ORIGINAL_URI_HEADER: &str = "x-original-uri";

/// Retry-After of the generic answer: nothing will change soon for an unknown app.
const GENERIC_RETRY_AFTER: u64 = 30;

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
    /// port (which waits) and a clock (which judges expiry).
    pub fn new(
        job: Arc<Job>,
        store: Arc<dyn Store>,
        readiness: Arc<dyn Readiness>,
        clock: Arc<dyn Clock>,
        config: WakerConfig,
    ) -> Self {
        Self {
            ignore_user_agents: config.ignore_user_agents(),
            ignore_paths: config.ignore_paths(),
            cluster: config.cluster(),
            job,
            store,
            readiness,
            clock,
            config,
            flights: Flights::default(),
        }
    }

    /// The waker as an axum [`Router`] answering every method and path: mount it in a
    /// host's server or serve it alone.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    fn job_config(&self) -> &Config {
        self.job.config()
    }

    /// Which app: ingress-nginx's headers first, then the configured target header
    /// (`<namespace>/<name>`, or `<cluster>:<namespace>/<name>` for an app of another
    /// cluster). Bare names are of the waker's cluster (`waker_cluster`).
    fn target_of(&self, headers: &HeaderMap) -> Option<Target> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let own = idle_scaler_core::scheme(self.cluster.as_ref());
        let (scheme, namespace, name) = match (get(NAMESPACE_HEADER), get(SERVICE_HEADER)) {
            // Service -> Deployment by name.
            (Some(ns), Some(svc)) => (own, ns, svc),
            _ => {
                let value = get(&self.config.waker_target_header)?;
                let (scheme, path) = match value.split_once(':') {
                    Some((cluster, path)) => (format!("k8s@{cluster}"), path),
                    None => (own, value),
                };
                let (namespace, name) = path.split_once('/')?;
                (scheme, namespace, name)
            }
        };
        // The same rule as the table's provider ids: a malformed name is no app.
        Target::parse(&format!("{scheme}:{namespace}/{name}")).ok()
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
        let Some(target) = self.target_of(headers) else {
            return Verdict::Unknown;
        };
        // Another instance's cluster or a protected namespace: says nothing about it.
        if policy::out_of_reach(self.job_config(), self.job.served_clusters(), &target).is_some() {
            return Verdict::Unknown;
        }
        let row = match self.store.find_by_provider_id(&target.provider_id()).await {
            Ok(Some(row)) => row,
            Ok(None) => return Verdict::Unknown,
            Err(e) => {
                tracing::warn!(error = %idle_scaler_core::error_chain(&e), "waker: store lookup failed");
                return Verdict::Unknown;
            }
        };
        if policy::may_wake(&row, self.clock.now()) {
            Verdict::App(row, target)
        } else {
            Verdict::Unknown
        }
    }
}

/// The original URI to redirect to: a path on the same host, never another host.
fn original_uri<B>(req: &Request<B>) -> String {
    let given = req
        .headers()
        .get(ORIGINAL_URI_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            req.uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
        });
    if given.starts_with('/') && !given.starts_with("//") && !given.contains('\\') {
        given
    } else {
        "/".to_owned()
    }
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

async fn handle(State(waker): State<Arc<Waker>>, req: Request<axum::body::Body>) -> Response {
    let location = original_uri(&req);
    let path = location.split('?').next().unwrap_or("/").to_owned();
    let headers = req.headers().clone();
    // The body is never read: the client sends it again after the 307.
    drop(req);
    let (row, target) = match waker.judge(&headers, &path).await {
        Verdict::Ignored => {
            metrics::wake_on_request("ignored");
            return answer::unavailable(GENERIC_RETRY_AFTER);
        }
        Verdict::Unknown => {
            metrics::wake_on_request("unknown");
            return answer::unavailable(GENERIC_RETRY_AFTER);
        }
        Verdict::App(row, target) => (row, target),
    };
    let flight = waker.flights.join(
        row.id,
        target.clone(),
        waker.job.clone(),
        waker.readiness.clone(),
        waker.config.timeout(),
    );
    let is_poll = headers.contains_key(POLL_HEADER);
    if is_poll || wants_html(&headers) {
        // Never held: the page polls. A landed flight answers "ready".
        let landed = futures::FutureExt::now_or_never(flight.landing.clone());
        if is_poll {
            let ready = matches!(landed, Some(Landing::Ready { .. }));
            return answer::poll(ready, flight.started.elapsed());
        }
        debug!(target = %target, "waker: starting page");
        return answer::starting_page(&target.name, flight.started.elapsed());
    }
    match flight.landing.clone().await {
        Landing::Ready { ready_at, .. } => {
            let res = answer::ready(&location, ready_at - flight.started);
            metrics::waker_overhead(Instant::now().saturating_duration_since(ready_at));
            res
        }
        Landing::TimedOut => answer::timed_out(flight.started),
        Landing::Failed => answer::unavailable(5),
    }
}
