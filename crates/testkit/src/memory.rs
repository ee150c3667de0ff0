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
    Candidate, ConfirmOutcome, DeploymentRecord, Error, Result, SleepState, StaleIntent, Store,
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
    FindByProviderId,
}

#[derive(Debug, Default)]
struct State {
    rows: BTreeMap<Uuid, DeploymentRecord>,
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

    fn update(&self, id: Uuid, f: impl FnOnce(&mut DeploymentRecord)) -> bool {
        match self.lock().rows.get_mut(&id) {
            Some(row) => {
                f(row);
                true
            }
            None => false,
        }
    }
}

fn is_candidate(row: &DeploymentRecord, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> bool {
    row.status == "healthy"
        && row.sleep_state == SleepState::Awake
        && !row.always_on
        && row.expires_at.is_none_or(|e| e > now)
        && row.last_activity_at <= idle_before
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
        let found: Vec<Candidate> = state
            .rows
            .values()
            .filter(|r| is_candidate(r, now, idle_before))
            .map(|r| Candidate {
                id: r.id,
                provider_id: r.provider_id.clone(),
                last_activity_at: r.last_activity_at,
            })
            .collect();
        let mut found = by_time_then_id(found, |c| (c.last_activity_at, c.id));
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
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
        if !(is_candidate(row, now, idle_before) && row.last_activity_at == seen_activity) {
            return Ok(false);
        }
        // PostgreSQL checks constraints only on rows the UPDATE actually writes.
        check_replicas(replicas)?;
        row.sleep_state = SleepState::Sleeping;
        row.sleep_state_changed_at = now;
        row.replicas_before_sleep = replicas;
        Ok(true)
    }

    async fn confirm_sleep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome> {
        let mut state = self.enter(StoreMethod::ConfirmSleep)?;
        let Some(row) = state.rows.get_mut(&id) else {
            return Ok(ConfirmOutcome::NotSleeping);
        };
        if row.sleep_state != SleepState::Sleeping {
            return Ok(ConfirmOutcome::NotSleeping);
        }
        if row.last_activity_at != ts(seen_activity) {
            return Ok(ConfirmOutcome::ActivityArrived);
        }
        row.sleep_state = SleepState::Asleep;
        row.sleep_state_changed_at = ts(now);
        Ok(ConfirmOutcome::Confirmed)
    }

    async fn revert_sleep(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let mut state = self.enter(StoreMethod::RevertSleep)?;
        match state.rows.get_mut(&id) {
            Some(row) if row.sleep_state == SleepState::Sleeping => {
                row.sleep_state = SleepState::Awake;
                row.sleep_state_changed_at = ts(now);
                row.replicas_before_sleep = None;
                Ok(true)
            }
            _ => Ok(false),
        }
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
        Ok(state.rows.get(&id).cloned())
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
            .cloned()
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

    async fn find_by_provider_id(&self, provider_id: &str) -> Result<Option<DeploymentRecord>> {
        let state = self.enter(StoreMethod::FindByProviderId)?;
        Ok(state
            .rows
            .values()
            .filter(|r| r.provider_id == provider_id)
            .max_by_key(|r| (r.last_activity_at, r.id))
            .cloned())
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
        state.rows.insert(id, record);
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
        Ok(self.lock().rows.get(&id).cloned())
    }

    async fn rows(&self) -> Result<Vec<DeploymentRecord>> {
        Ok(self.lock().rows.values().cloned().collect())
    }
}
