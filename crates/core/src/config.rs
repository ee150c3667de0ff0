//! Job configuration: defaults, then an optional TOML file, then the environment.
//!
//! Every key's rule, default and allowed text is one row of [`SETTINGS`]; the loaders and
//! [`Config::validate`] both read it. An invalid value is an error naming the environment
//! variable, the key, the value given and what is allowed. Adapter crates read
//! their own keys from the same figment with a [`Reader`] and name them to
//! [`Config::extract_with`] so they are not reported as unknown.

mod clusters;
mod load;
mod rules;

use std::collections::BTreeMap;

use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};

pub use clusters::ClusterConfig;
pub use load::Reader;
pub use rules::{Rule, SETTINGS, Setting};

/// Prefix of every job environment variable.
pub const ENV_PREFIX: &str = "DEPLOY_SCALE_TO_ZERO_";

/// Idle windows shorter than this are raised to it: a shorter one would sleep apps between
/// a deploy and their first real use.
pub const IDLE_MINUTES_FLOOR: u32 = 5;

/// Longest idle window (one year): the cutoff `now - idle_window` must stay a timestamp
/// PostgreSQL and chrono can represent, and a longer window means "never sleep", which is
/// what the flag or `always_on` say.
pub const IDLE_MINUTES_MAX: u32 = 525_600;

/// The job configuration: the keys the tick and wake protocols read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Master switch; off means no I/O at all.
    pub enabled: bool,
    /// Minutes without activity before an app may be slept (floor 5).
    pub idle_minutes: u32,
    /// Seconds between ticks.
    pub interval_seconds: u64,
    /// Most apps slept per tick.
    pub max_per_tick: u32,
    /// Apps transitioned at once.
    pub concurrency: usize,
    /// Report what would be slept, write nothing.
    pub dry_run: bool,
    /// Replicas a wake restores when none were recorded.
    pub default_wake_replicas: i32,
    /// Namespaces never touched.
    pub protected_namespaces: Vec<String>,
    /// Scale failures in a row after which a tick stops early (blast radius).
    pub max_consecutive_failures: u32,
    /// Timeout of one Kubernetes request, in seconds.
    pub request_timeout_seconds: u64,
    /// Minutes within which an `asleep` row whose app runs is found and set `awake`.
    pub reconcile_minutes: u32,
    /// External scale-ups of a slept app within 24 h after which it is not slept again
    /// (`fights_back`) until a wake or new activity.
    pub flap_limit: u32,
    /// Where the tick learns about real traffic (`none`: the activity stamp only).
    pub activity_source: ActivitySourceKind,
    /// What a candidate whose traffic is unknown (source failed, no data) gets.
    pub activity_unknown: UnknownActivity,
    /// Whether this instance serves the default cluster (ids `k8s:<namespace>/<deployment>`).
    /// Absent from a serialized configuration of an earlier version: served, as then.
    #[serde(default = "serves_the_default_cluster")]
    pub default_cluster: bool,
    /// The named clusters this instance serves (ids `k8s@<name>:<namespace>/<deployment>`),
    /// each with how to reach it.
    #[serde(default)]
    pub clusters: BTreeMap<crate::ClusterName, ClusterConfig>,
    /// Whether a slept app's Services are pointed at the waker. Absent from a serialized
    /// configuration of an earlier version: off, as then.
    #[serde(default)]
    pub parking: Parking,
    /// How long an idle app stays up: the fixed window, or learned per app. Absent from a
    /// serialized configuration of an earlier version: fixed, as then.
    #[serde(default)]
    pub policy: SleepPolicy,
    /// Under the adaptive policy, how long before an app's expected request it is woken
    /// (0: never pre-warmed).
    #[serde(default = "default_prewarm_minutes")]
    pub prewarm_minutes: u32,
    /// Under the adaptive policy, the longest a prediction keeps an app up (past its last
    /// activity, or past a pre-warm).
    #[serde(default = "default_max_keep_minutes")]
    pub max_keep_minutes: u32,
    /// The IANA time zone the adaptive policy learns times of day and week in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
}

/// How long an idle app stays up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SleepPolicy {
    /// Every app gets the idle window.
    #[default]
    Fixed,
    /// Each app's own rhythm keeps it up past the window, sleeps it at the floor, or wakes it
    /// before its next expected request; the window where its history says nothing.
    Adaptive,
}

fn default_prewarm_minutes() -> u32 {
    5
}

fn default_max_keep_minutes() -> u32 {
    120
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

/// Whether slept apps are parked: their Services pointed at the waker's parking listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parking {
    /// Not parked; whatever is still parked is unparked, a bounded number of apps per tick.
    #[default]
    Off,
    /// Parked with EndpointSlices that point the app's Services at the waker.
    EndpointSlices,
}

/// Where the tick learns about real traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivitySourceKind {
    /// No traffic signal: idleness is the database's `last_activity_at` only.
    None,
    /// Prometheus metrics (the ingress controller's request counters).
    Prometheus,
}

/// What a candidate whose traffic is unknown gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownActivity {
    /// Not slept (skip reason `activity_unknown`): a source outage never sleeps an app.
    KeepAwake,
    /// Judged by `last_activity_at` alone, as with no source.
    Sleep,
}

fn serves_the_default_cluster() -> bool {
    true
}

/// An invalid configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value outside what is allowed.
    #[error("invalid {env} ({key}) = {value} from {origin}: expected {allowed}")]
    Invalid {
        /// Configuration key (TOML).
        key: &'static str,
        /// Environment variable.
        env: String,
        /// The value given, as given.
        value: String,
        /// Where the value came from: `environment variable X`, `key k in FILE`, ...
        origin: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// A source could not be read (for example a TOML syntax error).
    #[error("reading configuration: {0}")]
    Source(String),
}

/// Something worth a WARN that does not stop startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning(pub String);

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The standalone environment variable of `key`.
fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_uppercase())
}

impl Config {
    /// Defaults, then `file` (TOML, if given; a missing file is an error), then the environment.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            fig = fig.merge(Toml::file_exact(path));
        }
        fig.merge(Env::prefixed(ENV_PREFIX))
    }

    /// Loads from the standard sources, logging warnings.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, &[])
    }

    /// [`Config::load`] for a host that also reads the `also_known` keys (an adapter's) from
    /// the same sources: those are not warned about as unknown.
    pub fn load_with(
        file: Option<&Path>,
        also_known: &[&'static str],
    ) -> Result<Self, ConfigError> {
        load::refuse_values_figment_panics_on(ENV_PREFIX, also_known)?;
        Self::from_provider_with(Self::figment(file), also_known)
    }

    /// Extracts from any provider (a host's own figment), logging warnings.
    pub fn from_provider(provider: impl Provider) -> Result<Self, ConfigError> {
        Self::from_provider_with(provider, &[])
    }

    /// [`Config::from_provider`], also accepting the `also_known` keys.
    pub fn from_provider_with(
        provider: impl Provider,
        also_known: &[&'static str],
    ) -> Result<Self, ConfigError> {
        let (config, warnings) = Self::extract_with(provider, also_known)?;
        for w in &warnings {
            tracing::warn!(warning = %w, "configuration adjusted");
        }
        Ok(config)
    }

    /// Extracts and validates, returning the warnings instead of logging them.
    pub fn extract(provider: impl Provider) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        Self::extract_with(provider, &[])
    }

    /// The idle window.
    pub fn idle_window(&self) -> chrono::Duration {
        chrono::Duration::minutes(self.idle_minutes.into())
    }

    /// Time between ticks.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_seconds)
    }

    /// Timeout of one Kubernetes request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    /// The drift period: every `asleep` row is checked once within it.
    pub fn reconcile_period(&self) -> chrono::Duration {
        chrono::Duration::minutes(self.reconcile_minutes.into())
    }

    /// The time zone of `timezone` (UTC if a configuration built in code names none known:
    /// [`Config::validate`] refuses that).
    pub fn time_zone(&self) -> chrono_tz::Tz {
        chrono_tz::Tz::from_str_insensitive(&self.timezone).unwrap_or(chrono_tz::Tz::UTC)
    }

    /// Whether the job must never touch `namespace`.
    pub fn is_protected(&self, namespace: &str) -> bool {
        self.protected_namespaces.iter().any(|n| n == namespace)
    }
}

// Loading from the environment, files and host figments, and each rule's error: new tests go here.
#[cfg(test)]
mod tests;
