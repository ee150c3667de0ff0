//! The parking listener's test world: `apps/web` asleep (the real `Job` over the in-memory
//! store and the Kubernetes adapter against the fake API server), its Service `web` parked in
//! the in-memory directory, a real local HTTP server as the app, and raw HTTP clients that
//! connect from a chosen loopback address (the rig in `common/parking_rig.rs`, which the
//! simulation shares), so the caller check sees different pods.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use idle_scaler_core::{ListenerPort, ParkedServiceInfo, RouteIndex, Target};
use idle_scaler_kube::KubeScaler;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::memory::{MemoryDirectory, MemoryStore};
use idle_scaler_waker::{ParkingLimits, ParkingListener, WakerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::parking_rig::{
    Served, asleep_app, client_from, connect_from, ip, serve, until, waker_over,
};

/// A pod of `apps`, the app's own namespace.
pub const APPS_POD: &str = "127.0.0.2";
/// A pod of `other`, a namespace the Service does not admit.
pub const OTHER_POD: &str = "127.0.0.3";
/// An address no pod has.
pub const NO_POD: &str = "127.0.0.4";

/// The world: the fake cluster, the store, the directory, the app and the listener.
pub struct ParkingWorld {
    pub fake: Arc<FakeApiServer>,
    pub directory: MemoryDirectory,
    /// The parking listener's port + 0.
    pub addr: SocketAddr,
    pub app: App,
    pub shutdown: CancellationToken,
    pub served: tokio::task::JoinHandle<()>,
}

/// The parked Service `apps/web` (ClusterIP 10.96.0.7), port `http` 80 at offset 0.
pub fn web_service() -> ParkedServiceInfo {
    ParkedServiceInfo {
        namespace: "apps".to_owned(),
        name: "web".to_owned(),
        cluster_ip: Some(ip("10.96.0.7")),
        target: Target::new("apps", "web"),
        ports: vec![ListenerPort {
            offset: 0,
            name: Some("http".to_owned()),
            port: 80,
            app_protocol: None,
        }],
        callers: Vec::new(),
    }
}

/// The world with a waker timeout of 10 s and the default page delay.
pub async fn parking_world() -> ParkingWorld {
    parking_world_with(WakerConfig {
        waker_timeout_seconds: 10,
        ..WakerConfig::default()
    })
    .await
}

/// `apps/web` and `apps/other` asleep (restore count 1), `web` parked, pods of `apps` and
/// `other` at [`APPS_POD`] and [`OTHER_POD`], a parking listener with `config`.
pub async fn parking_world_with(config: WakerConfig) -> ParkingWorld {
    parking_world_routed(config, None).await
}

/// [`parking_world_with`], the listener naming apps by public hostnames through `routes`.
pub async fn parking_world_routed(
    config: WakerConfig,
    routes: Option<Arc<dyn RouteIndex>>,
) -> ParkingWorld {
    let fake = Arc::new(FakeApiServer::start().await);
    let store = MemoryStore::default();
    for name in ["web", "other"] {
        asleep_app(&fake, &store, "apps", name).await;
    }
    let kube = Arc::new(KubeScaler::from_url(&fake.url(), Duration::from_secs(10)).expect("kube"));
    let waker = waker_over(&store, kube.clone(), kube, config);
    let directory = MemoryDirectory::new("cluster.local");
    directory.park(web_service());
    directory.set_pod(ip(APPS_POD), "apps");
    directory.set_pod(ip(OTHER_POD), "other");
    let mut listener =
        ParkingListener::new(waker, Arc::new(directory.clone()), ParkingLimits::default());
    if let Some(routes) = routes {
        listener = listener.routes(routes);
    }
    let Served {
        addr,
        shutdown,
        served,
    } = serve(listener).await;
    ParkingWorld {
        fake,
        directory,
        addr,
        app: App::start().await,
        shutdown,
        served,
    }
}

impl ParkingWorld {
    /// Publishes the app's own endpoint once the Deployment was scaled up (as the
    /// EndpointSlice controller would once its pod is ready), in a task of its own.
    pub fn app_becomes_ready_when_scaled(&self) -> tokio::task::JoinHandle<()> {
        let (fake, directory, app) = (self.fake.clone(), self.directory.clone(), self.app.addr);
        tokio::spawn(async move {
            until("the app is scaled up", || {
                fake.replicas("apps", "web").is_some_and(|r| r > 0)
            })
            .await;
            directory.set_endpoint("apps", "web", Some("http"), app);
        })
    }

    /// Scale writes of `apps/<name>`.
    pub fn scale_writes(&self, name: &str) -> usize {
        let path = format!("/namespaces/apps/deployments/{name}/scale");
        self.fake
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with(&path))
            .count()
    }
}

/// The app: echoes what it received (method, URI, headers, body, trailers) and answers with
/// trailers of its own; counts the requests it got.
pub struct App {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
}

impl App {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
        Self::serve_on(listener)
    }

    /// The app on an already bound socket (a test that controls when it listens).
    pub fn serve_on(listener: TcpListener) -> Self {
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (counter, accepted) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        echo(req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            connections,
        }
    }

    pub fn received(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

type Echo = StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

async fn echo(req: Request<Incoming>) -> Result<Response<Echo>, Infallible> {
    let (parts, body) = req.into_parts();
    let collected = body.collect().await.expect("request body");
    let got_trailer = collected
        .trailers()
        .and_then(|t| t.get("x-checksum"))
        .cloned()
        .unwrap_or(HeaderValue::from_static("none"));
    let body = collected.to_bytes();
    let mut text = format!("{} {}\n", parts.method, parts.uri);
    for (k, v) in &parts.headers {
        text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&body));
    let mut trailers = HeaderMap::new();
    trailers.insert("x-echo-checksum", got_trailer);
    let frames = vec![
        Ok(Frame::data(Bytes::from(text))),
        Ok(Frame::trailers(trailers)),
    ];
    let res = Response::builder()
        .header("trailer", "x-echo-checksum")
        .header("x-app", "web")
        .body(StreamBody::new(futures::stream::iter(frames)))
        .expect("response");
    Ok(res)
}

/// One request from `from` with `Host: host`, the answer's status, headers and body.
pub async fn get_from(
    from: &str,
    to: SocketAddr,
    host: &str,
    headers: &[(&str, &str)],
) -> (http::StatusCode, HeaderMap, String) {
    let (mut sender, _driver) = client_from(from, to).await;
    let mut req = Request::builder().uri("/hello?x=1").header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("answer");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}
