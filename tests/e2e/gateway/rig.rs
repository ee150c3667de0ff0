//! The gateway tests' world: `apps/web` idle at a real app process, its Service `web`
//! (port `http` 80), an HTTPRoute `shop.example.test` -> `web:80` accepted by a Gateway, the
//! binary with parking on and the gateway's address range trusted, and nginx in front.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::programs::http::{self, Call};
use sqlx::postgres::PgConnectOptions;
use tempfile::TempDir;

use super::plane::{GATEWAY_SOURCE, Gateway};
use crate::apps::{AppProcess, Kind};
use crate::dataplane::{self, free_port_block};
use crate::support::{Daemon, database_url, idle_app, job_command, kubeconfig, setup};

/// The app's public hostname.
pub const HOST: &str = "shop.example.test";
/// A pod of `apps`, the app's own namespace: not a gateway.
pub const APPS_POD: &str = "127.0.0.2";
/// An address no pod has, outside the trusted range.
pub const NO_POD: &str = "127.0.0.4";
/// How long a park, a wake or a reload may take here.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct World {
    pub fake: Arc<FakeApiServer>,
    _store: PgStore,
    pub app: AppProcess,
    _kubeconfig: (TempDir, std::path::PathBuf),
    /// The parking listener's first port.
    pub port: u16,
    pub daemon: Daemon,
    pub gateway: Gateway,
    /// Scale writes up to the park (the sleep's).
    slept_writes: usize,
}

/// The world with the app serving `kind` and pods that take `start` to become ready, once
/// the app is slept, parked, known to the waker, and nginx sends its hostname to the waker.
pub async fn world(opts: &PgConnectOptions, kind: Kind, start: Duration) -> World {
    let (store, fake) = setup(opts).await;
    let fake = Arc::new(fake);
    idle_app(&store, &fake, "web", 1).await;
    let app = AppProcess::start(&fake, ("apps", "web"), kind);
    fake.create_service("apps", "web", "web", &[("http", 80)]);
    dataplane::pod(&fake, "apps", "client", APPS_POD).await;
    super::routes::install(&fake, HOST).await;
    let kubeconfig = kubeconfig(&fake.url());
    let db = database_url(opts, None);
    let port = free_port_block(&["127.0.0.1"]);
    let daemon = daemon(&db, &kubeconfig.1, port).await;
    let gateway = Gateway::start(fake.clone()).await;
    let mut w = World {
        fake,
        _store: store,
        app,
        _kubeconfig: kubeconfig,
        port,
        daemon,
        gateway,
        slept_writes: 0,
    };
    w.parked().await;
    w.slept_writes = w.all_scale_writes();
    // Set only now: the sleep above is a scale-down, which no delay applies to anyway.
    w.fake.set_ready_delay(start);
    w
}

/// `run` with parking on, its slices pointing at its own parking listener, and nginx's
/// source address trusted as a gateway.
async fn daemon(db: &str, kubeconfig: &std::path::Path, port: u16) -> Daemon {
    let mut cmd = job_command(&["run"], db, kubeconfig);
    let at = format!("127.0.0.1:{port}");
    cmd.env("DEPLOY_SCALE_TO_ZERO_PARKING", "endpointslices")
        .env("IDLE_SCALER_PARKING_LISTEN_ADDR", &at)
        .env("IDLE_SCALER_WAKER_ADDRESSES", &at)
        .env("IDLE_SCALER_ALLOW_LOOPBACK_ADDRESSES", "true")
        .env(
            "DEPLOY_SCALE_TO_ZERO_WAKER_TRUSTED_CIDRS",
            format!("{GATEWAY_SOURCE}/32"),
        )
        .env("RUST_LOG", "info,idle_scaler_waker=debug");
    Daemon::start(cmd).await
}

impl World {
    /// The parking listener, as the parked slice lists it.
    pub fn parking(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits until `web` is slept and parked, the waker knows it asleep, the route index has
    /// read the HTTPRoute, and nginx sends its hostname to the parking listener.
    async fn parked(&mut self) {
        self.until("web parked", |w| {
            w.fake
                .endpoint_slices("apps")
                .iter()
                .any(|s| s["metadata"]["name"] == "idle-scaler-web")
        })
        .await;
        self.until("the waker's index to know web asleep", |w| {
            w.daemon
                .output()
                .lines()
                .any(|l| l.contains("app index refreshed") && l.contains("\"apps\":1"))
        })
        .await;
        // The route index read the HTTPRoute (created before the daemon started).
        let read = self.daemon.wait_for_log("route index read", DEADLINE).await;
        let read: serde_json::Value = serde_json::from_str(&read).expect("a JSON log line");
        assert!(read["rules"].as_u64() >= Some(1), "{read}");
        self.gateway
            .until_upstream(HOST, &[self.parking()], DEADLINE)
            .await;
        assert_eq!(self.fake.replicas("apps", "web"), Some(0));
    }

    /// Polls `check` until it holds, failing with the daemon's output after [`DEADLINE`].
    async fn until(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let until = tokio::time::Instant::now() + DEADLINE;
        while !check(self) {
            assert!(
                tokio::time::Instant::now() < until,
                "timed out waiting for {what}:\n{}",
                self.daemon.output()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A request to nginx for `HOST`.
    pub async fn through_gateway(&self, call: Call<'_>) -> http::Answer {
        let to = SocketAddr::from(([127, 0, 0, 1], self.gateway.port));
        http::send(None, to, call)
            .await
            .unwrap_or_else(|e| panic!("through nginx: {e}\n{}", self.daemon.output()))
    }

    /// A request straight to the parking listener from `source`, as a pod that calls the
    /// parked slice's address itself.
    pub async fn direct(&self, source: &str, call: Call<'_>) -> http::Answer {
        let source: IpAddr = source.parse().expect("ip");
        http::send(Some(source), self.parking(), call)
            .await
            .expect("an answer")
    }

    /// Scale writes since the app was slept and parked: wakes.
    pub fn scale_writes(&self) -> usize {
        self.all_scale_writes() - self.slept_writes
    }

    fn all_scale_writes(&self) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.method != "GET" && r.path.ends_with("/deployments/web/scale"))
            .count()
    }
}
