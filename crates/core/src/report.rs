//! What a tick or a wake did.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

/// Transitions counted in `instant_deploy_scaled_to_zero_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An app was put to sleep.
    ScaledDown,
    /// An app was woken.
    WokeUp,
    /// A wake failed (a retryable conflict is not counted): the row stays asleep for a
    /// retry; an app the wake had already scaled up is set awake by the drift check.
    WakeFailed,
    /// A sleep attempt failed (reading the scale, the intent, the scale-down, a restore or the
    /// confirm). The row is reverted to `awake` only when the app is known not to be at 0 by
    /// this attempt; otherwise (the scale-down may have landed or may still land, a restore or
    /// the confirm failed) the `sleeping` intent stays and recovery settles it from what
    /// Kubernetes holds.
    ScaleFailed,
}

impl Outcome {
    /// Every outcome, for priming.
    pub const ALL: [Outcome; 4] = [
        Self::ScaledDown,
        Self::WokeUp,
        Self::WakeFailed,
        Self::ScaleFailed,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScaledDown => "scaled_down",
            Self::WokeUp => "woke_up",
            Self::WakeFailed => "wake_failed",
            Self::ScaleFailed => "scale_failed",
        }
    }
}

/// Why an idle candidate was not slept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Another provider's app.
    Foreign,
    /// A `k8s:` id that names no valid Deployment.
    Malformed,
    /// In a protected namespace.
    ProtectedNamespace,
    /// The row or the Deployment changed under us (activity, wake, a person).
    Raced,
    /// The Deployment no longer exists.
    NotFound,
    /// Not attempted: the tick stopped early after too many failures in a row.
    BlastRadius,
    /// Not attempted: the job is shutting down.
    ShuttingDown,
    /// The activity source saw traffic inside the idle window (recorded in the row).
    RecentTraffic,
    /// The activity source failed or had no data for the app, and the policy
    /// (`activity_unknown = keep_awake`) keeps such apps up.
    ActivityUnknown,
    /// Someone else scales the app back up every time it is slept (a GitOps self-heal, an
    /// autoscaler): not slept again until a wake or new activity.
    FightsBack,
    /// The adaptive policy expects the app's next request soon after the idle window: kept up
    /// until then.
    PredictedUse,
}

impl SkipReason {
    /// Every reason, for priming.
    pub const ALL: [SkipReason; 11] = [
        Self::Foreign,
        Self::Malformed,
        Self::ProtectedNamespace,
        Self::Raced,
        Self::NotFound,
        Self::BlastRadius,
        Self::ShuttingDown,
        Self::RecentTraffic,
        Self::ActivityUnknown,
        Self::FightsBack,
        Self::PredictedUse,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Foreign => "foreign",
            Self::Malformed => "malformed",
            Self::ProtectedNamespace => "protected_namespace",
            Self::Raced => "raced",
            Self::NotFound => "not_found",
            Self::BlastRadius => "blast_radius",
            Self::ShuttingDown => "shutting_down",
            Self::RecentTraffic => "recent_traffic",
            Self::ActivityUnknown => "activity_unknown",
            Self::FightsBack => "fights_back",
            Self::PredictedUse => "predicted_use",
        }
    }
}

/// How recovery settled one stale `sleeping` intent (label `result` of the recovered counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// The app was running: the row went back to `awake`.
    Awake,
    /// The app was at 0: the sleep is confirmed, the row `asleep`.
    Asleep,
    /// The app was at 0 but activity arrived after the intent: restored, row `awake`.
    Restored,
    /// Another instance or a live transition changed the row (or the Deployment) first.
    Raced,
    /// The store or Kubernetes failed; the next tick tries again.
    Failed,
}

impl Recovery {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Awake => "awake",
            Self::Asleep => "asleep",
            Self::Restored => "restored",
            Self::Raced => "raced",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One app the tick slept (or, in a dry run, would sleep).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SleptApp {
    /// Row id.
    pub id: Uuid,
    /// `namespace/name`.
    pub target: String,
    /// Replicas before sleep, when read (not in a dry run).
    pub replicas: Option<i32>,
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TickReport {
    /// The flag was off: nothing was done.
    pub disabled: bool,
    /// No Kubernetes client: nothing was done (fail-open).
    pub no_scaler: bool,
    /// Served clusters whose client could not be built this tick, by label (`default` for
    /// the default cluster): their apps were left alone (fail-open), the others' went on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clusters_unreachable: Vec<String>,
    /// Nothing was written.
    pub dry_run: bool,
    /// Candidates selected.
    pub candidates: usize,
    /// Counted outcomes (`scaled_down`, `scale_failed`).
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Skips by reason.
    pub skips: BTreeMap<SkipReason, u64>,
    /// Stale intents recovered, by result.
    pub recovered: BTreeMap<Recovery, u64>,
    /// `asleep` rows found with their app running and set `awake`, by kind.
    pub drift: BTreeMap<crate::Drift, u64>,
    /// In a dry run: rows backing off (not candidates now), soonest retry first.
    pub backing_off: Vec<crate::BackedOff>,
    /// The apps slept, or in a dry run the apps that would be.
    pub slept: Vec<SleptApp>,
    /// The tick stopped early after `max_consecutive_failures` scale failures.
    pub stopped_early: bool,
    /// What parking did this tick (the apps slept, the reconcile's re-parks, unparks and
    /// the drain of `parking = off`), by the `result` label of
    /// `instant_deploy_scale_to_zero_parking_total`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub parking: BTreeMap<&'static str, u64>,
    /// Apps asleep after the tick, if the count could be read.
    pub idle_apps: Option<i64>,
    /// Wall time of the tick.
    pub duration: Duration,
}

impl TickReport {
    /// Count of one outcome.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(&outcome).copied().unwrap_or(0)
    }

    /// Count of one skip reason.
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skips.get(&reason).copied().unwrap_or(0)
    }

    /// Count of one recovery result.
    pub fn recovered(&self, result: Recovery) -> u64 {
        self.recovered.get(&result).copied().unwrap_or(0)
    }
}

/// How a wake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeResult {
    /// Scaled up and the row flipped to awake.
    WokeUp,
    /// The row was awake already; its activity was bumped.
    AlreadyAwake,
    /// The row was asleep but the app ran already (someone else scaled it up): the row was
    /// marked awake and nothing was written to Kubernetes.
    AlreadyRunning,
}

impl WakeResult {
    /// The log and JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WokeUp => "woke_up",
            Self::AlreadyAwake => "already_awake",
            Self::AlreadyRunning => "already_running",
        }
    }
}

/// What one wake did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WakeReport {
    /// Row id.
    pub id: Uuid,
    /// How it ended.
    pub result: WakeResult,
    /// Replicas the app was set to (None when already awake).
    pub replicas: Option<i32>,
}
