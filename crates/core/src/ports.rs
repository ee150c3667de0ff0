//! The ports: everything the protocols need from the outside world.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    AsleepRow, BackOff, BackedOff, Candidate, DeploymentRecord, Drift, Result, ServedClusters,
    SleepState, StaleIntent, Target,
};

/// Result of confirming a sleep (`sleeping -> asleep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The row is now `asleep`.
    Confirmed,
    /// The row had left `sleeping` (a wake won the race) or is gone.
    NotSleeping,
    /// Still `sleeping`, but `last_activity_at` moved: activity arrived (a redeploy).
    ActivityArrived,
}

/// The database side. Every transition is one compare-and-set: it returns `false`
/// (or a non-`Confirmed` outcome) when the row no longer matches, and never errors for that.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Store: Send + Sync {
    /// Rows of the `served` clusters (their `provider_id`'s scheme, the part before the
    /// first `:`, is a served one: `k8s` for the default cluster, `k8s@<name>` for a named
    /// one) that [`crate::policy::may_sleep`] at `now` with `idle_before`; oldest first (a
    /// backed-off row at its retry time) across the clusters, at most `limit` in all. Rows of
    /// other clusters and providers never leave the store.
    async fn select_candidates(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Candidate>>;

    /// CAS 1: `awake -> sleeping` recording `replicas` (None when already at 0), only if
    /// [`crate::policy::may_sleep`] still holds at `now` and `last_activity_at` is still
    /// `seen_activity`. `now` becomes the intent's stamp (`sleep_state_changed_at`): the
    /// caller takes it right before the write. Clears any backoff.
    async fn claim_sleep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        replicas: Option<i32>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// `sleeping -> asleep`, only if the row still holds this very intent (its
    /// `sleep_state_changed_at` is `intent_at`) and `last_activity_at` is still
    /// `seen_activity`. One statement: the outcome says which part did not hold.
    async fn confirm_sleep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        intent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome>;

    /// `sleeping -> awake`, clearing the restore count, only if the row still holds the
    /// intent stamped `intent_at`. False otherwise.
    async fn revert_sleep(
        &self,
        id: Uuid,
        intent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Records a lasting skip on an `awake` row whose activity is still `seen_activity`:
    /// the row is no candidate before `backoff.retry_after` (unless its activity moves), and
    /// its backoff count goes up by one. False when the row changed.
    async fn back_off(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        backoff: &BackOff,
    ) -> Result<bool>;

    /// Rows whose backoff is still running at `now` (`retry_after > now` and no newer
    /// activity), soonest retry first, at most `limit`: for `plan` and `status`.
    async fn backed_off(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<BackedOff>>;

    /// Recovery: settles one stale intent, `sleeping -> to` (`awake`, clearing the restore
    /// count, or `asleep`), only if the row still holds that very intent (its
    /// `sleep_state_changed_at` is still `intent_at`) and, for `asleep`, no activity arrived
    /// after it. False otherwise: another instance settled it, or the row now holds a new
    /// intent of a live transition, which recovery must never undo.
    async fn settle_intent(
        &self,
        id: Uuid,
        intent_at: DateTime<Utc>,
        to: SleepState,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// `sleeping` rows whose intent was written at or before `older_than`, of the `served`
    /// clusters or of no cluster at all (see [`ServedClusters::admits_id`]): another
    /// cluster's leftovers are its instances' to settle.
    async fn stale_intents(
        &self,
        served: &ServedClusters,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<StaleIntent>>;

    /// One row, or None.
    async fn get(&self, id: Uuid) -> Result<Option<DeploymentRecord>>;

    /// Wake: `from -> awake` with `last_activity_at = now`, clearing the restore count, any
    /// backoff, the flap count and the wake mark. A compare-and-set on the state and its
    /// `sleep_state_changed_at` as the wake read them (`state_at`): false when the row left
    /// that state since, even if it came back to it (a drift fix and a new sleep).
    async fn finish_wake(
        &self,
        id: Uuid,
        from: SleepState,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Marks that a wake is about to scale up the app of an `asleep` or `sleeping` row
    /// still stamped `state_at`, so a drift check can tell an interrupted wake from someone
    /// else's scale-up. False when the row changed.
    async fn begin_wake(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// `asleep` rows whose last drift check (or, never checked, whose sleep) is at or before
    /// `checked_before`, least recently checked first across the `served` clusters, at most
    /// `limit`; only rows of those clusters (see [`ServedClusters::serves_id`]).
    async fn asleep_to_check(
        &self,
        served: &ServedClusters,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AsleepRow>>;

    /// Records a drift check that found the app still at 0 (or gone).
    async fn mark_checked(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool>;

    /// `asleep -> awake` for a row still stamped `state_at` whose app was found running,
    /// clearing the restore count and the wake mark. A `WokenExternally` drift counts one
    /// flap: the count restarts at 1 when its 24 h window is over. False when the row changed.
    async fn reconcile_awake(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        kind: Drift,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Bumps `last_activity_at` of an `awake` row (a wake of an app that was up).
    async fn touch_awake(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool>;

    /// Records traffic an [`ActivitySource`] saw: `last_activity_at = GREATEST(last_activity_at,
    /// at)`, only while the row is `awake` (never moves a stamp back, never touches a row in
    /// the sleep protocol). False when the row is missing or not `awake`.
    async fn record_traffic(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool>;

    /// Rows `asleep` (and `sleeping`), for status.
    async fn list_sleeping(&self) -> Result<Vec<DeploymentRecord>>;

    /// Number of `asleep` rows: the idle-apps gauge.
    async fn count_asleep(&self) -> Result<i64>;

    /// The row of the app at `provider_id` (`k8s:<namespace>/<name>`), or None: how the waker
    /// finds the app a request was for. When several rows share it, the one with the latest
    /// activity (then the greatest id), so the answer is stable.
    async fn find_by_provider_id(&self, provider_id: &str) -> Result<Option<DeploymentRecord>>;

    /// Replicas the `asleep` rows will restore on wake (`replicas_before_sleep`, `default` for
    /// a row without one): the replicas-asleep gauge, what sleeping saves.
    async fn sum_asleep_replicas(&self, default: i32) -> Result<i64>;
}

/// A Deployment's scale subresource as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `metadata.resourceVersion`: the precondition for CAS 2.
    pub resource_version: String,
}

/// The Kubernetes side, through the `deployments/scale` subresource only. A request the
/// cluster did not serve is `Error::unavailable` with its [`crate::Reach`]: the job counts a
/// cluster unreachable only when it could not be reached, not when one request failed.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Scaler: Send + Sync {
    /// Reads the scale of a Deployment.
    async fn get_scale(&self, target: &Target) -> Result<Scale>;

    /// Sets `spec.replicas`. With `resource_version` the write is a compare-and-set:
    /// `Error::conflict` when the Deployment changed since that version.
    async fn set_replicas<'a>(
        &self,
        target: &Target,
        replicas: i32,
        resource_version: Option<&'a str>,
    ) -> Result<()>;
}

/// Gives the tick a Kubernetes client, building it lazily so a cluster that is not reachable
/// yet makes the job fail open and retry next tick.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait ScalerFactory: Send + Sync {
    /// The scaler, or why none is available now.
    async fn scaler(&self) -> Result<Arc<dyn Scaler>>;
}

/// A [`ScalerFactory`] that always has the same scaler.
#[derive(Clone)]
pub struct FixedScalerFactory(pub Arc<dyn Scaler>);

impl std::fmt::Debug for FixedScalerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedScalerFactory")
    }
}

#[async_trait]
impl ScalerFactory for FixedScalerFactory {
    async fn scaler(&self) -> Result<Arc<dyn Scaler>> {
        Ok(self.0.clone())
    }
}

/// What an [`ActivitySource`] saw of one target's traffic within the lookback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Real traffic; the latest seen at this time. Sources with a coarse resolution report
    /// a time at or after the real last request, never before it (a later time only keeps
    /// the app up longer).
    LastSeen(DateTime<Utc>),
    /// The source has current data for the target and saw no traffic in the lookback.
    Quiet,
}

/// Where the tick learns whether an idle-looking app is in fact serving requests
/// (for example Prometheus metrics of the ingress controller).
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait ActivitySource: Send + Sync {
    /// One batched question for a tick's candidates: what each target saw within
    /// `lookback` before `at`. A target missing from the answer is unknown (the source has
    /// no data for it). An unreachable source or a timeout is `Error::unavailable`.
    async fn traffic(
        &self,
        targets: &[Target],
        lookback: chrono::Duration,
        at: DateTime<Utc>,
    ) -> Result<HashMap<Target, Traffic>>;
}

/// Time, injectable so tests and the demo can drive it.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A keep recorded on an `awake` row (a prediction, or a pre-warm's wait for its request). The
/// tick settles it once a request ended it (the row's activity moved past it) or its time ran
/// out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Row id.
    pub id: Uuid,
    /// Where the app runs.
    pub provider_id: String,
    /// The row's activity now.
    pub last_activity_at: DateTime<Utc>,
    /// The activity the keep was recorded against (the app's activity before its request).
    pub keep_activity_at: DateTime<Utc>,
    /// When the keep runs out.
    pub keep_until: DateTime<Utc>,
    /// When a pre-warm woke the app this keep waits for a request of (None: a keep-alive).
    pub prewarmed_at: Option<DateTime<Utc>>,
}

/// What the adaptive policy keeps per row, beside the sleep protocol's columns: each app's
/// rhythm, whether it may sleep at the floor, keeps, and pre-warms. Every write is a
/// compare-and-set like the [`Store`]'s; none of them moves `last_activity_at`.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait RhythmStore: Send + Sync {
    /// The early path: rows that may sleep at the floor (their rhythm says so) and that
    /// [`crate::policy::may_sleep`] at `now` with `early_before`, but whose activity is after
    /// `idle_before` (older ones are [`Store::select_candidates`]'s); of the `served` clusters,
    /// oldest activity first, at most `limit`.
    async fn select_early(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        early_before: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Candidate>>;

    /// The rhythms of `ids` (a row without one is missing from the answer).
    async fn rhythms(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, crate::rhythm::Rhythm>>;

    /// Saves a row's rhythm and whether it may sleep at the floor. False when the row is gone.
    async fn save_rhythm(
        &self,
        id: Uuid,
        rhythm: &crate::rhythm::Rhythm,
        sleeps_early: bool,
    ) -> Result<bool>;

    /// Keeps an `awake` row whose activity is still `seen_activity` out of the candidates
    /// until `until` (a request, which moves its activity, ends the keep at once). False when
    /// the row changed.
    async fn keep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;

    /// Every row holding a keep (whether it still holds or not), of the `served` clusters,
    /// soonest `keep_until` first, at most `limit`: the tick asks the activity source about
    /// them and settles those a request ended or whose time ran out.
    async fn keeps(&self, served: &ServedClusters, limit: u32) -> Result<Vec<Kept>>;

    /// Clears the keep recorded against `keep_activity_at`, and its pre-warm mark. False when
    /// the row holds no such keep.
    async fn end_keep(&self, id: Uuid, keep_activity_at: DateTime<Utc>) -> Result<bool>;

    /// Sets (None: clears) when to pre-warm an `asleep` row still stamped `state_at`. False
    /// when the row changed.
    async fn set_prewarm(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool>;

    /// `asleep` rows whose pre-warm time is at or before `now`, soonest first, of the `served`
    /// clusters, at most `limit`.
    async fn prewarms_due(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AsleepRow>>;

    /// A pre-warm's end of wake: `asleep -> awake` for a row still stamped `state_at`, like
    /// [`Store::finish_wake`] but leaving `last_activity_at` as it is (a pre-warm is no
    /// activity); keeps the row until `keep_until` against that activity, marks it
    /// pre-warmed at `now`, and clears its pre-warm time. False when the row changed.
    async fn finish_prewarm(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<bool>;
}
