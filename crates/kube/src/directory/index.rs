//! The parked Services by every name a request's `Host` may give them: pure bookkeeping of
//! idle-scaler's slices and the Services they park, fed by the watches.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use idle_scaler_core::{ClusterName, ListenerPort, ParkedServiceInfo, Target};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::time::{Duration, Instant};

use crate::parking::{DEPLOYMENT_LABEL, MAX_PORTS, SERVICE_NAME_LABEL};

/// The annotation listing the namespaces whose pods may call a parked Service.
pub const CALLERS_ANNOTATION: &str = "idle-scaler.dev/callers";

type Key = (String, String);

/// How long a Service stays known after its parked slices went: kube-proxy and the gateways
/// apply a deleted slice a moment later, and a request they sent the waker meanwhile still
/// reaches the app (now ready) instead of the generic answer.
pub(super) const UNPARKED_GRACE: Duration = Duration::from_secs(30);

/// What the index keeps of one of idle-scaler's slices.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slice {
    service: String,
    deployment: String,
    /// `(name, port)` of the slice's ports.
    ports: Vec<(Option<String>, i32)>,
}

/// What the index keeps of a parked Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Svc {
    cluster_ip: Option<IpAddr>,
    /// `(name, port, appProtocol)` of the Service's ports.
    ports: Vec<(Option<String>, i32, Option<String>)>,
    callers: Vec<String>,
}

fn key(ns: &str, name: &str) -> Key {
    (ns.to_owned(), name.to_owned())
}

fn meta_key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
    Some(key(meta.namespace.as_deref()?, meta.name.as_deref()?))
}

impl Slice {
    fn of(s: &EndpointSlice) -> Option<Self> {
        let labels = s.metadata.labels.as_ref()?;
        let ports = s
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some((p.name.clone(), p.port?)))
            .collect();
        Some(Self {
            service: labels.get(SERVICE_NAME_LABEL)?.clone(),
            deployment: labels.get(DEPLOYMENT_LABEL)?.clone(),
            ports,
        })
    }
}

impl Svc {
    pub(super) fn of(s: &Service) -> Self {
        let spec = s.spec.as_ref();
        let cluster_ip = spec
            .and_then(|s| s.cluster_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        let ports = spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .map(|p| (p.name.clone(), p.port, p.app_protocol.clone()))
            .collect();
        let callers = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CALLERS_ANNOTATION))
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            cluster_ip,
            ports,
            callers,
        }
    }
}

/// The index. Lookups take `&self`; the watches write through `&mut self` under a lock.
#[derive(Debug)]
pub(super) struct ParkedIndex {
    cluster: Option<ClusterName>,
    /// `.svc.<cluster domain>`.
    domain_suffix: String,
    base_port: u16,
    slices: HashMap<Key, Slice>,
    /// Service -> the names of its slices (one per address family).
    by_service: HashMap<Key, BTreeSet<String>>,
    /// Parked Services as last read (only those some slice parks).
    services: HashMap<Key, Svc>,
    /// Namespace -> Service name -> what the listener needs.
    parked: HashMap<String, HashMap<String, Arc<ParkedServiceInfo>>>,
    by_ip: HashMap<IpAddr, Arc<ParkedServiceInfo>>,
    /// Services unparked in the last [`UNPARKED_GRACE`], and when.
    unparked: HashMap<Key, (Arc<ParkedServiceInfo>, Instant)>,
}

/// What a `Host` names: a ClusterIP, or a Service by namespace and name.
enum Named<'a> {
    Ip(IpAddr),
    Service(&'a str, &'a str),
}

impl ParkedIndex {
    pub fn new(cluster: Option<ClusterName>, cluster_domain: &str, base_port: u16) -> Self {
        Self {
            cluster,
            domain_suffix: format!(".svc.{}", cluster_domain.trim_matches('.')),
            base_port,
            slices: HashMap::new(),
            by_service: HashMap::new(),
            services: HashMap::new(),
            parked: HashMap::new(),
            by_ip: HashMap::new(),
            unparked: HashMap::new(),
        }
    }

    /// The parked Service `host` names (see [`idle_scaler_core::ParkingDirectory::lookup`]).
    pub fn lookup(&self, host: &str, caller_ns: Option<&str>) -> Option<Arc<ParkedServiceInfo>> {
        match self.named(host, caller_ns)? {
            Named::Ip(ip) => self.by_ip.get(&ip).cloned(),
            Named::Service(svc, ns) => self.parked.get(ns)?.get(svc).cloned(),
        }
    }

    /// The Service `host` names among those unparked in the last [`UNPARKED_GRACE`].
    pub fn lookup_unparked(
        &self,
        host: &str,
        caller_ns: Option<&str>,
    ) -> Option<Arc<ParkedServiceInfo>> {
        let fresh = |(info, at): &(Arc<ParkedServiceInfo>, Instant)| {
            (at.elapsed() < UNPARKED_GRACE).then(|| info.clone())
        };
        match self.named(host, caller_ns)? {
            Named::Ip(ip) => self
                .unparked
                .values()
                .filter(|(info, _)| info.cluster_ip == Some(ip))
                .find_map(fresh),
            Named::Service(svc, ns) => self
                .unparked
                .get(&(ns.to_owned(), svc.to_owned()))
                .and_then(fresh),
        }
    }

    fn named<'a>(&self, host: &'a str, caller_ns: Option<&'a str>) -> Option<Named<'a>> {
        let host = host.trim_end_matches('.');
        let bare_ip = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare_ip.parse::<IpAddr>() {
            return Some(Named::Ip(ip));
        }
        let rest = host
            .strip_suffix(self.domain_suffix.as_str())
            .or_else(|| host.strip_suffix(".svc"))
            .unwrap_or(host);
        match rest.split_once('.') {
            Some((svc, ns)) if !ns.contains('.') => Some(Named::Service(svc, ns)),
            Some(_) => None,
            // A bare name is the caller's own namespace's Service, nobody else's.
            None => Some(Named::Service(rest, caller_ns?)),
        }
    }

    /// Parked Services now.
    pub fn len(&self) -> usize {
        self.parked.values().map(HashMap::len).sum()
    }

    /// Parked Services whose Service has not been read.
    pub fn missing_services(&self) -> Vec<Key> {
        self.by_service
            .keys()
            .filter(|k| !self.services.contains_key(*k))
            .cloned()
            .collect()
    }

    /// Replaces every slice (a fresh list); returns the Services to read.
    pub fn set_slices(&mut self, slices: &[EndpointSlice]) -> Vec<Key> {
        self.slices.clear();
        self.by_service.clear();
        for s in slices {
            self.put_slice(s);
        }
        self.services.retain(|k, _| self.by_service.contains_key(k));
        self.rebuild();
        self.missing_services()
    }

    /// A slice added or changed; returns its Service when it has not been read.
    pub fn upsert_slice(&mut self, s: &EndpointSlice) -> Option<Key> {
        let old = meta_key(&s.metadata).and_then(|k| self.slices.get(&k).cloned());
        let service = self.put_slice(s)?;
        if let Some(old) = old.filter(|o| o.service != service.1) {
            let ns = service.0.clone();
            self.drop_slice_of(&ns, &old.service, s.metadata.name.as_deref()?);
        }
        self.recompute(&service);
        (!self.services.contains_key(&service)).then_some(service)
    }

    /// A slice deleted.
    pub fn remove_slice(&mut self, s: &EndpointSlice) {
        let Some(k) = meta_key(&s.metadata) else {
            return;
        };
        if let Some(old) = self.slices.remove(&k) {
            self.drop_slice_of(&k.0, &old.service, &k.1);
        }
    }

    /// Replaces the parked Services' data with `services` (a fresh list), keeping only the
    /// parked ones; returns the parked Services the list lacked.
    pub fn set_services<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a Service>,
    ) -> Vec<Key> {
        self.services.clear();
        for s in services {
            if let Some(k) = meta_key(&s.metadata).filter(|k| self.by_service.contains_key(k)) {
                self.services.insert(k, Svc::of(s));
            }
        }
        self.rebuild();
        self.missing_services()
    }

    /// A Service added or changed (ignored unless parked).
    pub fn upsert_service(&mut self, s: &Service) {
        let Some(k) = meta_key(&s.metadata).filter(|k| self.by_service.contains_key(k)) else {
            return;
        };
        self.services.insert(k.clone(), Svc::of(s));
        self.recompute(&k);
    }

    /// A Service deleted.
    pub fn remove_service(&mut self, ns: &str, name: &str) {
        let k = key(ns, name);
        if self.services.remove(&k).is_some() {
            self.recompute(&k);
        }
    }

    fn put_slice(&mut self, s: &EndpointSlice) -> Option<Key> {
        let k = meta_key(&s.metadata)?;
        let slice = Slice::of(s)?;
        let service = key(&k.0, &slice.service);
        self.by_service
            .entry(service.clone())
            .or_default()
            .insert(k.1.clone());
        self.slices.insert(k, slice);
        Some(service)
    }

    fn drop_slice_of(&mut self, ns: &str, service: &str, slice: &str) {
        let service = key(ns, service);
        if let Some(names) = self.by_service.get_mut(&service) {
            names.remove(slice);
            if names.is_empty() {
                self.by_service.remove(&service);
                self.services.remove(&service);
            }
        }
        self.recompute(&service);
    }

    fn rebuild(&mut self) {
        let before = std::mem::take(&mut self.parked);
        self.by_ip.clear();
        let keys: Vec<Key> = self.by_service.keys().cloned().collect();
        for k in keys {
            self.recompute(&k);
        }
        for (ns, services) in before {
            for (name, info) in services {
                if self.parked.get(&ns).is_none_or(|m| !m.contains_key(&name)) {
                    self.unparked
                        .insert((ns.clone(), name), (info, Instant::now()));
                }
            }
        }
    }

    /// Brings the entries of Service `k` in line with its slices and its data.
    fn recompute(&mut self, k: &Key) {
        let (ns, name) = k;
        let old = self.parked.get_mut(ns).and_then(|m| m.remove(name));
        if let Some(ip) = old.as_ref().and_then(|old| old.cluster_ip) {
            self.by_ip.remove(&ip);
        }
        self.unparked
            .retain(|key, (_, at)| key != k && at.elapsed() < UNPARKED_GRACE);
        let info = self.info(k);
        let Some(info) = info else {
            if self.parked.get(ns).is_some_and(HashMap::is_empty) {
                self.parked.remove(ns);
            }
            if let Some(old) = old {
                self.unparked.insert(k.clone(), (old, Instant::now()));
            }
            return;
        };
        let info = Arc::new(info);
        if let Some(ip) = info.cluster_ip {
            self.by_ip.insert(ip, info.clone());
        }
        self.parked
            .entry(ns.clone())
            .or_default()
            .insert(name.clone(), info);
    }

    fn info(&self, k: &Key) -> Option<ParkedServiceInfo> {
        let svc = self.services.get(k)?;
        let slices: Vec<&Slice> = self
            .by_service
            .get(k)?
            .iter()
            .filter_map(|n| self.slices.get(&key(&k.0, n)))
            .collect();
        let first = slices.first()?;
        let ports: Vec<ListenerPort> = svc
            .ports
            .iter()
            .filter_map(|(name, port, app_protocol)| {
                let (_, slice_port) = first.ports.iter().find(|(n, _)| n == name)?;
                let offset = u16::try_from(*slice_port)
                    .ok()?
                    .checked_sub(self.base_port)
                    .filter(|o| *o < MAX_PORTS)?;
                Some(ListenerPort {
                    offset,
                    name: name.clone(),
                    port: *port,
                    app_protocol: app_protocol.clone(),
                })
            })
            .collect();
        if ports.is_empty() {
            return None;
        }
        Some(ParkedServiceInfo {
            namespace: k.0.clone(),
            name: k.1.clone(),
            cluster_ip: svc.cluster_ip,
            target: Target {
                cluster: self.cluster.clone(),
                namespace: k.0.clone(),
                name: first.deployment.clone(),
            },
            ports,
            callers: svc.callers.clone(),
        })
    }
}
