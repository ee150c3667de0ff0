//! [`KubeParkingDirectory`]: the parking listener's view of the cluster, kept current by
//! watches, so that naming the app of a request never waits on an API request.
//!
//! - idle-scaler's parked slices, cluster-wide (label
//!   `endpointslice.kubernetes.io/managed-by=idle-scaler`), and the Services they park (only
//!   those are kept: name, namespace, ClusterIP, ports, the `idle-scaler.dev/callers`
//!   annotation), listed then watched, resumed on the last `resourceVersion`, listed again on
//!   `410 Gone`. A request's `Host` is looked up in memory by every name a caller in the
//!   cluster may use.
//! - A caller's namespace: `list pods` by `status.podIP`, remembered for a while (see
//!   [`DirectorySettings::pod_cache_ttl`]), "no pod" too.
//! - A ready endpoint of the app's own: a watch of the Service's slices until one the
//!   EndpointSlice controller manages has a ready Pod endpoint of the Service's namespace.
//!
//! RBAC: `list`, `watch` on `endpointslices` and `services` (all namespaces), `get` on
//! `services`, `list` on `pods`.

mod endpoints;
mod index;
mod pods;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use idle_scaler_core::flight::SingleFlight;
use idle_scaler_core::{ClusterName, ListenerPort, ParkedServiceInfo, ParkingDirectory};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::debug;

pub use endpoints::CONTROLLER;
pub use index::CALLERS_ANNOTATION;

use crate::parking::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::reflect::{Change, reflect};
use endpoints::Forbidden;
use index::ParkedIndex;
use pods::PodNamespaces;

/// What a [`KubeParkingDirectory`] needs besides its client.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    /// The cluster the directory watches (`None`: the default one): the cluster of the
    /// parked Services' targets.
    pub cluster: Option<ClusterName>,
    /// The cluster DNS suffix (`cluster_domain`, default `cluster.local`).
    pub cluster_domain: String,
    /// The parking listener's first port: a parked slice's port minus it is the listener
    /// offset of the Service port of the same name.
    pub parking_base_port: u16,
    /// The waker's own addresses: never a forwarding target.
    pub own_addresses: Vec<IpAddr>,
    /// Accept loopback endpoints: only for a test rig whose apps listen on 127.0.0.1.
    pub allow_loopback: bool,
    /// Bound of every API request.
    pub request_timeout: Duration,
    /// How long a caller address's namespace (or "no pod") is remembered.
    pub pod_cache_ttl: Duration,
    /// At most this many caller addresses remembered.
    pub pod_cache_size: usize,
}

impl DirectorySettings {
    /// The defaults for a parking listener at `parking_base_port`: the default cluster,
    /// `cluster.local`, no own address, 10 s requests, addresses remembered 30 s, at most
    /// 10,000 of them.
    pub fn new(parking_base_port: u16) -> Self {
        Self {
            cluster: None,
            cluster_domain: "cluster.local".to_owned(),
            parking_base_port,
            own_addresses: Vec::new(),
            allow_loopback: false,
            request_timeout: crate::DEFAULT_TIMEOUT,
            pod_cache_ttl: Duration::from_secs(30),
            pod_cache_size: 10_000,
        }
    }
}

/// Pause before reading a parked Service again after a failed read.
const READ_AGAIN: Duration = Duration::from_millis(500);

struct Shared {
    index: RwLock<ParkedIndex>,
    /// Services a slice parks that have not been read yet, for the reader task.
    missing: mpsc::UnboundedSender<(String, String)>,
    /// The slices have been listed once.
    slices_listed: watch::Sender<bool>,
    /// Slices and Services have been listed once: the index is complete.
    synced: watch::Sender<bool>,
}

impl Shared {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ParkedIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ParkedIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn ask(&self, keys: impl IntoIterator<Item = (String, String)>) {
        for k in keys {
            // The reader ends only with the directory.
            let _ = self.missing.send(k);
        }
    }
}

/// The Kubernetes [`ParkingDirectory`]. Its watches run until it is dropped.
pub struct KubeParkingDirectory {
    shared: Arc<Shared>,
    client: kube::Client,
    settings: DirectorySettings,
    forbidden: Forbidden,
    pods: PodNamespaces,
    tasks: Vec<JoinHandle<()>>,
    /// One list-and-watch per Service port at a time, whatever the number of requests held
    /// for it: a burst of 1,000 held requests is one watch on the API server, not 1,000.
    waits: SingleFlight<WaitKey, idle_scaler_core::Result<Option<SocketAddr>>>,
}

/// A Service port the listener waits on: namespace, Service, port name.
type WaitKey = (String, String, Option<String>);

impl std::fmt::Debug for KubeParkingDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeParkingDirectory")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Drop for KubeParkingDirectory {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KubeParkingDirectory {
    /// Starts the watches. Must be called inside a Tokio runtime. Lookups answer from what
    /// has been read so far: [`KubeParkingDirectory::synced`] waits for the first complete
    /// index.
    pub fn start(client: kube::Client, settings: DirectorySettings) -> Self {
        let (missing, missing_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            index: RwLock::new(ParkedIndex::new(
                settings.cluster.clone(),
                &settings.cluster_domain,
                settings.parking_base_port,
            )),
            missing,
            slices_listed: watch::Sender::new(false),
            synced: watch::Sender::new(false),
        });
        let timeout = settings.request_timeout;
        let tasks = vec![
            tokio::spawn(watch_slices(client.clone(), timeout, shared.clone())),
            tokio::spawn(watch_services(client.clone(), timeout, shared.clone())),
            tokio::spawn(read_missing(
                client.clone(),
                timeout,
                Arc::downgrade(&shared),
                missing_rx,
            )),
        ];
        Self {
            forbidden: Forbidden {
                own: settings.own_addresses.clone(),
                allow_loopback: settings.allow_loopback,
            },
            pods: PodNamespaces::new(
                client.clone(),
                timeout,
                settings.pod_cache_ttl,
                settings.pod_cache_size,
            ),
            shared,
            client,
            settings,
            tasks,
            waits: SingleFlight::new(|(ns, name, _), e| {
                Err(idle_scaler_core::Error::unavailable(format!(
                    "the wait for a ready endpoint of {ns}/{name} ended: {e}"
                )))
            }),
        }
    }

    /// Waits until the slices and the Services they park have been listed once (at most
    /// `timeout`); whether they have.
    pub async fn synced(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.synced.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Parked Services in the index now.
    pub fn parked_services(&self) -> usize {
        self.shared.read().len()
    }
}

#[async_trait]
impl ParkingDirectory for KubeParkingDirectory {
    fn lookup(&self, host: &str, caller_namespace: Option<&str>) -> Option<Arc<ParkedServiceInfo>> {
        let index = self.shared.read();
        // A request a data plane sent before it applied an unpark still reaches the app.
        index
            .lookup(host, caller_namespace)
            .or_else(|| index.lookup_unparked(host, caller_namespace))
    }

    async fn pod_namespace(&self, ip: IpAddr) -> idle_scaler_core::Result<Option<String>> {
        self.pods.namespace(ip).await
    }

    async fn ready_endpoint(
        &self,
        service: &ParkedServiceInfo,
        port: &ListenerPort,
        timeout: Duration,
    ) -> idle_scaler_core::Result<Option<SocketAddr>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let key: WaitKey = (
            service.namespace.clone(),
            service.name.clone(),
            port.name.clone(),
        );
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let flight = self.waits.join(key.clone(), |_| {
                let (client, forbidden) = (self.client.clone(), self.forbidden.clone());
                let (service, port) = (service.clone(), port.clone());
                let request_timeout = self.settings.request_timeout;
                async move {
                    endpoints::wait_ready(
                        &client,
                        request_timeout,
                        &forbidden,
                        &service,
                        &port,
                        left,
                    )
                    .await
                }
            });
            match tokio::time::timeout(left, flight.landing).await {
                Ok(Ok(None)) => {} // the shared wait ended at its first caller's deadline
                Ok(found) => return found,
                Err(_) => return Ok(None),
            }
        }
    }
}

async fn watch_slices(client: kube::Client, timeout: Duration, shared: Arc<Shared>) {
    let api: Api<EndpointSlice> = Api::all(client);
    let labels = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
    reflect(api, Some(labels), timeout, "endpointslices", |change| {
        let missing = match change {
            Change::Listed(items) => {
                let missing = shared.write().set_slices(&items);
                shared.slices_listed.send_replace(true);
                missing
            }
            Change::Applied(s) => shared.write().upsert_slice(&s).into_iter().collect(),
            Change::Deleted(s) => {
                shared.write().remove_slice(&s);
                Vec::new()
            }
        };
        // Before the Services are listed, their list brings them.
        if *shared.synced.borrow() {
            shared.ask(missing);
        }
    })
    .await;
}

async fn watch_services(client: kube::Client, timeout: Duration, shared: Arc<Shared>) {
    // Listing the Services first would read them all for nothing: only the parked are kept.
    let mut listed = shared.slices_listed.subscribe();
    if listed.wait_for(|l| *l).await.is_err() {
        return;
    }
    let api: Api<Service> = Api::all(client);
    reflect(api, None, timeout, "services", |change| match change {
        Change::Listed(items) => {
            let missing = shared.write().set_services(&items);
            if !*shared.synced.borrow() {
                let n = shared.read().len();
                debug!(parked_services = n, "parking directory: index complete");
            }
            shared.synced.send_replace(true);
            shared.ask(missing);
        }
        Change::Applied(s) => shared.write().upsert_service(&s),
        Change::Deleted(s) => {
            if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                shared.write().remove_service(ns, name);
            }
        }
    })
    .await;
}

/// Reads the Services that slices park but no list or event brought (a slice created after
/// its Service's last event).
async fn read_missing(
    client: kube::Client,
    timeout: Duration,
    shared: std::sync::Weak<Shared>,
    mut rx: mpsc::UnboundedReceiver<(String, String)>,
) {
    while let Some((ns, name)) = rx.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !shared
            .read()
            .missing_services()
            .contains(&(ns.clone(), name.clone()))
        {
            continue;
        }
        let api: Api<Service> = Api::namespaced(client.clone(), &ns);
        let failure = match tokio::time::timeout(timeout, api.get_opt(&name)).await {
            Ok(Ok(Some(s))) => {
                shared.write().upsert_service(&s);
                continue;
            }
            // Gone: its slice is an orphan the garbage collector takes.
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer in time".to_owned(),
        };
        debug!(namespace = %ns, service = %name, error = %failure, "parking directory: reading a parked service failed; trying again");
        // The Service may not change for a long time: its watch would not bring it.
        let again = shared.missing.clone();
        tokio::spawn(async move {
            tokio::time::sleep(READ_AGAIN).await;
            let _ = again.send((ns, name));
        });
    }
}

#[cfg(test)]
mod tests;
