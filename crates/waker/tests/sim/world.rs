//! The simulated world: three parked apps asleep (the real `Job` over the in-memory store
//! and the Kubernetes adapter against the fake API server, through a scaler that can crash),
//! their Services and the callers' pods in the in-memory directory, two recording pods per
//! app and one pod of a namespace nobody parks, and the real parking listener, rebuilt with a
//! new `Job` and `Waker` after each drain (a "generation").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use idle_scaler_core::{ListenerPort, ParkedServiceInfo, SleepState, Target};
use idle_scaler_kube::KubeScaler;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::host::HostOps;
use idle_scaler_testkit::memory::{MemoryDirectory, MemoryStore};
use idle_scaler_waker::{ParkingLimits, ParkingListener, WakerConfig};
use uuid::Uuid;

use crate::client::{APPS, CALLERS, GATEWAYS};
use crate::crash::CrashScaler;
use crate::parking_rig::{Served, asleep_app, ip, serve, waker_over};
use crate::pods::{Log, Pod};

/// The waker's timeout: how long a held request waits for its app.
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// The port name of every parked Service's one port.
const PORT: &str = "http";

pub struct SimWorld {
    pub fake: Arc<FakeApiServer>,
    pub store: MemoryStore,
    pub directory: MemoryDirectory,
    kube: Arc<KubeScaler>,
    pub crash: Arc<CrashScaler>,
    rows: Vec<Uuid>,
    /// Pods `2a` and `2a + 1` are app `a`'s; the last one is the foreign pod.
    pub pods: Vec<Pod>,
    /// The pod each app's endpoint is, if any.
    published: [Option<usize>; APPS.len()],
    pub log: Log,
    pub served: Served,
    /// Bumped when a listener is built: a request of an older generation was drained.
    pub generation: u64,
    /// The caller lookups the directory will have served once every connection sent to this
    /// generation had its first request read (one lookup per connection).
    pub lookups_due: u64,
}

fn config() -> WakerConfig {
    WakerConfig {
        waker_timeout_seconds: TIMEOUT.as_secs(),
        waker_page_after_ms: 200,
        waker_gateway_namespaces: GATEWAYS.to_owned(),
        // Wakes are not rationed here: every sleep may be followed by a wake.
        waker_max_wakes_per_minute: 1_000_000,
        ..WakerConfig::default()
    }
}

impl SimWorld {
    pub async fn build() -> Self {
        let fake = Arc::new(FakeApiServer::start().await);
        let store = MemoryStore::default();
        let directory = MemoryDirectory::new("cluster.local");
        let mut rows = Vec::new();
        for app in &APPS {
            rows.push(asleep_app(&fake, &store, app.namespace, app.name).await);
            directory.park(ParkedServiceInfo {
                namespace: app.namespace.to_owned(),
                name: app.name.to_owned(),
                cluster_ip: Some(ip(app.cluster_ip)),
                target: Target::new(app.namespace, app.name),
                ports: vec![ListenerPort {
                    offset: 0,
                    name: Some(PORT.to_owned()),
                    port: 80,
                    app_protocol: None,
                }],
                callers: app.callers.iter().map(|c| (*c).to_owned()).collect(),
            });
        }
        for caller in &CALLERS {
            if let Some(ns) = caller.namespace {
                directory.set_pod(ip(caller.ip), ns);
            }
        }
        let log = Log::default();
        let mut pods = Vec::new();
        for index in 0..=2 * APPS.len() {
            let app = (index < 2 * APPS.len()).then_some(index / 2);
            pods.push(Pod::start(index, app, log.clone()).await);
        }
        let kube =
            Arc::new(KubeScaler::from_url(&fake.url(), Duration::from_secs(10)).expect("kube"));
        let crash = Arc::new(CrashScaler::new(kube.clone()));
        let served = Self::listener(&store, &crash, &kube, &directory).await;
        Self {
            lookups_due: directory.pod_lookups(),
            fake,
            store,
            directory,
            kube,
            crash,
            rows,
            pods,
            published: [None; APPS.len()],
            log,
            served,
            generation: 0,
        }
    }

    async fn listener(
        store: &MemoryStore,
        crash: &Arc<CrashScaler>,
        kube: &Arc<KubeScaler>,
        directory: &MemoryDirectory,
    ) -> Served {
        let waker = waker_over(store, crash.clone(), kube.clone(), config());
        // The rows as they are now (an app just put to sleep included), not at the index's
        // first refresh a moment later: else a first request finds no row and wakes nothing.
        waker.refresh_index().await.expect("index refresh");
        let listener =
            ParkingListener::new(waker, Arc::new(directory.clone()), ParkingLimits::default());
        serve(listener).await
    }

    /// The foreign pod: no parked Service may send it anything.
    pub fn foreign(&self) -> SocketAddr {
        self.pods[2 * APPS.len()].addr
    }

    /// App `a`'s Service has the ready endpoint of pod `pod` (or none).
    pub fn set_endpoint(&mut self, a: usize, pod: Option<usize>) {
        let app = &APPS[a];
        self.published[a] = pod;
        match pod {
            Some(p) => {
                self.directory
                    .set_endpoint(app.namespace, app.name, Some(PORT), self.pods[p].addr);
            }
            None => self
                .directory
                .clear_endpoint(app.namespace, app.name, Some(PORT)),
        }
    }

    /// Pod `p` listens again; if it had to take a new address, its app's endpoint follows.
    pub async fn listen(&mut self, p: usize) {
        if self.pods[p].listen().await {
            for a in 0..APPS.len() {
                if self.published[a] == Some(p) {
                    self.set_endpoint(a, Some(p));
                }
            }
        }
    }

    /// App `a` asleep again: its row `asleep`, its Deployment at 0, no ready endpoint.
    pub async fn sleep(&mut self, a: usize) {
        let past = Utc::now() - chrono::Duration::hours(1);
        self.store
            .set_sleep_state(self.rows[a], SleepState::Asleep, past, Some(1))
            .await
            .expect("row asleep");
        let app = &APPS[a];
        self.fake.scale_externally(app.namespace, app.name, 0);
        self.set_endpoint(a, None);
    }

    /// `SIGTERM`: once every connection sent so far had its first request read, the listener
    /// drains (held requests answered at once); then a new `Job`, `Waker` and listener.
    pub async fn restart(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.directory.pod_lookups() < self.lookups_due {
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "connections never served: {} caller lookups of {} due",
                    self.directory.pod_lookups(),
                    self.lookups_due
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.served.shutdown.cancel();
        // Held requests are answered at once; forwards in progress take their time.
        let drained = tokio::time::timeout(TIMEOUT * 5, &mut self.served.served).await;
        if drained.is_err() {
            return Err("the drain did not end".to_owned());
        }
        self.served = Self::listener(&self.store, &self.crash, &self.kube, &self.directory).await;
        self.generation += 1;
        self.lookups_due = self.directory.pod_lookups();
        Ok(())
    }

    /// Scale writes per app since the last call.
    pub fn take_scale_writes(&self) -> [u64; APPS.len()] {
        let mut writes = [0; APPS.len()];
        for r in self.fake.requests() {
            if r.method != "PATCH" {
                continue;
            }
            for (a, app) in APPS.iter().enumerate() {
                let path = format!(
                    "/namespaces/{}/deployments/{}/scale",
                    app.namespace, app.name
                );
                if r.path.ends_with(&path) {
                    writes[a] += 1;
                }
            }
        }
        self.fake.clear_requests();
        writes
    }
}
