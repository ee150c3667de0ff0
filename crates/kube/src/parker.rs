//! [`KubeParker`]: the job's side of parking over the Kubernetes API. It writes the slices
//! [`crate::parking::plan`] asks for, deletes them once the app's own endpoints are ready,
//! and re-points them when the waker addresses change.
//!
//! Writes: create; replace only a slice carrying idle-scaler's managed-by label, with its
//! `resourceVersion` (a stale one is read again once, then counted `failed`: never a blind
//! write); delete only such a slice, with a `uid` precondition. A same-named slice without
//! the label is never touched (`conflict`). RBAC: `list` on `deployments` and `services`;
//! `get`, `list`, `watch`, `create`, `update`, `delete` on `endpointslices`.
//!
//! Requests per app: park lists the namespace's Deployments, Services and idle-scaler's
//! slices of the app (three reads at once), then writes one request per slice; unpark lists
//! the app's slices and its Services' controller slices, then deletes. Nothing lists the
//! cluster per app: only [`Parker::parked`] and [`KubeParker::repoint`] read every namespace,
//! once each.

mod park;
mod repoint;
mod slices;
mod unpark;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idle_scaler_core::parking::{ParkReport, ParkedApp, Parker, Unpark};
use idle_scaler_core::{ClusterName, Error as CoreError, Result, RouteIndex, Target};

use crate::LazyScalerFactory;
use crate::parking::{
    DEPLOYMENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL, WakerAddresses, deployment_label,
};
use crate::waker_addresses::AddressFeed;

use slices::Slices;

/// The [`Parker`] of one cluster (the waker's own), over a lazily built client: a cluster
/// that cannot be reached makes every call `Err(unavailable)` (the job fails open) and the
/// client is built again on the next call.
pub struct KubeParker {
    factory: Arc<LazyScalerFactory>,
    addresses: AddressFeed,
    protected: Vec<String>,
    cluster: Option<ClusterName>,
    routes: Option<Arc<dyn RouteIndex>>,
}

impl std::fmt::Debug for KubeParker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeParker")
            .field("cluster", &self.cluster)
            .field("protected", &self.protected)
            .field("addresses", &*self.addresses.borrow())
            .field("routes", &self.routes.is_some())
            .finish_non_exhaustive()
    }
}

impl KubeParker {
    /// A parker writing through `factory`'s client, pointing slices at `addresses` as they
    /// are at each call. No namespace is protected and the cluster is the default one until
    /// [`Self::protected_namespaces`] and [`Self::cluster`] say otherwise.
    pub fn new(factory: Arc<LazyScalerFactory>, addresses: AddressFeed) -> Self {
        Self {
            factory,
            addresses,
            protected: Vec::new(),
            cluster: None,
            routes: None,
        }
    }

    /// Parks the ports routes name too (`HTTPRoute`s, `Ingress`es, through the route index),
    /// whatever their names say, at every park and the reconcile's re-park.
    #[must_use]
    pub fn routes(mut self, routes: Arc<dyn RouteIndex>) -> Self {
        self.routes = Some(routes);
        self
    }

    /// Namespaces whose Services are never parked (counted `protected_namespace`).
    #[must_use]
    pub fn protected_namespaces<S: Into<String>>(
        mut self,
        namespaces: impl IntoIterator<Item = S>,
    ) -> Self {
        self.protected = namespaces.into_iter().map(Into::into).collect();
        self
    }

    /// The cluster this parker serves (`None`: the default one). A target of another cluster
    /// is refused (`Error::invalid`), and [`Parker::parked`] names its apps with it.
    #[must_use]
    pub fn cluster(mut self, cluster: Option<ClusterName>) -> Self {
        self.cluster = cluster;
        self
    }

    /// The waker addresses slices point at now (`None`: none known yet).
    pub fn addresses(&self) -> Option<WakerAddresses> {
        self.addresses.borrow().clone()
    }

    fn waker(&self) -> Result<WakerAddresses> {
        self.addresses()
            .ok_or_else(|| CoreError::unavailable("parking: no waker address is known yet"))
    }

    fn check(&self, target: &Target) -> Result<()> {
        if target.cluster == self.cluster {
            return Ok(());
        }
        Err(CoreError::invalid(format!(
            "parking {target}: parking serves the waker's own cluster only"
        )))
    }

    /// The slices API of `namespace`, on a client built now if needed.
    async fn slices(&self, namespace: &str) -> Result<Slices> {
        let scaler = self.factory.built().await?;
        Ok(Slices::new(&scaler, namespace))
    }
}

/// The label selector of idle-scaler's slices of `target`.
fn ours_selector(target: &Target) -> String {
    format!(
        "{MANAGED_BY_LABEL}={MANAGED_BY},{DEPLOYMENT_LABEL}={}",
        deployment_label(&target.name)
    )
}

/// How long a request may take at most: the per-request timeout, bounded by what is left
/// of a wait.
fn secs_left(left: Duration) -> u32 {
    u32::try_from(left.as_secs().clamp(1, 290)).unwrap_or(290)
}

#[async_trait]
impl Parker for KubeParker {
    async fn park(&self, target: &Target) -> Result<ParkReport> {
        self.check(target)?;
        self.park_app(target).await
    }

    async fn unpark(&self, target: &Target) -> Result<Unpark> {
        self.check(target)?;
        self.unpark_if_ready(target).await
    }

    async fn unpark_when_ready(&self, target: &Target, timeout: Duration) -> Result<Unpark> {
        self.check(target)?;
        self.unpark_once_ready(target, timeout).await
    }

    async fn unpark_now(&self, target: &Target) -> Result<ParkReport> {
        self.check(target)?;
        let slices = self.slices(&target.namespace).await?;
        let ours = slices.list(&ours_selector(target)).await?;
        Ok(slices.delete_all(&ours.items).await)
    }

    async fn parked(&self) -> Result<Vec<ParkedApp>> {
        self.parked_apps().await
    }
}

#[cfg(test)]
mod tests;
