//! What the host platform does to its `deployments` rows, as fixtures (feature `host-ops`):
//! create apps, redeploy them (bump activity), pin, expire, mark unhealthy, and fabricate crash
//! leftovers.
//!
//! Implemented by idle-scaler-testkit's `MemoryStore` and, behind the `host-ops` feature of
//! idle-scaler-postgres, by `PgStore`, so one test, demo or simulation drives either store.
//! It lives here, beside the ports, so that no store adapter depends on the test kit.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{DeploymentRecord, Result, SleepState};

/// A row to insert: a builder over the row type itself. Defaults: a fresh id, `healthy`,
/// `awake`, not pinned, no expiry, state changed at the activity time, no restore count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment(DeploymentRecord);

impl std::ops::Deref for NewDeployment {
    type Target = DeploymentRecord;

    fn deref(&self) -> &DeploymentRecord {
        &self.0
    }
}

impl NewDeployment {
    /// A healthy, awake app at `provider_id`, last active at `last_activity_at`.
    pub fn new(provider_id: impl Into<String>, last_activity_at: DateTime<Utc>) -> Self {
        Self(DeploymentRecord {
            id: Uuid::new_v4(),
            provider_id: provider_id.into(),
            status: crate::policy::HEALTHY.to_owned(),
            always_on: false,
            expires_at: None,
            last_activity_at,
            sleep_state: SleepState::Awake,
            sleep_state_changed_at: last_activity_at,
            replicas_before_sleep: None,
        })
    }

    /// The row as it will be stored.
    pub fn into_record(self) -> DeploymentRecord {
        self.0
    }

    /// An app running as Deployment `name` in `namespace` (`k8s:<namespace>/<name>`).
    pub fn k8s(namespace: &str, name: &str, last_activity_at: DateTime<Utc>) -> Self {
        Self::new(format!("k8s:{namespace}/{name}"), last_activity_at)
    }

    /// With this id.
    #[must_use]
    pub fn id(mut self, id: Uuid) -> Self {
        self.0.id = id;
        self
    }

    /// With this status (only `healthy` may be slept).
    #[must_use]
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.0.status = status.into();
        self
    }

    /// Pinned (or not).
    #[must_use]
    pub fn always_on(mut self, on: bool) -> Self {
        self.0.always_on = on;
        self
    }

    /// Expiring at `at`.
    #[must_use]
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.0.expires_at = Some(at);
        self
    }

    /// In `state` since `changed_at`, with restore count `replicas` (a sleeping or asleep app,
    /// or a crash leftover).
    #[must_use]
    pub fn sleep_state(
        mut self,
        state: SleepState,
        changed_at: DateTime<Utc>,
        replicas: Option<i32>,
    ) -> Self {
        self.0.sleep_state = state;
        self.0.sleep_state_changed_at = changed_at;
        self.0.replicas_before_sleep = replicas;
        self
    }
}

/// Host-side operations on the `deployments` table. Each returns whether the row existed
/// (except [`HostOps::insert`], which fails on a duplicate id).
#[async_trait]
pub trait HostOps: Send + Sync {
    /// Inserts a row; returns its id.
    async fn insert(&self, row: NewDeployment) -> Result<Uuid>;
    /// Sets `last_activity_at`, whatever the sleep state, as a deploy or redeploy does.
    async fn bump_activity(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool>;
    /// Pins or unpins.
    async fn set_always_on(&self, id: Uuid, on: bool) -> Result<bool>;
    /// Sets or clears the expiry.
    async fn set_expires_at(&self, id: Uuid, at: Option<DateTime<Utc>>) -> Result<bool>;
    /// Sets the status (`healthy`, `failed`, ...).
    async fn set_status(&self, id: Uuid, status: &str) -> Result<bool>;
    /// Forces a sleep state, bypassing the protocol (to fabricate crash leftovers).
    async fn set_sleep_state(
        &self,
        id: Uuid,
        state: SleepState,
        changed_at: DateTime<Utc>,
        replicas: Option<i32>,
    ) -> Result<bool>;
    /// Deletes the row.
    async fn delete(&self, id: Uuid) -> Result<bool>;
    /// Reads the row as stored.
    async fn read(&self, id: Uuid) -> Result<Option<DeploymentRecord>>;
    /// Every row, by id.
    async fn rows(&self) -> Result<Vec<DeploymentRecord>>;
}
