//! Reading Prometheus's answer: the JSON envelope, the instant vector, and each sample's
//! value as the time of the latest traffic.

use std::collections::{BTreeMap, HashMap};

use chrono::DateTime;
use http::StatusCode;
use idle_scaler_core::{Error as CoreError, Target, Traffic};
use serde::Deserialize;
use tracing::warn;

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
pub(crate) struct Sample {
    metric: HashMap<String, String>,
    /// `[<unix seconds>, "<value>"]`.
    value: (f64, String),
}

pub(crate) type Answer = Vec<Sample>;

pub(crate) fn parse_answer(status: StatusCode, bytes: &[u8]) -> Result<Answer, CoreError> {
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
        .map_err(|e| CoreError::unavailable("Prometheus vector not understood").with_source(e))
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
pub(crate) fn map_samples(
    samples: Answer,
    asked: &[Target],
    namespace_label: &str,
    name_label: &str,
) -> HashMap<Target, Traffic> {
    // The metrics name no cluster: traffic for a namespace and name keeps every asked target
    // of that namespace and name awake, whichever cluster it is in. Quiet only speaks for the
    // default cluster: a quiet series may be a namesake's, so a named cluster's app without
    // traffic of its own is left with no data (`activity_unknown`), never read as idle.
    let mut by_name: BTreeMap<(&str, &str), Vec<&Target>> = BTreeMap::new();
    for t in asked {
        by_name
            .entry((t.namespace.as_str(), t.name.as_str()))
            .or_default()
            .push(t);
    }
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
        let Some(targets) = by_name.get(&(namespace.as_str(), name.as_str())) else {
            continue;
        };
        let Some(traffic) = traffic_of(&sample.value.1) else {
            if implausible(&sample.value.1) {
                not_a_time += 1;
            }
            continue;
        };
        for &target in targets {
            if traffic == Traffic::Quiet && target.cluster.is_some() {
                continue;
            }
            let merged = match (seen.get(target), traffic) {
                (Some(Traffic::LastSeen(a)), Traffic::LastSeen(b)) => {
                    Traffic::LastSeen((*a).max(b))
                }
                (Some(earlier @ Traffic::LastSeen(_)), Traffic::Quiet) => *earlier,
                (_, t) => t,
            };
            seen.insert(target.clone(), merged);
        }
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
