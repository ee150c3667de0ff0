//! The simulation's `RhythmStore`: each call gated like the store's, over the world's
//! `MemoryStore`, recording what the adaptive invariants check (keeps, their ends, pre-warms).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use idle_scaler_core::rhythm::Rhythm;
use idle_scaler_core::{AsleepRow, Candidate, Kept, Result, RhythmStore, ServedClusters};
use uuid::Uuid;

use super::SimPorts;
use crate::memory::StoreMethod;
use crate::sim::gate::{Call, Event};

#[async_trait]
impl RhythmStore for SimPorts {
    async fn select_early(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        early_before: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Candidate>> {
        let f = self.enter(Call::Store(StoreMethod::SelectEarly)).await?;
        let r = self
            .store
            .select_early(served, now, early_before, idle_before, limit)
            .await;
        if let Ok(found) = &r {
            self.record(Event::SelectedEarly {
                op: self.op(),
                now,
                found: found.iter().map(|c| (c.id, c.last_activity_at)).collect(),
                backoffs: found.iter().map(|c| (c.id, c.backoff_count)).collect(),
            });
        }
        self.leave(f, r).await
    }

    async fn rhythms(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Rhythm>> {
        let f = self.enter(Call::Store(StoreMethod::Rhythms)).await?;
        let r = self.store.rhythms(ids).await;
        self.leave(f, r).await
    }

    async fn save_rhythm(&self, id: Uuid, rhythm: &Rhythm, sleeps_early: bool) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::SaveRhythm)).await?;
        let r = self.store.save_rhythm(id, rhythm, sleeps_early).await;
        self.leave(f, r).await
    }

    async fn keep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::Keep)).await?;
        let r = self.store.keep(id, seen_activity, until).await;
        if let Ok(won) = &r {
            self.record(Event::Keep {
                op: self.op(),
                id,
                won: *won,
            });
        }
        self.leave(f, r).await
    }

    async fn keeps(&self, served: &ServedClusters, limit: u32) -> Result<Vec<Kept>> {
        let f = self.enter(Call::Store(StoreMethod::Keeps)).await?;
        let r = self.store.keeps(served, limit).await;
        self.leave(f, r).await
    }

    async fn end_keep(&self, id: Uuid, keep_activity_at: DateTime<Utc>) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::EndKeep)).await?;
        let before = self
            .row(id)
            .await
            .zip(self.store.adaptive_of(id))
            .map(|(row, a)| (row.last_activity_at, a));
        let r = self.store.end_keep(id, keep_activity_at).await;
        if let Ok(done) = &r {
            self.record(Event::EndKeep {
                op: self.op(),
                id,
                before,
                done: *done,
            });
        }
        self.leave(f, r).await
    }

    async fn set_prewarm(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::SetPrewarm)).await?;
        let r = self.store.set_prewarm(id, state_at, at).await;
        self.leave(f, r).await
    }

    async fn prewarms_due(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AsleepRow>> {
        let f = self.enter(Call::Store(StoreMethod::PrewarmsDue)).await?;
        let r = self.store.prewarms_due(served, now, limit).await;
        self.leave(f, r).await
    }

    async fn finish_prewarm(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::FinishPrewarm)).await?;
        let before = self.row(id).await;
        let r = self
            .store
            .finish_prewarm(id, state_at, now, keep_until)
            .await;
        if let Ok(done) = &r {
            self.record(Event::FinishPrewarm {
                op: self.op(),
                id,
                before,
                after: self.row(id).await,
                done: *done,
            });
        }
        self.leave(f, r).await
    }
}
