use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a row stands in the sleep protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SleepState {
    /// Running normally.
    Awake,
    /// Intent to sleep recorded; Kubernetes not yet confirmed at 0.
    Sleeping,
    /// Scaled to 0 and confirmed.
    Asleep,
}

impl SleepState {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Awake => "awake",
            Self::Sleeping => "sleeping",
            Self::Asleep => "asleep",
        }
    }

    /// Parses the stored value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "awake" => Some(Self::Awake),
            "sleeping" => Some(Self::Sleeping),
            "asleep" => Some(Self::Asleep),
            _ => None,
        }
    }
}

impl std::fmt::Display for SleepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row selected as idle: what the claim must see unchanged to go ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Row id.
    pub id: Uuid,
    /// `k8s:<namespace>/<deployment>` for this scaler; anything else is foreign.
    pub provider_id: String,
    /// The activity stamp seen at selection; the claim compares against it.
    pub last_activity_at: DateTime<Utc>,
    /// When the row last changed sleep state (for a row found running under `asleep`: when
    /// that drift was found).
    pub sleep_state_changed_at: DateTime<Utc>,
    /// Lasting-skip backoffs in a row so far: the next one waits twice as long.
    pub backoff_count: u32,
    /// Times someone else scaled the app back up after a sleep, since `flaps_since`.
    pub flaps: u32,
    /// Start of the 24 h window `flaps` counts in.
    pub flaps_since: Option<DateTime<Utc>>,
}

impl Candidate {
    /// A candidate with no history (no backoff, no flaps), as most rows are.
    pub fn new(id: Uuid, provider_id: impl Into<String>, last_activity_at: DateTime<Utc>) -> Self {
        Self {
            id,
            provider_id: provider_id.into(),
            last_activity_at,
            sleep_state_changed_at: last_activity_at,
            backoff_count: 0,
            flaps: 0,
            flaps_since: None,
        }
    }
}

/// A lasting skip recorded on a row: it is not a candidate before `retry_after`, unless its
/// activity moves (a deploy) or a wake clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackOff {
    /// Why the row could not be slept (a skip reason's label, or `scale_failed`).
    pub reason: String,
    /// The next attempt.
    pub retry_after: DateTime<Utc>,
    /// `retry_after` less the idle window: the activity-time the candidate index sorts the
    /// row at, so backed-off rows sit beyond every real candidate.
    pub retry_key: DateTime<Utc>,
}

/// A row that backs off, for `plan` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackedOff {
    /// Row id.
    pub id: Uuid,
    /// Where the app runs.
    pub provider_id: String,
    /// Why it backs off.
    pub reason: String,
    /// The next attempt.
    pub retry_after: DateTime<Utc>,
    /// Backoffs in a row so far.
    pub backoff_count: u32,
}

/// An `asleep` row due for a drift check: does its app still sit at 0?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsleepRow {
    /// Row id.
    pub id: Uuid,
    /// Where the app runs.
    pub provider_id: String,
    /// Activity stamp: after `sleep_state_changed_at` means the host redeployed it.
    pub last_activity_at: DateTime<Utc>,
    /// When the row went asleep: every change the check makes compares it.
    pub sleep_state_changed_at: DateTime<Utc>,
    /// When a wake started scaling it up without finishing, if one did.
    pub wake_started_at: Option<DateTime<Utc>>,
}

/// Why an `asleep` row's app was found running (label `kind` of the drift counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// Someone else scaled it up: a person, a GitOps self-heal, an autoscaler.
    WokenExternally,
    /// The host redeployed it (its activity moved after the sleep).
    Redeployed,
    /// A wake scaled it up and did not get to mark the row (a crash, a store error).
    WakeInterrupted,
}

impl Drift {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WokenExternally => "woken_externally",
            Self::Redeployed => "redeployed",
            Self::WakeInterrupted => "wake_interrupted",
        }
    }
}

/// A row in full, as wake, status and recovery read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// Row id.
    pub id: Uuid,
    /// Where the app runs.
    pub provider_id: String,
    /// Only `healthy` rows may be slept.
    pub status: String,
    /// Pinned: never slept.
    pub always_on: bool,
    /// Expired rows belong to the expirer.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last deploy, redeploy or wake.
    pub last_activity_at: DateTime<Utc>,
    /// Sleep protocol state.
    pub sleep_state: SleepState,
    /// When `sleep_state` last changed.
    pub sleep_state_changed_at: DateTime<Utc>,
    /// The replica count wake restores (always > 0 when set).
    pub replicas_before_sleep: Option<i32>,
}

/// A `sleeping` intent older than the recovery threshold: a crash leftover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleIntent {
    /// Row id.
    pub id: Uuid,
    /// Where the app runs.
    pub provider_id: String,
    /// Current activity stamp.
    pub last_activity_at: DateTime<Utc>,
    /// When the intent was written.
    pub sleep_state_changed_at: DateTime<Utc>,
    /// Replicas recorded with the intent.
    pub replicas_before_sleep: Option<i32>,
}

impl StaleIntent {
    /// Activity arrived after the intent was written (a redeploy while sleeping).
    pub fn activity_after_intent(&self) -> bool {
        self.last_activity_at > self.sleep_state_changed_at
    }
}

/// Why an app is woken: what the adaptive policy learns from, and what counts as a cold start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeReason {
    /// A visitor's request reached the waker.
    Visitor,
    /// The library call, the CLI or the HTTP wake API (a host wakes an app for a request).
    Api,
    /// The policy woke it before its expected request: no activity, no cold start.
    Prewarm,
}

impl WakeReason {
    /// Whether a request is behind the wake: one that finds its app asleep is a cold start,
    /// and the policy learns the request's time.
    pub fn is_request(self) -> bool {
        !matches!(self, Self::Prewarm)
    }

    /// Its name in logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visitor => "visitor",
            Self::Api => "api",
            Self::Prewarm => "prewarm",
        }
    }
}
