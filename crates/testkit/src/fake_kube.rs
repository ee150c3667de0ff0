//! A fake Kubernetes API server speaking real HTTP/1.1 on loopback (DESIGN.md section 7).
//!
//! It serves what idle-scaler and kubectl need, with the real API's paths, content types
//! and semantics:
//!
//! - `apps/v1` Deployments: get, list (one namespace or all), create, delete; `kubectl get`
//!   receives the server-side printed `Table` it asks for;
//! - the `deployments/scale` subresource as `autoscaling/v1` `Scale`: get, put and patch
//!   (merge patch, JSON patch, strategic merge patch applied as a merge patch; server-side
//!   apply is refused with 415);
//! - `resourceVersion`: one store-wide counter, bumped by every effective write; a write
//!   that changes nothing keeps it; a stale one in a write is 409 `Conflict`;
//! - `Status` error bodies (404 `NotFound`, 409 `Conflict`/`AlreadyExists`, 422 `Invalid`, ...);
//! - discovery (`/api`, `/api/v1`, `/apis`, `/apis/apps/v1`, `/version`).
//!
//! Tests steer it: [`Fault`]s (latency, a status code, a dropped connection, for the next N
//! matching requests), a latency on every request, a log of every request, and direct
//! access to the objects ([`FakeApiServer::scale_externally`] is a person or an HPA).
//! State sits behind a sync mutex: every operation is short and never awaits while locked.

mod discovery;
mod patch;
mod state;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use state::{ApiError, Objects};

/// What a [`Fault`] does to a request it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this HTTP code and a `Status` body, instead of serving the request.
    Status(u16),
    /// Read the request, then close the connection without any response.
    DropConnection,
    /// Serve the request normally after this extra delay.
    Latency(Duration),
}

/// A fault for the next `times` requests that match its method and path filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    action: FaultAction,
    times: usize,
    method: Option<Method>,
    path_contains: Option<String>,
}

impl Fault {
    /// Answer the next matching request with `code` and a `Status` body shaped like the
    /// apiserver's for that code (reason `Forbidden` for 403, `InternalError` for 500, ...).
    pub fn status(code: u16) -> Self {
        Self::new(FaultAction::Status(code))
    }

    /// Close the connection of the next matching request without a response.
    pub fn drop_connection() -> Self {
        Self::new(FaultAction::DropConnection)
    }

    /// Delay the next matching request by `delay`.
    pub fn latency(delay: Duration) -> Self {
        Self::new(FaultAction::Latency(delay))
    }

    fn new(action: FaultAction) -> Self {
        Self {
            action,
            times: 1,
            method: None,
            path_contains: None,
        }
    }

    /// Apply to the next `n` matching requests (default 1); `usize::MAX` for all of them.
    #[must_use]
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    /// Only requests with this method (`"PATCH"`).
    ///
    /// # Panics
    /// If `method` is not a valid HTTP method (a typo in a test).
    #[must_use]
    pub fn on_method(mut self, method: &str) -> Self {
        self.method = Some(
            method
                .parse()
                .unwrap_or_else(|_| panic!("invalid HTTP method {method:?}")),
        );
        self
    }

    /// Only requests whose path contains `fragment` (`"/scale"`, `"deployments/web"`).
    #[must_use]
    pub fn on_path(mut self, fragment: impl Into<String>) -> Self {
        self.path_contains = Some(fragment.into());
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The HTTP status answered; `None` while in flight and for a dropped connection.
    pub status: Option<u16>,
    seq: u64,
}

impl RecordedRequest {
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The value of query parameter `name` (not percent-decoded; the parameters the
    /// API uses need none).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| v.to_owned())
        })
    }
}

#[derive(Debug, Default)]
struct State {
    /// Numbers requests so an answer finds its log entry after `clear_requests`.
    seq: u64,
    objects: Objects,
    latency: Duration,
    faults: Vec<Fault>,
    requests: Vec<RecordedRequest>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Requests whose handler is running (delayed, or waiting to be dropped).
    in_flight: std::sync::atomic::AtomicUsize,
    /// `host:port`, for `/api`'s `serverAddressByClientCIDRs`.
    address: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its own failure
        // behind a poison error in every later request.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake API server. Dropping it stops the server (connections close).
#[derive(Debug)]
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FakeApiServer {
    /// Binds `127.0.0.1:0` and serves on the current Tokio runtime.
    ///
    /// # Panics
    /// If no loopback port can be bound (the test cannot run at all then).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake API server: binding 127.0.0.1:0 failed: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake API server: no local address: {e}"));
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            address: addr.to_string(),
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), shutdown.clone()));
        debug!(%addr, "fake API server listening");
        Self {
            addr,
            shared,
            shutdown,
            task: Some(task),
        }
    }

    /// Stops accepting, closes every connection and waits for the server task.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates a Deployment with `replicas` (labels and selector `app=<name>`), or, when it
    /// exists, sets its replicas like a person would. Returns the `resourceVersion`.
    pub fn create_deployment(&self, namespace: &str, name: &str, replicas: i32) -> String {
        self.shared.lock().objects.upsert(namespace, name, replicas)
    }

    /// `spec.replicas` of a Deployment, `None` when it does not exist.
    pub fn replicas(&self, namespace: &str, name: &str) -> Option<i32> {
        self.shared.lock().objects.replicas(namespace, name)
    }

    /// `metadata.resourceVersion` of a Deployment.
    pub fn resource_version(&self, namespace: &str, name: &str) -> Option<String> {
        self.shared.lock().objects.resource_version(namespace, name)
    }

    /// The Deployment as the API serves it.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .objects
            .get(namespace, name)
            .ok()
            .cloned()
    }

    /// Someone else (a person, an HPA) sets the replicas, without precondition. Returns the
    /// new `resourceVersion` (unchanged for a no-op), `None` when the Deployment is gone.
    pub fn scale_externally(&self, namespace: &str, name: &str, replicas: i32) -> Option<String> {
        self.shared
            .lock()
            .objects
            .scale_externally(namespace, name, replicas)
    }

    /// A redeploy: the pod template changes, the replicas stay, the `resourceVersion` moves.
    pub fn redeploy(&self, namespace: &str, name: &str) -> Option<String> {
        self.shared.lock().objects.redeploy(namespace, name)
    }

    /// Deletes a Deployment; false when it did not exist.
    pub fn delete_deployment(&self, namespace: &str, name: &str) -> bool {
        self.shared.lock().objects.delete(namespace, name).is_ok()
    }

    /// Adds a fault; faults are consulted in the order injected.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Removes every pending fault (the latency set by [`Self::set_latency`] stays).
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// A delay added to every request from now on (`Duration::ZERO` to stop).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Requests received and neither answered nor dropped yet: 0 once a delayed request
    /// the client gave up on has been served (or cancelled with its connection).
    pub fn in_flight(&self) -> usize {
        self.shared
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: keep serving the connections we have.
                    warn!(error = %e, "fake API server: accept failed");
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(stream, shared.clone(), shutdown.clone()));
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    // A handler that draws a DropConnection fault signals here; dropping the connection
    // future closes the socket with the request unanswered.
    let drop_now = Arc::new(Notify::new());
    let signal = drop_now.clone();
    let service = service_fn(move |req| {
        let (shared, signal) = (shared.clone(), signal.clone());
        async move { Ok::<_, Infallible>(handle(&shared, &signal, req).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                debug!(error = %e, "fake API server: connection ended with an error");
            }
        }
        () = drop_now.notified() => debug!("fake API server: connection dropped (injected)"),
        () = shutdown.cancelled() => {}
    }
}

type Body = Full<Bytes>;

/// Counts a running handler; dropped with it, also when its connection is torn down.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn handle(shared: &Shared, drop_now: &Notify, req: Request<Incoming>) -> Response<Body> {
    shared
        .in_flight
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _in_flight = InFlight(&shared.in_flight);
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&state::bad_request(format!("reading the body: {e}"))),
    };
    let header = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        content_type: header(header::CONTENT_TYPE),
        accept: header(header::ACCEPT),
        body: String::from_utf8_lossy(&body).into_owned(),
        status: None,
        seq: 0,
    };

    let (delay, action, seq) = {
        let mut st = shared.lock();
        st.seq += 1;
        let seq = st.seq;
        st.requests.push(RecordedRequest {
            seq,
            ..recorded.clone()
        });
        let mut delay = st.latency;
        let mut action = None;
        for f in &mut st.faults {
            if f.times == 0 || !f.matches(&parts.method, &recorded.path) {
                continue;
            }
            match &f.action {
                FaultAction::Latency(d) => delay += *d,
                FaultAction::Status(_) | FaultAction::DropConnection if action.is_none() => {
                    action = Some(f.action.clone());
                }
                _ => continue,
            }
            f.times -= 1;
        }
        st.faults.retain(|f| f.times > 0);
        (delay, action, seq)
    };
    if !delay.is_zero() {
        // Injected latency: the fake plays a slow apiserver; this is the thing under test.
        tokio::time::sleep(delay).await;
    }
    let response = match action {
        Some(FaultAction::DropConnection) => {
            drop_now.notify_one();
            // Never answer: the connection task drops this future with the connection.
            std::future::pending::<()>().await;
            unreachable!("a dropped connection's handler is never resumed")
        }
        Some(FaultAction::Status(code)) => {
            let message = format!("injected fault: HTTP {code}");
            error_response(&state::status(
                code,
                state::reason_for(code),
                message,
                Value::Null,
            ))
        }
        Some(FaultAction::Latency(_)) | None => route(shared, &parts.method, &recorded, &body),
    };
    let mut st = shared.lock();
    if let Some(r) = st.requests.iter_mut().rev().find(|r| r.seq == seq) {
        r.status = Some(response.status().as_u16());
    }
    response
}

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = code;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.body,
    )
}

fn ok(result: Result<Value, ApiError>) -> Response<Body> {
    match result {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

fn path_not_found() -> Response<Body> {
    error_response(&state::status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        serde_json::json!({}),
    ))
}

fn method_not_allowed(method: &Method) -> Response<Body> {
    error_response(&state::status(
        405,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({method})"),
        serde_json::json!({}),
    ))
}

fn wants_table(req: &RecordedRequest) -> bool {
    req.accept
        .as_deref()
        .is_some_and(|a| a.contains("as=Table"))
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| state::bad_request(format!("the body of the request is not valid JSON: {e}")))
}

fn route(shared: &Shared, method: &Method, req: &RecordedRequest, body: &[u8]) -> Response<Body> {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let get = method == Method::GET;
    match segments.as_slice() {
        ["version"] if get => json_response(StatusCode::OK, &discovery::version()),
        ["api"] if get => json_response(StatusCode::OK, &discovery::core_versions(&shared.address)),
        ["api", "v1"] if get => json_response(StatusCode::OK, &discovery::core_v1()),
        ["api", "v1", "namespaces", ns] if get => ok(shared.lock().objects.namespace(ns)),
        ["apis"] if get => json_response(StatusCode::OK, &discovery::groups()),
        ["apis", group] if get => discovery::group_doc(group)
            .map_or_else(path_not_found, |g| json_response(StatusCode::OK, &g)),
        ["apis", "apps", "v1"] if get => json_response(StatusCode::OK, &discovery::apps_v1()),
        ["apis", "autoscaling", "v1"] if get => {
            json_response(StatusCode::OK, &discovery::autoscaling_v1())
        }
        ["apis", "apps", "v1", "deployments"] if get => list(shared, None, req),
        ["apis", "apps", "v1", "namespaces", ns, "deployments"] => match *method {
            Method::GET => list(shared, Some(ns), req),
            Method::POST => {
                let result = parse_json(body).and_then(|d| shared.lock().objects.create(ns, d));
                match result {
                    Ok(d) => json_response(StatusCode::CREATED, &d),
                    Err(e) => error_response(&e),
                }
            }
            _ => method_not_allowed(method),
        },
        ["apis", "apps", "v1", "namespaces", ns, "deployments", name] => match *method {
            Method::GET => {
                let st = shared.lock();
                match st.objects.get(ns, name) {
                    Ok(d) if wants_table(req) => json_response(
                        StatusCode::OK,
                        &state::deployment_table(&[d], &st.objects.revision()),
                    ),
                    Ok(d) => json_response(StatusCode::OK, d),
                    Err(e) => error_response(&e),
                }
            }
            Method::DELETE => ok(shared.lock().objects.delete(ns, name)),
            _ => method_not_allowed(method),
        },
        [
            "apis",
            "apps",
            "v1",
            "namespaces",
            ns,
            "deployments",
            name,
            "scale",
        ] => match *method {
            Method::GET => ok(shared.lock().objects.scale(ns, name)),
            Method::PUT => {
                ok(parse_json(body).and_then(|s| shared.lock().objects.write_scale(ns, name, &s)))
            }
            Method::PATCH => ok(patch_scale(
                shared,
                ns,
                name,
                req.content_type.as_deref(),
                body,
            )),
            _ => method_not_allowed(method),
        },
        _ => path_not_found(),
    }
}

fn list(shared: &Shared, ns: Option<&str>, req: &RecordedRequest) -> Response<Body> {
    let st = shared.lock();
    let items = st.objects.list(ns);
    let rv = st.objects.revision();
    if wants_table(req) {
        return json_response(StatusCode::OK, &state::deployment_table(&items, &rv));
    }
    // Items in a list carry no kind/apiVersion, like the apiserver's.
    let items: Vec<Value> = items
        .into_iter()
        .map(|d| {
            let mut d = d.clone();
            if let Some(m) = d.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            d
        })
        .collect();
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "kind": "DeploymentList",
            "apiVersion": "apps/v1",
            "metadata": { "resourceVersion": rv },
            "items": items,
        }),
    )
}

/// A patch is applied to the current Scale under the lock, then written like a PUT, so a
/// `resourceVersion` inside the patch is a precondition as on the real apiserver.
fn patch_scale(
    shared: &Shared,
    ns: &str,
    name: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Value, ApiError> {
    let media = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let patch = parse_json(body)?;
    let mut st = shared.lock();
    let mut scale = st.objects.scale(ns, name)?;
    match media {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            patch::merge(&mut scale, &patch);
        }
        "application/json-patch+json" => patch::json_patch(&mut scale, &patch).map_err(|msg| {
            state::status(
                422,
                "Invalid",
                msg,
                serde_json::json!({ "name": name, "group": "autoscaling", "kind": "Scale" }),
            )
        })?,
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            return Err(state::status(
                415,
                "UnsupportedMediaType",
                "server-side apply is not implemented by the fake API server",
                Value::Null,
            ));
        }
        other => {
            return Err(state::status(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format ({other:?}) - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
                ),
                Value::Null,
            ));
        }
    }
    st.objects.write_scale(ns, name, &scale)
}
