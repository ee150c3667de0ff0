//! The waker with real components: the in-memory store, the real `Job`, the Kubernetes
//! adapter against the fake API server (real HTTP, watches, simulated pod start). New tests
//! go in the module of their topic.

mod answers; // what each kind of client and app gets
mod browser; // headless Chromium over WebDriver through nginx, with screenshots
mod clusters; // several clusters: the app's cluster is woken and watched
mod flood; // a flood of unknown-app requests with a slow database: wakes keep their pace
mod guards; // failed wakes remembered, wakes per namespace limited, errors passed through, forged URIs
mod parking_callers; // parking listener: Host alone names the app; the caller check
mod parking_forward; // parking listener: held requests forwarded to the app, unchanged, once
mod parking_h2c; // parking listener: HTTP/2 cleartext only for h2c ports, with curl
mod parking_hold; // parking listener: browsers' page, timeouts, the drain
#[path = "../common/parking_rig.rs"]
mod parking_rig; // shared with the simulation: asleep apps, the waker, clients from pods
mod parking_routes; // parking listener: public hostnames through the route index, gateways only
mod parking_upgrade; // parking listener: WebSocket carried to the app
mod parking_world; // the parking listener's setup: directory, app server, clients from pods
mod real; // nginx in front, a real app process, a raw HTTP client
mod single_flight; // N visitors, one wake, one scale write

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use chrono::Utc;
use http::{Request, Response};
use idle_scaler_core::{
    Clock, Config, FixedScalerFactory, Job, Readiness, SleepState, SystemClock,
};
use idle_scaler_kube::KubeScaler;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::MemoryStore;
use idle_scaler_waker::{Waker, WakerConfig};
use tower::ServiceExt;
use uuid::Uuid;

struct World {
    fake: FakeApiServer,
    store: MemoryStore,
    waker: Arc<Waker>,
    router: Router,
    id: Uuid,
}

impl World {
    /// Rows inserted after the waker was built reach its app index now, not a refresh later.
    async fn indexed(&self) {
        self.waker.refresh_index().await.expect("index refresh");
    }
}

/// `apps/web` asleep on the fake (0 replicas, restore count 2) and in the store, pods that
/// take `start` to become ready, and a waker over it all.
async fn world(start: Duration, readiness: Option<Arc<dyn Readiness>>) -> World {
    let config = WakerConfig {
        waker_timeout_seconds: 10,
        ..WakerConfig::default()
    };
    world_with(start, readiness, config, Arc::new(SystemClock)).await
}

/// [`world`] with the waker's configuration and the clock of the job and the waker.
async fn world_with(
    start: Duration,
    readiness: Option<Arc<dyn Readiness>>,
    config: WakerConfig,
    clock: Arc<dyn Clock>,
) -> World {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 0);
    fake.set_ready_delay(start);
    let store = MemoryStore::default();
    let past = Utc::now() - chrono::Duration::hours(2);
    let id = store
        .insert(NewDeployment::k8s("apps", "web", past).sleep_state(
            SleepState::Asleep,
            past,
            Some(2),
        ))
        .await
        .expect("insert");
    let kube = Arc::new(KubeScaler::from_url(&fake.url(), Duration::from_secs(10)).expect("kube"));
    let job = Arc::new(
        Job::builder(
            Config::default(),
            Arc::new(store.clone()),
            Arc::new(FixedScalerFactory(kube.clone())),
        )
        .clock(clock.clone())
        .build(),
    );
    let waker = Arc::new(Waker::new(
        job,
        Arc::new(store.clone()),
        readiness.unwrap_or(kube),
        clock,
        config,
    ));
    World {
        fake,
        store,
        router: waker.clone().router(),
        waker,
        id,
    }
}

/// A request as ingress-nginx's custom-error location sends it for `apps/web`.
fn nginx(method: &str, uri: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri("/")
        .header("X-Namespace", "apps")
        .header("X-Service-Name", "web")
        .header("X-Original-URI", uri)
        .header("X-Format", "text/html")
        .header("X-Code", "503")
}

async fn send(router: &Router, req: Request<Body>) -> Response<Body> {
    router.clone().oneshot(req).await.expect("infallible")
}

async fn text(res: Response<Body>) -> String {
    use http_body_util::BodyExt;
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn scale_writes(fake: &FakeApiServer) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/scale"))
        .count()
}
