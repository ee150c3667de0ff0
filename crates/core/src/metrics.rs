//! Metric names and emission. Every emission lives here; the binary installs the recorder.

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

use crate::report::{Outcome, SkipReason};

/// Counter of transitions, label `outcome` (the names the platform's dashboards use).
pub const SCALED_TO_ZERO_TOTAL: &str = "instant_deploy_scaled_to_zero_total";
/// Gauge of Deployments currently asleep.
pub const IDLE_APPS: &str = "instant_deploy_idle_apps";
/// Gauge of replicas asleep: what the `asleep` rows restore on wake (their
/// `replicas_before_sleep`, `default_wake_replicas` for a row without one). The replicas
/// sleeping saves.
pub const REPLICAS_ASLEEP: &str = "instant_deploy_scale_to_zero_replicas_asleep";
/// Counter of candidates skipped, label `reason`.
pub const SKIPPED_TOTAL: &str = "instant_deploy_scale_to_zero_skipped_total";
/// Counter of stale `sleeping` intents (crash leftovers) recovery looked at, label `result`:
/// settled `awake`, `asleep` or `restored`; `raced` (another instance or a live transition
/// changed the row or the Deployment first); `failed` (the store or Kubernetes failed; the
/// next tick tries again).
pub const RECOVERED_TOTAL: &str = "instant_deploy_scale_to_zero_recovered_total";
/// Counter of ticks, label `result` (`ok`, `error`, `no_scaler`, `disabled`, `panic`). A tick
/// with the flag off is counted `disabled` (it reads the wall clock, never the clock port); a
/// tick under `dry_run` counts only for [`crate::Job::last_success`]; a tick that panicked is
/// caught by the loop and counted `panic`.
pub const TICKS_TOTAL: &str = "instant_deploy_scale_to_zero_ticks_total";
/// Histogram of tick duration in seconds.
pub const TICK_DURATION_SECONDS: &str = "instant_deploy_scale_to_zero_tick_duration_seconds";
/// Gauge: Unix time of the last tick counted `ok` or `disabled` (a disabled daemon is doing its
/// job; the stalled-ticks alert must not fire for it). A dry-run tick does not set it.
pub const LAST_SUCCESS_TIMESTAMP: &str =
    "instant_deploy_scale_to_zero_last_success_timestamp_seconds";
/// Histogram of wake duration in seconds.
pub const WAKE_DURATION_SECONDS: &str = "instant_deploy_scale_to_zero_wake_duration_seconds";

/// Counter of activity-source queries that failed (unreachable, timeout, bad answer).
pub const ACTIVITY_SOURCE_ERRORS_TOTAL: &str =
    "instant_deploy_scale_to_zero_activity_source_errors_total";
/// Counter of idle candidates whose traffic was unknown, label `cause` (`source_error`,
/// `no_data`), whatever the policy then did with them.
pub const ACTIVITY_UNKNOWN_TOTAL: &str = "instant_deploy_scale_to_zero_activity_unknown_total";

/// Counter of `asleep` rows found with their app running and set `awake`, label `kind`
/// (see [`DRIFT_KINDS`]).
pub const DRIFT_TOTAL: &str = "instant_deploy_scale_to_zero_drift_total";
/// Counter of wakes that met a transition they could not wait out and answered a retryable
/// conflict (not a failure: the caller retries; no app is left down by it).
pub const WAKE_CONFLICTS_TOTAL: &str = "instant_deploy_scale_to_zero_wake_conflicts_total";
/// Gauge: Unix time the metrics were primed (the process started). With
/// [`LAST_SUCCESS_TIMESTAMP`] absent it tells "never succeeded since start".
pub const STARTED_TIMESTAMP: &str = "instant_deploy_scale_to_zero_started_timestamp_seconds";

/// Counter of requests the waker answered, label `result` (see [`WAKE_ON_REQUEST_RESULTS`]).
pub const WAKE_ON_REQUEST_TOTAL: &str = "instant_deploy_scale_to_zero_wake_on_request_total";
/// Histogram: a slept app's cold start, from the first request that woke it to its first
/// ready replica, in seconds.
pub const COLD_START_SECONDS: &str = "instant_deploy_scale_to_zero_cold_start_seconds";
/// Histogram: the waker's own overhead, from the app being ready to the answer being sent.
pub const WAKER_OVERHEAD_SECONDS: &str = "instant_deploy_scale_to_zero_waker_overhead_seconds";

/// Counter of ticks in which a served cluster could not be reached (its client could not be
/// built, or its API did not answer), label `cluster` (its name; `default` for the default
/// cluster): that cluster's apps were left alone, the other clusters' went on.
pub const CLUSTER_UNREACHABLE_TOTAL: &str =
    "instant_deploy_scale_to_zero_cluster_unreachable_total";

/// Counter of requests that found their app asleep (a wake by a visitor or the API of an app
/// that was asleep or going to sleep): what the adaptive policy reduces.
pub const COLD_STARTS_TOTAL: &str = "instant_deploy_scale_to_zero_cold_starts_total";
/// Counter of pre-warms, label `result`: `used` (a request came before the app would have
/// slept again), `wasted` (none came; the app slept again after its short keep).
pub const PREWARMS_TOTAL: &str = "instant_deploy_scale_to_zero_prewarms_total";
/// Counter of keeps the adaptive policy decided: an idle app kept up past the window because
/// its next request is expected soon (skip reason `predicted_use`).
pub const KEEP_DECISIONS_TOTAL: &str = "instant_deploy_scale_to_zero_keep_decisions_total";
/// Counter of replica-seconds asleep: [`REPLICAS_ASLEEP`] integrated over the job's clock
/// between its samples (each tick, each wake). What sleeping saved.
pub const REPLICA_SECONDS_ASLEEP_TOTAL: &str =
    "instant_deploy_scale_to_zero_replica_seconds_asleep_total";
/// Values of the `result` label of [`PREWARMS_TOTAL`].
pub const PREWARM_RESULTS: [&str; 2] = ["used", "wasted"];

/// Counter of what parking and unparking did, label `result` (see [`PARKING_RESULTS`]).
pub const PARKING_TOTAL: &str = "instant_deploy_scale_to_zero_parking_total";
/// Gauge of Services parked (pointed at the waker), from the list the reconcile takes once
/// per period.
pub const PARKED_SERVICES: &str = "instant_deploy_scale_to_zero_parked_services";

/// Values of the `result` label of [`PARKING_TOTAL`]: those of [`crate::ParkReport`] (a slice
/// written, already parked as planned, a slice deleted, a same-named slice idle-scaler did not
/// write, a write refused or not answered, and the plan's skip reasons), plus `not_ready`: an
/// unpark that found the app's own endpoints not ready, so nothing was deleted. A park or
/// unpark that failed as a whole counts one `failed`.
pub const PARKING_RESULTS: [&str; 15] = [
    "parked",
    "unchanged",
    "unparked",
    "conflict",
    "failed",
    "not_ready",
    "no_selector",
    "not_selected",
    "shared",
    "protected_namespace",
    "external_name",
    "headless",
    "local_traffic_policy",
    "opted_out",
    "no_http_port",
];

/// Values of the `result` label of [`WAKE_ON_REQUEST_TOTAL`]: this request's wake made the
/// app ready; it was up already (or being started by someone else) and became ready; it did
/// not become ready in time; a robot, not woken; no sleepable app; the wake failed; not woken,
/// the namespace's wakes of this minute were used up.
pub const WAKE_ON_REQUEST_RESULTS: [&str; 7] = [
    "woke",
    "already_ready",
    "timeout",
    "ignored",
    "unknown",
    "failed",
    "limited",
];

/// Values of the `kind` label of [`DRIFT_TOTAL`]: scaled up by someone else (a person, a
/// GitOps self-heal, an autoscaler), redeployed by the host (activity after the sleep), or
/// a wake that scaled the app up but never marked the row.
pub const DRIFT_KINDS: [&str; 3] = ["woken_externally", "redeployed", "wake_interrupted"];

/// Every metric name this crate emits.
pub const NAMES: [&str; 24] = [
    SCALED_TO_ZERO_TOTAL,
    IDLE_APPS,
    REPLICAS_ASLEEP,
    SKIPPED_TOTAL,
    RECOVERED_TOTAL,
    TICKS_TOTAL,
    TICK_DURATION_SECONDS,
    LAST_SUCCESS_TIMESTAMP,
    WAKE_DURATION_SECONDS,
    ACTIVITY_SOURCE_ERRORS_TOTAL,
    ACTIVITY_UNKNOWN_TOTAL,
    DRIFT_TOTAL,
    WAKE_CONFLICTS_TOTAL,
    STARTED_TIMESTAMP,
    WAKE_ON_REQUEST_TOTAL,
    COLD_START_SECONDS,
    WAKER_OVERHEAD_SECONDS,
    CLUSTER_UNREACHABLE_TOTAL,
    PARKING_TOTAL,
    PARKED_SERVICES,
    COLD_STARTS_TOTAL,
    PREWARMS_TOTAL,
    KEEP_DECISIONS_TOTAL,
    REPLICA_SECONDS_ASLEEP_TOTAL,
];

/// Values of the `cause` label of [`ACTIVITY_UNKNOWN_TOTAL`].
pub const ACTIVITY_UNKNOWN_CAUSES: [&str; 2] = ["source_error", "no_data"];

/// Registers descriptions with the installed recorder.
pub fn describe_metrics() {
    describe_counter!(
        SCALED_TO_ZERO_TOTAL,
        "Sleep and wake transitions by outcome"
    );
    describe_gauge!(IDLE_APPS, "Deployments currently asleep (scaled to zero)");
    describe_gauge!(
        REPLICAS_ASLEEP,
        "Replicas the asleep Deployments restore on wake (what sleeping saves)"
    );
    describe_counter!(SKIPPED_TOTAL, "Idle candidates not slept, by reason");
    describe_counter!(
        RECOVERED_TOTAL,
        "Stale sleeping intents recovered, by result"
    );
    describe_counter!(TICKS_TOTAL, "Ticks by result");
    describe_histogram!(TICK_DURATION_SECONDS, Unit::Seconds, "Duration of one tick");
    describe_gauge!(
        LAST_SUCCESS_TIMESTAMP,
        Unit::Seconds,
        "Unix time of the last successful tick"
    );
    describe_histogram!(WAKE_DURATION_SECONDS, Unit::Seconds, "Duration of one wake");
    describe_counter!(
        ACTIVITY_SOURCE_ERRORS_TOTAL,
        "Activity-source queries that failed (the candidates' traffic was unknown)"
    );
    describe_counter!(
        ACTIVITY_UNKNOWN_TOTAL,
        "Idle candidates whose traffic was unknown, by cause"
    );
    describe_counter!(
        DRIFT_TOTAL,
        "Asleep rows found with their app running, set awake, by kind"
    );
    describe_counter!(
        WAKE_CONFLICTS_TOTAL,
        "Wakes answered with a retryable conflict (a transition in flight)"
    );
    describe_gauge!(
        STARTED_TIMESTAMP,
        Unit::Seconds,
        "Unix time the process primed its metrics"
    );
    describe_counter!(
        WAKE_ON_REQUEST_TOTAL,
        "Requests the waker answered, by result"
    );
    describe_histogram!(
        COLD_START_SECONDS,
        Unit::Seconds,
        "Cold start of a slept app: first request to first ready replica"
    );
    describe_histogram!(
        WAKER_OVERHEAD_SECONDS,
        Unit::Seconds,
        "The waker's own overhead: app ready to answer sent"
    );
    describe_counter!(
        CLUSTER_UNREACHABLE_TOTAL,
        "Ticks in which a served cluster could not be reached, by cluster"
    );
    describe_counter!(
        PARKING_TOTAL,
        "What parking and unparking slept apps' Services did, by result"
    );
    describe_gauge!(
        PARKED_SERVICES,
        "Services pointed at the waker (parked), as last listed"
    );
    describe_counter!(
        COLD_STARTS_TOTAL,
        "Requests that found their app asleep (cold starts)"
    );
    describe_counter!(
        PREWARMS_TOTAL,
        "Apps woken before their expected request, by whether a request used it"
    );
    describe_counter!(
        KEEP_DECISIONS_TOTAL,
        "Idle apps kept up past the window for an expected request"
    );
    describe_counter!(
        REPLICA_SECONDS_ASLEEP_TOTAL,
        Unit::Seconds,
        "Replica-seconds asleep: what sleeping saved"
    );
}

/// Makes the unreachable-cluster series of every served cluster exist at 0 (the cluster
/// names come from the configuration, so [`prime`] cannot know them).
pub fn prime_clusters(served: &crate::ServedClusters) {
    for cluster in served.iter() {
        counter!(CLUSTER_UNREACHABLE_TOTAL, "cluster" => crate::cluster_label(cluster).to_owned())
            .absolute(0);
    }
}

pub(crate) fn cluster_unreachable(cluster: &str) {
    counter!(CLUSTER_UNREACHABLE_TOTAL, "cluster" => cluster.to_owned()).increment(1);
}

/// Whether a recorder of the `metrics` version this crate emits through (0.24, re-exported
/// as [`crate::reexports::metrics`]) is installed for the calling thread (local) or the
/// process (global). `false` means every metric of the job is dropped: usually the host
/// installed its recorder through another major version of `metrics`, whose global state
/// this crate never sees. Detected by size: the no-op recorder `metrics` falls back to is
/// zero-sized; a real one (Prometheus exporter, `metrics-util`'s) holds its registry.
pub fn recorder_installed() -> bool {
    metrics::with_recorder(|r| std::mem::size_of_val(r) > 0)
}

/// The WARN [`prime`] logs when [`recorder_installed`] is false.
pub const NO_RECORDER_WARNING: &str = "no metrics recorder of metrics 0.24 is installed: the \
    job's metrics are dropped. Install the recorder before priming, through \
    idle_scaler_core::reexports::metrics (a recorder built for another major version of the \
    metrics crate does not see them)";

/// Makes every outcome and skip series exist at 0, so dashboards and alerts see them
/// before the first event. Logs [`NO_RECORDER_WARNING`] when no recorder is installed.
pub fn prime() {
    if !recorder_installed() {
        tracing::warn!("{NO_RECORDER_WARNING}");
    }
    for outcome in Outcome::ALL {
        counter!(SCALED_TO_ZERO_TOTAL, "outcome" => outcome.as_str()).absolute(0);
    }
    for reason in SkipReason::ALL {
        counter!(SKIPPED_TOTAL, "reason" => reason.as_str()).absolute(0);
    }
    counter!(ACTIVITY_SOURCE_ERRORS_TOTAL).absolute(0);
    for cause in ACTIVITY_UNKNOWN_CAUSES {
        counter!(ACTIVITY_UNKNOWN_TOTAL, "cause" => cause).absolute(0);
    }
    for kind in DRIFT_KINDS {
        counter!(DRIFT_TOTAL, "kind" => kind).absolute(0);
    }
    counter!(WAKE_CONFLICTS_TOTAL).absolute(0);
    for result in WAKE_ON_REQUEST_RESULTS {
        counter!(WAKE_ON_REQUEST_TOTAL, "result" => result).absolute(0);
    }
    for result in PARKING_RESULTS {
        counter!(PARKING_TOTAL, "result" => result).absolute(0);
    }
    counter!(COLD_STARTS_TOTAL).absolute(0);
    for result in PREWARM_RESULTS {
        counter!(PREWARMS_TOTAL, "result" => result).absolute(0);
    }
    counter!(KEEP_DECISIONS_TOTAL).absolute(0);
    counter!(REPLICA_SECONDS_ASLEEP_TOTAL).absolute(0);
    gauge!(IDLE_APPS).set(0.0);
    gauge!(REPLICAS_ASLEEP).set(0.0);
    gauge!(PARKED_SERVICES).set(0.0);
    #[allow(clippy::cast_precision_loss)] // Unix seconds fit an f64 exactly until year 2^53
    gauge!(STARTED_TIMESTAMP).set(chrono::Utc::now().timestamp() as f64);
}

/// Every count of one park or unpark.
pub(crate) fn parking(report: &crate::ParkReport) {
    for (result, n) in &report.results {
        debug_assert!(PARKING_RESULTS.contains(result), "{result}");
        counter!(PARKING_TOTAL, "result" => *result).increment(*n);
    }
}

pub(crate) fn parked_services(services: u64) {
    #[allow(clippy::cast_precision_loss)] // counts of Services are far below 2^52
    gauge!(PARKED_SERVICES).set(services as f64);
}

pub(crate) fn drift(kind: &'static str) {
    counter!(DRIFT_TOTAL, "kind" => kind).increment(1);
}

pub(crate) fn wake_conflict() {
    counter!(WAKE_CONFLICTS_TOTAL).increment(1);
}

pub(crate) fn activity_source_error() {
    counter!(ACTIVITY_SOURCE_ERRORS_TOTAL).increment(1);
}

pub(crate) fn activity_unknown(cause: &'static str, candidates: u64) {
    counter!(ACTIVITY_UNKNOWN_TOTAL, "cause" => cause).increment(candidates);
}

pub(crate) fn outcome(outcome: Outcome) {
    counter!(SCALED_TO_ZERO_TOTAL, "outcome" => outcome.as_str()).increment(1);
}

pub(crate) fn skipped(reason: SkipReason) {
    counter!(SKIPPED_TOTAL, "reason" => reason.as_str()).increment(1);
}

pub(crate) fn recovered(result: crate::report::Recovery) {
    counter!(RECOVERED_TOTAL, "result" => result.as_str()).increment(1);
}

pub(crate) fn idle_apps(count: i64) {
    #[allow(clippy::cast_precision_loss)] // counts of apps are far below 2^52
    gauge!(IDLE_APPS).set(count as f64);
}

/// The last replicas-asleep sample, which the replica-seconds counter integrates from.
static LAST_ASLEEP: std::sync::Mutex<Option<(chrono::DateTime<chrono::Utc>, i64)>> =
    std::sync::Mutex::new(None);

pub(crate) fn replicas_asleep(replicas: i64, now: chrono::DateTime<chrono::Utc>) {
    #[allow(clippy::cast_precision_loss)] // replica counts are far below 2^52
    gauge!(REPLICAS_ASLEEP).set(replicas as f64);
    let mut last = LAST_ASLEEP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((at, n)) = *last {
        // The count held since the last sample; a clock that went back adds nothing.
        let seconds = u64::try_from((now - at).num_seconds()).unwrap_or(0);
        let n = u64::try_from(n).unwrap_or(0);
        counter!(REPLICA_SECONDS_ASLEEP_TOTAL).increment(n.saturating_mul(seconds));
    }
    if last.is_none_or(|(at, _)| now >= at) {
        *last = Some((now, replicas));
    }
}

pub(crate) fn cold_start_seen() {
    counter!(COLD_STARTS_TOTAL).increment(1);
}

pub(crate) fn prewarm(result: &'static str) {
    debug_assert!(PREWARM_RESULTS.contains(&result), "{result}");
    counter!(PREWARMS_TOTAL, "result" => result).increment(1);
}

pub(crate) fn keep_decided() {
    counter!(KEEP_DECISIONS_TOTAL).increment(1);
}

pub(crate) fn tick(
    result: &'static str,
    took: Duration,
    finished_at: chrono::DateTime<chrono::Utc>,
) {
    counter!(TICKS_TOTAL, "result" => result).increment(1);
    histogram!(TICK_DURATION_SECONDS).record(took.as_secs_f64());
    if result == "ok" {
        #[allow(clippy::cast_precision_loss)] // Unix seconds fit an f64 exactly until year 2^53
        gauge!(LAST_SUCCESS_TIMESTAMP).set(finished_at.timestamp() as f64);
    }
}

/// A disabled tick did its job: counted, and stamped with the system time because the
/// clock port is not called with the flag off.
pub(crate) fn tick_disabled(took: Duration) {
    tick("disabled", took, chrono::Utc::now());
    #[allow(clippy::cast_precision_loss)] // Unix seconds fit an f64 exactly until year 2^53
    gauge!(LAST_SUCCESS_TIMESTAMP).set(chrono::Utc::now().timestamp() as f64);
}

/// A tick that panicked (caught by the loop, which goes on).
pub(crate) fn tick_panicked() {
    counter!(TICKS_TOTAL, "result" => "panic").increment(1);
}

pub(crate) fn wake_duration(took: Duration) {
    histogram!(WAKE_DURATION_SECONDS).record(took.as_secs_f64());
}

/// One request answered by the waker; `result` is one of [`WAKE_ON_REQUEST_RESULTS`].
pub fn wake_on_request(result: &'static str) {
    debug_assert!(WAKE_ON_REQUEST_RESULTS.contains(&result), "{result}");
    counter!(WAKE_ON_REQUEST_TOTAL, "result" => result).increment(1);
}

/// A slept app's cold start, first request to ready.
pub fn cold_start(took: Duration) {
    histogram!(COLD_START_SECONDS).record(took.as_secs_f64());
}

/// The waker's overhead for one answer, app ready to answer sent.
pub fn waker_overhead(took: Duration) {
    histogram!(WAKER_OVERHEAD_SECONDS).record(took.as_secs_f64());
}
