//! Job configuration: defaults, then an optional TOML file, then the environment.
//!
//! Every value is validated after extraction; an invalid one is an error naming the
//! environment variable, the key, the value given and what is allowed.

use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Num, Value};
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};

/// Prefix of every job environment variable.
pub const ENV_PREFIX: &str = "DEPLOY_SCALE_TO_ZERO_";

/// Idle windows shorter than this are raised to it: a shorter one would sleep apps between
/// a deploy and their first real use.
pub const IDLE_MINUTES_FLOOR: u32 = 5;

/// The job configuration (DESIGN.md section 5).
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
    /// Where the tick learns about real traffic (`none`: the activity stamp only).
    pub activity_source: ActivitySourceKind,
    /// What a candidate whose traffic is unknown (source failed, no data) gets.
    pub activity_unknown: UnknownActivity,
    /// Base URL of the Prometheus HTTP API (`http://host:port[/prefix]`).
    pub prometheus_url: String,
    /// PromQL template; see [`PROMETHEUS_QUERY_PLACEHOLDERS`] and [`DEFAULT_PROMETHEUS_QUERY`].
    pub prometheus_query: String,
    /// Result label carrying the namespace.
    pub prometheus_namespace_label: String,
    /// Result label carrying the name the Deployment is matched by (the Ingress name by default).
    pub prometheus_name_label: String,
    /// Timeout of one Prometheus query, in seconds.
    pub prometheus_timeout_seconds: u64,
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

/// The placeholders a Prometheus query template may use. `{namespaces}` and `{names}` become
/// regex alternations of the batch's namespaces and names (escaped; PromQL anchors `=~`),
/// `{window}` the lookback (the idle window) as a PromQL duration such as `1800s`.
pub const PROMETHEUS_QUERY_PLACEHOLDERS: [&str; 3] = ["namespaces", "names", "window"];

/// The default template, for ingress-nginx. Per `(namespace, ingress)`: the time of the latest
/// 30 s step at which `nginx_ingress_controller_requests` grew over the preceding 2 minutes,
/// within the window; `0` when the ingress has current series but no such growth (known quiet);
/// no sample when it has no current series (unknown). Requests to Ingress rules whose *path*
/// is `/healthz`, `/readyz` or `/livez` do not count (the label is the rule's path, not the
/// request URI; kubelet probes never pass through the ingress at all).
pub const DEFAULT_PROMETHEUS_QUERY: &str = concat!(
    "max by (namespace, ingress) (max_over_time((timestamp(sum by (namespace, ingress) (",
    "increase(nginx_ingress_controller_requests{namespace=~\"{namespaces}\", ",
    "ingress=~\"{names}\", path!~\"/healthz|/readyz|/livez\"}[2m])) > 0))[{window}:30s])) ",
    "or max by (namespace, ingress) (0 * nginx_ingress_controller_requests",
    "{namespace=~\"{namespaces}\", ingress=~\"{names}\"})"
);

impl Default for Config {
    fn default() -> Self {
        Self {
            enabled: false,
            idle_minutes: 30,
            interval_seconds: 120,
            max_per_tick: 50,
            concurrency: 4,
            dry_run: false,
            default_wake_replicas: 1,
            protected_namespaces: ["kube-system", "kube-public", "kube-node-lease"]
                .map(String::from)
                .to_vec(),
            max_consecutive_failures: 5,
            request_timeout_seconds: 10,
            activity_source: ActivitySourceKind::None,
            activity_unknown: UnknownActivity::KeepAwake,
            prometheus_url: String::new(),
            prometheus_query: DEFAULT_PROMETHEUS_QUERY.to_owned(),
            prometheus_namespace_label: "namespace".to_owned(),
            prometheus_name_label: "ingress".to_owned(),
            prometheus_timeout_seconds: 5,
        }
    }
}

/// An invalid configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value outside what is allowed.
    #[error("invalid {env} ({key}) = {value}: expected {allowed}")]
    Invalid {
        /// Configuration key (TOML).
        key: &'static str,
        /// Environment variable.
        env: String,
        /// The value given, as given.
        value: String,
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

const KEYS: [&str; 17] = [
    "enabled",
    "idle_minutes",
    "interval_seconds",
    "max_per_tick",
    "concurrency",
    "dry_run",
    "default_wake_replicas",
    "protected_namespaces",
    "max_consecutive_failures",
    "request_timeout_seconds",
    "activity_source",
    "activity_unknown",
    "prometheus_url",
    "prometheus_query",
    "prometheus_namespace_label",
    "prometheus_name_label",
    "prometheus_timeout_seconds",
];

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
        refuse_values_figment_panics_on()?;
        Self::from_provider(Self::figment(file))
    }

    /// Extracts from any provider (a host's own figment), logging warnings.
    pub fn from_provider(provider: impl Provider) -> Result<Self, ConfigError> {
        let (config, warnings) = Self::extract(provider)?;
        for w in &warnings {
            tracing::warn!(warning = %w, "configuration adjusted");
        }
        Ok(config)
    }

    /// Extracts and validates, returning the warnings instead of logging them.
    pub fn extract(provider: impl Provider) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        // Defaults first so a host figment that sets only some keys still extracts.
        let fig = Figment::from(Serialized::defaults(Config::default())).merge(provider);
        let mut warnings = Vec::new();

        if let Ok(dict) = fig.data() {
            for (_, keys) in dict {
                for key in keys.keys() {
                    if !KEYS.contains(&key.as_str()) {
                        warnings.push(ConfigWarning(format!(
                            "unknown configuration key {key:?} ({ENV_PREFIX}{}) ignored",
                            key.to_uppercase()
                        )));
                    }
                }
            }
        }

        let mut idle_minutes = int(
            &fig,
            "idle_minutes",
            0,
            u32::MAX.into(),
            "a whole number of minutes",
        )?;
        if idle_minutes < IDLE_MINUTES_FLOOR.into() {
            warnings.push(ConfigWarning(format!(
                "{ENV_PREFIX}IDLE_MINUTES = {idle_minutes} is below the floor; using {IDLE_MINUTES_FLOOR}"
            )));
            idle_minutes = IDLE_MINUTES_FLOOR.into();
        }

        let config = Self {
            enabled: boolean(&fig, "enabled")?,
            idle_minutes: narrow(idle_minutes),
            interval_seconds: narrow(int(
                &fig,
                "interval_seconds",
                10,
                86_400,
                "an integer from 10 to 86400 (seconds)",
            )?),
            max_per_tick: narrow(int(
                &fig,
                "max_per_tick",
                1,
                100_000,
                "an integer from 1 to 100000",
            )?),
            concurrency: narrow(int(&fig, "concurrency", 1, 64, "an integer from 1 to 64")?),
            dry_run: boolean(&fig, "dry_run")?,
            default_wake_replicas: narrow(int(
                &fig,
                "default_wake_replicas",
                1,
                10_000,
                "an integer from 1 to 10000",
            )?),
            protected_namespaces: list(&fig, "protected_namespaces")?,
            max_consecutive_failures: narrow(int(
                &fig,
                "max_consecutive_failures",
                1,
                10_000,
                "an integer from 1 to 10000",
            )?),
            request_timeout_seconds: narrow(int(
                &fig,
                "request_timeout_seconds",
                1,
                300,
                "an integer from 1 to 300 (seconds)",
            )?),
            activity_source: choice(
                &fig,
                "activity_source",
                &[
                    ("none", ActivitySourceKind::None),
                    ("prometheus", ActivitySourceKind::Prometheus),
                ],
                "none or prometheus",
            )?,
            activity_unknown: choice(
                &fig,
                "activity_unknown",
                &[
                    ("keep_awake", UnknownActivity::KeepAwake),
                    ("sleep", UnknownActivity::Sleep),
                ],
                "keep_awake or sleep",
            )?,
            prometheus_url: string(&fig, "prometheus_url")?,
            prometheus_query: string(&fig, "prometheus_query")?,
            prometheus_namespace_label: label_name(&fig, "prometheus_namespace_label")?,
            prometheus_name_label: label_name(&fig, "prometheus_name_label")?,
            prometheus_timeout_seconds: narrow(int(
                &fig,
                "prometheus_timeout_seconds",
                1,
                60,
                "an integer from 1 to 60 (seconds)",
            )?),
        };
        config.check_prometheus(&fig)?;
        Ok((config, warnings))
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

    /// Whether the job must never touch `namespace`.
    pub fn is_protected(&self, namespace: &str) -> bool {
        self.protected_namespaces.iter().any(|n| n == namespace)
    }

    /// Timeout of one Prometheus query.
    pub fn prometheus_timeout(&self) -> Duration {
        Duration::from_secs(self.prometheus_timeout_seconds)
    }

    /// The URL and template matter only with `activity_source = prometheus`, and are checked
    /// then, so a host that never uses Prometheus is not held to them.
    fn check_prometheus(&self, fig: &Figment) -> Result<(), ConfigError> {
        if self.activity_source != ActivitySourceKind::Prometheus {
            return Ok(());
        }
        let url = self.prometheus_url.trim();
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
        // Plain HTTP only (the in-cluster Service); credentials in the URL would reach the
        // `config` output and logs, so they are refused rather than redacted.
        if authority
            .is_none_or(|a| a.is_empty() || a.contains('@') || a.contains(char::is_whitespace))
        {
            return Err(invalid(
                "prometheus_url",
                &find(fig, "prometheus_url")?,
                "an http:// URL with a host and no credentials, e.g. http://prometheus.monitoring:9090 \
                 (required with DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE=prometheus; https is not supported)",
            ));
        }
        let query = self.prometheus_query.trim();
        let unknown = placeholders(query)
            .find(|p| !PROMETHEUS_QUERY_PLACEHOLDERS.contains(p))
            .map(str::to_owned);
        if query.is_empty() || unknown.is_some() {
            return Err(invalid(
                "prometheus_query",
                &find(fig, "prometheus_query")?,
                "a PromQL template using only the placeholders {namespaces}, {names} and {window}",
            ));
        }
        Ok(())
    }
}

/// The `{identifier}` placeholders of a query template. PromQL's own braces always hold a
/// matcher (`{a="b"}`) or nothing, never a bare identifier, so they are not mistaken for one.
pub fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template.split('{').skip(1).filter_map(|rest| {
        let (inner, _) = rest.split_once('}')?;
        (!inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then_some(inner)
    })
}

/// The range checks above guarantee the value fits.
fn narrow<T: TryFrom<i128>>(v: i128) -> T {
    T::try_from(v).unwrap_or_else(|_| unreachable!("value validated to fit"))
}

/// figment 0.10 panics on a quoted string with a non-ASCII character before a backslash (its
/// unescaping slices the string at a char index taken as a byte index). Found by the property
/// tests (`tests/config_props.rs`). A typo in a variable must be a startup error naming it,
/// never a panic, so values mixing a quote, a backslash and non-ASCII text are refused before
/// figment sees them (a superset of what panics; none of these settings needs such a value).
fn refuse_values_figment_panics_on() -> Result<(), ConfigError> {
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
            continue;
        };
        let value = value.to_string_lossy();
        if value.contains('"') && value.contains('\\') && !value.is_ascii() {
            let key = KEYS
                .iter()
                .find(|k| env_name(k) == name)
                .copied()
                .unwrap_or("unknown");
            return Err(ConfigError::Invalid {
                key,
                env: name.to_owned(),
                value: value.into_owned(),
                allowed: "a value without a backslash and a quote around non-ASCII text",
            });
        }
    }
    Ok(())
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_uppercase())
}

fn invalid(key: &'static str, value: &Value, allowed: &'static str) -> ConfigError {
    ConfigError::Invalid {
        key,
        env: env_name(key),
        value: render(value),
        allowed,
    }
}

fn render(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{c:?}"),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => match (integral(n), n.to_f64()) {
            (_, Some(f)) => f.to_string(),
            (Some(i), None) => i.to_string(),
            (None, None) => "(a number)".into(),
        },
        Value::Empty(..) => "(empty)".into(),
        Value::Dict(..) => "(a table)".into(),
        Value::Array(..) => "(an array)".into(),
    }
}

fn find(fig: &Figment, key: &'static str) -> Result<Value, ConfigError> {
    fig.find_value(key)
        .map_err(|e| ConfigError::Source(e.to_string()))
}

fn int(
    fig: &Figment,
    key: &'static str,
    min: i128,
    max: i128,
    allowed: &'static str,
) -> Result<i128, ConfigError> {
    let value = find(fig, key)?;
    let parsed = match &value {
        Value::Num(_, n) => integral(n),
        Value::String(_, s) => s.trim().parse::<i128>().ok(),
        _ => None,
    };
    match parsed {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(invalid(key, &value, allowed)),
    }
}

fn integral(n: &Num) -> Option<i128> {
    let n = *n;
    n.to_i128()
        .or_else(|| n.to_u128().and_then(|u| i128::try_from(u).ok()))
        .or_else(|| {
            let f = n.to_f64()?;
            #[allow(clippy::cast_possible_truncation)] // only whole floats within i64 are taken
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i128)
        })
}

fn boolean(fig: &Figment, key: &'static str) -> Result<bool, ConfigError> {
    let value = find(fig, key)?;
    let parsed = match &value {
        Value::Bool(_, b) => Some(*b),
        Value::Num(_, n) => match integral(n) {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| invalid(key, &value, "a boolean: true/false, 1/0, yes/no or on/off"))
}

fn choice<T: Copy>(
    fig: &Figment,
    key: &'static str,
    options: &[(&str, T)],
    allowed: &'static str,
) -> Result<T, ConfigError> {
    let value = find(fig, key)?;
    let given = value.as_str().map(|s| s.trim().to_ascii_lowercase());
    options
        .iter()
        .find(|(name, _)| given.as_deref() == Some(*name))
        .map(|(_, v)| *v)
        .ok_or_else(|| invalid(key, &value, allowed))
}

fn string(fig: &Figment, key: &'static str) -> Result<String, ConfigError> {
    let value = find(fig, key)?;
    match &value {
        Value::String(_, s) => Ok(s.trim().to_owned()),
        Value::Empty(..) => Ok(String::new()),
        _ => Err(invalid(key, &value, "a string")),
    }
}

fn label_name(fig: &Figment, key: &'static str) -> Result<String, ConfigError> {
    const ALLOWED: &str = "a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)";
    let name = string(fig, key)?;
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(invalid(key, &find(fig, key)?, ALLOWED))
    }
}

fn list(fig: &Figment, key: &'static str) -> Result<Vec<String>, ConfigError> {
    const ALLOWED: &str = "a comma-separated list of namespaces (DNS-1123 labels)";
    let value = find(fig, key)?;
    let items: Vec<String> = match &value {
        Value::String(_, s) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        Value::Array(_, vs) => vs
            .iter()
            .map(|v| v.as_str().map(|s| s.trim().to_owned()))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid(key, &value, ALLOWED))?,
        Value::Empty(..) => Vec::new(),
        _ => return Err(invalid(key, &value, ALLOWED)),
    };
    if items
        .iter()
        .any(|ns| crate::Target::parse(&format!("k8s:{ns}/x")).is_err())
    {
        return Err(invalid(key, &value, ALLOWED));
    }
    Ok(items)
}

#[cfg(test)]
// figment::Jail fixes the closure's error type to figment::Error.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load() -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        Config::extract(Config::figment(None))
    }

    #[test]
    fn defaults() {
        Jail::expect_with(|_| {
            let (c, w) = load().unwrap();
            assert_eq!(c, Config::default());
            assert!(!c.enabled);
            assert_eq!(c.idle_minutes, 30);
            assert_eq!(c.interval_seconds, 120);
            assert_eq!(c.max_per_tick, 50);
            assert_eq!(c.concurrency, 4);
            assert_eq!(c.default_wake_replicas, 1);
            assert_eq!(
                c.protected_namespaces,
                ["kube-system", "kube-public", "kube-node-lease"]
            );
            assert!(w.is_empty(), "{w:?}");
            Ok(())
        });
    }

    #[test]
    fn valid_overrides_from_env() {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_ENABLED", "true");
            j.set_env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", "45");
            j.set_env("DEPLOY_SCALE_TO_ZERO_INTERVAL_SECONDS", "30");
            j.set_env("DEPLOY_SCALE_TO_ZERO_MAX_PER_TICK", "7");
            j.set_env("DEPLOY_SCALE_TO_ZERO_CONCURRENCY", "64");
            j.set_env("DEPLOY_SCALE_TO_ZERO_DRY_RUN", "yes");
            j.set_env("DEPLOY_SCALE_TO_ZERO_DEFAULT_WAKE_REPLICAS", "3");
            j.set_env("DEPLOY_SCALE_TO_ZERO_PROTECTED_NAMESPACES", "ops, billing");
            let (c, w) = load().unwrap();
            assert!(c.enabled && c.dry_run);
            assert_eq!(c.idle_minutes, 45);
            assert_eq!(c.interval_seconds, 30);
            assert_eq!(c.max_per_tick, 7);
            assert_eq!(c.concurrency, 64);
            assert_eq!(c.default_wake_replicas, 3);
            assert_eq!(c.protected_namespaces, ["ops", "billing"]);
            assert!(w.is_empty());
            Ok(())
        });
    }

    #[test]
    fn toml_file_then_env_wins() {
        Jail::expect_with(|j| {
            j.create_file(
                "scaler.toml",
                "idle_minutes = 60\nconcurrency = 8\nprotected_namespaces = [\"a\", \"b\"]\n",
            )?;
            j.set_env("DEPLOY_SCALE_TO_ZERO_CONCURRENCY", "2");
            let (c, _) = Config::extract(Config::figment(Some(Path::new("scaler.toml")))).unwrap();
            assert_eq!(c.idle_minutes, 60);
            assert_eq!(c.concurrency, 2);
            assert_eq!(c.protected_namespaces, ["a", "b"]);
            Ok(())
        });
    }

    #[test]
    fn idle_minutes_below_floor_is_raised_with_a_warning() {
        for given in ["0", "1", "4"] {
            Jail::expect_with(|j| {
                j.set_env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", given);
                let (c, w) = load().unwrap();
                assert_eq!(c.idle_minutes, 5);
                assert_eq!(w.len(), 1);
                assert!(
                    w[0].0.contains("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES"),
                    "{w:?}"
                );
                Ok(())
            });
        }
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", "5");
            let (c, w) = load().unwrap();
            assert_eq!((c.idle_minutes, w.len()), (5, 0));
            Ok(())
        });
    }

    #[test]
    fn idle_minutes_not_an_integer_names_the_variable_and_value() {
        for given in ["abc", "1.5", "-3", "30m", "99999999999"] {
            Jail::expect_with(|j| {
                j.set_env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", given);
                let err = load().unwrap_err().to_string();
                assert!(err.contains("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES"), "{err}");
                assert!(err.contains(given), "{err}");
                Ok(())
            });
        }
    }

    #[test]
    fn bool_forms() {
        let cases = [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("on", true),
            ("false", false),
            ("False", false),
            ("0", false),
            ("no", false),
            ("off", false),
        ];
        for (given, expected) in cases {
            Jail::expect_with(|j| {
                j.set_env("DEPLOY_SCALE_TO_ZERO_ENABLED", given);
                assert_eq!(load().unwrap().0.enabled, expected, "{given}");
                Ok(())
            });
        }
        for given in ["maybe", "2", "tru"] {
            Jail::expect_with(|j| {
                j.set_env("DEPLOY_SCALE_TO_ZERO_ENABLED", given);
                let err = load().unwrap_err().to_string();
                assert!(
                    err.contains("DEPLOY_SCALE_TO_ZERO_ENABLED") && err.contains(given),
                    "{err}"
                );
                Ok(())
            });
        }
    }

    #[test]
    fn out_of_range_values_name_key_value_and_range() {
        let cases = [
            ("DEPLOY_SCALE_TO_ZERO_INTERVAL_SECONDS", "9", "10 to 86400"),
            ("DEPLOY_SCALE_TO_ZERO_MAX_PER_TICK", "0", "1 to 100000"),
            ("DEPLOY_SCALE_TO_ZERO_CONCURRENCY", "0", "1 to 64"),
            ("DEPLOY_SCALE_TO_ZERO_CONCURRENCY", "65", "1 to 64"),
            (
                "DEPLOY_SCALE_TO_ZERO_DEFAULT_WAKE_REPLICAS",
                "0",
                "1 to 10000",
            ),
            (
                "DEPLOY_SCALE_TO_ZERO_MAX_CONSECUTIVE_FAILURES",
                "0",
                "1 to 10000",
            ),
            (
                "DEPLOY_SCALE_TO_ZERO_PROTECTED_NAMESPACES",
                "Kube_System",
                "namespaces",
            ),
        ];
        for (var, given, allowed) in cases {
            Jail::expect_with(|j| {
                j.set_env(var, given);
                let err = load().unwrap_err().to_string();
                assert!(
                    err.contains(var) && err.contains(given) && err.contains(allowed),
                    "{err}"
                );
                Ok(())
            });
        }
    }

    #[test]
    fn unknown_keys_warn() {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_ENABLE", "true");
            let (c, w) = load().unwrap();
            assert!(!c.enabled);
            assert!(
                w.iter()
                    .any(|w| w.0.contains("DEPLOY_SCALE_TO_ZERO_ENABLE")),
                "{w:?}"
            );
            Ok(())
        });
    }

    #[test]
    fn activity_source_defaults_to_none_and_keep_awake() {
        Jail::expect_with(|_| {
            let (c, _) = load().unwrap();
            assert_eq!(c.activity_source, ActivitySourceKind::None);
            assert_eq!(c.activity_unknown, UnknownActivity::KeepAwake);
            assert_eq!(c.prometheus_query, DEFAULT_PROMETHEUS_QUERY);
            assert_eq!(
                (
                    c.prometheus_namespace_label.as_str(),
                    c.prometheus_name_label.as_str()
                ),
                ("namespace", "ingress")
            );
            assert_eq!(c.prometheus_timeout(), Duration::from_secs(5));
            Ok(())
        });
    }

    #[test]
    fn prometheus_settings_from_env() {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "Prometheus");
            j.set_env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_UNKNOWN", "sleep");
            j.set_env(
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
                "http://prometheus.monitoring:9090/prom",
            );
            j.set_env(
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_QUERY",
                "max by (exported_namespace, service) (my_requests{service=~\"{names}\"}[{window}])",
            );
            j.set_env(
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAMESPACE_LABEL",
                "exported_namespace",
            );
            j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAME_LABEL", "service");
            j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_TIMEOUT_SECONDS", "12");
            let (c, w) = load().unwrap();
            assert_eq!(c.activity_source, ActivitySourceKind::Prometheus);
            assert_eq!(c.activity_unknown, UnknownActivity::Sleep);
            assert_eq!(c.prometheus_url, "http://prometheus.monitoring:9090/prom");
            assert!(c.prometheus_query.starts_with("max by (exported_namespace"));
            assert_eq!(c.prometheus_namespace_label, "exported_namespace");
            assert_eq!(c.prometheus_name_label, "service");
            assert_eq!(c.prometheus_timeout_seconds, 12);
            assert!(w.is_empty(), "no unknown-key warning: {w:?}");
            Ok(())
        });
    }

    #[test]
    fn a_multi_line_template_from_toml() {
        Jail::expect_with(|j| {
            j.create_file(
                "scaler.toml",
                "activity_source = \"prometheus\"\nprometheus_url = \"http://127.0.0.1:9090\"\n\
                 prometheus_query = '''\nsum by (namespace, ingress) (\n  rate(x{ingress=~\"{names}\"}[{window}])\n)\n'''\n",
            )?;
            let (c, w) = Config::extract(Config::figment(Some(Path::new("scaler.toml")))).unwrap();
            assert!(
                c.prometheus_query.starts_with("sum by"),
                "{:?}",
                c.prometheus_query
            );
            assert!(w.is_empty(), "{w:?}");
            Ok(())
        });
    }

    #[test]
    fn invalid_activity_settings_name_variable_value_and_what_is_allowed() {
        let prometheus = ("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "prometheus");
        let url = ("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL", "http://prom:9090");
        // (other variables set, the variable, its value, a part of what is allowed)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);
        let cases: [Case; 11] = [
            (
                &[],
                "DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE",
                "datadog",
                "none or prometheus",
            ),
            (
                &[],
                "DEPLOY_SCALE_TO_ZERO_ACTIVITY_UNKNOWN",
                "ignore",
                "keep_awake or sleep",
            ),
            (
                &[prometheus],
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
                "",
                "http:// URL",
            ),
            (
                &[prometheus],
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
                "https://prom",
                "https is not supported",
            ),
            (
                &[prometheus],
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
                "prom:9090",
                "http:// URL",
            ),
            (
                &[prometheus],
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
                "http://u:secret@prom",
                "no credentials",
            ),
            (
                &[prometheus],
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
                "http:///x",
                "with a host",
            ),
            (
                &[prometheus, url],
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_QUERY",
                "up{job=~\"{namespace}\"}",
                "{namespaces}, {names} and {window}",
            ),
            (
                &[prometheus, url],
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_QUERY",
                " ",
                "PromQL template",
            ),
            (
                &[],
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAME_LABEL",
                "0ingress",
                "label name",
            ),
            (
                &[],
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_TIMEOUT_SECONDS",
                "61",
                "1 to 60",
            ),
        ];
        for (env, var, given, allowed) in cases {
            Jail::expect_with(|j| {
                for (k, v) in env {
                    j.set_env(k, v);
                }
                j.set_env(var, given);
                let err = load().unwrap_err().to_string();
                assert!(
                    // Strings are quoted in the message, so look for the part without quotes.
                    err.contains(var)
                        && err.contains(given.trim().split('"').next().unwrap_or_default())
                        && err.contains(allowed),
                    "{var}={given:?}: {err}"
                );
                Ok(())
            });
        }
    }

    #[test]
    fn prometheus_url_and_query_are_not_checked_without_the_source() {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL", "https://prom");
            j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_QUERY", "{bogus}");
            assert!(load().is_ok());
            Ok(())
        });
    }

    #[test]
    fn placeholders_are_bare_identifiers_in_braces_only() {
        let found: Vec<_> = placeholders(DEFAULT_PROMETHEUS_QUERY).collect();
        assert!(
            found
                .iter()
                .all(|p| PROMETHEUS_QUERY_PLACEHOLDERS.contains(p)),
            "{found:?}"
        );
        for p in PROMETHEUS_QUERY_PLACEHOLDERS {
            assert!(found.contains(&p), "the default uses {{{p}}}");
        }
        assert_eq!(
            placeholders("a{b=\"c\"} {} {x_1} {y").collect::<Vec<_>>(),
            ["x_1"]
        );
    }

    #[test]
    fn a_host_figment_can_supply_values() {
        let fig = Figment::new()
            .merge(("enabled", true))
            .merge(("idle_minutes", 10));
        let c = Config::from_provider(fig).unwrap();
        assert!(c.enabled);
        assert_eq!(c.idle_minutes, 10);
        assert_eq!(c.max_per_tick, 50);
    }
}
