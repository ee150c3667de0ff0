//! Prometheus [`ActivitySource`] for idle-scaler: asks the Prometheus HTTP API
//! (`POST /api/v1/query`, an instant query) whether the tick's idle-looking candidates served
//! requests within the idle window.
//!
//! The query is a template ([`DEFAULT_QUERY`] by default, for ingress-nginx; [`Preset`]
//! names the others shipped) with three placeholders, filled once per tick for the whole
//! batch:
//!
//! | placeholder | becomes |
//! |---|---|
//! | `{namespaces}` | the batch's namespaces as a regex alternation (`apps\|shop`) |
//! | `{names}` | the batch's Deployment names as a regex alternation (`web\|api[.]v2`) |
//! | `{window}` | the lookback (the idle window) as a PromQL duration (`1800s`) |
//!
//! The answer must be an instant vector. Each sample is mapped back to a target by two of its
//! labels (`namespace_label`, `name_label`) and read as:
//!
//! | sample value | meaning |
//! |---|---|
//! | `> 0` | Unix time (seconds) of the latest traffic: [`Traffic::LastSeen`] |
//! | `<= 0` | current data, no traffic in the window: [`Traffic::Quiet`] |
//! | no sample, `NaN`, or `0 < v < 1e9` (a count, not a time) | no data: the target is left out of the answer (unknown) |
//!
//! Errors map to the core's outcomes: connect failure, timeout, 429 and 5xx are
//! [`CoreError::unavailable`]; 401 and 403 (credentials refused) are
//! [`CoreError::forbidden`]; a query Prometheus rejects (400, 422) or an answer that is not
//! an instant vector is [`CoreError::invalid`]. Either way the tick treats every candidate's
//! traffic as unknown, so an outage never sleeps an app.
//!
//! Prometheus may be reached over `https` (system roots or a CA file) with a bearer token or
//! basic auth read from files at every query, and extra headers ([`Auth`], [`Headers`]).
//! No credential is ever part of an error, a log line or `Debug` output.
//!
//! Its keys ([`PrometheusConfig`], [`KEYS`]) are read from the job's figment; [`attach`] gives
//! a job's builder the source its configuration asks for.
#![warn(missing_docs)]

mod answer;
mod client;
mod config;
mod presets;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::StatusCode;
use idle_scaler_core::job::JobBuilder;
use idle_scaler_core::{ActivitySource, ActivitySourceKind, Error as CoreError, Target, Traffic};
use tracing::debug;

use crate::answer::{Answer, map_samples, parse_answer};
pub use crate::client::Auth;
use crate::client::HttpClient;
use crate::config::query_endpoint;
pub use crate::config::{Headers, KEYS, PrometheusConfig, QUERY_PLACEHOLDERS, placeholders};
pub use crate::presets::{DEFAULT_QUERY, ISTIO_QUERY, Preset, TRAEFIK_QUERY};

/// Why a [`PrometheusSource`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL does not parse or is not `http://` or `https://`.
    #[error("invalid Prometheus URL {url:?}: {why}")]
    Url {
        /// The URL as given, its password redacted.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A file a key names cannot be read.
    #[error("cannot read {key} {}", path.display())]
    File {
        /// The key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A credential file holds nothing usable (never shown: only the path is).
    #[error("{key} {} {why}", path.display())]
    Secret {
        /// The key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        why: &'static str,
    },
    /// TLS cannot be set up (no usable CA certificate).
    #[error("TLS to Prometheus: {why}")]
    Tls {
        /// Why.
        why: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for CoreError {
    fn from(e: Error) -> Self {
        CoreError::invalid(e.to_string())
    }
}

/// What a [`PrometheusSource`] needs; [`Settings::from_config`] takes it from the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Base URL of the HTTP API, `http[s]://host:port[/prefix]`.
    pub url: String,
    /// The PromQL template.
    pub query: String,
    /// The result label carrying the namespace.
    pub namespace_label: String,
    /// The result label carrying the name a Deployment is matched by.
    pub name_label: String,
    /// Bound on one query, connect included.
    pub timeout: Duration,
    /// PEM file of the CAs an `https` Prometheus is verified against; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// The credentials.
    pub auth: Auth,
    /// Extra request headers.
    pub headers: Headers,
}

impl Settings {
    /// The `prometheus_*` keys of the job configuration.
    pub fn from_config(config: &PrometheusConfig) -> Self {
        let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        let auth = match (
            path(&config.prometheus_bearer_token_file),
            path(&config.prometheus_basic_auth_password_file),
        ) {
            (Some(token_file), _) => Auth::Bearer { token_file },
            (None, Some(password_file)) => Auth::Basic {
                username: config.prometheus_basic_auth_username.clone(),
                password_file,
            },
            (None, None) => Auth::None,
        };
        Self {
            url: config.prometheus_url.clone(),
            query: config.prometheus_query.clone(),
            namespace_label: config.prometheus_namespace_label.clone(),
            name_label: config.prometheus_name_label.clone(),
            timeout: config.timeout(),
            ca_file: path(&config.prometheus_ca_file),
            auth,
            headers: config.prometheus_headers.clone(),
        }
    }
}

/// `job` with the activity source its configuration names (`activity_source`), built from
/// `config`; unchanged with `activity_source = none`. Reads the CA and credential files (an
/// unreadable one fails here, naming it) but opens no connection: an unreachable Prometheus
/// shows up per tick as unknown traffic (apps kept awake), never as a failed start.
pub fn attach(job: JobBuilder, config: &PrometheusConfig) -> Result<JobBuilder> {
    Ok(match job.config().activity_source {
        ActivitySourceKind::None => job,
        ActivitySourceKind::Prometheus => {
            let source = PrometheusSource::new(Settings::from_config(config))?;
            job.activity_source(Arc::new(source))
        }
    })
}

/// The Prometheus [`ActivitySource`].
#[derive(Clone)]
pub struct PrometheusSource {
    client: HttpClient,
    settings: Settings,
}

impl std::fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("endpoint", &self.client.endpoint)
            .field("timeout", &self.settings.timeout)
            .finish_non_exhaustive()
    }
}

impl PrometheusSource {
    /// A source querying `settings.url`. Reads the CA file and checks that the credential
    /// files can be read; opens no connection yet.
    pub fn new(settings: Settings) -> Result<Self> {
        let endpoint = query_endpoint(&settings.url)?;
        let client = HttpClient::new(endpoint, &settings)?;
        Ok(Self { client, settings })
    }

    /// The query sent for `targets` with this `lookback`.
    pub fn render(&self, targets: &[Target], lookback: chrono::Duration) -> String {
        render(&self.settings.query, targets, lookback)
    }

    async fn query(&self, promql: &str, at: DateTime<Utc>) -> Result<Answer, CoreError> {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", promql)
            .append_pair("time", &unix_seconds(at))
            .finish();
        let (status, bytes) = self.client.post(body).await?;
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            // The body is not shown: what a proxy says about refused credentials is of no
            // use and could echo them.
            return Err(CoreError::forbidden(format!(
                "Prometheus at {} answered {status}: the credentials were refused (check \
                 prometheus_bearer_token_file or prometheus_basic_auth_*)",
                self.client.endpoint
            )));
        }
        parse_answer(status, &bytes)
    }
}

#[async_trait]
impl ActivitySource for PrometheusSource {
    async fn traffic(
        &self,
        targets: &[Target],
        lookback: chrono::Duration,
        at: DateTime<Utc>,
    ) -> idle_scaler_core::Result<HashMap<Target, Traffic>> {
        if targets.is_empty() {
            return Ok(HashMap::new());
        }
        let promql = self.render(targets, lookback);
        let answer = self.query(&promql, at).await?;
        let seen = map_samples(
            answer,
            targets,
            &self.settings.namespace_label,
            &self.settings.name_label,
        );
        debug!(
            asked = targets.len(),
            known = seen.len(),
            "Prometheus activity query answered"
        );
        Ok(seen)
    }
}

/// Fills the placeholders. Only validated DNS names reach here, so the regexes need no
/// escaping beyond the dot; `[.]` is used for it because it means the same inside double
/// quotes, single quotes and backticks. Longer alternatives come first: a template that
/// captures a name followed by more text (Traefik's `<namespace>-<service>-<port>`) then
/// reads `web-api-80` as `web-api`, not as `web` with port `api-80` (RE2 takes the first
/// alternative that matches).
fn render(template: &str, targets: &[Target], lookback: chrono::Duration) -> String {
    let alternation = |parts: BTreeSet<&str>| {
        let mut parts: Vec<&str> = parts.into_iter().collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
        parts
            .into_iter()
            .map(regex_literal)
            .collect::<Vec<_>>()
            .join("|")
    };
    let namespaces = alternation(targets.iter().map(|t| t.namespace.as_str()).collect());
    let names = alternation(targets.iter().map(|t| t.name.as_str()).collect());
    let window = format!("{}s", lookback.num_seconds().max(1));
    template
        .replace("{namespaces}", &namespaces)
        .replace("{names}", &names)
        .replace("{window}", &window)
}

fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else {
            out.push('[');
            out.push(c);
            out.push(']');
        }
    }
    out
}

/// Prometheus takes `time` as Unix seconds with a fraction.
fn unix_seconds(at: DateTime<Utc>) -> String {
    format!("{}.{:03}", at.timestamp(), at.timestamp_subsec_millis())
}

#[cfg(test)]
mod tests;
