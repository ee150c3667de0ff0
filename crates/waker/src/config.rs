//! The waker's configuration keys (`waker_*`, environment `DEPLOY_SCALE_TO_ZERO_WAKER_*`),
//! read from the job's figment.

use std::path::Path;
use std::time::Duration;

use figment::Provider;
use http::HeaderName;
use idle_scaler_core::config::Reader;
use idle_scaler_core::{ClusterName, Config, ConfigError};
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
}

fn default_max_wakes_per_minute() -> usize {
    30
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
}

fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|s| !s.is_empty())
}

// figment's Jail closures return its large Error by design.
#[allow(clippy::result_large_err)]
#[cfg(test)]
mod tests;
