//! The `Store` port over PostgreSQL: one statement per transition (see `queries`).

use std::future::Future;

use super::*;
use idle_scaler_core::fair_share;

/// One ordered walk per served cluster (each stops after `limit` rows), then each cluster's
/// fair share of `limit` in `order`.
pub(crate) async fn per_cluster<R, K: Ord, F>(
    served: &ServedClusters,
    limit: u32,
    walk: impl Fn(String) -> F,
    provider_id: impl Fn(&R) -> &str,
    order: impl Fn(&R) -> K,
) -> Result<Vec<R>>
where
    F: Future<Output = Result<Vec<R>>>,
{
    let mut rows = Vec::new();
    for scheme in served.schemes() {
        rows.append(&mut walk(scheme).await?);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Ok(fair_share(rows, limit, provider_id, order))
}

#[async_trait]
impl Store for PgStore {
    async fn select_candidates(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        limit: u32,
    ) -> idle_scaler_core::Result<Vec<Candidate>> {
        // Oldest first.
        let pool = &self.pool;
        let walk = |scheme: String| async move {
            sqlx::query_as::<_, CandidateRow>(queries::SELECT_CANDIDATES)
                .bind(now)
                .bind(idle_before)
                .bind(i64::from(limit))
                .bind(scheme)
                .fetch_all(pool)
                .await
                .map_err(Error::query("select_candidates"))
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

    async fn claim_sleep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        replicas: Option<i32>,
        now: DateTime<Utc>,
    ) -> idle_scaler_core::Result<bool> {
        cas!(
            self,
            "claim_sleep",
            queries::CLAIM_SLEEP,
            id,
            seen_activity,
            idle_before,
            replicas,
            now
        )
    }

    async fn confirm_sleep(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        intent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> idle_scaler_core::Result<ConfirmOutcome> {
        let row: Option<(i64, bool)> = sqlx::query_as(queries::CONFIRM_SLEEP)
            .bind(id)
            .bind(seen_activity)
            .bind(intent_at)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::query("confirm_sleep"))?;
        Ok(match row {
            Some((1, _)) => ConfirmOutcome::Confirmed,
            // Still this very intent, yet the CAS failed: only the activity can have moved (a
            // redeploy), and the tick must undo.
            Some((_, true)) => ConfirmOutcome::ActivityArrived,
            // Gone, woken, settled, or another transition's intent: not ours to touch.
            Some((_, false)) | None => ConfirmOutcome::NotSleeping,
        })
    }

    async fn revert_sleep(
        &self,
        id: Uuid,
        intent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> idle_scaler_core::Result<bool> {
        cas!(
            self,
            "revert_sleep",
            queries::REVERT_SLEEP,
            id,
            intent_at,
            now
        )
    }

    async fn back_off(
        &self,
        id: Uuid,
        seen_activity: DateTime<Utc>,
        backoff: &BackOff,
    ) -> idle_scaler_core::Result<bool> {
        cas!(
            self,
            "back_off",
            queries::BACK_OFF,
            id,
            seen_activity,
            backoff.reason.as_str(),
            backoff.retry_after,
            backoff.retry_key
        )
    }

    async fn backed_off(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> idle_scaler_core::Result<Vec<BackedOff>> {
        type R = (Uuid, String, String, DateTime<Utc>, i32);
        let rows: Vec<R> = sqlx::query_as(queries::BACKED_OFF)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(Error::query("backed_off"))?;
        Ok(rows
            .into_iter()
            .map(|(id, provider_id, reason, retry_after, count)| {
                Ok(BackedOff {
                    id,
                    provider_id,
                    reason,
                    retry_after,
                    backoff_count: count_of(id, "sleep_backoff_count", count)?,
                })
            })
            .collect::<Result<_>>()?)
    }

    async fn settle_intent(
        &self,
        id: Uuid,
        intent_at: DateTime<Utc>,
        to: SleepState,
        now: DateTime<Utc>,
    ) -> idle_scaler_core::Result<bool> {
        cas!(
            self,
            "settle_intent",
            queries::SETTLE_INTENT,
            id,
            intent_at,
            to.as_str(),
            now
        )
    }

    async fn stale_intents(
        &self,
        served: &ServedClusters,
        older_than: DateTime<Utc>,
    ) -> idle_scaler_core::Result<Vec<StaleIntent>> {
        type R = (Uuid, String, DateTime<Utc>, DateTime<Utc>, Option<i32>);
        let rows: Vec<R> = sqlx::query_as(queries::STALE_INTENTS)
            .bind(older_than)
            .bind(served.schemes())
            .fetch_all(&self.pool)
            .await
            .map_err(Error::query("stale_intents"))?;
        let intent =
            |(id, provider_id, last_activity_at, sleep_state_changed_at, replicas)| StaleIntent {
                id,
                provider_id,
                last_activity_at,
                sleep_state_changed_at,
                replicas_before_sleep: replicas,
            };
        Ok(rows.into_iter().map(intent).collect())
    }

    async fn get(&self, id: Uuid) -> idle_scaler_core::Result<Option<DeploymentRecord>> {
        Ok(self.fetch_record(id).await?)
    }

    async fn finish_wake(
        &self,
        id: Uuid,
        from: SleepState,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> idle_scaler_core::Result<bool> {
        cas!(
            self,
            "finish_wake",
            queries::FINISH_WAKE,
            id,
            from.as_str(),
            now,
            state_at
        )
    }

    async fn begin_wake(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> idle_scaler_core::Result<bool> {
        cas!(self, "begin_wake", queries::BEGIN_WAKE, id, state_at, now)
    }

    async fn asleep_to_check(
        &self,
        served: &ServedClusters,
        checked_before: DateTime<Utc>,
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Least recently checked first; a cluster with nothing due costs one probe.
        let pool = &self.pool;
        let walk = |scheme: String| async move {
            let due: Option<(Uuid,)> = sqlx::query_as(queries::ANY_ASLEEP_TO_CHECK)
                .bind(checked_before)
                .bind(&scheme)
                .fetch_optional(pool)
                .await
                .map_err(Error::query("asleep_to_check"))?;
            if due.is_none() {
                return Ok(Vec::new());
            }
            sqlx::query_as::<_, R>(queries::ASLEEP_TO_CHECK)
                .bind(checked_before)
                .bind(i64::from(limit))
                .bind(&scheme)
                .fetch_all(pool)
                .await
                .map_err(Error::query("asleep_to_check"))
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

    async fn mark_checked(&self, id: Uuid, now: DateTime<Utc>) -> idle_scaler_core::Result<bool> {
        cas!(self, "mark_checked", queries::MARK_CHECKED, id, now)
    }

    async fn reconcile_awake(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        kind: Drift,
        now: DateTime<Utc>,
    ) -> idle_scaler_core::Result<bool> {
        cas!(
            self,
            "reconcile_awake",
            queries::RECONCILE_AWAKE,
            id,
            state_at,
            kind == Drift::WokenExternally,
            now
        )
    }

    async fn touch_awake(&self, id: Uuid, now: DateTime<Utc>) -> idle_scaler_core::Result<bool> {
        cas!(self, "touch_awake", queries::TOUCH_AWAKE, id, now)
    }

    async fn record_traffic(&self, id: Uuid, at: DateTime<Utc>) -> idle_scaler_core::Result<bool> {
        cas!(self, "record_traffic", queries::RECORD_TRAFFIC, id, at)
    }

    async fn list_sleeping(&self) -> idle_scaler_core::Result<Vec<DeploymentRecord>> {
        let rows: Vec<Row> = sqlx::query_as(queries::LIST_SLEEPING)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::query("list_sleeping"))?;
        Ok(rows
            .into_iter()
            .map(Row::into_record)
            .collect::<Result<_>>()?)
    }

    async fn count_asleep(&self) -> idle_scaler_core::Result<i64> {
        let (n,): (i64,) = sqlx::query_as(queries::COUNT_ASLEEP)
            .fetch_one(&self.pool)
            .await
            .map_err(Error::query("count_asleep"))?;
        Ok(n)
    }

    async fn sum_asleep_replicas(&self, default: i32) -> idle_scaler_core::Result<i64> {
        let (n,): (i64,) = sqlx::query_as(queries::SUM_ASLEEP_REPLICAS)
            .bind(default)
            .fetch_one(&self.pool)
            .await
            .map_err(Error::query("sum_asleep_replicas"))?;
        Ok(n)
    }

    async fn find_by_provider_id(
        &self,
        provider_id: &str,
    ) -> idle_scaler_core::Result<Option<DeploymentRecord>> {
        let row: Option<Row> = sqlx::query_as(queries::FIND_BY_PROVIDER_ID)
            .bind(provider_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::query("find_by_provider_id"))?;
        Ok(row.map(Row::into_record).transpose()?)
    }
}
