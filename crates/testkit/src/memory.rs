//! In-memory [`Store`] with the PostgreSQL adapter's semantics, checked by the same contract
//! suite ([`crate::contract`]) as `PgStore`.
//!
//! Each method takes one lock for its whole read-check-write, which is what the database's
//! single conditional `UPDATE` gives: a transition sees the row as it is at the write.
//! Timestamps are truncated to microseconds as `timestamptz` stores them, so an activity stamp
//! read back compares equal exactly when it would in PostgreSQL. The schema's CHECK
//! constraints (`replicas_before_sleep > 0`) and primary key are enforced the same way.
//!
//! Beside it, [`MemoryParker`]: an in-memory `Parker` over apps, their Services and slices.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use idle_scaler_core::{
    AsleepRow, BackOff, BackedOff, Candidate, ConfirmOutcome, DeploymentRecord, Drift, Error,
    Result, ServedClusters, SleepState, StaleIntent, Store, policy,
};
use uuid::Uuid;

use crate::host::{HostOps, NewDeployment};

mod directory; // the in-memory parking directory (the parking listener's view of the cluster)
mod parker; // the in-memory `Parker`
mod rhythm; // the `RhythmStore` impl
mod store; // the `Store` impl; the state, the host fixtures and the helpers stay here

pub use directory::MemoryDirectory;
pub use parker::{MemoryParker, ParkerCall, ParkerMethod};
#[cfg(feature = "sim")]
pub(crate) use rhythm::AdaptiveColumns;

/// A [`Store`] method, to inject a failure into or to count calls of (and, in the
/// simulation, to gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // One variant per `Store` method, named after it.
pub enum StoreMethod {
    SelectCandidates,
    ClaimSleep,
    ConfirmSleep,
    RevertSleep,
    SettleIntent,
    StaleIntents,
    Get,
    FinishWake,
    TouchAwake,
    RecordTraffic,
    ListSleeping,
    CountAsleep,
    SumAsleepReplicas,
    FindByProviderId,
    BackOff,
    BackedOff,
    BeginWake,
    AsleepToCheck,
    MarkChecked,
    ReconcileAwake,
    SelectEarly,
    Rhythms,
    SaveRhythm,
    Keep,
    Keeps,
    EndKeep,
    SetPrewarm,
    PrewarmsDue,
    FinishPrewarm,
}

impl StoreMethod {
    /// Whether the method writes: a write can fail after its effect (the commit happened,
    /// the answer was lost).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::ClaimSleep
                | Self::ConfirmSleep
                | Self::RevertSleep
                | Self::SettleIntent
                | Self::FinishWake
                | Self::TouchAwake
                | Self::RecordTraffic
                | Self::BackOff
                | Self::BeginWake
                | Self::MarkChecked
                | Self::ReconcileAwake
                | Self::SaveRhythm
                | Self::Keep
                | Self::EndKeep
                | Self::SetPrewarm
                | Self::FinishPrewarm
        )
    }
}

/// The liveness columns of a row (backoff, drift checks, flaps, wake mark), which
/// `DeploymentRecord` does not carry; named and nullable as in the schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Liveness {
    retry_after: Option<DateTime<Utc>>,
    retry_key: Option<DateTime<Utc>>,
    backoff_activity_at: Option<DateTime<Utc>>,
    backoff_count: u32,
    skip_reason: Option<String>,
    checked_at: Option<DateTime<Utc>>,
    flaps: u32,
    flaps_since: Option<DateTime<Utc>>,
    wake_started_at: Option<DateTime<Utc>>,
    // The adaptive policy's keep and pre-warm: a wake or a sleep ends them.
    keep_until: Option<DateTime<Utc>>,
    keep_activity_at: Option<DateTime<Utc>>,
    prewarmed_at: Option<DateTime<Utc>>,
    prewarm_at: Option<DateTime<Utc>>,
}

impl Liveness {
    fn clear_keep(&mut self) {
        self.keep_until = None;
        self.keep_activity_at = None;
        self.prewarmed_at = None;
    }

    fn clear_backoff(&mut self) {
        self.retry_after = None;
        self.retry_key = None;
        self.backoff_activity_at = None;
        self.backoff_count = 0;
        self.skip_reason = None;
    }
}

/// A stored row: what `get` returns, plus the liveness columns and the adaptive policy's
/// rhythm (which outlives wakes and sleeps).
#[derive(Debug, Clone)]
struct Stored {
    rec: DeploymentRecord,
    live: Liveness,
    rhythm: Option<idle_scaler_core::rhythm::Rhythm>,
    sleeps_early: bool,
}

impl std::ops::Deref for Stored {
    type Target = DeploymentRecord;

    fn deref(&self) -> &DeploymentRecord {
        &self.rec
    }
}

impl std::ops::DerefMut for Stored {
    fn deref_mut(&mut self) -> &mut DeploymentRecord {
        &mut self.rec
    }
}

impl Stored {
    /// The row's backoff, as the sleep rule reads it.
    fn backoff(&self) -> policy::Backoff {
        policy::Backoff {
            retry_after: self.live.retry_after,
            activity_at: self.live.backoff_activity_at,
        }
    }

    /// The row's keep, as the sleep rule reads it.
    fn keep(&self) -> policy::Keep {
        policy::Keep {
            until: self.live.keep_until,
            activity_at: self.live.keep_activity_at,
        }
    }

    /// The row as a candidate query returns it.
    fn candidate(&self) -> Candidate {
        Candidate {
            sleep_state_changed_at: self.sleep_state_changed_at,
            backoff_count: self.live.backoff_count,
            flaps: self.live.flaps,
            flaps_since: self.live.flaps_since,
            ..Candidate::new(self.id, self.provider_id.clone(), self.last_activity_at)
        }
    }

    /// The row as the drift check and the pre-warms read an `asleep` one.
    fn asleep_row(&self) -> AsleepRow {
        AsleepRow {
            id: self.id,
            provider_id: self.provider_id.clone(),
            last_activity_at: self.last_activity_at,
            sleep_state_changed_at: self.sleep_state_changed_at,
            wake_started_at: self.live.wake_started_at,
        }
    }

    /// The candidate index's key: when the row becomes eligible.
    fn eligible_at(&self) -> DateTime<Utc> {
        match self.live.retry_key {
            Some(key) if !self.backoff().ended_by(self.rec.last_activity_at) => {
                self.rec.last_activity_at.max(key)
            }
            _ => self.rec.last_activity_at,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    rows: BTreeMap<Uuid, Stored>,
    fail_next: HashMap<StoreMethod, Error>,
    calls: HashMap<StoreMethod, u64>,
}

/// The in-memory store. Clones share the same rows.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

/// What `timestamptz` keeps of a time.
fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn check_replicas(replicas: Option<i32>) -> Result<()> {
    match replicas {
        Some(r) if r <= 0 => Err(Error::store(format!(
            "replicas_before_sleep = {r} violates check constraint deployments_replicas_before_sleep_check"
        ))),
        _ => Ok(()),
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next call of `method` fails with `error` (once); later calls behave normally.
    pub fn fail_next(&self, method: StoreMethod, error: Error) {
        self.lock().fail_next.insert(method, error);
    }

    /// How many times `method` was called (failed calls included).
    pub fn calls(&self, method: StoreMethod) -> u64 {
        self.lock().calls.get(&method).copied().unwrap_or(0)
    }

    /// Calls of every `Store` method together.
    pub fn total_calls(&self) -> u64 {
        self.lock().calls.values().sum()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock left whole rows behind: every method
        // writes a row in one assignment, so the data is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks for one `Store` call: counts it and fires an injected failure.
    fn enter(&self, method: StoreMethod) -> Result<MutexGuard<'_, State>> {
        let mut state = self.lock();
        *state.calls.entry(method).or_default() += 1;
        match state.fail_next.remove(&method) {
            Some(e) => Err(e),
            None => Ok(state),
        }
    }

    fn update(&self, id: Uuid, f: impl FnOnce(&mut Stored)) -> bool {
        match self.lock().rows.get_mut(&id) {
            Some(row) => {
                f(row);
                true
            }
            None => false,
        }
    }
}

/// The candidate query's predicate: the claim's, in eligibility order.
fn is_candidate(row: &Stored, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> bool {
    is_claimable(row, now, idle_before) && row.eligible_at() <= idle_before
}

/// The claim's predicate (the candidate predicate without the sort key).
fn is_claimable(row: &Stored, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> bool {
    policy::may_sleep(row, &row.backoff(), &row.keep(), now, idle_before)
}

/// `ORDER BY <key>, id LIMIT limit` across the clusters, as the PostgreSQL store merges its
/// per-cluster walks: rows keyed by their sort time, shared fairly, the keys dropped.
fn fair_share_by<T>(
    found: Vec<(DateTime<Utc>, T)>,
    limit: u32,
    provider_id: impl Fn(&T) -> &str,
    id: impl Fn(&T) -> Uuid,
) -> Vec<T> {
    idle_scaler_core::fair_share(
        found,
        usize::try_from(limit).unwrap_or(usize::MAX),
        |(_, r)| provider_id(r),
        |(at, r)| (*at, id(r)),
    )
    .into_iter()
    .map(|(_, r)| r)
    .collect()
}

/// `ORDER BY sleep_state_changed_at, id` and the like: ties broken by id as in SQL.
fn by_time_then_id<T>(mut v: Vec<T>, key: impl Fn(&T) -> (DateTime<Utc>, Uuid)) -> Vec<T> {
    v.sort_by_key(|x| key(x));
    v
}

#[async_trait]
impl HostOps for MemoryStore {
    async fn insert(&self, row: NewDeployment) -> Result<Uuid> {
        check_replicas(row.replicas_before_sleep)?;
        let mut state = self.lock();
        if state.rows.contains_key(&row.id) {
            return Err(Error::store(format!(
                "duplicate key value violates unique constraint deployments_pkey: id {}",
                row.id
            )));
        }
        let mut record = row.into_record();
        // As PostgreSQL stores them: microseconds.
        record.expires_at = record.expires_at.map(ts);
        record.last_activity_at = ts(record.last_activity_at);
        record.sleep_state_changed_at = ts(record.sleep_state_changed_at);
        let id = record.id;
        state.rows.insert(
            id,
            Stored {
                rec: record,
                live: Liveness::default(),
                rhythm: None,
                sleeps_early: false,
            },
        );
        Ok(id)
    }

    async fn bump_activity(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        Ok(self.update(id, |r| r.last_activity_at = ts(at)))
    }

    async fn set_always_on(&self, id: Uuid, on: bool) -> Result<bool> {
        Ok(self.update(id, |r| r.always_on = on))
    }

    async fn set_expires_at(&self, id: Uuid, at: Option<DateTime<Utc>>) -> Result<bool> {
        Ok(self.update(id, |r| r.expires_at = at.map(ts)))
    }

    async fn set_status(&self, id: Uuid, status: &str) -> Result<bool> {
        Ok(self.update(id, |r| r.status = status.to_owned()))
    }

    async fn set_sleep_state(
        &self,
        id: Uuid,
        state: SleepState,
        changed_at: DateTime<Utc>,
        replicas: Option<i32>,
    ) -> Result<bool> {
        if self.lock().rows.contains_key(&id) {
            check_replicas(replicas)?;
        }
        Ok(self.update(id, |r| {
            r.sleep_state = state;
            r.sleep_state_changed_at = ts(changed_at);
            r.replicas_before_sleep = replicas;
        }))
    }

    async fn delete(&self, id: Uuid) -> Result<bool> {
        Ok(self.lock().rows.remove(&id).is_some())
    }

    async fn read(&self, id: Uuid) -> Result<Option<DeploymentRecord>> {
        Ok(self.lock().rows.get(&id).map(|r| r.rec.clone()))
    }

    async fn rows(&self) -> Result<Vec<DeploymentRecord>> {
        Ok(self.lock().rows.values().map(|r| r.rec.clone()).collect())
    }
}
