//! The source's configuration keys (`prometheus_*`, environment `DEPLOY_SCALE_TO_ZERO_PROMETHEUS_*`),
//! read from the job's figment, and the one rule for the Prometheus URL.

use std::path::Path;
use std::time::Duration;

use figment::Provider;
use http::Uri;
use idle_scaler_core::config::Reader;
use idle_scaler_core::redact::redact_in;
use idle_scaler_core::{ActivitySourceKind, Config, ConfigError};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The keys [`PrometheusConfig`] reads; pass them to [`Config::extract_with`] (or
/// `load_with`, `from_provider_with`) so the job does not warn about them as unknown.
pub const KEYS: &[&str] = &[
    "prometheus_url",
    "prometheus_query",
    "prometheus_namespace_label",
    "prometheus_name_label",
    "prometheus_timeout_seconds",
];

/// The placeholders a query template may use. `{namespaces}` and `{names}` become regex
/// alternations of the batch's namespaces and names (escaped; PromQL anchors `=~`),
/// `{window}` the lookback (the idle window) as a PromQL duration such as `1800s`.
pub const QUERY_PLACEHOLDERS: [&str; 3] = ["namespaces", "names", "window"];

/// The default template, for ingress-nginx. Per `(namespace, ingress)`: the time of the latest
/// 30 s step at which `nginx_ingress_controller_requests` grew over the preceding 2 minutes,
/// within the window; `0` when the ingress has current series but no such growth (known quiet);
/// no sample when it has no current series (unknown). Requests to Ingress rules whose *path*
/// is `/healthz`, `/readyz` or `/livez` do not count (the label is the rule's path, not the
/// request URI; kubelet probes never pass through the ingress at all).
pub const DEFAULT_QUERY: &str = concat!(
    "max by (namespace, ingress) (max_over_time((timestamp(sum by (namespace, ingress) (",
    "increase(nginx_ingress_controller_requests{namespace=~\"{namespaces}\", ",
    "ingress=~\"{names}\", path!~\"/healthz|/readyz|/livez\"}[2m])) > 0))[{window}:30s])) ",
    "or max by (namespace, ingress) (0 * nginx_ingress_controller_requests",
    "{namespace=~\"{namespaces}\", ingress=~\"{names}\"})"
);

/// The source's configuration keys, as the job configuration names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus HTTP API (`http://host:port[/prefix]`).
    pub prometheus_url: String,
    /// PromQL template; see [`QUERY_PLACEHOLDERS`] and [`DEFAULT_QUERY`].
    pub prometheus_query: String,
    /// Result label carrying the namespace.
    pub prometheus_namespace_label: String,
    /// Result label carrying the name the Deployment is matched by (the Ingress name by default).
    pub prometheus_name_label: String,
    /// Timeout of one Prometheus query, in seconds.
    pub prometheus_timeout_seconds: u64,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            prometheus_url: String::new(),
            prometheus_query: DEFAULT_QUERY.to_owned(),
            prometheus_namespace_label: "namespace".to_owned(),
            prometheus_name_label: "ingress".to_owned(),
            prometheus_timeout_seconds: 5,
        }
    }
}

impl PrometheusConfig {
    /// Defaults, then `file`, then the environment: the sources of [`Config::figment`].
    pub fn load(file: Option<&Path>, job: &Config) -> Result<Self, ConfigError> {
        Self::extract(Config::figment(file), job)
    }

    /// Extracts and validates from any provider (the job's figment or a host's). The URL and
    /// the template matter only with `activity_source = prometheus` in `job`, and are checked
    /// only then, so a host that never uses Prometheus is not held to them.
    pub fn extract(provider: impl Provider, job: &Config) -> Result<Self, ConfigError> {
        Self::extract_from(&Reader::new(&Self::default(), provider), job)
    }

    /// The keys from the same `section` of a host's figment and the same `env_prefix` the job's
    /// configuration was read from ([`Config::from_section`]); errors name the host's sources.
    pub fn from_section(
        figment: &figment::Figment,
        section: &str,
        env_prefix: &str,
        job: &Config,
    ) -> Result<Self, ConfigError> {
        let read = Reader::for_section(&Self::default(), figment, section, env_prefix);
        Self::extract_from(&read, job)
    }

    fn extract_from(read: &Reader, job: &Config) -> Result<Self, ConfigError> {
        let config = Self {
            prometheus_url: read.string("prometheus_url")?,
            prometheus_query: read.string("prometheus_query")?,
            prometheus_namespace_label: label_name(read, "prometheus_namespace_label")?,
            prometheus_name_label: label_name(read, "prometheus_name_label")?,
            prometheus_timeout_seconds: read.int(
                "prometheus_timeout_seconds",
                1,
                60,
                "an integer from 1 to 60 (seconds)",
            )?,
        };
        if job.activity_source == ActivitySourceKind::Prometheus {
            config.check_url_and_query(read)?;
        }
        Ok(config)
    }

    /// Timeout of one Prometheus query.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.prometheus_timeout_seconds)
    }

    fn check_url_and_query(&self, read: &Reader) -> Result<(), ConfigError> {
        if query_endpoint(&self.prometheus_url).is_err() {
            let mut error = read.invalid(
                "prometheus_url",
                "an http:// URL with a host and no credentials, e.g. http://prometheus.monitoring:9090 \
                 (required with DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE=prometheus; https is not supported)",
            );
            // Refused because of credentials perhaps, but the message must not show them.
            if let ConfigError::Invalid { value, .. } = &mut error {
                *value = redact_in(value, &self.prometheus_url);
            }
            return Err(error);
        }
        let query = self.prometheus_query.trim();
        let unknown = placeholders(query).any(|p| !QUERY_PLACEHOLDERS.contains(&p));
        if query.is_empty() || unknown {
            return Err(read.invalid(
                "prometheus_query",
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

fn label_name(read: &Reader, key: &'static str) -> Result<String, ConfigError> {
    const ALLOWED: &str = "a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)";
    let name = read.string(key)?;
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(read.invalid(key, ALLOWED))
    }
}

/// `{base}/api/v1/query`, keeping a path prefix (Prometheus behind `--web.route-prefix`).
/// The one rule for the URL: plain `http://` (the in-cluster Service), a host, and no
/// credentials (they would reach the `config` output and logs, so they are refused).
pub(crate) fn query_endpoint(url: &str) -> Result<Uri> {
    let bad = |why: &str| Error::Url {
        url: redact_in(url, url),
        why: why.to_owned(),
    };
    let base: Uri = url
        .trim()
        .parse()
        .map_err(|e| bad(&redact_in(&format!("{e}"), url)))?;
    if base.scheme_str() != Some("http") {
        return Err(bad("expected http:// (https is not supported)"));
    }
    let authority = base
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| bad("no host"))?
        .as_str()
        .to_owned();
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    let prefix = base.path().trim_end_matches('/');
    format!("http://{authority}{prefix}/api/v1/query")
        .parse()
        .map_err(|e| bad(&format!("{e}")))
}

// Loading the keys from the environment and files and each rule's error: new tests go here.
#[cfg(test)]
mod tests;
