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
