//! Prometheus [`ActivitySource`] for idle-scaler: asks the Prometheus HTTP API
//! (`POST /api/v1/query`, an instant query) whether the tick's idle-looking candidates served
//! requests within the idle window.
//!
//! The query is a template ([`DEFAULT_QUERY`] by
//! default, for ingress-nginx) with three placeholders, filled once per tick for the whole
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
//! [`CoreError::unavailable`]; a query Prometheus rejects (400, 422) or an answer that is not
//! an instant vector is [`CoreError::invalid`]. Either way the tick treats every candidate's
//! traffic as unknown, so an outage never sleeps an app.
//!
//! Its keys ([`PrometheusConfig`], [`KEYS`]) are read from the job's figment; [`attach`] gives
//! a [`Job`] the source its configuration asks for.
#![warn(missing_docs)]

mod config;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use idle_scaler_core::{
    ActivitySource, ActivitySourceKind, Error as CoreError, Job, Target, Traffic,
};
use serde::Deserialize;
use tracing::{debug, warn};

use crate::config::query_endpoint;
pub use crate::config::{DEFAULT_QUERY, KEYS, PrometheusConfig, QUERY_PLACEHOLDERS, placeholders};

/// Largest answer read: a vector of one sample per candidate is a few kilobytes; anything
/// near this is a template that does not aggregate.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Why a [`PrometheusSource`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL does not parse or is not plain `http://`.
    #[error("invalid Prometheus URL {url:?}: {why}")]
    Url {
        /// The URL as given, its password redacted.
        url: String,
        /// What is wrong with it.
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
    /// Base URL of the HTTP API, `http://host:port[/prefix]`.
    pub url: String,
    /// The PromQL template.
    pub query: String,
    /// The result label carrying the namespace.
    pub namespace_label: String,
    /// The result label carrying the name a Deployment is matched by.
    pub name_label: String,
    /// Bound on one query, connect included.
    pub timeout: Duration,
}

impl Settings {
    /// The `prometheus_*` keys of the job configuration.
    pub fn from_config(config: &PrometheusConfig) -> Self {
        Self {
            url: config.prometheus_url.clone(),
            query: config.prometheus_query.clone(),
            namespace_label: config.prometheus_namespace_label.clone(),
            name_label: config.prometheus_name_label.clone(),
            timeout: config.timeout(),
        }
    }
}

/// `job` with the activity source its configuration names (`activity_source`), built from
/// `config`; unchanged with `activity_source = none`. Builds no connection: an unreachable
/// Prometheus shows up per tick as unknown traffic (apps kept awake), never as a failed start.
pub fn attach(job: Job, config: &PrometheusConfig) -> Result<Job> {
    Ok(match job.config().activity_source {
        ActivitySourceKind::None => job,
        ActivitySourceKind::Prometheus => {
            let source = PrometheusSource::new(Settings::from_config(config))?;
            job.with_activity_source(Arc::new(source))
        }
    })
}

/// The Prometheus [`ActivitySource`].
#[derive(Clone)]
pub struct PrometheusSource {
    client: Client<HttpConnector, Full<Bytes>>,
    endpoint: Uri,
    settings: Settings,
}

impl std::fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.settings.timeout)
            .finish_non_exhaustive()
    }
}

impl PrometheusSource {
    /// A source querying `settings.url`. Builds no connection yet.
    pub fn new(settings: Settings) -> Result<Self> {
        let endpoint = query_endpoint(&settings.url)?;
        let mut connector = HttpConnector::new();
        // The overall timeout bounds the whole query; this makes a black-holed address fail
        // with a connect error rather than a generic timeout.
        connector.set_connect_timeout(Some(settings.timeout));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            client,
            endpoint,
            settings,
        })
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
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CoreError::invalid(format!("building the Prometheus request: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                CoreError::unavailable(format!("Prometheus at {}: {e:#}", self.endpoint))
            })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    CoreError::unavailable(format!(
                        "reading the answer of Prometheus at {}: {e}",
                        self.endpoint
                    ))
                })?
                .to_bytes();
            Ok::<_, CoreError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.settings.timeout, exchange)
            .await
            .map_err(|_| {
                CoreError::unavailable(format!(
                    "Prometheus at {} did not answer within {:?}",
                    self.endpoint, self.settings.timeout
                ))
            })??;
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
/// quotes, single quotes and backticks.
fn render(template: &str, targets: &[Target], lookback: chrono::Duration) -> String {
    let alternation = |parts: BTreeSet<&str>| {
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

/// The parts of `/api/v1/query`'s JSON envelope that are read.
#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Sample {
    metric: HashMap<String, String>,
    /// `[<unix seconds>, "<value>"]`.
    value: (f64, String),
}

type Answer = Vec<Sample>;

fn parse_answer(status: StatusCode, bytes: &[u8]) -> Result<Answer, CoreError> {
    let envelope: Option<Envelope> = serde_json::from_slice(bytes).ok();
    let said = |e: &Envelope| {
        format!(
            "{}: {}",
            e.error_type.as_deref().unwrap_or("error"),
            e.error.as_deref().unwrap_or("(no message)")
        )
    };
    if !status.is_success() {
        let detail = envelope
            .as_ref()
            .map(said)
            .unwrap_or_else(|| snippet(bytes));
        // 400 bad_data and 422 execution errors are the template's fault and will not pass
        // by retrying; anything else (429, 5xx, a proxy's 502) is an outage.
        return Err(match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => CoreError::invalid(
                format!("Prometheus rejected the query ({status}): {detail}"),
            ),
            _ => CoreError::unavailable(format!("Prometheus answered {status}: {detail}")),
        });
    }
    let envelope = envelope.ok_or_else(|| {
        CoreError::unavailable(format!(
            "Prometheus answered 200 with a body that is not its JSON: {}",
            snippet(bytes)
        ))
    })?;
    if envelope.status != "success" {
        return Err(CoreError::unavailable(format!(
            "Prometheus answered status {:?}: {}",
            envelope.status,
            said(&envelope)
        )));
    }
    let data = envelope
        .data
        .ok_or_else(|| CoreError::unavailable("Prometheus answered success without data"))?;
    if data.result_type != "vector" {
        return Err(CoreError::invalid(format!(
            "the activity query must return an instant vector, Prometheus returned a {}",
            data.result_type
        )));
    }
    serde_json::from_value(data.result)
        .map_err(|e| CoreError::unavailable(format!("Prometheus vector not understood: {e}")))
}

fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push_str("...");
    }
    s
}

/// Maps samples back to the asked targets. Samples without both labels, for targets not
/// asked about (the regexes select a cross product), or with a value that is not a number
/// are ignored; several samples for one target combine to the latest traffic.
fn map_samples(
    samples: Answer,
    asked: &[Target],
    namespace_label: &str,
    name_label: &str,
) -> HashMap<Target, Traffic> {
    let asked: BTreeSet<(&str, &str)> = asked
        .iter()
        .map(|t| (t.namespace.as_str(), t.name.as_str()))
        .collect();
    let mut seen: HashMap<Target, Traffic> = HashMap::new();
    let mut unlabelled = 0_usize;
    let mut not_a_time = 0_usize;
    for sample in samples {
        let (Some(namespace), Some(name)) = (
            sample.metric.get(namespace_label),
            sample.metric.get(name_label),
        ) else {
            unlabelled += 1;
            continue;
        };
        if !asked.contains(&(namespace.as_str(), name.as_str())) {
            continue;
        }
        let Some(traffic) = traffic_of(&sample.value.1) else {
            if implausible(&sample.value.1) {
                not_a_time += 1;
            }
            continue;
        };
        let target = Target {
            cluster: None,
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let merged = match (seen.get(&target), traffic) {
            (Some(Traffic::LastSeen(a)), Traffic::LastSeen(b)) => Traffic::LastSeen((*a).max(b)),
            (Some(earlier @ Traffic::LastSeen(_)), Traffic::Quiet) => *earlier,
            (_, t) => t,
        };
        seen.insert(target, merged);
    }
    if unlabelled > 0 {
        warn!(
            samples = unlabelled,
            namespace_label,
            name_label,
            "Prometheus samples without the configured labels were ignored; check \
             DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAMESPACE_LABEL/_NAME_LABEL against the query"
        );
    }
    if not_a_time > 0 {
        warn!(
            samples = not_a_time,
            "Prometheus values that are not a Unix time were read as no data; the activity \
             query must return the time of the latest traffic (a request count is not one)"
        );
    }
    seen
}

/// Unix seconds before this (2001-09-09) are not a time of traffic: most likely a template
/// returning a request count or a rate. Reading `5` as "last traffic in 1970" would make a
/// busy app look idle, so such values count as no data instead.
const EARLIEST_PLAUSIBLE: f64 = 1.0e9;

fn implausible(value: &str) -> bool {
    value
        .trim()
        .parse::<f64>()
        .is_ok_and(|v| v > 0.0 && v < EARLIEST_PLAUSIBLE)
}

/// A sample value: Unix seconds of the latest traffic, `<= 0` for none, `NaN` for no data.
fn traffic_of(value: &str) -> Option<Traffic> {
    let v: f64 = value.trim().parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    if v <= 0.0 {
        return Some(Traffic::Quiet);
    }
    if v < EARLIEST_PLAUSIBLE {
        return None;
    }
    // Whole milliseconds of a finite positive float below ~year 2286 fit an i64 exactly.
    #[allow(clippy::cast_possible_truncation)]
    let millis = (v * 1000.0).round() as i64;
    DateTime::from_timestamp_millis(millis).map(Traffic::LastSeen)
}

#[cfg(test)]
mod tests;
