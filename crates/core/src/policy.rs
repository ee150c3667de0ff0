//! Row policy: which rows the tick may sleep, which the waker may wake, and the replica count a
//! wake restores. The job, recovery, the wake, the waker and the in-memory store decide
//! through these functions.
//!
//! PostgreSQL applies the sleep rule in SQL, term for term: `sleepable!`, `not_backing_off!`
//! and `not_kept!` in idle-scaler-postgres's `queries.rs`, and the `WHERE` of the partial
//! index `deployments_sleep_eligible_idx` (its latest migration, and the host-integration
//! script, which its tests compare with the migration). Changing the rule means changing this
//! module, those statements and a new migration together; the store contract suite holds both
//! stores to the same answers.

use chrono::{DateTime, Utc};

use crate::{Config, DeploymentRecord, ServedClusters, SkipReason, SleepState, Target};

/// The `status` of a row the host lets run normally; any other status is left alone.
pub const HEALTHY: &str = "healthy";

/// The host lets the app be slept and woken: healthy and not pinned (`always_on`).
fn host_allows(row: &DeploymentRecord) -> bool {
    row.status == HEALTHY && !row.always_on
}

/// Not expired at `now`: an expired row belongs to the host's expirer.
pub fn unexpired(row: &DeploymentRecord, now: DateTime<Utc>) -> bool {
    row.expires_at.is_none_or(|e| e > now)
}

/// The time-independent part of the sleep rule (the partial index's `WHERE`): healthy,
/// `awake`, not pinned, and the id of an app on some cluster (`k8s:` or `k8s@<name>:`).
pub fn sleepable(row: &DeploymentRecord) -> bool {
    host_allows(row)
        && row.sleep_state == SleepState::Awake
        && crate::is_cluster_id(&row.provider_id)
}

/// A lasting skip recorded on a row, as the sleep rule reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    /// No attempt before this time (`sleep_retry_after`); None: no backoff.
    pub retry_after: Option<DateTime<Utc>>,
    /// The row's activity when the backoff was recorded (`sleep_backoff_activity_at`).
    pub activity_at: Option<DateTime<Utc>>,
}

impl Backoff {
    /// Activity arrived after the backoff was recorded: a deploy ends a backoff by itself.
    pub fn ended_by(&self, last_activity_at: DateTime<Utc>) -> bool {
        self.activity_at.is_some_and(|at| last_activity_at > at)
    }

    /// Whether the backoff still holds the row back at `now`.
    pub fn holds(&self, last_activity_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.retry_after.is_some_and(|r| r > now) && !self.ended_by(last_activity_at)
    }
}

/// A keep the adaptive policy recorded on a row (a prediction that a request comes soon, or a
/// pre-warm waiting for its request), as the sleep rule reads it. Its own columns, never the
/// backoff's: a keep is no failure and grows no exponent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    /// No candidate before this time (`sleep_keep_until`); None: no keep.
    pub until: Option<DateTime<Utc>>,
    /// The row's activity when the keep was recorded (`sleep_keep_activity_at`).
    pub activity_at: Option<DateTime<Utc>>,
}

impl Keep {
    /// Whether the keep still holds the row back at `now`: its time has not come and no
    /// activity arrived after it (the request it waited for ends it).
    pub fn holds(&self, last_activity_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.until.is_some_and(|u| u > now)
            && self.activity_at.is_none_or(|at| last_activity_at <= at)
    }
}

/// Whether the tick may sleep `row` at `now`: [`sleepable`], [`unexpired`], idle since
/// `idle_before` or longer, and held back neither by its `backoff` nor by a `keep`. The
/// store's candidate and claim predicate; [`out_of_reach`] applies on top, to the row's
/// target.
pub fn may_sleep(
    row: &DeploymentRecord,
    backoff: &Backoff,
    keep: &Keep,
    now: DateTime<Utc>,
    idle_before: DateTime<Utc>,
) -> bool {
    sleepable(row)
        && unexpired(row, now)
        && row.last_activity_at <= idle_before
        && !backoff.holds(row.last_activity_at, now)
        && !keep.holds(row.last_activity_at, now)
}

/// Why this instance must neither sleep nor wake `target`, whatever its row says: a cluster it
/// does not serve is another instance's (`Foreign` to this one), and a protected namespace is
/// never touched. None: the target is this instance's.
pub fn out_of_reach(
    config: &Config,
    served: &ServedClusters,
    target: &Target,
) -> Option<SkipReason> {
    if !served.serves(target.cluster.as_ref()) {
        Some(SkipReason::Foreign)
    } else if config.is_protected(&target.namespace) {
        Some(SkipReason::ProtectedNamespace)
    } else {
        None
    }
}

/// Whether the waker may wake the app of `row` at `now`: only apps the host lets sleep
/// (healthy, not pinned, not expired); a pinned app that is down, an expired or unhealthy one
/// is someone else's business. Its sleep state does not matter: waking an awake app only
/// bumps its activity.
pub fn may_wake(row: &DeploymentRecord, now: DateTime<Utc>) -> bool {
    host_allows(row) && unexpired(row, now)
}

/// The replica count a wake (or a recovery that restores) scales an app at 0 to: the count
/// recorded when it was slept, or `default` (`default_wake_replicas`) for a row without one.
/// A recorded count that is not above 0 (a host's hand edit) never "restores" to 0.
pub fn restore_count(recorded: Option<i32>, default: i32) -> i32 {
    recorded.filter(|r| *r > 0).unwrap_or(default)
}

#[cfg(test)]
mod tests;
