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
        cas!(self, "bump_activity", q::BUMP_ACTIVITY, id, at)
    }

    async fn set_always_on(&self, id: Uuid, on: bool) -> Result<bool> {
        cas!(self, "set_always_on", q::SET_ALWAYS_ON, id, on)
    }

    async fn set_expires_at(&self, id: Uuid, at: Option<DateTime<Utc>>) -> Result<bool> {
        cas!(self, "set_expires_at", q::SET_EXPIRES_AT, id, at)
    }

    async fn set_status(&self, id: Uuid, status: &str) -> Result<bool> {
        cas!(self, "set_status", q::SET_STATUS, id, status.to_owned())
    }

    async fn set_sleep_state(
        &self,
        id: Uuid,
        state: SleepState,
        changed_at: DateTime<Utc>,
        replicas: Option<i32>,
    ) -> Result<bool> {
        cas!(
            self,
            "set_sleep_state",
            q::SET_SLEEP_STATE,
            id,
            state.as_str(),
            changed_at,
            replicas
        )
    }

    async fn delete(&self, id: Uuid) -> Result<bool> {
        cas!(self, "delete", q::DELETE, id)
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
