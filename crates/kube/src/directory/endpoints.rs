//! Where a request for a parked Service goes once its app is ready: a ready endpoint of the
//! Service's own slices (those the EndpointSlice controller writes) whose `targetRef` is a Pod
//! of the Service's namespace, never a link-local address, never one of the waker's own.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::StreamExt;
use idle_scaler_core::{ListenerPort, ParkedServiceInfo};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::time::Instant;
use tracing::debug;

use crate::map_error_at;
use crate::parking::{MANAGED_BY_LABEL, SERVICE_NAME_LABEL};

/// The managed-by value of the slices the EndpointSlice controller writes.
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// Pause after a watch that ended without news, so a server ending watches at once is not
/// asked in a loop.
const PAUSE: Duration = Duration::from_millis(100);

/// Addresses a request is never forwarded to.
#[derive(Debug, Clone, Default)]
pub(super) struct Forbidden {
    /// The waker's own addresses: forwarding there would loop.
    pub own: Vec<IpAddr>,
    /// Loopback allowed (a test rig's apps run on 127.0.0.1); never in a cluster.
    pub allow_loopback: bool,
}

impl Forbidden {
    fn allows(&self, ip: IpAddr) -> bool {
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
        !(link_local
            || ip.is_unspecified()
            || ip.is_multicast()
            || (ip.is_loopback() && !self.allow_loopback)
            || self.own.contains(&ip))
    }
}

/// A ready endpoint of `port` among `slices` of a Service in `namespace`, by the rules above.
pub(super) fn pick<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    namespace: &str,
    port: &ListenerPort,
    forbidden: &Forbidden,
) -> Option<SocketAddr> {
    for s in slices {
        let labels = s.metadata.labels.as_ref();
        if labels
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .map(String::as_str)
            != Some(CONTROLLER)
        {
            continue;
        }
        let Some(number) = s
            .ports
            .iter()
            .flatten()
            .find(|p| p.name == port.name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for e in &s.endpoints {
            // `ready` absent means ready (the API's own reading); a terminating one is not.
            let ready = e
                .conditions
                .as_ref()
                .is_none_or(|c| c.ready != Some(false) && c.terminating != Some(true));
            let own_pod = e.target_ref.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Pod")
                    && r.namespace.as_deref().is_none_or(|ns| ns == namespace)
            });
            if !ready || !own_pod {
                continue;
            }
            let ip = e
                .addresses
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok())
                .find(|ip| forbidden.allows(*ip));
            if let Some(ip) = ip {
                return Some(SocketAddr::new(ip, number));
            }
        }
    }
    None
}

/// Waits (list, then watch) until a slice of `service` has an endpoint [`pick`] accepts.
pub(super) async fn wait_ready(
    client: &kube::Client,
    request_timeout: Duration,
    forbidden: &Forbidden,
    service: &ParkedServiceInfo,
    port: &ListenerPort,
    timeout: Duration,
) -> idle_scaler_core::Result<Option<SocketAddr>> {
    let deadline = Instant::now() + timeout;
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &service.namespace);
    let selector = format!(
        "{SERVICE_NAME_LABEL}={},{MANAGED_BY_LABEL}={CONTROLLER}",
        service.name
    );
    let what = || format!("endpoint slices of {}/{}", service.namespace, service.name);
    let ns = service.namespace.as_str();
    let found = tokio::time::timeout_at(deadline, async {
        'list: loop {
            let lp = ListParams::default().labels(&selector);
            let list = match tokio::time::timeout(request_timeout, api.list(&lp)).await {
                Ok(Ok(list)) => list,
                Ok(Err(e)) => {
                    let e = map_error_at(format!("list {}", what()), e);
                    if !matches!(e, idle_scaler_core::Error::Unavailable { .. }) {
                        return Err(e);
                    }
                    // The API server is away: it may be back well within the deadline.
                    debug!(service = %service.name, error = %idle_scaler_core::error_chain(&e), "parking directory: listing endpoints failed; trying again");
                    tokio::time::sleep(PAUSE).await;
                    continue;
                }
                Err(_) => continue,
            };
            let mut slices: BTreeMap<String, EndpointSlice> = list
                .items
                .into_iter()
                .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
                .collect();
            if let Some(addr) = pick(slices.values(), ns, port, forbidden) {
                return Ok(addr);
            }
            let mut version = list.metadata.resource_version.unwrap_or_default();
            loop {
                let secs = deadline
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .clamp(1, 290);
                let wp = WatchParams::default()
                    .labels(&selector)
                    .timeout(u32::try_from(secs).unwrap_or(1));
                let Ok(stream) = api.watch(&wp, &version).await else {
                    tokio::time::sleep(PAUSE).await;
                    continue 'list;
                };
                let mut stream = std::pin::pin!(stream);
                let mut news = false;
                while let Some(Ok(event)) = stream.next().await {
                    news = true;
                    match event {
                        WatchEvent::Added(s) | WatchEvent::Modified(s) => {
                            version = s.metadata.resource_version.clone().unwrap_or(version);
                            slices.insert(s.metadata.name.clone().unwrap_or_default(), s);
                        }
                        WatchEvent::Deleted(s) => {
                            version = s.metadata.resource_version.clone().unwrap_or(version);
                            slices.remove(s.metadata.name.as_deref().unwrap_or_default());
                        }
                        WatchEvent::Bookmark(b) => version = b.metadata.resource_version,
                        WatchEvent::Error(status) => {
                            debug!(code = status.code, service = %service.name, "parking directory: endpoint watch error; listing again");
                            tokio::time::sleep(PAUSE).await;
                            continue 'list;
                        }
                    }
                    if let Some(addr) = pick(slices.values(), ns, port, forbidden) {
                        return Ok(addr);
                    }
                }
                if !news {
                    tokio::time::sleep(PAUSE).await;
                }
            }
        }
    })
    .await;
    match found {
        Ok(r) => r.map(Some),
        Err(_) => Ok(None),
    }
}
