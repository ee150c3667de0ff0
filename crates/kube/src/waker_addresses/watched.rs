//! The waker addresses from the waker's own Service: the ready endpoints of its slices, on
//! the port named `parking`, followed by list then watch (label
//! `kubernetes.io/service-name=<name>`). RBAC: `list`, `watch` on `endpointslices`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{AddressFeed, LocalAddresses, WakerService};
use crate::LazyScalerFactory;
use crate::parking::{SERVICE_NAME_LABEL, WakerAddresses, is_local};

/// The port of the waker's Service that parked slices point at.
pub const PARKING_PORT_NAME: &str = "parking";
/// Longest single watch request; the apiserver's own cap is in the same range.
const MAX_WATCH_SECONDS: u32 = 290;
/// The first pause before listing again after a failure or a watch that ended without news;
/// doubled up to [`PAUSE_MAX`] so an API server that is down is not asked in a loop.
const PAUSE_FIRST: Duration = Duration::from_millis(100);
const PAUSE_MAX: Duration = Duration::from_secs(5);

/// Follows the ready endpoints of `service` (port `parking`) on the cluster of `factory`
/// until `shutdown`: the feed is `None` until a first ready endpoint is seen, then always
/// the last non-empty set (an empty one is logged and ignored). Loopback and link-local
/// endpoints are dropped unless `local` allows them.
pub fn watch_waker_service(
    factory: Arc<LazyScalerFactory>,
    service: WakerService,
    local: LocalAddresses,
    shutdown: CancellationToken,
) -> (AddressFeed, JoinHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let follower = Follower {
        factory,
        service,
        local,
        tx,
        slices: BTreeMap::new(),
        keeping: false,
    };
    (rx, tokio::spawn(follower.run(shutdown)))
}

struct Follower {
    factory: Arc<LazyScalerFactory>,
    service: WakerService,
    local: LocalAddresses,
    tx: watch::Sender<Option<WakerAddresses>>,
    /// The Service's slices by name, as last seen.
    slices: BTreeMap<String, EndpointSlice>,
    /// Whether the Service has no ready endpoint now and the last set is kept (logged once).
    keeping: bool,
}

impl Follower {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut version = None;
        let mut pause = PAUSE_FIRST;
        let mut failing = false;
        loop {
            let step = tokio::select! {
                () = shutdown.cancelled() => return,
                step = self.once(&mut version) => step,
            };
            match step {
                Ok(news) => {
                    if failing {
                        info!(service = %self.service, "waker service: watching again");
                    }
                    failing = false;
                    if news {
                        pause = PAUSE_FIRST;
                    }
                }
                Err(e) => {
                    let error = idle_scaler_core::error_chain(&e);
                    if failing {
                        debug!(service = %self.service, %error, "waker service: still not readable");
                    } else {
                        warn!(service = %self.service, %error,
                            "waker service: its endpoints cannot be read; parked slices keep their addresses");
                    }
                    failing = true;
                    version = None;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(PAUSE_MAX);
        }
    }

    /// One list (when `version` is `None`) and one watch; true when it brought news. Leaves in
    /// `version` where the next watch resumes (`None`: list again).
    async fn once(&mut self, version: &mut Option<String>) -> idle_scaler_core::Result<bool> {
        let scaler = self.factory.built().await?;
        let api: Api<EndpointSlice> =
            Api::namespaced(scaler.client.clone(), &self.service.namespace);
        let selector = format!("{SERVICE_NAME_LABEL}={}", self.service.name);
        let service = self.service.to_string();
        let what = || format!("endpointslices of service {service}");
        let mut news = false;
        let mut rv = match version.take() {
            Some(rv) => rv,
            None => {
                let lp = ListParams::default().labels(&selector);
                let list = crate::bounded(scaler.timeout, what, api.list(&lp)).await?;
                self.slices = list
                    .items
                    .into_iter()
                    .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
                    .collect();
                self.publish();
                news = true;
                list.metadata.resource_version.unwrap_or_default()
            }
        };
        let wp = WatchParams::default()
            .labels(&selector)
            .timeout(MAX_WATCH_SECONDS);
        let stream = crate::bounded(scaler.timeout, what, api.watch(&wp, &rv)).await?;
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    debug!(service = %self.service, error = %e, "waker service: watch broke");
                    break;
                }
            };
            news = true;
            match event {
                WatchEvent::Added(s) | WatchEvent::Modified(s) => {
                    rv = s.metadata.resource_version.clone().unwrap_or(rv);
                    self.slices
                        .insert(s.metadata.name.clone().unwrap_or_default(), s);
                }
                WatchEvent::Deleted(s) => {
                    rv = s.metadata.resource_version.clone().unwrap_or(rv);
                    self.slices
                        .remove(s.metadata.name.as_deref().unwrap_or_default());
                }
                WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                WatchEvent::Error(status) if status.code == 410 => return Ok(news),
                WatchEvent::Error(status) => {
                    return Err(crate::map_error_at(what(), kube::Error::Api(status)));
                }
            }
            self.publish();
        }
        *version = Some(rv);
        Ok(news)
    }

    /// Sends the ready addresses when they changed; an empty set keeps the last one.
    fn publish(&mut self) {
        let (addrs, dropped) = ready_addresses(self.slices.values(), self.local);
        if !dropped.is_empty() {
            debug!(service = %self.service, ?dropped, "waker service: loopback or link-local endpoints left out");
        }
        if addrs.is_empty() {
            if self.tx.borrow().is_some() && !self.keeping {
                warn!(service = %self.service,
                    "waker service has no ready endpoint; parked slices keep the last addresses");
            }
            self.keeping = true;
            return;
        }
        self.keeping = false;
        match WakerAddresses::new(addrs) {
            Ok(addresses) => {
                if self.tx.borrow().as_ref() != Some(&addresses) {
                    info!(service = %self.service, %addresses, "waker addresses changed");
                    self.tx.send_replace(Some(addresses));
                }
            }
            Err(e) => warn!(service = %self.service, error = %e,
                "waker service endpoints are not a usable set; parked slices keep the last addresses"),
        }
    }
}

/// The ready endpoints of `slices` on their port named `parking`, sorted and without
/// duplicates, and the loopback or link-local ones left out (when `local` refuses them).
pub(super) fn ready_addresses<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    local: LocalAddresses,
) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let mut addrs = Vec::new();
    for slice in slices {
        let port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(PARKING_PORT_NAME))
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else { continue };
        for endpoint in &slice.endpoints {
            if endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(true) {
                continue;
            }
            addrs.extend(
                endpoint
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, port)),
            );
        }
    }
    addrs.sort_unstable();
    addrs.dedup();
    let (dropped, kept) = addrs
        .into_iter()
        .partition(|a| local == LocalAddresses::Refuse && is_local(&a.ip()));
    (kept, dropped)
}
