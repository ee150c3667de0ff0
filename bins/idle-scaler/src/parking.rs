//! Parking in the binary: the parker the job parks and unparks with (the waker's own
//! cluster), the waker addresses it points slices at, the parking listener and its directory,
//! the route index both share (public hostnames of `HTTPRoute`s and `Ingress`es), and
//! `unpark --all`.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use idle_scaler_core::parking::Parker;
use idle_scaler_core::{ClusterName, Parking, RouteIndex};
use idle_scaler_kube::waker_addresses::{AddressFeed, LocalAddresses, watch_waker_service};
use idle_scaler_kube::{
    DirectorySettings, KubeClusters, KubeParker, KubeParkingDirectory, KubeRouteIndex,
    LazyScalerFactory, RouteIndexSettings,
};
use idle_scaler_waker::{ParkingLimits, ParkingListener, Waker};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::server::{PARKING_LINGER, ParkingSockets, stop_parking_after_linger};
use crate::settings::{Settings, WakerAddressSource};

/// How long the parking directory's first complete read is waited for before the daemon
/// says it is still reading (requests meanwhile get the generic answer).
const DIRECTORY_SYNC_WAIT: Duration = Duration::from_secs(60);
/// The same for the route index (public hostnames meanwhile name no app).
const ROUTE_INDEX_SYNC_WAIT: Duration = Duration::from_secs(60);

/// The waker's own cluster (`waker_cluster`) and its client.
fn waker_cluster(
    settings: &Settings,
    kube: &KubeClusters,
) -> anyhow::Result<(Option<ClusterName>, Arc<LazyScalerFactory>)> {
    let cluster = settings.waker.cluster();
    let factory = kube.factory(cluster.as_ref()).with_context(|| {
        format!(
            "waker_cluster = {:?} is not a served cluster: name one of `clusters`, or leave it \
             empty for the default cluster",
            settings.waker.waker_cluster
        )
    })?;
    Ok((cluster, factory.clone()))
}

/// A feed that never has an address: the parker then only unparks.
fn no_addresses() -> AddressFeed {
    watch::channel(None).1
}

/// Where parked slices point, from the settings; watched until `shutdown` for a Service.
fn address_feed(
    settings: &Settings,
    factory: &Arc<LazyScalerFactory>,
    shutdown: &CancellationToken,
) -> anyhow::Result<AddressFeed> {
    match &settings.waker_addresses {
        WakerAddressSource::Static(addresses) => Ok(watch::channel(Some(addresses.clone())).1),
        WakerAddressSource::Service(service) => Ok(watch_waker_service(
            factory.clone(),
            service.clone(),
            settings.local_addresses,
            shutdown.clone(),
        )
        .0),
        WakerAddressSource::Unset => bail!(
            "DEPLOY_SCALE_TO_ZERO_PARKING = endpointslices needs the waker addresses: set \
             IDLE_SCALER_WAKER_SERVICE (<namespace>/<name>), or POD_NAMESPACE from the downward \
             API (the Service is then <POD_NAMESPACE>/idle-scaler), or IDLE_SCALER_WAKER_ADDRESSES"
        ),
    }
}

/// The daemon's route index of the waker's cluster, one for the parking listener and the
/// parker: started when `IDLE_SCALER_ROUTE_INDEX` is on and parking or the parking listener
/// is. Its first complete read is logged (INFO, with the rule count).
pub async fn route_index(
    settings: &Settings,
    kube: &KubeClusters,
) -> anyhow::Result<Option<Arc<dyn RouteIndex>>> {
    Ok(start_routes(settings, kube, true)
        .await?
        .map(|index| index as Arc<dyn RouteIndex>))
}

/// The route index when `IDLE_SCALER_ROUTE_INDEX` is on and parking is (`parking =
/// endpointslices` with the flag on) or, with `for_listener`, the parking listener is. Its
/// first complete read is logged (INFO, with the rule count) from a task of its own.
async fn start_routes(
    settings: &Settings,
    kube: &KubeClusters,
    for_listener: bool,
) -> anyhow::Result<Option<Arc<KubeRouteIndex>>> {
    let parking = settings.job.enabled && settings.job.parking == Parking::EndpointSlices;
    let listener = for_listener && settings.parking_listen_addr.is_some();
    if !(parking || listener) {
        return Ok(None);
    }
    if !settings.route_index {
        info!(
            "IDLE_SCALER_ROUTE_INDEX is off: public hostnames of HTTPRoutes and Ingresses name \
             no parked app, and only ports named like HTTP are parked"
        );
        return Ok(None);
    }
    let (_, factory) = waker_cluster(settings, kube)?;
    let client = factory.client().await.context(
        "the route index needs a Kubernetes client to read HTTPRoutes and Ingresses \
         (IDLE_SCALER_ROUTE_INDEX=off turns it off)",
    )?;
    let index = Arc::new(KubeRouteIndex::start(
        client,
        RouteIndexSettings {
            request_timeout: settings.job.request_timeout(),
            ..RouteIndexSettings::default()
        },
    ));
    tokio::spawn({
        let index = index.clone();
        async move {
            if index.synced(ROUTE_INDEX_SYNC_WAIT).await {
                info!(rules = index.rules(), "route index read");
            } else {
                warn!(
                    wait_s = ROUTE_INDEX_SYNC_WAIT.as_secs(),
                    "route index not read yet; public hostnames name no parked app meanwhile"
                );
            }
        }
    });
    Ok(Some(index))
}

/// The route index for a one-shot command that parks (`tick`, `wait` given), read first (at
/// most `wait`), so the command parks the ports routes name as the daemon would; the
/// daemon's reconcile parks them anyway, later. `None` without `wait` (a command that only
/// unparks).
pub async fn read_routes(
    settings: &Settings,
    kube: &KubeClusters,
    wait: Option<Duration>,
) -> anyhow::Result<Option<Arc<dyn RouteIndex>>> {
    let Some(wait) = wait else {
        return Ok(None);
    };
    let Some(index) = start_routes(settings, kube, false).await? else {
        return Ok(None);
    };
    if !index.synced(wait).await {
        warn!(
            wait_s = wait.as_secs(),
            "route index not read yet: ports only routes name are parked by the daemon's reconcile"
        );
    }
    Ok(Some(index))
}

/// The job's parker and the cluster it serves, when the flag is on: with `parking =
/// endpointslices` it parks and follows the waker addresses until `shutdown`; with `off` it
/// only unparks what an earlier run left parked. `first_addresses`: wait at most this long
/// for the watched waker Service's first addresses (a one-shot command, which would
/// otherwise park before they are known; the daemon parks again on its reconcile).
/// `routes`: the route index, whose routed ports are parked too. `listening`: this process's
/// parking listener has read its directory (see [`serve_listener`]); the slices are pointed
/// at the waker addresses only then, so a new waker pod is not sent requests for apps it
/// cannot name yet.
pub async fn job_parker(
    settings: &Settings,
    kube: &KubeClusters,
    shutdown: &CancellationToken,
    first_addresses: Option<Duration>,
    routes: Option<Arc<dyn RouteIndex>>,
    listening: Option<watch::Receiver<bool>>,
) -> anyhow::Result<Option<(Arc<KubeParker>, Option<ClusterName>)>> {
    if !settings.job.enabled {
        return Ok(None);
    }
    let (cluster, factory) = waker_cluster(settings, kube)?;
    let parking = settings.job.parking == Parking::EndpointSlices;
    let feed = if parking {
        let mut feed = address_feed(settings, &factory, shutdown)?;
        if let Some(wait) = first_addresses
            && tokio::time::timeout(wait, feed.wait_for(Option::is_some))
                .await
                .is_err()
        {
            warn!(
                waker_addresses = %settings.waker_addresses,
                wait_s = wait.as_secs(),
                "no waker address known yet: apps slept now are parked by the daemon's reconcile"
            );
        }
        feed
    } else {
        no_addresses()
    };
    let mut parker = KubeParker::new(factory, feed)
        .protected_namespaces(settings.job.protected_namespaces.clone())
        .cluster(cluster.clone());
    if let Some(routes) = routes {
        parker = parker.routes(routes);
    }
    let parker = Arc::new(parker);
    if parking {
        info!(waker_addresses = %settings.waker_addresses, "parking slept apps at the waker");
        let (follower, token) = (parker.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Some(mut listening) = listening {
                // Closed: no listener in this process, nothing to wait for.
                let _ = listening.wait_for(|read| *read).await;
            }
            follower.follow_addresses(token).await;
        });
    }
    Ok(Some((parker, cluster)))
}

/// What the daemon parks with: the route index, the job's parker (following the waker
/// addresses once this process's listener has read its directory), and the channel that
/// says it has (its sender for [`serve_listener`]).
#[allow(clippy::type_complexity)] // a tuple the daemon takes apart at once
pub async fn daemon(
    settings: &Settings,
    kube: &KubeClusters,
    shutdown: &CancellationToken,
) -> anyhow::Result<(
    Option<Arc<dyn RouteIndex>>,
    Option<(Arc<KubeParker>, Option<ClusterName>)>,
    (watch::Sender<bool>, watch::Receiver<bool>),
)> {
    let routes = route_index(settings, kube).await?;
    let (read, listening) = watch::channel(false);
    let parker = job_parker(
        settings,
        kube,
        shutdown,
        None,
        routes.clone(),
        Some(listening.clone()),
    )
    .await?;
    Ok((routes, parker, (read, listening)))
}

/// The parking listener, serving until its stop token is cancelled.
pub struct ParkingServer {
    /// Stops accepting and answers what is held (see [`stop_after_linger`](Self::stop_after_linger)).
    stop: CancellationToken,
    /// Ends when the last connection has closed.
    pub served: JoinHandle<()>,
}

impl ParkingServer {
    /// At SIGTERM: keeps accepting while a parked slice lists `pod_ip` (asked through
    /// `parker`; without either, nothing can list this pod), at most until `drain`.
    pub fn stop_after_linger(
        &self,
        parker: Option<Arc<KubeParker>>,
        pod_ip: Option<IpAddr>,
        drain: Duration,
    ) {
        let listed = move || {
            let parker = parker.clone();
            async move {
                match (parker, pod_ip) {
                    // Unknown counts as listed: open longer costs nothing, closed early loses
                    // requests.
                    (Some(parker), Some(ip)) => parker.lists_address(ip).await.unwrap_or(true),
                    _ => false,
                }
            }
        };
        stop_parking_after_linger(listed, PARKING_LINGER.capped(drain), self.stop.clone());
    }
}

/// Binds the parking listener's eight ports (`IDLE_SCALER_PARKING_LISTEN_ADDR`) and serves
/// them through `waker`, with a directory of the waker's cluster and, when given, the route
/// index for trusted gateways' public hostnames; `None` when it is off. `listening` turns
/// true once the directory has been read (or its first read was waited for in vain: the
/// listener serves what it knows), and is dropped unset when there is no listener.
pub async fn serve_listener(
    settings: &Settings,
    kube: &KubeClusters,
    waker: Arc<Waker>,
    routes: Option<Arc<dyn RouteIndex>>,
    listening: watch::Sender<bool>,
) -> anyhow::Result<Option<ParkingServer>> {
    let Some(addr) = settings.parking_listen_addr else {
        info!("IDLE_SCALER_PARKING_LISTEN_ADDR is off: parked Services reach no waker here");
        return Ok(None);
    };
    let limits = ParkingLimits::default();
    let backlog = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let sockets = ParkingSockets::bind(addr, backlog)?;
    let (cluster, factory) = waker_cluster(settings, kube)?;
    let client = factory.client().await.context(
        "the parking listener needs a Kubernetes client to find parked Services \
         (IDLE_SCALER_PARKING_LISTEN_ADDR=off turns it off)",
    )?;
    let mut directory = DirectorySettings::new(addr.port());
    directory.cluster = cluster;
    directory.cluster_domain = settings.waker.cluster_domain.clone();
    directory.own_addresses = settings.pod_ip.into_iter().collect();
    directory.allow_loopback = settings.local_addresses == LocalAddresses::Allow;
    directory.request_timeout = settings.job.request_timeout();
    let directory = Arc::new(KubeParkingDirectory::start(client, directory));
    tokio::spawn({
        let directory = directory.clone();
        async move {
            if directory.synced(DIRECTORY_SYNC_WAIT).await {
                info!(
                    parked_services = directory.parked_services(),
                    "parking directory read"
                );
            } else {
                warn!(
                    wait_s = DIRECTORY_SYNC_WAIT.as_secs(),
                    "parking directory not read yet; parked apps get the generic answer meanwhile"
                );
            }
            listening.send_replace(true);
        }
    });
    let mut listener = ParkingListener::new(waker, directory, limits.clone());
    let routed = routes.is_some();
    if let Some(routes) = routes {
        listener = listener.routes(routes);
    }
    let listener = Arc::new(listener);
    info!(
        addr = %sockets.base(),
        route_index = routed,
        ports = idle_scaler_kube::parking::MAX_PORTS,
        max_connections = limits.max_connections,
        max_held_per_app = limits.max_held_per_app,
        "serving the parking listener"
    );
    let stop = CancellationToken::new();
    let served = tokio::spawn({
        let stop = stop.clone();
        async move {
            if let Err(e) = listener.serve(sockets.into_listeners(), stop).await {
                warn!(error = %idle_scaler_core::error_chain(&e), "parking listener failed");
            }
        }
    });
    Ok(Some(ParkingServer { stop, served }))
}

/// `unpark --all`: removes every parked slice of the waker's cluster at once, ready app or
/// not; exit 1 when any app's slices could not all be removed.
pub async fn unpark_all(settings: &Settings, kube: &KubeClusters) -> anyhow::Result<ExitCode> {
    let (cluster, factory) = waker_cluster(settings, kube)?;
    let parker = KubeParker::new(factory, no_addresses()).cluster(cluster);
    let parked = parker
        .parked()
        .await
        .context("listing idle-scaler's parked slices")?;
    let mut failed = 0usize;
    for app in &parked {
        match parker.unpark_now(&app.target).await {
            Ok(report) => {
                let left = report.count("failed") + report.count("conflict");
                println!(
                    "unparked {}: {} slices removed{}",
                    app.target,
                    report.count("unparked"),
                    if left > 0 {
                        format!(", {left} could not be removed")
                    } else {
                        String::new()
                    }
                );
                if left > 0 {
                    failed += 1;
                }
            }
            Err(e) => {
                failed += 1;
                println!(
                    "not unparked {}: {}",
                    app.target,
                    idle_scaler_core::error_chain(&e)
                );
            }
        }
    }
    println!(
        "{} parked apps, {} unparked, {failed} failed",
        parked.len(),
        parked.len() - failed
    );
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
