//! The Kubernetes client's HTTP stack, built here rather than by `kube::Client::try_from` so
//! that idle connections are bounded and no log line carries a credential:
//!
//! - the connection pool closes a connection idle for [`POOL_IDLE_TIMEOUT`] and keeps at most
//!   [`POOL_MAX_IDLE_PER_HOST`] idle ones (kube's default keeps any number, evicted only
//!   when the pool is next used);
//! - credentials written into the server URL (`https://user:password@host`) are moved into
//!   basic auth, so the URL the stack sees (and kube's own error and debug output) has none;
//! - kube's HTTP trace layer is left out: it logged every failure as a bare
//!   `ERROR failed with error client error (Connect)` besides the job's own WARN, and the
//!   full URL at debug level;
//! - TLS is configured by [`crate::client_config`] on an explicit rustls crypto provider,
//!   where kube would take the process default and panic when there is none to choose.
//!
//! Otherwise the stack is kube's: its auth and extra-header layers, and its retry of
//! 429/503/504 when the configuration asks for it.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use rustls::crypto::CryptoProvider;
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder};

/// A pooled connection unused this long is closed.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per API server; the job talks to one, with bounded concurrency.
pub const POOL_MAX_IDLE_PER_HOST: usize = 8;

/// What the connection pool keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// A connection unused this long is closed.
    pub idle_timeout: Duration,
    /// Idle connections kept per API server; more are closed after use.
    pub max_idle_per_host: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            idle_timeout: POOL_IDLE_TIMEOUT,
            max_idle_per_host: POOL_MAX_IDLE_PER_HOST,
        }
    }
}

/// A client for `config` with the default [`Pool`].
pub fn build(config: kube::Config) -> kube::Result<kube::Client> {
    build_with(config, Pool::default())
}

/// A client for `config` with `pool`, its TLS on [`crate::provider`].
pub fn build_with(config: kube::Config, pool: Pool) -> kube::Result<kube::Client> {
    build_with_provider(config, pool, crate::provider())
}

/// A client for `config` with `pool`, its TLS on `provider` (handed to rustls, not installed).
pub fn build_with_provider(
    mut config: kube::Config,
    pool: Pool,
    provider: Arc<CryptoProvider>,
) -> kube::Result<kube::Client> {
    move_userinfo_to_basic_auth(&mut config);
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let https = crate::tls::https_connector(&config, provider, http)?;
    let client: HyperClient<_, kube::client::Body> = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(pool.idle_timeout)
        .pool_max_idle_per_host(pool.max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// `scheme://user:password@host` -> `scheme://host`, the user and password becoming basic
/// auth unless the configuration names a user of its own. hyper never sent them anyway.
fn move_userinfo_to_basic_auth(config: &mut kube::Config) {
    let Some(authority) = config.cluster_url.authority().cloned() else {
        return;
    };
    let Some((userinfo, host)) = authority.as_str().rsplit_once('@') else {
        return;
    };
    let mut parts = config.cluster_url.clone().into_parts();
    let Ok(host) = host.parse() else {
        return;
    };
    parts.authority = Some(host);
    let Ok(url) = http::Uri::from_parts(parts) else {
        return;
    };
    config.cluster_url = url;
    let auth = &mut config.auth_info;
    if auth.username.is_none() && auth.token.is_none() && auth.token_file.is_none() {
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        auth.username = Some(user.to_owned());
        if !password.is_empty() {
            auth.password = Some(password.to_owned().into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_server_url() {
        let mut config =
            kube::Config::new("https://kuser:s3cret@api.example:6443/".parse().unwrap());
        move_userinfo_to_basic_auth(&mut config);
        assert_eq!(config.cluster_url.to_string(), "https://api.example:6443/");
        assert_eq!(config.auth_info.username.as_deref(), Some("kuser"));
        assert!(config.auth_info.password.is_some());

        let mut plain = kube::Config::new("https://api.example:6443/".parse().unwrap());
        move_userinfo_to_basic_auth(&mut plain);
        assert_eq!(plain.cluster_url.to_string(), "https://api.example:6443/");
        assert!(plain.auth_info.username.is_none());
    }
}
