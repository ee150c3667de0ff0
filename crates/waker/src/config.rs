//! The waker's configuration keys (`waker_*`, environment `DEPLOY_SCALE_TO_ZERO_WAKER_*`),
//! read from the job's figment.

use std::path::Path;
use std::time::Duration;

use figment::Provider;
use http::HeaderName;
use idle_scaler_core::config::Reader;
use idle_scaler_core::{ClusterName, Config, ConfigError};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The keys [`WakerConfig`] reads; pass them to `Config::load_with` so the job does not warn
/// about them as unknown.
pub const KEYS: &[&str] = &[
    "waker_timeout_seconds",
    "waker_target_header",
    "waker_ignore_user_agents",
    "waker_ignore_paths",
    "waker_cluster",
    "waker_max_wakes_per_minute",
    "waker_page_after_ms",
    "cluster_domain",
    "waker_gateway_namespaces",
    "waker_trusted_cidrs",
];

/// User-Agent substrings (case-insensitive) that never wake an app: uptime checkers,
/// crawlers, link previews and the kubelet's probes.
pub const DEFAULT_IGNORE_USER_AGENTS: &str = "UptimeRobot,Pingdom,StatusCake,Site24x7,\
Better Uptime,Uptime-Kuma,Freshping,Datadog/Synthetics,NewRelicPinger,ELB-HealthChecker,\
GoogleHC,kube-probe,Googlebot,bingbot,Baiduspider,YandexBot,DuckDuckBot,Slurp,AhrefsBot,\
SemrushBot,MJ12bot,PetalBot,facebookexternalhit,Twitterbot,Slackbot,Discordbot";

/// Path prefixes that never wake an app.
pub const DEFAULT_IGNORE_PATHS: &str = "/robots.txt,/favicon.ico,/.well-known/";

/// The waker's keys, as the job configuration names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakerConfig {
    /// How long a request is held for the app to become ready, in seconds (1..=600).
    pub waker_timeout_seconds: u64,
    /// The header a proxy names the app in (`<namespace>/<name>`).
    pub waker_target_header: String,
    /// Comma list of User-Agent substrings that answer 503 without waking.
    pub waker_ignore_user_agents: String,
    /// Comma list of path prefixes that answer 503 without waking.
    pub waker_ignore_paths: String,
    /// The cluster whose proxy sends this waker ingress-nginx's headers (`X-Namespace`,
    /// `X-Service-Name`) and bare `<namespace>/<name>` targets; empty: the default cluster.
    /// A target header may name another cluster itself: `<cluster>:<namespace>/<name>`.
    #[serde(default)]
    pub waker_cluster: String,
    /// Wakes a namespace may start per minute (1..=100000); beyond it a request that would
    /// start a wake gets the generic 503. Joining a wake in flight is not a new wake.
    #[serde(default = "default_max_wakes_per_minute")]
    pub waker_max_wakes_per_minute: usize,
    /// Parking listener: how long a browser is held for a ready app before it gets the
    /// starting page, in milliseconds (0..=60000).
    #[serde(default = "default_page_after_ms")]
    pub waker_page_after_ms: u64,
    /// Parking listener: the cluster DNS suffix of Service names in `Host`
    /// (`<svc>.<ns>.svc.<cluster_domain>`).
    #[serde(default = "default_cluster_domain")]
    pub cluster_domain: String,
    /// Parking listener: comma list of namespaces whose pods are trusted gateways (they may
    /// call any parked Service, and their `X-Forwarded-*` headers are kept).
    #[serde(default)]
    pub waker_gateway_namespaces: String,
    /// Parking listener: comma list of CIDRs whose sources are trusted like gateways (proxies
    /// outside the pod network, test rigs).
    #[serde(default)]
    pub waker_trusted_cidrs: String,
}

fn default_max_wakes_per_minute() -> usize {
    30
}

fn default_page_after_ms() -> u64 {
    1500
}

fn default_cluster_domain() -> String {
    "cluster.local".to_owned()
}

impl Default for WakerConfig {
    fn default() -> Self {
        Self {
            waker_timeout_seconds: 30,
            waker_target_header: "X-Idle-Scaler-Target".to_owned(),
            waker_ignore_user_agents: DEFAULT_IGNORE_USER_AGENTS.to_owned(),
            waker_ignore_paths: DEFAULT_IGNORE_PATHS.to_owned(),
            waker_cluster: String::new(),
            waker_max_wakes_per_minute: default_max_wakes_per_minute(),
            waker_page_after_ms: default_page_after_ms(),
            cluster_domain: default_cluster_domain(),
            waker_gateway_namespaces: String::new(),
            waker_trusted_cidrs: String::new(),
        }
    }
}

impl WakerConfig {
    /// Defaults, then `file`, then the environment: the sources of [`Config::figment`].
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::extract(Config::figment(file))
    }

    /// Extracts and validates from any provider (the job's figment or a host's).
    pub fn extract(provider: impl Provider) -> Result<Self, ConfigError> {
        let read = Reader::new(&Self::default(), provider);
        let header = read.string("waker_target_header")?;
        if HeaderName::from_bytes(header.as_bytes()).is_err() {
            return Err(read.invalid(
                "waker_target_header",
                "an HTTP header name (letters, digits and -)",
            ));
        }
        let cluster = read.string("waker_cluster")?;
        if !cluster.is_empty() && ClusterName::new(&cluster).is_err() {
            return Err(read.invalid(
                "waker_cluster",
                "a cluster name (a DNS-1123 label other than default), or empty for the \
                 default cluster",
            ));
        }
        let cidrs = read.string("waker_trusted_cidrs")?;
        if list(&cidrs).any(|c| c.parse::<IpNet>().is_err()) {
            return Err(read.invalid(
                "waker_trusted_cidrs",
                "a comma list of CIDRs (10.0.0.0/8, fd00::/8)",
            ));
        }
        let domain = read.string("cluster_domain")?;
        let domain = domain.trim_matches('.').to_ascii_lowercase();
        if domain.is_empty() || !domain.split('.').all(is_dns_label) {
            return Err(read.invalid(
                "cluster_domain",
                "a DNS name of lowercase labels (cluster.local)",
            ));
        }
        Ok(Self {
            waker_cluster: cluster,
            waker_timeout_seconds: read.int(
                "waker_timeout_seconds",
                1,
                600,
                "an integer from 1 to 600 (seconds)",
            )?,
            waker_target_header: header,
            waker_ignore_user_agents: read.string("waker_ignore_user_agents")?,
            waker_ignore_paths: read.string("waker_ignore_paths")?,
            waker_max_wakes_per_minute: read.int(
                "waker_max_wakes_per_minute",
                1,
                100_000,
                "an integer from 1 to 100000 (wakes per namespace and minute)",
            )?,
            waker_page_after_ms: read.int(
                "waker_page_after_ms",
                0,
                60_000,
                "an integer from 0 to 60000 (milliseconds)",
            )?,
            cluster_domain: domain,
            waker_gateway_namespaces: read.string("waker_gateway_namespaces")?,
            waker_trusted_cidrs: cidrs,
        })
    }

    /// The cluster of bare targets (None: the default cluster). Checked when loaded; a
    /// name built in code that is not a cluster name is taken as the default cluster.
    pub fn cluster(&self) -> Option<ClusterName> {
        Some(self.waker_cluster.trim())
            .filter(|c| !c.is_empty())
            .and_then(|c| ClusterName::new(c).ok())
    }

    /// How long a request is held.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.waker_timeout_seconds)
    }

    /// The User-Agent substrings, lower-cased, empty entries dropped.
    pub fn ignore_user_agents(&self) -> Vec<String> {
        list(&self.waker_ignore_user_agents)
            .map(|s| s.to_ascii_lowercase())
            .collect()
    }

    /// The ignored path prefixes.
    pub fn ignore_paths(&self) -> Vec<String> {
        list(&self.waker_ignore_paths).map(str::to_owned).collect()
    }

    /// How long the parking listener holds a browser before the starting page.
    pub fn page_after(&self) -> Duration {
        Duration::from_millis(self.waker_page_after_ms)
    }

    /// The namespaces whose pods are trusted gateways.
    pub fn gateway_namespaces(&self) -> Vec<String> {
        list(&self.waker_gateway_namespaces)
            .map(str::to_owned)
            .collect()
    }

    /// The CIDRs trusted like gateways. Checked when loaded; an entry built in code that is
    /// no CIDR trusts nothing.
    pub fn trusted_cidrs(&self) -> Vec<IpNet> {
        list(&self.waker_trusted_cidrs)
            .filter_map(|c| c.parse().ok())
            .collect()
    }
}

/// A DNS-1123 label: lowercase letters, digits and inner `-`, 1 to 63 characters.
fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|s| !s.is_empty())
}

// figment's Jail closures return its large Error by design.
#[allow(clippy::result_large_err)]
#[cfg(test)]
mod tests;
