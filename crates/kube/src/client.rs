//! The Kubernetes client: kube's TLS connector, timeouts and layers on an HTTP stack built
//! here rather than by `kube::Client::try_from`, so that idle connections are bounded and no
//! log line carries a credential:
//!
//! - the connection pool closes a connection idle for [`POOL_IDLE_TIMEOUT`] and keeps at most
//!   [`POOL_MAX_IDLE_PER_HOST`] idle ones (kube's default keeps any number, evicted only
//!   when the pool is next used);
//! - credentials written into the server URL (`https://user:password@host`) are moved into
//!   basic auth, so the URL the stack sees (and kube's own error and debug output) has none;
//! - kube's HTTP trace layer is left out: it logged every failure as a bare
//!   `ERROR failed with error client error (Connect)` besides the job's own WARN, and the
//!   full URL at debug level;
//! - an exec credential plugin runs once per build (see `exec`), and a client whose
//!   credential expires says when (`kube::Client::valid_until`) so that it is rebuilt.
//!
//! Otherwise the stack is kube's: its rustls connector (on the process-default provider,
//! installed by this crate when none is), its connect/read/write timeouts, its auth and
//! extra-header layers, and its retry of 429/503/504 when the configuration asks for it.
//! A proxy (`proxy-url`, or `HTTPS_PROXY` unless `NO_PROXY` matches, as kube reads them
//! from a kubeconfig; never for an in-cluster configuration) is an `http://` CONNECT proxy;
//! any other is refused rather than bypassed.

use std::time::Duration;

use base64::Engine;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::{ClientBuilder, ConfigExt};
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder};

use crate::{Error, Result};

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
pub fn build(config: kube::Config) -> Result<kube::Client> {
    build_with(config, Pool::default())
}

/// A client for `config` with `pool`. Installs [`crate::crypto_provider`] as rustls's process
/// default first if none is installed.
pub fn build_with(mut config: kube::Config, pool: Pool) -> Result<kube::Client> {
    crate::tls::install_default_provider();
    move_userinfo_to_basic_auth(&mut config);
    let valid_until = crate::exec::resolve(&mut config.auth_info)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let built = match config.proxy_url.clone() {
        None => stack(&config, http, pool),
        Some(proxy) if proxy.scheme_str() == Some("http") => {
            stack(&config, tunnel(proxy, http), pool)
        }
        Some(proxy) => {
            let url = proxy.to_string();
            return Err(Error::Proxy {
                url: idle_scaler_core::redact::redact_in(&url, &url),
            });
        }
    };
    Ok(built.map_err(Error::client)?.with_valid_until(valid_until))
}

/// kube's TLS connector and timeouts over `connector`, a bounded pool, kube's layers.
fn stack<H>(config: &kube::Config, connector: H, pool: Pool) -> kube::Result<kube::Client>
where
    H: tower::Service<http::Uri> + Clone + Send + Sync + 'static,
    H::Response: Connection + hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
    H::Future: Send + 'static,
    H::Error: std::error::Error + Send + Sync + 'static,
{
    let mut connector =
        TimeoutConnector::new(config.rustls_https_connector_with_connector(connector)?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let client: HyperClient<_, kube::client::Body> = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(pool.idle_timeout)
        .pool_max_idle_per_host(pool.max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .build(connector);
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
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}

/// An HTTP CONNECT tunnel through `proxy`, its `user:password` (percent-decoded, as curl
/// and client-go read it) sent as basic auth.
fn tunnel(proxy: http::Uri, http: HttpConnector) -> Tunnel<HttpConnector> {
    let userinfo = proxy
        .authority()
        .and_then(|a| a.as_str().rsplit_once('@'))
        .map(|(userinfo, _)| percent_encoding::percent_decode_str(userinfo).collect::<Vec<u8>>());
    let tunnel = Tunnel::new(proxy, http);
    let encoded = userinfo.map(|u| base64::engine::general_purpose::STANDARD.encode(u));
    match encoded.and_then(|e| http::HeaderValue::from_str(&format!("Basic {e}")).ok()) {
        Some(header) => tunnel.with_auth(header),
        None => tunnel,
    }
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
mod tests;
