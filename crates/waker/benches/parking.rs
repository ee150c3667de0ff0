//! The parking listener's first-request overhead: from the moment the slept app's own
//! endpoint is ready (the directory publishes it) to the moment each held client has the
//! app's whole answer, for 1 and for 1,000 concurrent held requests to one app. Everything
//! over real TCP on loopback: clients from a pod address, the parking listener, the forward
//! to a real HTTP app; the wake through the real `Job` and Kubernetes adapter against the fake
//! API server; the in-memory store and directory.
//! Run: `cargo bench -p idle-scaler-waker --bench parking`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use idle_scaler_core::{
    Config, FixedScalerFactory, Job, ListenerPort, ParkedServiceInfo, SleepState, SystemClock,
    Target,
};
use idle_scaler_kube::KubeScaler;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::{MemoryDirectory, MemoryStore};
use idle_scaler_waker::{ParkingLimits, ParkingListener, Waker, WakerConfig};
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const POD: &str = "127.0.0.2";

/// A small HTTP app: 200 with a short body.
async fn app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                        b"hello from the app\n",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// One request from the pod address, held by the listener; when its whole answer arrived.
async fn client(to: SocketAddr) -> Instant {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(POD.parse().expect("ip"), 0))
        .expect("bind source");
    let stream = socket.connect(to).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("/")
        .header("host", "web.apps")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = sender.send_request(req).await.expect("answer");
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.expect("body");
    Instant::now()
}

/// One round: `held` requests held for a slept app, then its endpoint published. The
/// overhead of each request, and the scale writes the round made.
async fn round(held: usize) -> (Vec<Duration>, usize) {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 0);
    let store = MemoryStore::default();
    let past = Utc::now() - chrono::Duration::hours(2);
    store
        .insert(NewDeployment::k8s("apps", "web", past).sleep_state(
            SleepState::Asleep,
            past,
            Some(1),
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
        .clock(Arc::new(SystemClock))
        .build(),
    );
    let waker = Arc::new(Waker::new(
        job,
        Arc::new(store),
        kube,
        Arc::new(SystemClock),
        WakerConfig::default(),
    ));
    let directory = MemoryDirectory::default();
    directory.park(ParkedServiceInfo {
        namespace: "apps".to_owned(),
        name: "web".to_owned(),
        cluster_ip: None,
        target: Target::new("apps", "web"),
        ports: vec![ListenerPort {
            offset: 0,
            name: Some("http".to_owned()),
            port: 80,
            app_protocol: None,
        }],
        callers: Vec::new(),
    });
    directory.set_pod(POD.parse().expect("ip"), "apps");
    let listener = Arc::new(ParkingListener::new(
        waker,
        Arc::new(directory.clone()),
        ParkingLimits::default(),
    ));
    // A backlog as large as the burst of clients (the binary binds it from the limits).
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let socket = socket.listen(4096).expect("listen");
    let addr = socket.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(listener.serve(vec![socket], shutdown.clone()));
    let app = app().await;

    let clients: Vec<_> = (0..held).map(|_| tokio::spawn(client(addr))).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while directory.waiting() < held || fake.replicas("apps", "web") != Some(1) {
        assert!(Instant::now() < deadline, "requests never all held");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready = Instant::now();
    directory.set_endpoint("apps", "web", Some("http"), app);
    let mut overheads = Vec::with_capacity(held);
    for c in clients {
        overheads.push(c.await.expect("client").saturating_duration_since(ready));
    }
    shutdown.cancel();
    let writes = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/scale"))
        .count();
    (overheads, writes)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    // an index into a short vector
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("parking listener first-request overhead (endpoint ready -> client has the answer)");
    for (held, rounds) in [(1, 100), (1000, 5)] {
        let mut all = Vec::new();
        let mut max_writes = 0;
        for _ in 0..rounds {
            let (o, writes) = rt.block_on(round(held));
            all.extend(o);
            max_writes = max_writes.max(writes);
        }
        all.sort();
        println!(
            "{held:>5} held x {rounds:>3} rounds: p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  scale writes per round {max_writes}",
            pct(&all, 0.5).as_secs_f64() * 1e3,
            pct(&all, 0.99).as_secs_f64() * 1e3,
            all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
}
