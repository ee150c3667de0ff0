//! The `Store` port in memory, with the PostgreSQL statements' semantics.

use super::*;

#[async_trait]
impl Store for MemoryStore {
    async fn select_candidates(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Candidate>> {
        let state = self.enter(StoreMethod::SelectCandidates)?;
        let (now, idle_before) = (ts(now), ts(idle_before));
        let found: Vec<(DateTime<Utc>, Candidate)> = state
            .rows
            .values()
            .filter(|r| served.serves_id(&r.provider_id) && is_candidate(r, now, idle_before))
            .map(|r| {
                let c = r.candidate();
                (r.eligible_at(), c)
            })
            .collect();
        Ok(fair_share_by(found, limit, |c| &c.provider_id, |c| c.id))
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
        row.live.clear_keep();
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

    async fn stale_intents(
        &self,
        served: &ServedClusters,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<StaleIntent>> {
        let state = self.enter(StoreMethod::StaleIntents)?;
        let older_than = ts(older_than);
        let found = state
            .rows
            .values()
            .filter(|r| {
                r.sleep_state == SleepState::Sleeping
                    && r.sleep_state_changed_at <= older_than
                    && served.admits_id(&r.provider_id)
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

    async fn sum_asleep_replicas(&self, default: i32) -> Result<i64> {
        let state = self.enter(StoreMethod::SumAsleepReplicas)?;
        Ok(state
            .rows
            .values()
            .filter(|r| r.rec.sleep_state == SleepState::Asleep)
            .map(|r| i64::from(policy::restore_count(r.rec.replicas_before_sleep, default)))
            .sum())
    }

    async fn find_by_provider_id(&self, provider_id: &str) -> Result<Option<DeploymentRecord>> {
        let state = self.enter(StoreMethod::FindByProviderId)?;
        Ok(state
            .rows
            .values()
            .filter(|r| r.rec.provider_id == provider_id)
            .max_by_key(|r| (r.rec.last_activity_at, r.rec.id))
            .map(|r| r.rec.clone()))
    }

    async fn get(&self, id: Uuid) -> Result<Option<DeploymentRecord>> {
        let state = self.enter(StoreMethod::Get)?;
        Ok(state.rows.get(&id).map(|r| r.rec.clone()))
    }

    async fn finish_wake(
        &self,
        id: Uuid,
        from: SleepState,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut state = self.enter(StoreMethod::FinishWake)?;
        let now = ts(now);
        match state.rows.get_mut(&id) {
            Some(row) if row.sleep_state == from && row.sleep_state_changed_at == ts(state_at) => {
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
        served: &ServedClusters,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AsleepRow>> {
        let state = self.enter(StoreMethod::AsleepToCheck)?;
        let checked_before = ts(checked_before);
        let found: Vec<(DateTime<Utc>, AsleepRow)> = state
            .rows
            .values()
            .filter(|r| r.sleep_state == SleepState::Asleep && served.serves_id(&r.provider_id))
            .map(|r| {
                let due = r.live.checked_at.unwrap_or(r.sleep_state_changed_at);
                let row = r.asleep_row();
                (due, row)
            })
            .filter(|(due, _)| *due <= checked_before)
            .collect();
        Ok(fair_share_by(found, limit, |r| &r.provider_id, |r| r.id))
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
                // The app was started: a fresh idle window.
                row.last_activity_at = row.last_activity_at.max(now);
                row.live.wake_started_at = None;
                row.live.checked_at = None;
                // Up again: no pre-warm is pending (nor, were there one, a keep).
                row.live.prewarm_at = None;
                row.live.clear_keep();
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
}
