//! HTTP: `/metrics`, `/healthz`, `/readyz` and `POST /v1/deployments/{id}/wake`, and the
//! probe listener that serves only `/healthz` and `/readyz`.

mod listener; // accept loop: connection cap, backlog, header-read and idle timeouts, drain
mod parking; // the parking listener's eight sockets and its linger at shutdown
mod rejected; // rate-limited logging of refused wake requests

pub use listener::{Limits, Shutdown};
pub use parking::{
    Linger, LingerEnd, PARKING_LINGER, ParkingSockets, linger_while_listed,
    stop_parking_after_linger,
};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use idle_scaler_core::{Error, Job, Store};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use uuid::Uuid;

/// Installs the Prometheus recorder, describes and primes every series, and keeps the
/// histograms drained. Returns the handle that renders `/metrics`.
pub fn install_metrics(shutdown: &CancellationToken) -> anyhow::Result<PrometheusHandle> {
    // Buckets make the duration histograms real Prometheus histograms (aggregatable across
    // instances) instead of the exporter's default summaries.
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ])
        .context("configuring histogram buckets")?
        .install_recorder()
        .context("installing the Prometheus metrics recorder")?;
    idle_scaler_core::metrics::describe_metrics();
    idle_scaler_core::metrics::prime();
    let (upkeep, token) = (handle.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                _ = every.tick() => upkeep.run_upkeep(),
            }
        }
    });
    Ok(handle)
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The job (wake and readiness).
    pub job: Arc<Job>,
    /// The store, pinged by `/readyz` when the job is enabled.
    pub store: Arc<dyn Store>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Bearer token for wake; None disables the endpoint.
    pub wake_token: Option<Arc<str>>,
    /// Logs refused wake requests, at most one line per period.
    pub rejected: Arc<rejected::RejectedLog>,
    /// The parking listener's directory has been read (`None` or closed: no listener): a
    /// waker pod that cannot name parked apps yet is not ready for their requests.
    pub listening: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/deployments/{id}/wake", post(wake))
        .merge(probe_router())
        .with_state(state)
}

/// `/healthz` and `/readyz` only.
fn probe_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
}

/// What the probe listener gives its clients (the kubelet opens one short connection per
/// probe): its own cap, so clients of the other listeners never take a probe's place.
pub const PROBE_LIMITS: Limits = Limits {
    header_read_timeout: Duration::from_secs(5),
    idle_timeout: Duration::from_secs(10),
    max_connections: 32,
    listen_backlog: 32,
};

/// Binds `addr` and serves `/healthz` and `/readyz` alone, with [`PROBE_LIMITS`].
pub async fn serve_probes(
    addr: SocketAddr,
    state: AppState,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, TaskTracker)> {
    let app = probe_router().with_state(state);
    serve_router(
        addr,
        app,
        "the health probes (/healthz, /readyz)",
        PROBE_LIMITS,
        shutdown,
    )
    .await
}

/// Binds `addr` and serves until `shutdown` (see [`Shutdown`]). Returns the bound address
/// and the tracker of the open connections (closed once the accept loop has stopped; wait
/// on it to drain).
pub async fn serve(
    addr: SocketAddr,
    state: AppState,
    limits: Limits,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, TaskTracker)> {
    serve_router(
        addr,
        router(state),
        "/metrics, /healthz, /readyz and the wake endpoint",
        limits,
        shutdown,
    )
    .await
}

/// Binds `addr` and serves `app` (the daemon's endpoints, or the waker) with the same
/// limits and the same drain as [`serve`].
pub async fn serve_router(
    addr: SocketAddr,
    app: Router,
    what: &'static str,
    limits: Limits,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, TaskTracker)> {
    let listener = listener::bind(addr, limits.listen_backlog)
        .with_context(|| format!("binding the HTTP listener for {what} on {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    info!(
        addr = %local,
        max_connections = limits.max_connections,
        listen_backlog = limits.listen_backlog,
        header_read_timeout_s = limits.header_read_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        "serving {what}"
    );
    let connections = TaskTracker::new();
    tokio::spawn(listener::accept_loop(
        listener,
        app,
        limits,
        shutdown,
        connections.clone(),
    ));
    Ok((local, connections))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn readyz(State(state): State<AppState>) -> Response {
    let config = state.job.config();
    // Ticks run every interval; three missed in a row means the loop is stuck or failing.
    let stale_after = config.interval() * 3;
    let tick_ok = state
        .job
        .last_success()
        .is_some_and(|at| at.elapsed() <= stale_after);
    if !tick_ok {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": format!("no successful tick in the last {}s", stale_after.as_secs())})),
        )
            .into_response();
    }
    if let Some(listening) = &state.listening
        && !*listening.borrow()
        && listening.has_changed().is_ok()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "parking directory not read yet"})),
        )
            .into_response();
    }
    // With the flag off the job does no I/O at all, readiness included.
    if config.enabled
        && let Err(e) = state.store.count_asleep().await
    {
        // The endpoint is unauthenticated: the driver's text (hosts, users, statements)
        // goes to the log only.
        warn!(error = %idle_scaler_core::error_chain(&e), "readiness: the database did not answer");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "database unreachable"})),
        )
            .into_response();
    }
    (StatusCode::OK, Json(json!({"ready": true}))).into_response()
}

/// Every error the HTTP layer answers, mapped to a status code in one place.
#[derive(Debug)]
enum ApiError {
    /// The wake endpoint is off (no token configured).
    Disabled,
    /// No or a wrong bearer token.
    Unauthorized,
    /// The path does not name a deployment id.
    BadId(String),
    /// What the job said.
    Job(Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::Disabled => (
                StatusCode::FORBIDDEN,
                "the wake endpoint is disabled: IDLE_SCALER_WAKE_TOKEN is not set".to_owned(),
            ),
            Self::Unauthorized => {
                let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return response;
            }
            Self::BadId(id) => (
                StatusCode::BAD_REQUEST,
                format!("{:?} is not a deployment id (a UUID)", truncate(&id)),
            ),
            Self::Job(e @ Error::UnknownDeployment(_)) => (StatusCode::NOT_FOUND, e.to_string()),
            // Another instance's app: nothing was tried, and retrying here will not help.
            Self::Job(e @ Error::ClusterNotServed { .. }) => {
                (StatusCode::MISDIRECTED_REQUEST, e.to_string())
            }
            // Nothing was changed, or the app is left as it was: retry later.
            Self::Job(e @ (Error::Store { .. } | Error::Conflict { .. } | Error::Config(_))) => {
                (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            // Kubernetes refused or could not be reached: the row stays asleep for a retry.
            Self::Job(
                e @ (Error::NotFound { .. }
                | Error::Forbidden { .. }
                | Error::Invalid { .. }
                | Error::Unavailable { .. }),
            ) => (
                StatusCode::BAD_GATEWAY,
                format!("wake failed, app left asleep: {e}"),
            ),
        };
        error(status, message)
    }
}

/// Longest part of a client's input an error body repeats.
const ECHO_MAX_CHARS: usize = 64;

/// `input` cut to [`ECHO_MAX_CHARS`] characters, with "…" when cut: an answer never grows
/// with what the client sent.
fn truncate(input: &str) -> String {
    match input.char_indices().nth(ECHO_MAX_CHARS) {
        Some((at, _)) => format!("{}…", &input[..at]),
        None => input.to_owned(),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn wake(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expected = state.wake_token.as_deref().ok_or(ApiError::Disabled)?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        state.rejected.record(peer);
        return Err(ApiError::Unauthorized);
    }
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::BadId(id))?;
    let report = state.job.wake(id).await.map_err(ApiError::Job)?;
    Ok((StatusCode::OK, Json(report)).into_response())
}

/// The credentials of a `Bearer` authorization; the scheme is case-insensitive (RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

#[cfg(test)]
mod tests;
