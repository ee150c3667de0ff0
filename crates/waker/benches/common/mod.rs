//! What the waker's benches share: the waker over a slept app (the real `Job` and Kubernetes
//! adapter against the fake API server, the in-memory store), that app parked behind a real
//! parking listener (the in-memory directory), and a small HTTP app. The parking benches run
//! their clients and the app in processes of their own (the bench binary started again in a
//! role), so the listener's process holds the listener alone, as in a cluster.

// Each bench uses a part of this module.
#![allow(dead_code)]

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
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
use tokio_util::sync::CancellationToken;

/// The callers' pod address (the directory maps it to the app's namespace).
pub const POD: &str = "127.0.0.2";

/// The `Host` callers use: the parked Service by its cluster DNS form.
pub const HOST: &str = "web.apps";

/// A small HTTP app: 200 with a short body.
pub async fn app() -> SocketAddr {
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

/// The waker over a slept app (`apps/web`, asleep with 1 replica to restore, in an in-memory
/// store) whose Deployment `fake` holds: the real `Job` and Kubernetes adapter against it.
pub async fn slept_waker(fake: &FakeApiServer) -> Arc<Waker> {
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
    Arc::new(Waker::new(
        job,
        Arc::new(store),
        kube,
        Arc::new(SystemClock),
        WakerConfig::default(),
    ))
}

/// A slept app (`apps/web`, asleep with 1 replica to restore) whose Service is parked
/// behind a serving parking listener; no endpoint of the app is published yet.
pub struct Parked {
    pub fake: FakeApiServer,
    pub directory: MemoryDirectory,
    /// The parking listener's port 0 (the Service's port `http`).
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
}

impl Parked {
    pub async fn start() -> Self {
        let fake = FakeApiServer::start().await;
        fake.create_deployment("apps", "web", 0);
        let waker = slept_waker(&fake).await;
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
        // A backlog as large as a burst of clients (the binary binds it from the limits).
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let socket = socket.listen(4096).expect("listen");
        let addr = socket.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        tokio::spawn(listener.serve(vec![socket], shutdown.clone()));
        Self {
            fake,
            directory,
            addr,
            shutdown,
        }
    }

    /// The app's scale writes the fake received so far.
    pub fn scale_writes(&self) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with("/scale"))
            .count()
    }
}

/// The `p` quantile of sorted durations (nearest rank).
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    // an index into a vector far shorter than 2^52
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The role the bench binary runs in when it started itself again.
const ROLE: &str = "IDLE_SCALER_BENCH_ROLE";

/// In a process started by [`run_role`] or [`App::start`]: plays the role (`name` runs
/// `clients`; `app` serves the app) and says so; `false` in the bench process itself.
pub fn play_role<F, Fut>(name: &str, clients: F) -> bool
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(role) = std::env::var(ROLE) else {
        return false;
    };
    // One thread each: in a cluster the clients and the app run on other nodes; here they
    // share the listener's two cores, so they take as little of them as they can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match role.as_str() {
        "app" => rt.block_on(async {
            println!("{}", app().await);
            std::future::pending::<()>().await;
        }),
        r if r == name => rt.block_on(clients()),
        other => panic!("{ROLE}={other}: not a role (app, {name})"),
    }
    true
}

/// The clients' role's arguments: where to send, and how many requests.
pub fn role_args() -> (SocketAddr, usize) {
    let to = std::env::var("TO").expect("TO").parse().expect("TO");
    let count = std::env::var("COUNT")
        .expect("COUNT")
        .parse()
        .expect("COUNT");
    (to, count)
}

/// Runs this binary as the clients' role `name` (`count` requests to `to`) and gives back the
/// numbers it printed, one per line.
pub async fn run_role(name: &'static str, to: SocketAddr, count: usize) -> Vec<u64> {
    let out = tokio::task::spawn_blocking(move || {
        Command::new(std::env::current_exe().expect("own path"))
            .env(ROLE, name)
            .env("TO", to.to_string())
            .env("COUNT", count.to_string())
            .stderr(Stdio::inherit())
            .output()
            .expect("clients' process")
    })
    .await
    .expect("clients' process");
    assert!(out.status.success(), "the clients' process failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| l.parse().expect("a number"))
        .collect()
}

/// The app in a process of its own (killed on drop).
pub struct App {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    pub fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env(ROLE, "app")
            .stdout(Stdio::piped())
            .spawn()
            .expect("app process");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut first)
            .expect("the app's address");
        let addr = first.trim().parse().expect("an address");
        Self { child, addr }
    }
}
