//! The source's configuration keys (`prometheus_*`, environment `DEPLOY_SCALE_TO_ZERO_PROMETHEUS_*`),
//! read from the job's figment, and the one rule for the Prometheus URL.

mod headers;

use std::path::Path;
use std::time::Duration;

use figment::providers::Env;
use figment::{Figment, Provider};
use http::Uri;
use idle_scaler_core::config::Reader;
use idle_scaler_core::redact::redact_in;
use idle_scaler_core::{ActivitySourceKind, Config, ConfigError};
use serde::{Deserialize, Serialize};

pub use self::headers::Headers;
use crate::presets::Preset;
use crate::{Error, Result};

/// The keys [`PrometheusConfig`] reads; pass them to [`Config::extract_with`] (or
/// `load_with`, `from_provider_with`) so the job does not warn about them as unknown.
pub const KEYS: &[&str] = &[
    "prometheus_url",
    "prometheus_preset",
    "prometheus_query",
    "prometheus_namespace_label",
    "prometheus_name_label",
    "prometheus_timeout_seconds",
    "prometheus_ca_file",
    "prometheus_bearer_token_file",
    "prometheus_basic_auth_username",
    "prometheus_basic_auth_password_file",
    "prometheus_headers",
];

/// The placeholders a query template may use. `{namespaces}` and `{names}` become regex
/// alternations of the batch's namespaces and names (escaped; PromQL anchors `=~`),
/// `{window}` the lookback (the idle window) as a PromQL duration such as `1800s`.
pub const QUERY_PLACEHOLDERS: [&str; 3] = ["namespaces", "names", "window"];

/// The source's configuration keys, as the job configuration names them. Secrets are never
/// values here, only the files holding them; header values may be, so `Debug` hides them
/// and [`PrometheusConfig::redacted`] is what may be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus HTTP API (`http[s]://host:port[/prefix]`).
    pub prometheus_url: String,
    /// The implementation whose metrics are asked ([`Preset`]): the default of the next three.
    pub prometheus_preset: Preset,
    /// PromQL template; see [`QUERY_PLACEHOLDERS`] and [`crate::DEFAULT_QUERY`].
    pub prometheus_query: String,
    /// Result label carrying the namespace.
    pub prometheus_namespace_label: String,
    /// Result label carrying the name the Deployment is matched by (the Ingress name by default).
    pub prometheus_name_label: String,
    /// Timeout of one Prometheus query, in seconds.
    pub prometheus_timeout_seconds: u64,
    /// PEM file of the CAs an `https` Prometheus is verified against, instead of the system's.
    pub prometheus_ca_file: String,
    /// File holding a bearer token, read at every query (a rotated token is used at once).
    pub prometheus_bearer_token_file: String,
    /// Basic auth user; needs `prometheus_basic_auth_password_file`.
    pub prometheus_basic_auth_username: String,
    /// File holding the basic auth password, read at every query.
    pub prometheus_basic_auth_password_file: String,
    /// Extra request headers, such as `X-Scope-OrgID` for a multi-tenant store.
    pub prometheus_headers: Headers,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        let preset = Preset::default();
        Self {
            prometheus_url: String::new(),
            prometheus_preset: preset,
            prometheus_query: preset.query().to_owned(),
            prometheus_namespace_label: preset.namespace_label().to_owned(),
            prometheus_name_label: preset.name_label().to_owned(),
            prometheus_timeout_seconds: 5,
            prometheus_ca_file: String::new(),
            prometheus_bearer_token_file: String::new(),
            prometheus_basic_auth_username: String::new(),
            prometheus_basic_auth_password_file: String::new(),
            prometheus_headers: Headers::default(),
        }
    }
}

impl PrometheusConfig {
    /// Defaults, then `file`, then the environment: the sources of [`Config::figment`].
    pub fn load(file: Option<&Path>, job: &Config) -> Result<Self, ConfigError> {
        Self::extract(Config::figment(file), job)
    }

    /// Extracts and validates from any provider (the job's figment or a host's). The URL, the
    /// template and the credentials matter only with `activity_source = prometheus` in `job`,
    /// and are checked only then, so a host that never uses Prometheus is not held to them.
    pub fn extract(provider: impl Provider, job: &Config) -> Result<Self, ConfigError> {
        let raw = Figment::from(provider);
        Self::extract_from(&Reader::new(&Self::unresolved(), raw.clone()), &raw, job)
    }

    /// The keys from the same `section` of a host's figment and the same `env_prefix` the job's
    /// configuration was read from ([`Config::from_section`]); errors name the host's sources.
    pub fn from_section(
        figment: &figment::Figment,
        section: &str,
        env_prefix: &str,
        job: &Config,
    ) -> Result<Self, ConfigError> {
        let read = Reader::for_section(&Self::unresolved(), figment, section, env_prefix);
        // The same sources the reader layers, for the one key it has no typed read for.
        let raw = figment.focus(section).merge(Env::prefixed(env_prefix));
        Self::extract_from(&read, &raw, job)
    }

    /// The defaults the keys are read over: the preset's keys empty, so that one left unset
    /// can be told from one set and takes the chosen preset's value.
    fn unresolved() -> Self {
        Self {
            prometheus_query: String::new(),
            prometheus_namespace_label: String::new(),
            prometheus_name_label: String::new(),
            ..Self::default()
        }
    }

    fn extract_from(read: &Reader, raw: &Figment, job: &Config) -> Result<Self, ConfigError> {
        let preset_name = read.string("prometheus_preset")?;
        let preset = Preset::from_name(&preset_name).ok_or_else(|| {
            read.invalid(
                "prometheus_preset",
                "ingress-nginx (the default), istio or traefik",
            )
        })?;
        let query = read.string("prometheus_query")?;
        let headers = match raw.find_value("prometheus_headers") {
            Ok(value) => Headers::read(read, &value)?,
            Err(_) => Headers::default(),
        };
        let config = Self {
            prometheus_url: read.string("prometheus_url")?,
            prometheus_preset: preset,
            prometheus_query: if query.is_empty() {
                preset.query().to_owned()
            } else {
                query
            },
            prometheus_namespace_label: label_name(
                read,
                "prometheus_namespace_label",
                preset.namespace_label(),
            )?,
            prometheus_name_label: label_name(read, "prometheus_name_label", preset.name_label())?,
            prometheus_timeout_seconds: read.int(
                "prometheus_timeout_seconds",
                1,
                60,
                "an integer from 1 to 60 (seconds)",
            )?,
            prometheus_ca_file: read.string("prometheus_ca_file")?,
            prometheus_bearer_token_file: read.string("prometheus_bearer_token_file")?,
            prometheus_basic_auth_username: read.string("prometheus_basic_auth_username")?,
            prometheus_basic_auth_password_file: read
                .string("prometheus_basic_auth_password_file")?,
            prometheus_headers: headers,
        };
        if job.activity_source == ActivitySourceKind::Prometheus {
            config.check_url_and_query(read)?;
            config.check_credentials(read)?;
        }
        Ok(config)
    }

    /// Timeout of one Prometheus query.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.prometheus_timeout_seconds)
    }

    /// What may be printed or logged: a password in the URL and header values that may be
    /// credentials redacted. Only those: an empty or mistyped URL is shown as given, so that
    /// the output still explains a startup error.
    pub fn redacted(&self) -> Self {
        let url = &self.prometheus_url;
        Self {
            prometheus_url: redact_in(url, url),
            prometheus_headers: self.prometheus_headers.redacted(),
            ..self.clone()
        }
    }

    fn check_url_and_query(&self, read: &Reader) -> Result<(), ConfigError> {
        if query_endpoint(&self.prometheus_url).is_err() {
            let mut error = read.invalid(
                "prometheus_url",
                "an http:// or https:// URL with a host and no credentials, e.g. \
                 http://prometheus.monitoring:9090 (required with \
                 DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE=prometheus; credentials go in \
                 prometheus_bearer_token_file or prometheus_basic_auth_*)",
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

    /// One kind of credentials, each complete, and a CA file only where TLS is spoken. The
    /// files themselves are read when the source is built, so that error names the path.
    fn check_credentials(&self, read: &Reader) -> Result<(), ConfigError> {
        let bearer = !self.prometheus_bearer_token_file.is_empty();
        let user = !self.prometheus_basic_auth_username.is_empty();
        let password = !self.prometheus_basic_auth_password_file.is_empty();
        if bearer && (user || password) {
            return Err(read.invalid(
                "prometheus_bearer_token_file",
                "unset when basic auth is configured (prometheus_basic_auth_*): one kind of \
                 credentials, a bearer token or basic auth",
            ));
        }
        if user != password {
            let key = if user {
                "prometheus_basic_auth_username"
            } else {
                "prometheus_basic_auth_password_file"
            };
            return Err(read.invalid(
                key,
                "set together with the other prometheus_basic_auth_* key: basic auth needs \
                 both a username and a password file",
            ));
        }
        if (bearer || user) && self.prometheus_headers.contains("authorization") {
            return Err(headers::refuse(
                read,
                "no Authorization header when prometheus_bearer_token_file or basic auth \
                 sets one",
                format!("{:?}", self.prometheus_headers),
            ));
        }
        let https = self
            .prometheus_url
            .trim()
            .to_ascii_lowercase()
            .starts_with("https://");
        if !self.prometheus_ca_file.is_empty() && !https {
            return Err(read.invalid(
                "prometheus_ca_file",
                "unset with an http:// URL: the CA file verifies an https:// Prometheus",
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

fn label_name(
    read: &Reader,
    key: &'static str,
    preset: &'static str,
) -> Result<String, ConfigError> {
    const ALLOWED: &str = "a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)";
    let name = read.string(key)?;
    if name.is_empty() {
        return Ok(preset.to_owned());
    }
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
/// The one rule for the URL: `http://` or `https://`, a host, and no credentials (they
/// would reach the `config` output and logs, so they are refused: the credential keys read
/// them from files instead).
pub(crate) fn query_endpoint(url: &str) -> Result<Uri> {
    let bad = |why: &str| Error::Url {
        url: redact_in(url, url),
        why: why.to_owned(),
    };
    let base: Uri = url
        .trim()
        .parse()
        .map_err(|e| bad(&redact_in(&format!("{e}"), url)))?;
    let scheme = match base.scheme_str() {
        Some("http") => "http",
        Some("https") => "https",
        _ => return Err(bad("expected http:// or https://")),
    };
    let authority = base
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| bad("no host"))?
        .as_str()
        .to_owned();
    if authority.contains('@') {
        return Err(bad(
            "credentials in the URL are not supported (use the prometheus_bearer_token_file or \
             prometheus_basic_auth_* keys)",
        ));
    }
    let prefix = base.path().trim_end_matches('/');
    format!("{scheme}://{authority}{prefix}/api/v1/query")
        .parse()
        .map_err(|e| bad(&format!("{e}")))
}

// Loading the keys from the environment and files and each rule's error: new tests go here.
#[cfg(test)]
mod tests;
