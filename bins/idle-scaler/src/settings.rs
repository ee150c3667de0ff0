//! Everything the binary reads from its environment, validated at startup.

mod parking; // the parking listener's address and the waker addresses parked slices point at

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use idle_scaler_core::Config;
use idle_scaler_core::redact::redact_url;
use idle_scaler_prometheus::PrometheusConfig;
use idle_scaler_waker::WakerConfig;
use serde::Serialize;

use crate::server::Limits;
use idle_scaler_kube::waker_addresses::LocalAddresses;
pub use parking::WakerAddressSource;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The job configuration plus the binary's own settings.
#[derive(Clone)]
pub struct Settings {
    /// The job configuration.
    pub job: Config,
    /// The Prometheus activity source's keys (read from the same sources as `job`).
    pub prometheus: PrometheusConfig,
    /// `DATABASE_URL`; secret (it may hold a password).
    pub database_url: Option<String>,
    /// `IDLE_SCALER_LISTEN_ADDR`.
    pub listen_addr: SocketAddr,
    /// The waker's keys (read from the same sources as `job`).
    pub waker: WakerConfig,
    /// `IDLE_SCALER_WAKER_LISTEN_ADDR`; None (`off`) disables the waker.
    pub waker_listen_addr: Option<SocketAddr>,
    /// `IDLE_SCALER_PROBE_LISTEN_ADDR`; None (`off`): no probe listener.
    pub probe_listen_addr: Option<SocketAddr>,
    /// `IDLE_SCALER_PARKING_LISTEN_ADDR`: the first of the parking listener's eight ports;
    /// None (`off`): no parking listener.
    pub parking_listen_addr: Option<SocketAddr>,
    /// Where parked slices point: `IDLE_SCALER_WAKER_ADDRESSES`, or the ready endpoints of
    /// `IDLE_SCALER_WAKER_SERVICE` (default `<POD_NAMESPACE>/idle-scaler`).
    pub waker_addresses: WakerAddressSource,
    /// `IDLE_SCALER_ROUTE_INDEX` (`on` by default): public hostnames of `HTTPRoute`s and
    /// `Ingress`es name parked apps, and the ports routes name are parked.
    pub route_index: bool,
    /// `IDLE_SCALER_ALLOW_LOOPBACK_ADDRESSES`: loopback waker addresses and app endpoints
    /// accepted (a test rig on one host only).
    pub local_addresses: LocalAddresses,
    /// `POD_IP` (downward API): this pod's address, never a forwarding target, and what a
    /// stopping parking listener asks the parked slices about.
    pub pod_ip: Option<IpAddr>,
    /// `IDLE_SCALER_WAKE_TOKEN`; secret. None disables the wake endpoint.
    pub wake_token: Option<String>,
    /// `IDLE_SCALER_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `IDLE_SCALER_HTTP_*`: what one client may hold of the HTTP server.
    pub http_limits: Limits,
    /// `IDLE_SCALER_HTTP_DRAIN_SECONDS`: after SIGTERM, requests still in flight this long
    /// are answered 503 + `Retry-After`.
    pub http_drain: Duration,
    /// Warnings to log once logging is up.
    pub warnings: Vec<String>,
}

// Written by hand: the URL and the token must never reach a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("job", &self.job)
            .field("prometheus", &self.prometheus_redacted())
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("listen_addr", &self.listen_addr)
            .field("waker", &self.waker)
            .field("waker_listen_addr", &self.waker_listen_addr)
            .field("probe_listen_addr", &self.probe_listen_addr)
            .field("parking_listen_addr", &self.parking_listen_addr)
            .field("waker_addresses", &self.waker_addresses)
            .field("route_index", &self.route_index)
            .field("local_addresses", &self.local_addresses)
            .field("pod_ip", &self.pod_ip)
            .field(
                "wake_token",
                &self.wake_token.as_ref().map(|_| "<redacted>"),
            )
            .field("log_format", &self.log_format)
            .field("http_limits", &self.http_limits)
            .field("http_drain", &self.http_drain)
            .finish()
    }
}

/// Minimum wake token length below which a warning is logged.
const WEAK_TOKEN_LEN: usize = 16;

impl Settings {
    /// Reads the job configuration (defaults, `file`, environment) and the binary's variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(path) = file {
            if path.is_dir() {
                bail!(
                    "configuration file {} is a directory; --config (IDLE_SCALER_CONFIG) takes a TOML file",
                    path.display()
                );
            }
            if !path.is_file() {
                bail!("configuration file {} does not exist", path.display());
            }
        }
        let figment = Config::figment(file);
        let known: Vec<&'static str> = idle_scaler_prometheus::KEYS
            .iter()
            .chain(idle_scaler_waker::config::KEYS)
            .copied()
            .collect();
        let (job, warnings) = Config::extract_with(figment.clone(), &known)?;
        let waker = WakerConfig::extract(figment.clone())?;
        let prometheus = PrometheusConfig::extract(figment, &job)?;
        let mut warnings: Vec<String> = warnings.into_iter().map(|w| w.0).collect();

        let database_url = non_empty_env("DATABASE_URL")?;
        if let Some(url) = &database_url {
            check_database_scheme(url)?;
        }
        let listen_addr = match non_empty_env("IDLE_SCALER_LISTEN_ADDR")? {
            None => SocketAddr::from(([0, 0, 0, 0], 9090)),
            Some(v) => v.parse().with_context(|| {
                format!(
                    "invalid IDLE_SCALER_LISTEN_ADDR = {v:?}: expected host:port, like 0.0.0.0:9090"
                )
            })?,
        };
        let waker_listen_addr = optional_addr("IDLE_SCALER_WAKER_LISTEN_ADDR", 8080)?;
        let probe_listen_addr = optional_addr("IDLE_SCALER_PROBE_LISTEN_ADDR", 9091)?;
        let parking_listen_addr =
            parking::listen_addr(non_empty_env("IDLE_SCALER_PARKING_LISTEN_ADDR")?.as_deref())?;
        let local_addresses = parking::local_addresses(
            non_empty_env("IDLE_SCALER_ALLOW_LOOPBACK_ADDRESSES")?.as_deref(),
        )?;
        let waker_addresses = parking::waker_address_source(
            non_empty_env("IDLE_SCALER_WAKER_ADDRESSES")?.as_deref(),
            non_empty_env("IDLE_SCALER_WAKER_SERVICE")?.as_deref(),
            non_empty_env("POD_NAMESPACE")?.as_deref(),
            local_addresses,
        )?;
        let route_index =
            parking::route_index(non_empty_env("IDLE_SCALER_ROUTE_INDEX")?.as_deref())?;
        let pod_ip = match non_empty_env("POD_IP")? {
            None => None,
            Some(v) => Some(v.trim().parse::<IpAddr>().with_context(|| {
                format!("invalid POD_IP = {v:?}: expected an IP address (status.podIP)")
            })?),
        };
        // Only an empty value means unset: a blank or padded one is a mistake.
        let wake_token = match std::env::var("IDLE_SCALER_WAKE_TOKEN") {
            Ok(v) if v.is_empty() => None,
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("IDLE_SCALER_WAKE_TOKEN is not valid UTF-8")
            }
        };
        if let Some(token) = &wake_token
            && token.trim() != token
        {
            // Said without the token: a trailing newline from `echo` or a secret file would
            // otherwise make every request a 401 while `config` says the endpoint is on.
            bail!(
                "invalid IDLE_SCALER_WAKE_TOKEN: it has surrounding whitespace (a space or a newline); remove it"
            );
        }
        if wake_token
            .as_ref()
            .is_some_and(|t| t.len() < WEAK_TOKEN_LEN)
        {
            warnings.push(format!(
                "IDLE_SCALER_WAKE_TOKEN is shorter than {WEAK_TOKEN_LEN} characters; use a long random token"
            ));
        }
        let log_format = match non_empty_env("IDLE_SCALER_LOG_FORMAT")?.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                bail!("invalid IDLE_SCALER_LOG_FORMAT = {other:?}: expected text or json")
            }
        };
        let defaults = Limits::default();
        let max_connections = env_int(
            "IDLE_SCALER_HTTP_MAX_CONNECTIONS",
            defaults.max_connections,
            1..=65_536,
        )?;
        let http_limits = Limits {
            header_read_timeout: Duration::from_secs(env_int(
                "IDLE_SCALER_HTTP_HEADER_READ_TIMEOUT_SECONDS",
                defaults.header_read_timeout.as_secs(),
                1..=300,
            )?),
            idle_timeout: Duration::from_secs(env_int(
                "IDLE_SCALER_HTTP_IDLE_TIMEOUT_SECONDS",
                defaults.idle_timeout.as_secs(),
                1..=3600,
            )?),
            max_connections,
            // As many as the cap by default: a burst twice the cap is queued, not dropped.
            listen_backlog: env_int(
                "IDLE_SCALER_HTTP_LISTEN_BACKLOG",
                u32::try_from(max_connections).unwrap_or(u32::MAX),
                1..=65_535,
            )?,
        };
        if let Some(max) = somaxconn()
            && max < http_limits.listen_backlog
        {
            warnings.push(format!(
                "the listen backlog is {} but the kernel caps it at net.core.somaxconn = {max}; \
                 raise the sysctl or lower IDLE_SCALER_HTTP_LISTEN_BACKLOG",
                http_limits.listen_backlog
            ));
        }
        let http_drain = Duration::from_secs(env_int(
            "IDLE_SCALER_HTTP_DRAIN_SECONDS",
            DRAIN_SECONDS,
            1..=SHUTDOWN_GRACE_SECONDS - 1,
        )?);
        Ok(Self {
            job,
            prometheus,
            database_url,
            listen_addr,
            waker,
            waker_listen_addr,
            probe_listen_addr,
            parking_listen_addr,
            waker_addresses,
            route_index,
            local_addresses,
            pod_ip,
            wake_token,
            log_format,
            http_limits,
            http_drain,
            warnings,
        })
    }

    /// `DATABASE_URL`, or an error saying the command needs it.
    pub fn database_url(&self) -> anyhow::Result<&str> {
        self.database_url
            .as_deref()
            .context("DATABASE_URL is not set; this command needs the database (postgres://user@host:5432/db)")
    }

    /// The effective configuration with secrets redacted, for `idle-scaler config`.
    pub fn redacted(&self) -> anyhow::Result<serde_json::Value> {
        // One `job` object as before the keys moved to the Prometheus crate.
        let mut job = serde_json::to_value(&self.job)?;
        if let (Some(job), serde_json::Value::Object(prometheus)) = (
            job.as_object_mut(),
            serde_json::to_value(self.prometheus_redacted())?,
        ) {
            job.extend(prometheus);
        }
        // The waker's keys share the job's sources and prefix, so they print beside them.
        if let (Some(job), serde_json::Value::Object(waker)) =
            (job.as_object_mut(), serde_json::to_value(&self.waker)?)
        {
            job.extend(waker);
        }
        Ok(serde_json::json!({
            "job": job,
            "database_url": self.database_url.as_deref().map(redact_url),
            "listen_addr": self.listen_addr.to_string(),
            "waker_listen_addr": self.waker_listen_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            "probe_listen_addr": self.probe_listen_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            "parking_listen_addr": self.parking_listen_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            "waker_addresses": self.waker_addresses.to_string(),
            "route_index": if self.route_index { "on" } else { "off" },
            "allow_loopback_addresses": self.local_addresses == LocalAddresses::Allow,
            "pod_ip": self.pod_ip.map(|ip| ip.to_string()),
            "wake_token": self.wake_token.as_ref().map(|_| "<redacted>"),
            "wake_endpoint": if self.wake_token.is_some() { "enabled" } else { "disabled (IDLE_SCALER_WAKE_TOKEN unset)" },
            "log_format": self.log_format,
            "http_header_read_timeout_seconds": self.http_limits.header_read_timeout.as_secs(),
            "http_idle_timeout_seconds": self.http_limits.idle_timeout.as_secs(),
            "http_max_connections": self.http_limits.max_connections,
            "http_listen_backlog": self.http_limits.listen_backlog,
            "http_drain_seconds": self.http_drain.as_secs(),
        }))
    }

    /// The Prometheus keys as they may be shown: the crate's own rule (a URL password and
    /// header values that may be credentials hidden; the credentials themselves are files).
    fn prometheus_redacted(&self) -> PrometheusConfig {
        self.prometheus.redacted()
    }
}

/// How long the daemon waits after SIGTERM for its work in flight before it exits anyway.
pub const SHUTDOWN_GRACE_SECONDS: u64 = 25;
/// Default `IDLE_SCALER_HTTP_DRAIN_SECONDS`: held requests are answered with 5 s of the grace
/// left, enough for the answers to go out.
pub(crate) const DRAIN_SECONDS: u64 = 20;

/// `name` as host:port, `off` (None), or `0.0.0.0:<default_port>` when unset.
fn optional_addr(name: &str, default_port: u16) -> anyhow::Result<Option<SocketAddr>> {
    match non_empty_env(name)?.as_deref() {
        None => Ok(Some(SocketAddr::from(([0, 0, 0, 0], default_port)))),
        Some("off") => Ok(None),
        Some(v) => Ok(Some(v.parse().with_context(|| {
            format!(
                "invalid {name} = {v:?}: expected host:port, like 0.0.0.0:{default_port}, or off"
            )
        })?)),
    }
}

/// The kernel's cap on listen backlogs, where it can be read (Linux).
fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The schemes `DATABASE_URL` may have.
const DATABASE_SCHEMES: [&str; 2] = ["postgres", "postgresql"];

fn check_database_scheme(url: &str) -> anyhow::Result<()> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme {
        Some(s) if DATABASE_SCHEMES.contains(&s.as_str()) => Ok(()),
        // The value is shown redacted: it may hold a password.
        _ => bail!(
            "invalid DATABASE_URL = {}: expected a postgres:// or postgresql:// URL",
            redact_url(url)
        ),
    }
}

/// An integer variable in `range`, or `default` when unset.
fn env_int<T>(name: &str, default: T, range: std::ops::RangeInclusive<T>) -> anyhow::Result<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(v) = non_empty_env(name)? else {
        return Ok(default);
    };
    match v.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => bail!(
            "invalid {name} = {v:?}: expected an integer from {} to {}",
            range.start(),
            range.end()
        ),
    }
}

fn non_empty_env(name: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

#[cfg(test)]
mod tests;
