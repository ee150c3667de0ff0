//! A fake Kubernetes API server speaking real HTTP/1.1 on loopback.
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
//! - `v1` Services and Pods and `discovery.k8s.io/v1` EndpointSlices: create, get, list and
//!   watch (one namespace or all, `labelSelector` with `=`, `!=`, `in`, `notin`, existence;
//!   `fieldSelector` on any field, such as `status.podIP`), replace and patch (a stale
//!   `resourceVersion` is 409), delete with `uid`/`resourceVersion` preconditions (409);
//! - `networking.k8s.io/v1` Ingresses, `gateway.networking.k8s.io/v1` Gateways and HTTPRoutes,
//!   ReferenceGrants in `v1beta1` and `v1` (one set of objects, answered in the version asked
//!   for): the same operations, plus the `status` subresource of Ingresses, Gateways and
//!   HTTPRoutes (a create drops `status`, object writes keep it, `.../status` writes change
//!   only it; `metadata.generation` counts spec changes). The Gateway API is installed by
//!   default; [`FakeApiServer::uninstall_gateway_api`] is a cluster without its CRDs (absent
//!   from discovery, 404 on its paths). Lists ignore `limit` (one page, no `continue`) and
//!   watches send no bookmarks;
//! - apps with an endpoint ([`FakeApiServer::set_app_endpoint`]): once ready, a Pod with
//!   that address and, per selecting Service, a slice managed by the EndpointSlice
//!   controller pointing at it; at 0 replicas the Pod goes and the slices empty;
//! - discovery (`/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`, `/version`).
//!
//! Tests steer it: [`Fault`]s (latency, a status code, a dropped connection, for the next N
//! matching requests), a latency on every request, a log of every request, and direct
//! access to the objects ([`FakeApiServer::scale_externally`] is a person or an HPA;
//! [`FakeApiServer::put_object`] writes any served object, status included, as its controller
//! would; [`FakeApiServer::accept_http_route`] is a gateway controller accepting a route).
//! State sits behind a sync mutex: every operation is short and never awaits while locked.

mod apps; // simulated pods and the EndpointSlice controller's slices of ready apps
mod discovery; // the discovery documents (`/api`, `/apis`, `/version`)
mod errors; // the apiserver's `Status` failures
mod object_routes; // requests for Services, EndpointSlices and Pods
mod patch; // merge patch and JSON patch, as the scale subresource applies them
mod resources; // Services, EndpointSlices, Pods: the generic store and its preconditions
mod routes; // paths to objects, and the encoding of answers
mod seed; // tests' direct access to the generic store; the Gateway API's CRDs
mod selector; // label and field selectors
mod server; // connections; per request: record it, draw faults, route it
mod state; // the objects: Deployments, their Scale view, `resourceVersion`
mod table; // the `Table` kubectl asks for
mod watch; // `?watch=true`: chunked watch events; `fieldSelector=metadata.name=`

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::Method;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use state::Objects;

pub use seed::FAKE_GATEWAY_CONTROLLER;

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

/// Called when a Deployment's pods become ready (`true`) or it is scaled to 0 (`false`).
pub type ReadyHook = Arc<dyn Fn(&str, &str, bool) + Send + Sync>;

struct Shared {
    state: Mutex<State>,
    on_ready: Mutex<Option<ReadyHook>>,
    /// Requests whose handler is running (delayed, or waiting to be dropped).
    in_flight: std::sync::atomic::AtomicUsize,
    /// Client connections currently open.
    open_connections: std::sync::atomic::AtomicUsize,
    /// `host:port`, for `/api`'s `serverAddressByClientCIDRs`.
    address: String,
    /// Cancelled to close every connection open now (watches included).
    sever: Mutex<CancellationToken>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn ready_hook(&self) -> Option<ReadyHook> {
        self.on_ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

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
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            on_ready: Mutex::new(None),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            open_connections: std::sync::atomic::AtomicUsize::new(0),
            address: addr.to_string(),
            sever: Mutex::default(),
        });
        shared.lock().objects.events = Some(events);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server::accept_loop(
            listener,
            shared.clone(),
            shutdown.clone(),
        ));
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
        let rv = self.shared.lock().objects.upsert(namespace, name, replicas);
        server::schedule_readiness(&self.shared);
        rv
    }

    /// Simulated pod start: from now on the pods of a scale-up above 0 become ready
    /// (`status.readyReplicas`, `availableReplicas`, in a status write of their own that
    /// watches see) `delay` after the write; zero (the default) makes them ready in it.
    pub fn set_ready_delay(&self, delay: Duration) {
        self.shared.lock().objects.ready_delay = delay;
    }

    /// Calls `hook(namespace, name, true)` when a Deployment's pods become ready and
    /// `hook(namespace, name, false)` when it is scaled to 0: a test starts and stops the
    /// app's process with it.
    pub fn on_ready(&self, hook: ReadyHook) {
        *self
            .shared
            .on_ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(hook);
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
        let rv = self
            .shared
            .lock()
            .objects
            .scale_externally(namespace, name, replicas);
        server::schedule_readiness(&self.shared);
        rv
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

    /// Client connections open now: what a client's connection pool keeps.
    pub fn open_connections(&self) -> usize {
        self.shared
            .open_connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes every connection open now, unanswered requests and watches included, as an
    /// API server that goes away does; later connections are served (or meet the faults).
    pub fn sever_connections(&self) {
        let mut sever = self
            .shared
            .sever
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *sever).cancel();
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }
}
