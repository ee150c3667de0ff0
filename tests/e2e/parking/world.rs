//! The parking tests' world: `apps/web` at a real app, its Services, callers' pods, and the
//! binary run with parking on.

use std::net::IpAddr;
use std::time::Duration;

use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use tempfile::TempDir;

use crate::dataplane::{self, Answer, App, free_port_block};
use crate::support::{Daemon, database_url, eventually, idle_app, job_command, kubeconfig, setup};

/// A pod of `apps`, the app's own namespace.
pub const APPS_POD: &str = "127.0.0.2";
/// A pod of `other`, which the Service does not admit.
pub const OTHER_POD: &str = "127.0.0.3";
/// An address no pod has.
pub const NO_POD: &str = "127.0.0.4";
/// The first waker pod of the rollout, and the one that replaces it.
pub const WAKER_A: &str = "127.0.0.5";
pub const WAKER_B: &str = "127.0.0.6";
/// The parked slice of Service `web`.
pub const PARKED: &str = "idle-scaler-web";
/// How long a park, a wake or an unpark may take here.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

pub struct World {
    pub fake: FakeApiServer,
    _store: PgStore,
    pub app: App,
    pub kubeconfig: (TempDir, std::path::PathBuf),
    pub db: String,
    /// The row of `apps/web`.
    pub web: uuid::Uuid,
    /// The parking listener's first port.
    pub port: u16,
}

/// `apps/web` (1 replica, idle for hours) serving at a real local app, its Service `web`
/// (port `http` 80) and `web-admin` (port `http` 8080) with a hand-written slice named as
/// idle-scaler would name its own, and pods of `apps` and `other`.
pub async fn world(opts: &PgConnectOptions) -> World {
    let (store, fake) = setup(opts).await;
    let app = App::start().await;
    let web = idle_app(&store, &fake, "web", 1).await;
    fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.create_service("apps", "web-admin", "web", &[("http", 8080)]);
    fake.set_app_endpoint("apps", "web", &app.addr.to_string());
    dataplane::create(
        &fake,
        "/apis/discovery.k8s.io/v1/namespaces/apps/endpointslices",
        &json!({
            "metadata": {
                "name": "idle-scaler-web-admin",
                "labels": { "kubernetes.io/service-name": "web-admin" },
            },
            "addressType": "IPv4",
            "ports": [{ "name": "http", "port": 9999, "protocol": "TCP" }],
            "endpoints": [{ "addresses": ["10.1.2.3"], "conditions": { "ready": true } }],
        }),
    )
    .await;
    dataplane::pod(&fake, "apps", "client", APPS_POD).await;
    dataplane::pod(&fake, "other", "client", OTHER_POD).await;
    World {
        kubeconfig: kubeconfig(&fake.url()),
        db: database_url(opts, None),
        port: free_port_block(&["127.0.0.1", WAKER_A, WAKER_B]),
        web,
        fake,
        _store: store,
        app,
    }
}

impl World {
    /// `run` with parking on, its slices pointing at its own parking listener.
    pub async fn daemon(&self) -> Daemon {
        self.daemon_at("127.0.0.1").await
    }

    /// [`Self::daemon`] as the waker pod at `pod_ip` (its `POD_IP`): its parking listener
    /// there, and the only waker address it points slices at.
    pub async fn daemon_at(&self, pod_ip: &str) -> Daemon {
        self.daemon_with(pod_ip, &format!("{pod_ip}:{}", self.port))
            .await
    }

    /// [`Self::daemon_at`] pointing slices at `addresses` (a static list).
    pub async fn daemon_with(&self, pod_ip: &str, addresses: &str) -> Daemon {
        Daemon::start(self.daemon_command(pod_ip, addresses)).await
    }

    /// [`Self::daemon`] with the shortest reconcile the settings allow (a minute, a tick
    /// every 10 s), for the tests that wait for the reconcile to park or unpark.
    pub async fn daemon_reconciling(&self) -> Daemon {
        let mut cmd = self.daemon_command("127.0.0.1", &format!("127.0.0.1:{}", self.port));
        cmd.env("DEPLOY_SCALE_TO_ZERO_RECONCILE_MINUTES", "1")
            .env("DEPLOY_SCALE_TO_ZERO_INTERVAL_SECONDS", "10");
        Daemon::start(cmd).await
    }

    fn daemon_command(&self, pod_ip: &str, addresses: &str) -> std::process::Command {
        let mut cmd = job_command(&["run"], &self.db, &self.kubeconfig.1);
        let at = format!("{pod_ip}:{}", self.port);
        cmd.env("DEPLOY_SCALE_TO_ZERO_PARKING", "endpointslices")
            .env("IDLE_SCALER_PARKING_LISTEN_ADDR", &at)
            .env("IDLE_SCALER_WAKER_ADDRESSES", addresses)
            .env("IDLE_SCALER_ALLOW_LOOPBACK_ADDRESSES", "true")
            .env("RUST_LOG", "info,idle_scaler_waker=debug");
        if pod_ip != "127.0.0.1" {
            cmd.env("POD_IP", pod_ip);
        }
        cmd
    }

    pub fn slice(&self, name: &str) -> Option<Value> {
        self.fake
            .endpoint_slices("apps")
            .into_iter()
            .find(|s| s["metadata"]["name"] == name)
    }

    /// Waits until `web` is parked and the daemon's waker knows it asleep (its app index
    /// is read every few seconds).
    pub async fn parked(&self, daemon: &mut Daemon) -> Value {
        let slice = eventually(DEADLINE, "web parked", || async { self.slice(PARKED) }).await;
        eventually(DEADLINE, "the waker's index to know web asleep", || async {
            daemon
                .output()
                .lines()
                .any(|l| l.contains("app index refreshed") && l.contains("\"apps\":1"))
                .then_some(())
        })
        .await;
        slice
    }

    pub async fn call(
        &self,
        source: &str,
        host: &str,
        method: &str,
        body: &str,
    ) -> Result<Answer, String> {
        dataplane::call(
            &self.fake,
            ip(source),
            ("apps", "web"),
            host,
            (method, "/orders?id=7", body),
        )
        .await
    }

    pub fn scale_writes(&self) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.method != "GET" && r.path.ends_with("/deployments/web/scale"))
            .count()
    }

    /// Whether the app's own slice has a ready endpoint.
    pub fn own_ready(&self) -> bool {
        self.slice("web-web").is_some_and(|s| {
            s["endpoints"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["conditions"]["ready"] == true))
        })
    }
}
