//! Kubernetes [`Scaler`] for idle-scaler, over kube-rs and the `deployments/scale` subresource.
//!
//! [`KubeScaler`] reads and writes only `apps/v1` `deployments/scale` (RBAC: `get`, `patch` on
//! `deployments/scale`), writes as field manager [`FIELD_MANAGER`], and bounds every request by
//! a timeout. Kubernetes errors become the core's domain outcomes:
//!
//! | Kubernetes | core |
//! |---|---|
//! | 404 | [`CoreError::not_found`] |
//! | 409 | [`CoreError::conflict`] |
//! | 401, 403 | [`CoreError::forbidden`] |
//! | 400, 422, other 4xx | [`CoreError::invalid`] |
//! | 429, 5xx | [`CoreError::unavailable`], [`Reach::Answered`] |
//! | no answer in time, dropped connection | [`CoreError::unavailable`], [`Reach::NoAnswer`] |
//! | connect failure | [`CoreError::unavailable`], [`Reach::NotReached`] |
//!
//! [`KubeScaler`] is also the waker's [`idle_scaler_core::Readiness`]: it watches one
//! Deployment (`list` and `watch` on `deployments`, narrowed to it by name) until a replica
//! of its current generation is ready.
//!
//! [`parking`] plans which Services of a slept Deployment point at the waker, and the
//! EndpointSlices that do it (pure: no request).
//!
//! [`KubeParker`] is the job's [`idle_scaler_core::parking::Parker`]: it writes those slices
//! (create; update only its own, labelled `endpointslice.kubernetes.io/managed-by:
//! idle-scaler`, with their `resourceVersion`; delete with a `uid` precondition; a same-named
//! slice it did not write is a `conflict`, never touched), deletes them only once every parked
//! Service has a ready endpoint of the app's own pods (waiting by watch), lists what is parked
//! in one request, and re-points every parked slice when the waker addresses change
//! ([`KubeParker::follow_addresses`]). The addresses come through a
//! [`waker_addresses::AddressFeed`]: a static list, the watched ready endpoints of the
//! waker's Service, or a host's own channel. RBAC: `list` on `deployments` and `services`;
//! `get`, `list`, `watch`, `create`, `update`, `delete` on `endpointslices`.
//!
//! [`LazyScalerFactory`] builds the client on first use and retries after a failure, so a
//! cluster that cannot be reached makes the job fail open instead of failing the host.
//!
//! TLS is kube's, on rustls's process-default crypto provider: when none is installed as the
//! first client is built, this crate installs its own ([`crypto_provider`], feature `ring` or
//! `aws-lc-rs`). A host that wants another installs it before.
#![warn(missing_docs)]

mod backoff; // doubling pauses between a wait's rounds, never past its deadline
pub mod client; // the HTTP stack: bounded pool, no credential in a URL or a log line
mod clusters;
pub mod directory; // the parking listener's view: parked Services by name, callers' namespaces, ready endpoints
mod exec;
mod lazy;
mod mapping; // Kubernetes errors -> the core's outcomes, and one bounded request
mod parker; // KubeParker: writes, unparks and re-points the parked slices
pub mod parking; // which Services a sleep parks at the waker, and their slices (pure)
mod readiness;
mod reflect; // list then watch one resource, resumed, listed again on 410
pub mod routes; // public hostnames of HTTPRoutes and Ingresses -> their backend Services
pub mod waker_addresses; // where parked slices point: static, watched, or a host's channel

pub use clusters::KubeClusters;
pub use directory::{DirectorySettings, KubeParkingDirectory};
pub use lazy::{BuildScaler, LazyScalerFactory};
pub use parker::KubeParker;
pub use routes::{KubeRouteIndex, RouteIndexSettings};

pub use readiness::is_ready;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idle_scaler_core::job::JobBuilder;
use idle_scaler_core::{Config, Error as CoreError, Reach, Scale, Scaler, Store, Target};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use tokio::time::Instant;
use tracing::{debug, warn};

mod tls;

use mapping::{bounded, map_error, map_error_at};

pub use tls::crypto_provider;

/// The field manager every write is recorded under (`metadata.managedFields`).
pub const FIELD_MANAGER: &str = "idle-scaler";

/// Default per-request timeout: long enough for a loaded apiserver, short enough that a
/// tick with a hung connection still ends well within its interval.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Kubernetes client could not be built. The caller turns it into fail-open
/// (`idle_scaler_core::Error::unavailable` via `From`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No configuration found: not in a cluster, no `KUBECONFIG`, no `~/.kube/config`.
    #[error("no Kubernetes configuration found (in-cluster, KUBECONFIG, ~/.kube/config)")]
    Infer(#[source] kube::config::InferConfigError),
    /// The explicit API server URL does not parse.
    #[error("invalid Kubernetes API server URL {url:?}")]
    Url {
        /// The URL as given, its password redacted.
        url: String,
        /// Why it does not parse.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The configuration was found but the client could not be built from it (TLS, auth).
    #[error("building the Kubernetes client failed")]
    Client(#[source] kube::Error),
    /// The credentials could not be used. A fixed text: kube's own error can carry an exec
    /// plugin's environment and output.
    #[error("the Kubernetes credentials could not be used: {0}")]
    Auth(&'static str),
    /// The kubeconfig's exec credential plugin failed: its program and how it ended, never its
    /// environment or output.
    #[error("the credential plugin {program} failed: {outcome}")]
    Credential {
        /// The configured command.
        program: String,
        /// How it ended (an exit status) or why its answer is unusable.
        outcome: String,
    },
    /// The proxy is not an `http://` one; refused rather than bypassed.
    #[error("proxy-url {url}: only an http:// proxy is supported")]
    Proxy {
        /// The proxy's URL (kubeconfig `proxy-url` or `HTTPS_PROXY`), its password redacted.
        url: String,
    },
    /// A named cluster's kubeconfig file or context could not be loaded.
    #[error("cluster {cluster}: loading {what} failed")]
    Kubeconfig {
        /// The cluster's name.
        cluster: String,
        /// The file and context, as configured.
        what: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
}

impl Error {
    /// A client build's error, an authentication one replaced by its fixed text.
    fn client(e: kube::Error) -> Self {
        match auth_error(&e) {
            Some(text) => Self::Auth(text),
            None => Self::Client(e),
        }
    }
}

/// The fixed text of an authentication error, wherever kube put it (a client build's
/// `Error::Auth`, a request's auth layer as `Error::Service`); None for any other error.
fn auth_error(e: &kube::Error) -> Option<&'static str> {
    use kube::client::AuthError as A;
    let auth = match e {
        kube::Error::Auth(a) => a,
        kube::Error::Service(b) => b.downcast_ref::<A>()?,
        _ => return None,
    };
    Some(match auth {
        A::InvalidBasicAuth(_) | A::InvalidBearerToken(_) => "not a valid header value",
        A::ReadTokenFile(..) | A::ParseTokenKey(_) => "the token file is unreadable",
        A::MissingCommand | A::ExecMissingClusterInfo => "the exec plugin is misconfigured",
        _ => "an exec plugin or auth provider failed",
    })
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for CoreError {
    fn from(e: Error) -> Self {
        // A client that cannot be built now may be buildable later (a mounted token
        // appearing, a kubeconfig fixed): the job treats it as an outage and fails open.
        CoreError::unavailable("no Kubernetes client").with_source(e)
    }
}

/// The Kubernetes [`Scaler`]: `deployments/scale` through a kube [`kube::Client`].
#[derive(Clone)]
pub struct KubeScaler {
    client: kube::Client,
    timeout: Duration,
}

impl std::fmt::Debug for KubeScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeScaler")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KubeScaler {
    /// A scaler over an existing client; every request is bounded by `timeout`.
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    /// A scaler talking to the API server at `url` without credentials (plain `http://`
    /// in tests and the demo). Must be called inside a Tokio runtime (kube spawns the
    /// client's request buffer).
    pub fn from_url(url: &str, timeout: Duration) -> Result<Self> {
        let uri: http::Uri = url.parse().map_err(|source| Error::Url {
            url: idle_scaler_core::redact::redact_in(url, url),
            source,
        })?;
        let mut config = kube::Config::new(uri);
        config.connect_timeout = Some(timeout);
        Ok(Self::new(client::build(config)?, timeout))
    }

    /// A scaler from the usual sources (`KUBECONFIG`, `~/.kube/config`, then the in-cluster
    /// service account). The error means "no cluster now": fail open and retry later.
    pub async fn infer(timeout: Duration) -> Result<Self> {
        let mut config = kube::Config::infer().await.map_err(Error::Infer)?;
        config.connect_timeout = Some(timeout);
        Ok(Self::new(client::build(config)?, timeout))
    }

    /// A scaler for the named `cluster` from its kubeconfig file (that file's current context
    /// unless `context` names one) or, without a file, from `context` of the usual kubeconfig
    /// (`KUBECONFIG`, `~/.kube/config`). The error names the cluster, the file and the context.
    pub async fn from_kubeconfig(
        cluster: &str,
        kubeconfig: Option<&std::path::Path>,
        context: Option<&str>,
        timeout: Duration,
    ) -> Result<Self> {
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_owned),
            ..kube::config::KubeConfigOptions::default()
        };
        let what = match (kubeconfig, context) {
            (Some(file), Some(ctx)) => format!("context {ctx:?} of kubeconfig {}", file.display()),
            (Some(file), None) => format!("kubeconfig {}", file.display()),
            (None, Some(ctx)) => format!("context {ctx:?} of the default kubeconfig"),
            (None, None) => "the default kubeconfig".to_owned(),
        };
        let loaded = match kubeconfig {
            Some(path) => match kube::config::Kubeconfig::read_from(path) {
                Ok(file) => kube::Config::from_custom_kubeconfig(file, &options).await,
                Err(e) => Err(e),
            },
            None => kube::Config::from_kubeconfig(&options).await,
        };
        let mut config = loaded.map_err(|source| Error::Kubeconfig {
            cluster: cluster.to_owned(),
            what,
            source,
        })?;
        config.connect_timeout = Some(timeout);
        Ok(Self::new(client::build(config)?, timeout))
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the client's credential (an exec plugin's, with an expiry) expires within a
    /// minute, the margin kube keeps before refreshing a token.
    pub fn expiring(&self) -> bool {
        let soon = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_secs(60));
        self.client
            .valid_until()
            .is_some_and(|until| soon.is_ok_and(|soon| soon >= until))
    }

    fn api(&self, target: &Target) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &target.namespace)
    }

    /// Runs one request under the timeout and maps its error.
    async fn call<T>(
        &self,
        target: &Target,
        op: &'static str,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> idle_scaler_core::Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_error(target, op, e)),
            Err(_) => Err(CoreError::unavailable(format!(
                "{op} {target}: no answer within {} ms",
                self.timeout.as_millis()
            ))
            .with_reach(Reach::NoAnswer)),
        }
    }
}

/// A [`JobBuilder`] with lazy Kubernetes clients as its scaler factories (built on first use,
/// retried while they fail): the inferred one for the default cluster (the in-cluster service
/// account, `KUBECONFIG`, `~/.kube/config`) and one per configured cluster from its kubeconfig
/// file or context (see [`KubeClusters`]), and every other default of [`JobBuilder`].
pub fn job_builder(config: Config, store: Arc<dyn Store>) -> JobBuilder {
    KubeClusters::from_config(&config).job_builder(config, store)
}

/// The merge patch a write sends. With `resource_version` the API server applies it only
/// if the Deployment is still at that version (409 otherwise): this is the sleep's CAS 2.
fn scale_patch(replicas: i32, resource_version: Option<&str>) -> serde_json::Value {
    match resource_version {
        Some(rv) => serde_json::json!({
            "metadata": { "resourceVersion": rv },
            "spec": { "replicas": replicas },
        }),
        None => serde_json::json!({ "spec": { "replicas": replicas } }),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Scaler for KubeScaler {
    async fn get_scale(&self, target: &Target) -> idle_scaler_core::Result<Scale> {
        let started = Instant::now();
        let api = self.api(target);
        let scale = self
            .call(target, "get scale", api.get_scale(&target.name))
            .await?;
        // `spec.replicas` is omitempty in the API: absent means 0.
        let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        let resource_version = scale.metadata.resource_version.ok_or_else(|| {
            // Without it the sleep could not be a compare-and-set: refuse rather than
            // write unconditionally.
            CoreError::invalid(format!(
                "get scale {target}: the Scale has no resourceVersion"
            ))
        })?;
        debug!(namespace = %target.namespace, name = %target.name, replicas,
            resource_version = %resource_version, took_ms = millis(started.elapsed()), "read scale");
        Ok(Scale {
            replicas,
            resource_version,
        })
    }

    async fn set_replicas<'a>(
        &self,
        target: &Target,
        replicas: i32,
        resource_version: Option<&'a str>,
    ) -> idle_scaler_core::Result<()> {
        let started = Instant::now();
        let api = self.api(target);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patch = Patch::Merge(scale_patch(replicas, resource_version));
        let result = self
            .call(
                target,
                "patch scale",
                api.patch_scale(&target.name, &params, &patch),
            )
            .await;
        match &result {
            Ok(_) => debug!(namespace = %target.namespace, name = %target.name, replicas,
                precondition = resource_version.unwrap_or(""),
                took_ms = millis(started.elapsed()), "set replicas"),
            Err(e) => debug!(namespace = %target.namespace, name = %target.name, replicas,
                error = %idle_scaler_core::error_chain(e), took_ms = millis(started.elapsed()),
                "set replicas failed"),
        }
        result.map(|_| ())
    }
}

#[cfg(test)]
mod tests;
