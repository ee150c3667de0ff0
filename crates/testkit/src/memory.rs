//! In-memory [`Store`] with the PostgreSQL adapter's semantics, checked by the same contract
//! suite ([`crate::contract`]) as `PgStore`.
//!
//! Each method takes one lock for its whole read-check-write, which is what the database's
//! single conditional `UPDATE` gives: a transition sees the row as it is at the write.
//! Timestamps are truncated to microseconds as `timestamptz` stores them, so an activity stamp
//! read back compares equal exactly when it would in PostgreSQL. The schema's CHECK
//! constraints (`replicas_before_sleep > 0`) and primary key are enforced the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use idle_scaler_core::{
    AsleepRow, BackOff, BackedOff, Candidate, ConfirmOutcome, DeploymentRecord, Drift, Error,
    Result, SleepState, StaleIntent, Store,
};
use uuid::Uuid;

use crate::host::{HostOps, NewDeployment};

/// A [`Store`] method, to inject a failure into or to count calls of.
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
    BackOff,
    BackedOff,
    BeginWake,
    AsleepToCheck,
    MarkChecked,
    ReconcileAwake,
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
}

impl Liveness {
    fn clear_backoff(&mut self) {
        self.retry_after = None;
        self.retry_key = None;
        self.backoff_activity_at = None;
        self.backoff_count = 0;
        self.skip_reason = None;
    }
}

/// A stored row: what `get` returns, plus the liveness columns.
#[derive(Debug, Clone)]
struct Stored {
    rec: DeploymentRecord,
    live: Liveness,
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

/// `a > b` as SQL evaluates it in a `WHERE`: NULL (here None) is not true.
fn after(a: DateTime<Utc>, b: Option<DateTime<Utc>>) -> bool {
    b.is_some_and(|b| a > b)
}

impl Stored {
    /// Activity arrived after the backoff was recorded: the backoff is over.
    fn activity_ended_backoff(&self) -> bool {
        after(self.rec.last_activity_at, self.live.backoff_activity_at)
    }

    /// The candidate index's key: when the row becomes eligible.
    fn eligible_at(&self) -> DateTime<Utc> {
        match self.live.retry_key {
            Some(key) if !self.activity_ended_backoff() => self.rec.last_activity_at.max(key),
            _ => self.rec.last_activity_at,
        }
    }

    fn not_backing_off(&self, now: DateTime<Utc>) -> bool {
        self.live.retry_after.is_none_or(|r| r <= now) || self.activity_ended_backoff()
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

/// The rows of this scaler that may be slept at all (the partial index's `WHERE`).
fn sleepable(row: &Stored) -> bool {
    row.status == "healthy"
        && row.sleep_state == SleepState::Awake
        && !row.always_on
        && row.provider_id.starts_with("k8s:")
}

/// The candidate query's predicate, term for term.
fn is_candidate(row: &Stored, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> bool {
    sleepable(row)
        && row.eligible_at() <= idle_before
        && row.expires_at.is_none_or(|e| e > now)
        && row.last_activity_at <= idle_before
        && row.not_backing_off(now)
}

/// The claim's predicate (the candidate predicate without the sort key).
fn is_claimable(row: &Stored, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> bool {
    sleepable(row)
        && row.expires_at.is_none_or(|e| e > now)
        && row.last_activity_at <= idle_before
        && row.not_backing_off(now)
}

/// `ORDER BY sleep_state_changed_at, id` and the like: ties broken by id as in SQL.
fn by_time_then_id<T>(mut v: Vec<T>, key: impl Fn(&T) -> (DateTime<Utc>, Uuid)) -> Vec<T> {
    v.sort_by_key(|x| key(x));
    v
}

#[async_trait]
impl Store for MemoryStore {
    async fn select_candidates(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Candidate>> {
        let state = self.enter(StoreMethod::SelectCandidates)?;
        let (now, idle_before) = (ts(now), ts(idle_before));
        let found: Vec<(DateTime<Utc>, Candidate)> = state
            .rows
            .values()
            .filter(|r| is_candidate(r, now, idle_before))
            .map(|r| {
                let c = Candidate {
                    sleep_state_changed_at: r.sleep_state_changed_at,
                    backoff_count: r.live.backoff_count,
                    flaps: r.live.flaps,
                    flaps_since: r.live.flaps_since,
                    ..Candidate::new(r.id, r.provider_id.clone(), r.last_activity_at)
                };
                (r.eligible_at(), c)
            })
            .collect();
        let found = by_time_then_id(found, |(at, c)| (*at, c.id));
        Ok(found
            .into_iter()
            .map(|(_, c)| c)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn claim_sleep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        replicas: Option<i32>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut state = self.enter(StoreMethod::ClaimSleep)?;
        let (seen_activity, idle_before, now) = (ts(seen_activity), ts(idle_before), ts(now));
        let Some(row) = state.rows.get_mut(&id) else {
            return Ok(false);
        };
        if !(is_claimable(row, now, idle_before) && row.last_activity_at == seen_activity) {
            return Ok(false);
        }
        // PostgreSQL checks constraints only on rows the UPDATE actually writes.
        check_replicas(replicas)?;
        row.sleep_state = SleepState::Sleeping;
        row.sleep_state_changed_at = now;
        row.replicas_before_sleep = replicas;
        row.live.clear_backoff();
        row.live.checked_at = None;
        Ok(true)
    }

    async fn confirm_sleep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        intent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome> {
        let mut state = self.enter(StoreMethod::ConfirmSleep)?;
        let Some(row) = state.rows.get_mut(&id) else {
            return Ok(ConfirmOutcome::NotSleeping);
        };
        if row.sleep_state != SleepState::Sleeping || row.sleep_state_changed_at != ts(intent_at) {
            return Ok(ConfirmOutcome::NotSleeping);
        }
        if row.last_activity_at != ts(seen_activity) {
            return Ok(ConfirmOutcome::ActivityArrived);
        }
        row.sleep_state = SleepState::Asleep;
        row.sleep_state_changed_at = ts(now);
        Ok(ConfirmOutcome::Confirmed)
    }

    async fn revert_sleep(
        &self,
        id: Uuid,
        intent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut state = self.enter(StoreMethod::RevertSleep)?;
        match state.rows.get_mut(&id) {
            Some(row)
                if row.sleep_state == SleepState::Sleeping
                    && row.sleep_state_changed_at == ts(intent_at) =>
            {
                row.sleep_state = SleepState::Awake;
                row.sleep_state_changed_at = ts(now);
                row.replicas_before_sleep = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn back_off(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        backoff: &BackOff,
    ) -> Result<bool> {
        let mut state = self.enter(StoreMethod::BackOff)?;
        match state.rows.get_mut(&id) {
            Some(row)
                if row.sleep_state == SleepState::Awake
                    && row.last_activity_at == ts(seen_activity) =>
            {
                let activity = row.last_activity_at;
                let live = &mut row.live;
                live.retry_after = Some(ts(backoff.retry_after));
                live.retry_key = Some(ts(backoff.retry_key));
                live.backoff_activity_at = Some(activity);
                live.backoff_count += 1;
                live.skip_reason = Some(backoff.reason.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn backed_off(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<BackedOff>> {
        let state = self.enter(StoreMethod::BackedOff)?;
        let now = ts(now);
        let found = state
            .rows
            .values()
            .filter_map(|r| {
                let retry_after = r.live.retry_after.filter(|at| *at > now)?;
                let still = r
                    .live
                    .backoff_activity_at
                    .is_some_and(|b| r.last_activity_at <= b);
                (still && r.sleep_state == SleepState::Awake).then(|| BackedOff {
                    id: r.id,
                    provider_id: r.provider_id.clone(),
                    reason: r.live.skip_reason.clone().unwrap_or_default(),
                    retry_after,
                    backoff_count: r.live.backoff_count,
                })
            })
            .collect();
        let mut found = by_time_then_id(found, |b| (b.retry_after, b.id));
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }

    async fn settle_intent(
        &self,
        id: Uuid,
        intent_at: DateTime<Utc>,
        to: SleepState,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut state = self.enter(StoreMethod::SettleIntent)?;
        match state.rows.get_mut(&id) {
            Some(row)
                if row.sleep_state == SleepState::Sleeping
                    && row.sleep_state_changed_at == ts(intent_at)
                    && (to == SleepState::Awake
                        || row.last_activity_at <= row.sleep_state_changed_at) =>
            {
                row.sleep_state = to;
                row.sleep_state_changed_at = ts(now);
                if to == SleepState::Awake {
                    row.replicas_before_sleep = None;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn stale_intents(&self, older_than: DateTime<Utc>) -> Result<Vec<StaleIntent>> {
        let state = self.enter(StoreMethod::StaleIntents)?;
        let older_than = ts(older_than);
        let found = state
            .rows
            .values()
            .filter(|r| {
                r.sleep_state == SleepState::Sleeping && r.sleep_state_changed_at <= older_than
            })
            .map(|r| StaleIntent {
                id: r.id,
                provider_id: r.provider_id.clone(),
                last_activity_at: r.last_activity_at,
                sleep_state_changed_at: r.sleep_state_changed_at,
                replicas_before_sleep: r.replicas_before_sleep,
            })
            .collect();
        Ok(by_time_then_id(found, |i| (i.sleep_state_changed_at, i.id)))
    }

    async fn get(&self, id: Uuid) -> Result<Option<DeploymentRecord>> {
        let state = self.enter(StoreMethod::Get)?;
        Ok(state.rows.get(&id).map(|r| r.rec.clone()))
    }

    async fn finish_wake(&self, id: Uuid, from: SleepState, now: DateTime<Utc>) -> Result<bool> {
        let mut state = self.enter(StoreMethod::FinishWake)?;
        let now = ts(now);
        match state.rows.get_mut(&id) {
            Some(row) if row.sleep_state == from => {
                if row.sleep_state != SleepState::Awake {
                    row.sleep_state_changed_at = now;
                }
                row.sleep_state = SleepState::Awake;
                row.last_activity_at = now;
                row.replicas_before_sleep = None;
                row.live = Liveness::default();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn begin_wake(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut state = self.enter(StoreMethod::BeginWake)?;
        match state.rows.get_mut(&id) {
            Some(row)
                if row.sleep_state != SleepState::Awake
                    && row.sleep_state_changed_at == ts(state_at) =>
            {
                row.live.wake_started_at = Some(ts(now));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn asleep_to_check(
        &self,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AsleepRow>> {
        let state = self.enter(StoreMethod::AsleepToCheck)?;
        let checked_before = ts(checked_before);
        let found: Vec<(DateTime<Utc>, AsleepRow)> = state
            .rows
            .values()
            .filter(|r| r.sleep_state == SleepState::Asleep)
            .map(|r| {
                let due = r.live.checked_at.unwrap_or(r.sleep_state_changed_at);
                let row = AsleepRow {
                    id: r.id,
                    provider_id: r.provider_id.clone(),
                    last_activity_at: r.last_activity_at,
                    sleep_state_changed_at: r.sleep_state_changed_at,
                    wake_started_at: r.live.wake_started_at,
                };
                (due, row)
            })
            .filter(|(due, _)| *due <= checked_before)
            .collect();
        let found = by_time_then_id(found, |(due, r)| (*due, r.id));
        Ok(found
            .into_iter()
            .map(|(_, r)| r)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn mark_checked(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let mut state = self.enter(StoreMethod::MarkChecked)?;
        match state.rows.get_mut(&id) {
            Some(row) if row.sleep_state == SleepState::Asleep => {
                row.live.checked_at = Some(ts(now));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn reconcile_awake(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        kind: Drift,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut state = self.enter(StoreMethod::ReconcileAwake)?;
        let now = ts(now);
        match state.rows.get_mut(&id) {
            Some(row)
                if row.sleep_state == SleepState::Asleep
                    && row.sleep_state_changed_at == ts(state_at) =>
            {
                row.sleep_state = SleepState::Awake;
                row.sleep_state_changed_at = now;
                row.replicas_before_sleep = None;
                row.live.wake_started_at = None;
                row.live.checked_at = None;
                if kind == Drift::WokenExternally {
                    let live = &mut row.live;
                    let window_over = live
                        .flaps_since
                        .is_none_or(|since| since <= now - chrono::Duration::hours(24));
                    if window_over {
                        live.flaps = 1;
                        live.flaps_since = Some(now);
                    } else {
                        live.flaps += 1;
                    }
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn touch_awake(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let mut state = self.enter(StoreMethod::TouchAwake)?;
        match state.rows.get_mut(&id) {
            Some(row) if row.sleep_state == SleepState::Awake => {
                row.last_activity_at = ts(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_traffic(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        let mut state = self.enter(StoreMethod::RecordTraffic)?;
        match state.rows.get_mut(&id) {
            Some(row) if row.sleep_state == SleepState::Awake => {
                row.last_activity_at = row.last_activity_at.max(ts(at));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_sleeping(&self) -> Result<Vec<DeploymentRecord>> {
        let state = self.enter(StoreMethod::ListSleeping)?;
        let found = state
            .rows
            .values()
            .filter(|r| r.sleep_state != SleepState::Awake)
            .map(|r| r.rec.clone())
            .collect();
        Ok(by_time_then_id(found, |r| (r.sleep_state_changed_at, r.id)))
    }

    async fn count_asleep(&self) -> Result<i64> {
        let state = self.enter(StoreMethod::CountAsleep)?;
        let n = state
            .rows
            .values()
            .filter(|r| r.sleep_state == SleepState::Asleep)
            .count();
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    async fn sum_asleep_replicas(&self, default: i32) -> Result<i64> {
        let state = self.enter(StoreMethod::SumAsleepReplicas)?;
        Ok(state
            .rows
            .values()
            .filter(|r| r.sleep_state == SleepState::Asleep)
            .map(|r| i64::from(r.replicas_before_sleep.unwrap_or(default)))
            .sum())
    }
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
