//! `HostOps` for `PgStore` (feature `host-ops`): what the host platform does to its rows, for
//! the contract suite, the PG tests and the binary's demo.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use idle_scaler_core::host::{HostOps, NewDeployment};
use idle_scaler_core::{DeploymentRecord, Result, SleepState};
use uuid::Uuid;

use crate::queries::host as q;
use crate::{Error, PgStore, Row};

#[async_trait]
impl HostOps for PgStore {
    async fn insert(&self, row: NewDeployment) -> Result<Uuid> {
        let row = row.into_record();
        sqlx::query(q::INSERT)
            .bind(row.id)
            .bind(row.provider_id)
            .bind(row.status)
            .bind(row.always_on)
            .bind(row.expires_at)
            .bind(row.last_activity_at)
            .bind(row.sleep_state.as_str())
            .bind(row.sleep_state_changed_at)
            .bind(row.replicas_before_sleep)
            .execute(self.pool())
            .await
            .map_err(Error::query("insert"))?;
        Ok(row.id)
    }

    async fn bump_activity(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        let write = sqlx::query(q::BUMP_ACTIVITY).bind(id).bind(at);
        Ok(self.matched("bump_activity", write).await?)
    }

    async fn set_always_on(&self, id: Uuid, on: bool) -> Result<bool> {
        let write = sqlx::query(q::SET_ALWAYS_ON).bind(id).bind(on);
        Ok(self.matched("set_always_on", write).await?)
    }

    async fn set_expires_at(&self, id: Uuid, at: Option<DateTime<Utc>>) -> Result<bool> {
        let write = sqlx::query(q::SET_EXPIRES_AT).bind(id).bind(at);
        Ok(self.matched("set_expires_at", write).await?)
    }

    async fn set_status(&self, id: Uuid, status: &str) -> Result<bool> {
        let write = sqlx::query(q::SET_STATUS).bind(id).bind(status.to_owned());
        Ok(self.matched("set_status", write).await?)
    }

    async fn set_sleep_state(
        &self,
        id: Uuid,
        state: SleepState,
        changed_at: DateTime<Utc>,
        replicas: Option<i32>,
    ) -> Result<bool> {
        let write = sqlx::query(q::SET_SLEEP_STATE)
            .bind(id)
            .bind(state.as_str())
            .bind(changed_at)
            .bind(replicas);
        Ok(self.matched("set_sleep_state", write).await?)
    }

    async fn delete(&self, id: Uuid) -> Result<bool> {
        let delete = sqlx::query(q::DELETE).bind(id);
        Ok(self.matched("delete", delete).await?)
    }

    async fn read(&self, id: Uuid) -> Result<Option<DeploymentRecord>> {
        Ok(self.fetch_record(id).await?)
    }

    async fn rows(&self) -> Result<Vec<DeploymentRecord>> {
        let rows: Vec<Row> = sqlx::query_as(q::LIST)
            .fetch_all(self.pool())
            .await
            .map_err(Error::query("rows"))?;
        Ok(rows
            .into_iter()
            .map(Row::into_record)
            .collect::<crate::Result<_>>()?)
    }
}
