//! The parking ports: a slept app's Services point at the waker's parking listener, which
//! forwards the first requests to the app once it is ready.
//!
//! Two sides, both implemented by the Kubernetes adapter (and by in-memory fakes in tests):
//!
//! - [`Parker`], the job's side: park a slept app, unpark it once its own endpoints are
//!   ready, and list what is parked (reconcile, uninstall).
//! - [`ParkingDirectory`], the parking listener's side: which parked Service a request's
//!   `Host` names, which namespace a caller's address belongs to, and where the app's own ready
//!   endpoint is. Lookups by host are in memory: identification never waits on a database or
//!   an API request.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Result, Target};

/// What parking or unparking one app did to its Services: a count per `result` label of
/// `instant_deploy_scale_to_zero_parking_total`.
///
/// Labels: `parked` (a slice written), `unchanged` (already parked as planned), `unparked`
/// (a slice deleted), `conflict` (a same-named slice idle-scaler did not write: left alone),
/// `failed` (a write the API refused or did not answer), and the skip reasons of the plan
/// (`no_selector`, `not_selected`, `shared`, `protected_namespace`, `external_name`,
/// `headless`, `local_traffic_policy`, `opted_out`, `no_http_port`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParkReport {
    /// Services (or slices, for `parked`/`unparked`) per result label.
    pub results: BTreeMap<&'static str, u64>,
}

impl ParkReport {
    /// Counts one more `result`.
    pub fn add(&mut self, result: &'static str) {
        *self.results.entry(result).or_default() += 1;
    }

    /// The count of `result`.
    pub fn count(&self, result: &str) -> u64 {
        self.results.get(result).copied().unwrap_or(0)
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &ParkReport) {
        for (result, n) in &other.results {
            *self.results.entry(result).or_default() += n;
        }
    }
}

/// How an unpark ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpark {
    /// The app's parked slices are gone (none may have been left); what was done.
    Done(ParkReport),
    /// A parked Service has no ready endpoint of the app's own yet: nothing was deleted, so
    /// callers keep reaching the waker.
    NotReady,
}

/// An app that has parked slices now, as [`Parker::parked`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedApp {
    /// The slept Deployment the slices belong to (their `idle-scaler.dev/deployment` label).
    pub target: Target,
    /// Its Services that have a parked slice.
    pub services: u32,
}

/// The job's side of parking, for one cluster (the waker's own). Every method is idempotent:
/// reconcile calls them again for whatever a crash or a failure left behind.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Parker: Send + Sync {
    /// Points every Service of the slept app that may be parked at the waker's current
    /// addresses: creates missing slices, updates idle-scaler's own that differ (with their
    /// `resourceVersion`), leaves equal ones alone. A Service's failure is counted in the
    /// report (`failed`, `conflict`), not an error; `Err` only when the app's Services could
    /// not be read at all (`Error::unavailable`), or the Deployment is gone (`not_found`).
    async fn park(&self, target: &Target) -> Result<ParkReport>;

    /// Deletes the app's parked slices (with a `uid` precondition) if every Service they park
    /// has a ready endpoint of the app's own; otherwise deletes nothing: [`Unpark::NotReady`].
    async fn unpark(&self, target: &Target) -> Result<Unpark>;

    /// Waits (by watch, at most `timeout`) until every parked Service of the app has a ready
    /// endpoint of its own, then unparks. [`Unpark::NotReady`] when the time ran out.
    async fn unpark_when_ready(&self, target: &Target, timeout: Duration) -> Result<Unpark>;

    /// Deletes the app's parked slices whether or not it is ready: the uninstall
    /// (`idle-scaler unpark --all`) and `parking = off`.
    async fn unpark_now(&self, target: &Target) -> Result<ParkReport>;

    /// Every app with parked slices now (one labelled list of idle-scaler's slices).
    async fn parked(&self) -> Result<Vec<ParkedApp>>;
}

/// A Service port the parking listener serves at its port + `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPort {
    /// The listener port offset (0..8) a parked slice sends this Service port to.
    pub offset: u16,
    /// The Service port's name: the app's own slices carry it, so the forward goes to the
    /// same-named port of a ready endpoint.
    pub name: Option<String>,
    /// The Service port's number.
    pub port: i32,
    /// The Service port's `appProtocol` (`kubernetes.io/h2c` allows HTTP/2 cleartext).
    pub app_protocol: Option<String>,
}

/// A parked Service as the parking listener knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedServiceInfo {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// Its ClusterIP, when it has one.
    pub cluster_ip: Option<IpAddr>,
    /// The slept app the Service is parked for.
    pub target: Target,
    /// The parked ports.
    pub ports: Vec<ListenerPort>,
    /// Namespaces whose pods may call it besides its own (annotation `idle-scaler.dev/callers`,
    /// comma list; `*` for any).
    pub callers: Vec<String>,
}

impl ParkedServiceInfo {
    /// The parked port served at listener offset `offset`.
    pub fn port_at(&self, offset: u16) -> Option<&ListenerPort> {
        self.ports.iter().find(|p| p.offset == offset)
    }

    /// Whether a pod of `namespace` may call this Service through the waker: its own
    /// namespace, or one the `callers` annotation lists (`*`: any).
    pub fn admits(&self, namespace: &str) -> bool {
        namespace == self.namespace || self.callers.iter().any(|c| c == "*" || c == namespace)
    }
}

/// The parking listener's view of the cluster, kept current by watches. (No mock: tests use
/// an in-memory directory, which keeps the lookup rules in one place.)
#[async_trait]
pub trait ParkingDirectory: Send + Sync {
    /// The parked Service that `host` (a `Host` header's name, port removed, lowercase) names:
    /// `<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.<cluster domain>`, a ClusterIP, or a
    /// bare `<svc>` in `caller_namespace`. In memory: never waits on an API request.
    fn lookup(&self, host: &str, caller_namespace: Option<&str>) -> Option<Arc<ParkedServiceInfo>>;

    /// The namespace of the pod whose `status.podIP` is `ip`; `None` when no pod has it.
    /// Cached, negative results too.
    async fn pod_namespace(&self, ip: IpAddr) -> Result<Option<String>>;

    /// A ready endpoint of the app's own for `port` of `service`: from slices the EndpointSlice
    /// controller manages whose `targetRef` is a Pod of the Service's namespace, never a
    /// link-local address or one of the waker's own. Waits (by watch) at most `timeout`;
    /// `None` when none became ready in time.
    async fn ready_endpoint(
        &self,
        service: &ParkedServiceInfo,
        port: &ListenerPort,
        timeout: Duration,
    ) -> Result<Option<SocketAddr>>;
}

#[cfg(test)]
mod tests;
