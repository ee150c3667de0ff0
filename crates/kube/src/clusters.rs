//! The Kubernetes clients of several clusters: the default one and each configured one, each
//! built lazily and on its own, so one cluster that cannot be reached fails open alone.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idle_scaler_core::job::JobBuilder;
use idle_scaler_core::{
    ClusterName, Config, Error as CoreError, Job, PerCluster, Readiness, ReadyState, ScalerFactory,
    Store, Target,
};

use crate::LazyScalerFactory;

/// One lazy client per cluster: the default cluster's (inferred: the in-cluster service
/// account, `KUBECONFIG`, `~/.kube/config`) and each named cluster's (from its kubeconfig file
/// or context). Also the waker's [`Readiness`]: each wait goes to the target's cluster.
pub struct KubeClusters {
    /// Always holds the default cluster's client.
    clients: PerCluster<Arc<LazyScalerFactory>>,
}

impl std::fmt::Debug for KubeClusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KubeClusters").field(&self.clients).finish()
    }
}

impl KubeClusters {
    /// The clients `config` asks for: the inferred one for the default cluster (built only if
    /// used), and one per entry of `clusters`.
    pub fn from_config(config: &Config) -> Self {
        let timeout = config.request_timeout();
        let mut clusters = Self::new(Arc::new(LazyScalerFactory::infer(timeout)));
        for (name, settings) in &config.clusters {
            let factory = LazyScalerFactory::for_cluster(name, settings, timeout);
            clusters = clusters.with(name.clone(), Arc::new(factory));
        }
        clusters
    }

    /// Only the default cluster's client.
    pub fn new(default: Arc<LazyScalerFactory>) -> Self {
        Self {
            clients: PerCluster::default_cluster(default),
        }
    }

    /// Adds (or replaces) the client of the named `cluster`.
    #[must_use]
    pub fn with(mut self, cluster: ClusterName, factory: Arc<LazyScalerFactory>) -> Self {
        self.clients.insert(Some(cluster), factory);
        self
    }

    /// The client of `cluster` (None: the default cluster), if there is one.
    pub fn factory(&self, cluster: Option<&ClusterName>) -> Option<&Arc<LazyScalerFactory>> {
        self.clients.get(cluster)
    }

    /// A [`JobBuilder`] over these clients and every other default of [`JobBuilder`].
    pub fn job_builder(&self, config: Config, store: Arc<dyn Store>) -> JobBuilder {
        self.clients.iter().fold(
            Job::builder(config, store, self.default()),
            |builder, (cluster, factory)| match cluster {
                Some(name) => builder.cluster(name.clone(), factory.clone()),
                None => builder,
            },
        )
    }

    fn default(&self) -> Arc<dyn ScalerFactory> {
        self.clients
            .get(None)
            .expect("built with the default cluster's client")
            .clone()
    }
}

#[async_trait]
impl Readiness for KubeClusters {
    async fn wait_ready(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> idle_scaler_core::Result<ReadyState> {
        let factory = self.factory(target.cluster.as_ref()).ok_or_else(|| {
            CoreError::unavailable(format!(
                "no Kubernetes client for cluster {}",
                target.cluster_label()
            ))
        })?;
        factory.wait_ready(target, timeout).await
    }
}
