//! The `RhythmStore` port over PostgreSQL: one statement per write (see `queries::rhythm`).

use std::collections::HashMap;

use super::*;
use crate::store::per_cluster;
use idle_scaler_core::rhythm::Rhythm;
use idle_scaler_core::{Kept, RhythmStore};

#[async_trait]
impl RhythmStore for PgStore {
    async fn select_early(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        early_before: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        limit: u32,
    ) -> idle_scaler_core::Result<Vec<Candidate>> {
        let pool = &self.pool;
        let walk = |scheme: String| async move {
            sqlx::query_as::<_, CandidateRow>(queries::SELECT_EARLY)
                .bind(now)
                .bind(early_before)
                .bind(idle_before)
                .bind(i64::from(limit))
                .bind(scheme)
                .fetch_all(pool)
                .await
                .map_err(Error::query("select_early"))
        };
        let rows = per_cluster(
            served,
            limit,
            walk,
            |r| &r.provider_id,
            |r| (r.eligible_at, r.id),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(CandidateRow::into_candidate)
            .collect::<Result<_>>()?)
    }

    async fn rhythms(&self, ids: &[Uuid]) -> idle_scaler_core::Result<HashMap<Uuid, Rhythm>> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(queries::RHYTHMS)
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::query("rhythms"))?;
        let parse = |(id, text): (Uuid, String)| {
            serde_json::from_str(&text)
                .map(|r| (id, r))
                .map_err(|e| Error::Corrupt(format!("row {id} has an unreadable rhythm: {e}")))
        };
        Ok(rows.into_iter().map(parse).collect::<Result<_>>()?)
    }

    async fn save_rhythm(
        &self,
        id: Uuid,
        rhythm: &Rhythm,
        sleeps_early: bool,
    ) -> idle_scaler_core::Result<bool> {
        // A rhythm is plain data (times, dates, numbers): it always serializes.
        let text = serde_json::to_string(rhythm)
            .map_err(|e| Error::Corrupt(format!("rhythm of row {id}: {e}")))?;
        cas!(
            self,
            "save_rhythm",
            queries::SAVE_RHYTHM,
            id,
            text,
            sleeps_early
        )
    }

    async fn keep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> idle_scaler_core::Result<bool> {
        cas!(self, "keep", queries::KEEP, id, seen_activity, until)
    }

    async fn keeps(
        &self,
        served: &ServedClusters,
        limit: u32,
    ) -> idle_scaler_core::Result<Vec<Kept>> {
        type R = (
            Uuid,
            String,
            DateTime<Utc>,
            DateTime<Utc>,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
        );
        let pool = &self.pool;
        let walk = |scheme: String| async move {
            sqlx::query_as::<_, R>(queries::KEEPS)
                .bind(i64::from(limit))
                .bind(scheme)
                .fetch_all(pool)
                .await
                .map_err(Error::query("keeps"))
        };
        let rows = per_cluster(served, limit, walk, |r| &r.1, |r| (r.4, r.0)).await?;
        let kept =
            |(id, provider_id, last_activity_at, keep_activity_at, keep_until, prewarmed_at)| {
                Kept {
                    id,
                    provider_id,
                    last_activity_at,
                    keep_activity_at,
                    keep_until,
                    prewarmed_at,
                }
            };
        Ok(rows.into_iter().map(kept).collect())
    }

    async fn end_keep(
        &self,
        id: Uuid,
        keep_activity_at: DateTime<Utc>,
    ) -> idle_scaler_core::Result<bool> {
        cas!(self, "end_keep", queries::END_KEEP, id, keep_activity_at)
    }

    async fn set_prewarm(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        at: Option<DateTime<Utc>>,
    ) -> idle_scaler_core::Result<bool> {
        cas!(self, "set_prewarm", queries::SET_PREWARM, id, state_at, at)
    }

    async fn prewarms_due(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        limit: u32,
    ) -> idle_scaler_core::Result<Vec<AsleepRow>> {
        type R = (
            Uuid,
            String,
            DateTime<Utc>,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            DateTime<Utc>,
        );
        let pool = &self.pool;
        let walk = |scheme: String| async move {
            sqlx::query_as::<_, R>(queries::PREWARMS_DUE)
                .bind(now)
                .bind(i64::from(limit))
                .bind(scheme)
                .fetch_all(pool)
                .await
                .map_err(Error::query("prewarms_due"))
        };
        let rows = per_cluster(served, limit, walk, |r| &r.1, |r| (r.5, r.0)).await?;
        let asleep =
            |(id, provider_id, last_activity_at, sleep_state_changed_at, wake, _)| AsleepRow {
                id,
                provider_id,
                last_activity_at,
                sleep_state_changed_at,
                wake_started_at: wake,
            };
        Ok(rows.into_iter().map(asleep).collect())
    }

    async fn finish_prewarm(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> idle_scaler_core::Result<bool> {
        cas!(
            self,
            "finish_prewarm",
            queries::FINISH_PREWARM,
            id,
            state_at,
            now,
            keep_until
        )
    }
}
