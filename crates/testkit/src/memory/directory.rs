//! An in-memory [`ParkingDirectory`]: the parked Services, the pods' addresses and the apps'
//! ready endpoints as a test sets them, with the lookup rules of the Kubernetes directory (the
//! `Host` forms of a parked Service: `<svc>.<ns>`, `<svc>.<ns>.svc`,
//! `<svc>.<ns>.svc.<cluster domain>`, its ClusterIP, a bare `<svc>` in the caller's namespace).
//!
//! `ready_endpoint` waits for [`MemoryDirectory::set_endpoint`] the way the Kubernetes one
//! waits on a watch: no polling, so a test's timing is the listener's own.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use idle_scaler_core::{ListenerPort, ParkedServiceInfo, ParkingDirectory, Result};
use tokio::sync::watch;

/// A Service port's ready endpoint: (namespace, Service, port name).
type EndpointKey = (String, String, Option<String>);

#[derive(Debug, Default)]
struct State {
    services: Vec<Arc<ParkedServiceInfo>>,
    pods: HashMap<IpAddr, String>,
    endpoints: HashMap<EndpointKey, SocketAddr>,
    pod_lookups: u64,
    waiting: usize,
}

/// The in-memory directory. Clones share the same state.
#[derive(Debug, Clone)]
pub struct MemoryDirectory {
    cluster_domain: Arc<str>,
    state: Arc<Mutex<State>>,
    /// Bumped on every endpoint change, so waiters look again.
    changed: Arc<watch::Sender<u64>>,
}

impl Default for MemoryDirectory {
    fn default() -> Self {
        Self::new("cluster.local")
    }
}

impl MemoryDirectory {
    /// An empty directory whose cluster DNS suffix is `cluster_domain`.
    pub fn new(cluster_domain: &str) -> Self {
        Self {
            cluster_domain: cluster_domain.to_ascii_lowercase().into(),
            state: Arc::default(),
            changed: Arc::new(watch::Sender::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks `service` (replacing a Service of the same namespace and name).
    pub fn park(&self, service: ParkedServiceInfo) {
        let mut state = self.lock();
        state
            .services
            .retain(|s| (&s.namespace, &s.name) != (&service.namespace, &service.name));
        state.services.push(Arc::new(service));
    }

    /// Unparks the Service `namespace/name`.
    pub fn unpark(&self, namespace: &str, name: &str) {
        self.lock()
            .services
            .retain(|s| (s.namespace.as_str(), s.name.as_str()) != (namespace, name));
    }

    /// A pod of `namespace` has the address `ip`.
    pub fn set_pod(&self, ip: IpAddr, namespace: &str) {
        self.lock().pods.insert(ip, namespace.to_owned());
    }

    /// The Service `namespace/service`'s port named `port` has the ready endpoint `addr` (the
    /// app's own pod, as the EndpointSlice controller publishes it).
    pub fn set_endpoint(
        &self,
        namespace: &str,
        service: &str,
        port: Option<&str>,
        addr: SocketAddr,
    ) {
        let key = (
            namespace.to_owned(),
            service.to_owned(),
            port.map(str::to_owned),
        );
        self.lock().endpoints.insert(key, addr);
        self.changed.send_modify(|n| *n += 1);
    }

    /// The Service's port has no ready endpoint any more.
    pub fn clear_endpoint(&self, namespace: &str, service: &str, port: Option<&str>) {
        let key = (
            namespace.to_owned(),
            service.to_owned(),
            port.map(str::to_owned),
        );
        self.lock().endpoints.remove(&key);
        self.changed.send_modify(|n| *n += 1);
    }

    /// How many [`ParkingDirectory::ready_endpoint`] calls are waiting now (requests held).
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }

    /// How many times [`ParkingDirectory::pod_namespace`] was asked.
    pub fn pod_lookups(&self) -> u64 {
        self.lock().pod_lookups
    }

    fn endpoint(&self, service: &ParkedServiceInfo, port: &ListenerPort) -> Option<SocketAddr> {
        let key = (
            service.namespace.clone(),
            service.name.clone(),
            port.name.clone(),
        );
        self.lock().endpoints.get(&key).copied()
    }
}

/// One waiting `ready_endpoint` call; counted while it lives.
struct Waiting<'a>(&'a MemoryDirectory);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

/// The (Service, namespace) a DNS form names, or the bare Service name (namespace `None`).
fn dns_form<'h>(host: &'h str, cluster_domain: &str) -> Option<(&'h str, Option<&'h str>)> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let mut labels = host.splitn(3, '.');
    let service = labels.next().filter(|s| !s.is_empty())?;
    let Some(namespace) = labels.next() else {
        return Some((service, None));
    };
    match labels.next() {
        None => Some((service, Some(namespace))),
        Some(rest) if rest == "svc" || rest.strip_prefix("svc.") == Some(cluster_domain) => {
            Some((service, Some(namespace)))
        }
        Some(_) => None,
    }
}

#[async_trait]
impl ParkingDirectory for MemoryDirectory {
    fn lookup(&self, host: &str, caller_namespace: Option<&str>) -> Option<Arc<ParkedServiceInfo>> {
        let state = self.lock();
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return state
                .services
                .iter()
                .find(|s| s.cluster_ip == Some(ip))
                .cloned();
        }
        let (service, namespace) = dns_form(host, &self.cluster_domain)?;
        let namespace = namespace.or(caller_namespace)?;
        state
            .services
            .iter()
            .find(|s| s.name == service && s.namespace == namespace)
            .cloned()
    }

    async fn pod_namespace(&self, ip: IpAddr) -> Result<Option<String>> {
        let mut state = self.lock();
        state.pod_lookups += 1;
        Ok(state.pods.get(&ip).cloned())
    }

    async fn ready_endpoint(
        &self,
        service: &ParkedServiceInfo,
        port: &ListenerPort,
        timeout: Duration,
    ) -> Result<Option<SocketAddr>> {
        let mut changed = self.changed.subscribe();
        self.lock().waiting += 1;
        let _waiting = Waiting(self);
        let wait = async {
            loop {
                if let Some(addr) = self.endpoint(service, port) {
                    return addr;
                }
                if changed.changed().await.is_err() {
                    // The sender lives as long as `self`: never reached.
                    std::future::pending::<()>().await;
                }
            }
        };
        Ok(tokio::time::timeout(timeout, wait).await.ok())
    }
}

#[cfg(test)]
mod tests;
