//! The route index: public hostnames (+ paths) of `HTTPRoute`s and `Ingress`es, reduced to
//! the backends they send to, so the parking listener can name the app a gateway's request
//! is for.
//!
//! - `Ingress` (`networking.k8s.io/v1`): listed then watched; every rule is indexed.
//! - `HTTPRoute` (`gateway.networking.k8s.io/v1`): only routes a Gateway accepted
//!   (`status.parents[].conditions` `Accepted=True`), with the hostnames of the listeners
//!   they attach to (`Gateway`, v1) and cross-namespace backends only where a
//!   `ReferenceGrant` (v1beta1, or v1 where only that is served) allows them. Gateways and
//!   grants are listed before the routes; when a Gateway's listeners or a grant change, the
//!   routes are listed again (rare, and it keeps no second copy of every route in memory).
//! - A cluster without the Gateway API (404 on `httproutes`) is not an error: one INFO, and
//!   asked again every [`RouteIndexSettings::crd_recheck`]. A kind the service account may
//!   not list (403): one WARN, that kind skipped (Gateways: routes keep their own hostnames;
//!   grants: no cross-namespace backend).
//!
//! Only what names an app is kept: hostnames, path matches and backend Service ports (by
//! number, or by name for an `Ingress`), by route (the table in `idle_scaler_core::routes`,
//! whose documentation gives the precedence).
//!
//! RBAC: `list`, `watch` on `ingresses`, `httproutes`, `gateways` and `referencegrants`.

mod follow;
mod objects;
mod reduce;

use std::sync::Arc;
use std::time::Duration;

use idle_scaler_core::{RouteBackend, RouteIndex};
use tokio::task::JoinHandle;

/// How the route index watches.
#[derive(Debug, Clone)]
pub struct RouteIndexSettings {
    /// Bound of every API request.
    pub request_timeout: Duration,
    /// How often a cluster without the Gateway API CRDs is asked again whether they appeared.
    pub crd_recheck: Duration,
}

impl Default for RouteIndexSettings {
    fn default() -> Self {
        Self {
            request_timeout: crate::DEFAULT_TIMEOUT,
            crd_recheck: Duration::from_secs(180),
        }
    }
}

/// The Kubernetes [`RouteIndex`]. Its watches run until it is dropped.
#[derive(Debug)]
pub struct KubeRouteIndex {
    shared: Arc<follow::Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for KubeRouteIndex {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KubeRouteIndex {
    /// Starts the watches. Must be called inside a Tokio runtime.
    pub fn start(client: kube::Client, settings: RouteIndexSettings) -> Self {
        let shared = Arc::new(follow::Shared::default());
        let tasks = vec![
            tokio::spawn(follow::ingresses(
                client.clone(),
                settings.clone(),
                shared.clone(),
            )),
            tokio::spawn(follow::gateway_api(client, settings, shared.clone())),
        ];
        Self { shared, tasks }
    }

    /// Waits until every watched kind has been listed once (at most `timeout`); whether it
    /// has. A kind that is not served or not allowed counts as listed.
    pub async fn synced(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.synced.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| s.ingresses && s.http_routes))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Route rules in the index now.
    pub fn rules(&self) -> usize {
        self.shared.read().rules()
    }

    /// Routes (`HTTPRoute`s and `Ingress`es with a rule) in the index now.
    pub fn routes(&self) -> usize {
        self.shared.read().len()
    }
}

impl RouteIndex for KubeRouteIndex {
    fn resolve(&self, host: &str, path: &str) -> Vec<RouteBackend> {
        self.shared.read().resolve(host, path)
    }

    fn route_ports(&self, namespace: &str, service: &str) -> Vec<i32> {
        self.shared.read().route_ports(namespace, service)
    }

    fn route_port_names(&self, namespace: &str, service: &str) -> Vec<String> {
        self.shared.read().route_port_names(namespace, service)
    }
}
