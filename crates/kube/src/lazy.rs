//! [`LazyScalerFactory`]: a cluster's client, built on first use and rebuilt when its
//! credential expires.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idle_scaler_core::{ClusterName, Error as CoreError, Scaler, ScalerFactory, Target};
use tokio::sync::Mutex;
use tracing::warn;

use crate::{KubeScaler, Result};

/// Builds a [`KubeScaler`]; boxed so [`LazyScalerFactory`] can hold any way of building one.
pub type BuildScaler =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<KubeScaler>> + Send>> + Send + Sync>;

/// A [`ScalerFactory`] that builds the client on first use and keeps it until its credential
/// expires ([`KubeScaler::expiring`]). A failed build is [`CoreError::unavailable`] (the tick
/// fails open) and is retried on the next call.
pub struct LazyScalerFactory {
    build: BuildScaler,
    scaler: Mutex<Option<Arc<KubeScaler>>>,
}

impl std::fmt::Debug for LazyScalerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyScalerFactory")
            .field("built", &self.is_built())
            .finish_non_exhaustive()
    }
}

impl LazyScalerFactory {
    /// A factory that builds with `build` until it succeeds once.
    pub fn new(build: BuildScaler) -> Self {
        Self {
            build,
            scaler: Mutex::new(None),
        }
    }

    /// A factory that infers the configuration ([`KubeScaler::infer`]).
    pub fn infer(timeout: Duration) -> Self {
        Self::new(Box::new(move || Box::pin(KubeScaler::infer(timeout))))
    }

    /// A factory for the named `cluster` ([`KubeScaler::from_kubeconfig`]).
    pub fn for_cluster(
        cluster: &ClusterName,
        settings: &idle_scaler_core::ClusterConfig,
        timeout: Duration,
    ) -> Self {
        let (cluster, settings) = (cluster.to_string(), settings.clone());
        Self::new(Box::new(move || {
            let (cluster, settings) = (cluster.clone(), settings.clone());
            Box::pin(async move {
                KubeScaler::from_kubeconfig(
                    &cluster,
                    settings.kubeconfig.as_deref(),
                    settings.context.as_deref(),
                    timeout,
                )
                .await
            })
        }))
    }

    /// A factory for an explicit API server URL ([`KubeScaler::from_url`]).
    pub fn from_url(url: impl Into<String>, timeout: Duration) -> Self {
        let url: String = url.into();
        Self::new(Box::new(move || {
            let url = url.clone();
            Box::pin(async move { KubeScaler::from_url(&url, timeout) })
        }))
    }

    /// Whether a client has been built (false while another call is building one).
    pub fn is_built(&self) -> bool {
        self.scaler.try_lock().is_ok_and(|s| s.is_some())
    }
}

impl LazyScalerFactory {
    /// The Kubernetes client, built now if needed: for a host that watches the same cluster
    /// (the parking directory) over the credentials the job uses.
    ///
    /// # Errors
    /// `unavailable` when no client can be built now.
    pub async fn client(&self) -> idle_scaler_core::Result<kube::Client> {
        Ok(self.built().await?.client.clone())
    }

    /// The client, built now if it is not yet or its credential is expiring. One build at a
    /// time: concurrent callers wait for it.
    pub(crate) async fn built(&self) -> idle_scaler_core::Result<Arc<KubeScaler>> {
        let mut slot = self.scaler.lock().await;
        if let Some(scaler) = slot.as_ref().filter(|s| !s.expiring()) {
            return Ok(scaler.clone());
        }
        match (self.build)().await {
            Ok(s) => Ok(slot.insert(Arc::new(s)).clone()),
            Err(e) => {
                warn!(error = %idle_scaler_core::error_chain(&e),
                    "no Kubernetes client yet; will retry");
                Err(CoreError::from(e))
            }
        }
    }
}

#[async_trait]
impl ScalerFactory for LazyScalerFactory {
    async fn scaler(&self) -> idle_scaler_core::Result<Arc<dyn Scaler>> {
        Ok(self.built().await? as Arc<dyn Scaler>)
    }
}

/// The waker's readiness wait over the same lazily built client.
#[async_trait]
impl idle_scaler_core::Readiness for LazyScalerFactory {
    async fn wait_ready(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> idle_scaler_core::Result<idle_scaler_core::ReadyState> {
        self.built().await?.wait_ready(target, timeout).await
    }
}
