//! The parking listener's rig, shared by the `it` and `sim` test binaries (each includes this
//! file with `#[path]`): asleep apps on the fake API server and in the in-memory store, the
//! real `Job` and `Waker` over them, a served listener, and clients that connect from a
//! chosen loopback address, so the caller check sees different pods.

// Each binary uses its own part of the rig.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hyper_util::rt::TokioIo;
use idle_scaler_core::{
    Config, FixedScalerFactory, Job, Readiness, Scaler, SleepState, SystemClock,
};
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::MemoryStore;
use idle_scaler_waker::{ParkingListener, Waker, WakerConfig};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// `namespace/name` asleep: its Deployment at 0 on the fake, its row `asleep` for two hours
/// with restore count 1.
pub async fn asleep_app(
    fake: &FakeApiServer,
    store: &MemoryStore,
    namespace: &str,
    name: &str,
) -> Uuid {
    let past = Utc::now() - chrono::Duration::hours(2);
    fake.create_deployment(namespace, name, 0);
    store
        .insert(NewDeployment::k8s(namespace, name, past).sleep_state(
            SleepState::Asleep,
            past,
            Some(1),
        ))
        .await
        .expect("insert")
}

/// The real `Job` (default configuration, system clock) waking through `scaler`, and a
/// waker over it that waits through `readiness`.
pub fn waker_over(
    store: &MemoryStore,
    scaler: Arc<dyn Scaler>,
    readiness: Arc<dyn Readiness>,
    config: WakerConfig,
) -> Arc<Waker> {
    let clock = Arc::new(SystemClock);
    let job = Arc::new(
        Job::builder(
            Config::default(),
            Arc::new(store.clone()),
            Arc::new(FixedScalerFactory(scaler)),
        )
        .clock(clock.clone())
        .build(),
    );
    Arc::new(Waker::new(
        job,
        Arc::new(store.clone()),
        readiness,
        clock,
        config,
    ))
}

/// A listener being served on one loopback port.
pub struct Served {
    /// The parking listener's port + 0.
    pub addr: SocketAddr,
    /// Cancelled: the listener drains (`SIGTERM`).
    pub shutdown: CancellationToken,
    /// Ends when the drain is over (the last connection closed).
    pub served: tokio::task::JoinHandle<()>,
}

/// Serves `listener` on a new loopback port, in a task of its own.
pub async fn serve(listener: ParkingListener) -> Served {
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let served = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            Arc::new(listener)
                .serve(vec![socket], shutdown)
                .await
                .expect("serve");
        }
    });
    Served {
        addr,
        shutdown,
        served,
    }
}

/// Waits (10 s at most) until `done` holds, looking every few milliseconds.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A TCP connection to `to` from the loopback address `from` (a "pod" of the directory).
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    try_connect_from(from, to).await.expect("connect")
}

/// [`connect_from`], for a caller that expects a refusal now and then.
pub async fn try_connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    // Many short connections from one address: a port in TIME_WAIT may be taken again.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(ip(from), 0))?;
    socket.connect(to).await
}

/// An HTTP/1.1 client connection from `from`; the task driving it ends when the connection
/// closes (its handle tells).
pub async fn client_from<B>(
    from: &str,
    to: SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<B>,
    tokio::task::JoinHandle<()>,
)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = connect_from(from, to).await;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, driver)
}
