//! The `RhythmStore` port in memory, with the PostgreSQL statements' semantics.

use super::*;
use idle_scaler_core::rhythm::Rhythm;
use idle_scaler_core::{Kept, RhythmStore, fair_share};

#[async_trait]
impl RhythmStore for MemoryStore {
    async fn select_early(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        early_before: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Candidate>> {
        let state = self.enter(StoreMethod::SelectEarly)?;
        let (now, early_before, idle_before) = (ts(now), ts(early_before), ts(idle_before));
        let found: Vec<Candidate> = state
            .rows
            .values()
            .filter(|r| {
                r.sleeps_early
                    && served.serves_id(&r.provider_id)
                    && r.last_activity_at > idle_before
                    && is_claimable(r, now, early_before)
            })
            .map(|r| r.candidate())
            .collect();
        Ok(fair_share(
            found,
            usize::try_from(limit).unwrap_or(usize::MAX),
            |c| &c.provider_id,
            |c| (c.last_activity_at, c.id),
        ))
    }

    async fn rhythms(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Rhythm>> {
        let state = self.enter(StoreMethod::Rhythms)?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let r = state.rows.get(id)?.rhythm.clone()?;
                Some((*id, r))
            })
            .collect())
    }

    async fn save_rhythm(&self, id: Uuid, rhythm: &Rhythm, sleeps_early: bool) -> Result<bool> {
        let mut state = self.enter(StoreMethod::SaveRhythm)?;
        Ok(match state.rows.get_mut(&id) {
            Some(row) => {
                row.rhythm = Some(rhythm.clone());
                row.sleeps_early = sleeps_early;
                true
            }
            None => false,
        })
    }

    async fn keep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let mut state = self.enter(StoreMethod::Keep)?;
        match state.rows.get_mut(&id) {
            Some(row)
                if row.sleep_state == SleepState::Awake
                    && row.last_activity_at == ts(seen_activity) =>
            {
                row.live.keep_until = Some(ts(until));
                row.live.keep_activity_at = Some(row.last_activity_at);
                row.live.prewarmed_at = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn keeps(&self, served: &ServedClusters, limit: u32) -> Result<Vec<Kept>> {
        let state = self.enter(StoreMethod::Keeps)?;
        let found: Vec<Kept> = state
            .rows
            .values()
            .filter(|r| served.serves_id(&r.provider_id))
            .filter_map(|r| {
                Some(Kept {
                    id: r.id,
                    provider_id: r.provider_id.clone(),
                    last_activity_at: r.last_activity_at,
                    keep_activity_at: r.live.keep_activity_at?,
                    keep_until: r.live.keep_until?,
                    prewarmed_at: r.live.prewarmed_at,
                })
            })
            .collect();
        Ok(fair_share(
            found,
            usize::try_from(limit).unwrap_or(usize::MAX),
            |k| &k.provider_id,
            |k| (k.keep_until, k.id),
        ))
    }

    async fn end_keep(&self, id: Uuid, keep_activity_at: DateTime<Utc>) -> Result<bool> {
        let mut state = self.enter(StoreMethod::EndKeep)?;
        match state.rows.get_mut(&id) {
            Some(row) if row.live.keep_activity_at == Some(ts(keep_activity_at)) => {
                row.live.clear_keep();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn set_prewarm(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let mut state = self.enter(StoreMethod::SetPrewarm)?;
        match state.rows.get_mut(&id) {
            Some(row)
                if row.sleep_state == SleepState::Asleep
                    && row.sleep_state_changed_at == ts(state_at) =>
            {
                row.live.prewarm_at = at.map(ts);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn prewarms_due(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AsleepRow>> {
        let state = self.enter(StoreMethod::PrewarmsDue)?;
        let now = ts(now);
        let found: Vec<(DateTime<Utc>, AsleepRow)> = state
            .rows
            .values()
            .filter(|r| r.sleep_state == SleepState::Asleep && served.serves_id(&r.provider_id))
            .filter_map(|r| {
                let at = r.live.prewarm_at.filter(|at| *at <= now)?;
                let row = r.asleep_row();
                Some((at, row))
            })
            .collect();
        Ok(fair_share_by(found, limit, |r| &r.provider_id, |r| r.id))
    }

    async fn finish_prewarm(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<bool> {
        let mut state = self.enter(StoreMethod::FinishPrewarm)?;
        let now = ts(now);
        match state.rows.get_mut(&id) {
            Some(row)
                if row.sleep_state == SleepState::Asleep
                    && row.sleep_state_changed_at == ts(state_at) =>
            {
                row.sleep_state = SleepState::Awake;
                row.sleep_state_changed_at = now;
                row.replicas_before_sleep = None;
                let activity = row.last_activity_at;
                row.live = Liveness {
                    keep_until: Some(ts(keep_until)),
                    keep_activity_at: Some(activity),
                    prewarmed_at: Some(now),
                    ..Liveness::default()
                };
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A row's adaptive columns, for a harness that checks the policy from outside the job.
#[cfg(feature = "sim")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AdaptiveColumns {
    pub(crate) sleeps_early: bool,
    pub(crate) keep_until: Option<DateTime<Utc>>,
    pub(crate) keep_activity_at: Option<DateTime<Utc>>,
    pub(crate) prewarmed_at: Option<DateTime<Utc>>,
    pub(crate) prewarm_at: Option<DateTime<Utc>>,
}

#[cfg(feature = "sim")]
impl AdaptiveColumns {
    /// Whether the keep holds the row out of the candidates at `now`: its time has not run
    /// out and no activity came after it was recorded.
    pub(crate) fn holds(&self, last_activity_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.keep_until.is_some_and(|u| u > now)
            && self.keep_activity_at.is_some_and(|a| last_activity_at <= a)
    }
}

#[cfg(feature = "sim")]
impl MemoryStore {
    /// The adaptive columns of a row, read without counting as a `Store` call.
    pub(crate) fn adaptive_of(&self, id: Uuid) -> Option<AdaptiveColumns> {
        let state = self.lock();
        let r = state.rows.get(&id)?;
        Some(AdaptiveColumns {
            sleeps_early: r.sleeps_early,
            keep_until: r.live.keep_until,
            keep_activity_at: r.live.keep_activity_at,
            prewarmed_at: r.live.prewarmed_at,
            prewarm_at: r.live.prewarm_at,
        })
    }
}
