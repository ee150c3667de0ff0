//! The additive script that prepares a host platform's own `deployments` table
//! (`crates/postgres/sql/host-integration.sql`), shipped inside the library so a host needs no
//! copy of the repository to apply it.

use sqlx::Connection;

use crate::{Error, PgStore, Result};

/// `sql/host-integration.sql`: adds the columns, constraints and indexes the store needs to
/// an existing `deployments` table; only adds, and running it twice is a no-op.
pub const HOST_INTEGRATION_SQL: &str = include_str!("../sql/host-integration.sql");

impl PgStore {
    /// Applies [`HOST_INTEGRATION_SQL`] in one transaction (all of it or nothing), without the
    /// store's statement timeout, since building an index on a large table may outlast it.
    /// Run it before [`PgStore::migrate`] on a database whose `deployments` table is the host's.
    pub async fn apply_host_integration(&self) -> Result<()> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(Error::query("host_integration"))?;
        let mut tx = conn
            .begin()
            .await
            .map_err(Error::query("host_integration"))?;
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(Error::query("host_integration"))?;
        sqlx::raw_sql(HOST_INTEGRATION_SQL)
            .execute(&mut *tx)
            .await
            .map_err(Error::query("host_integration"))?;
        tx.commit().await.map_err(Error::query("host_integration"))
    }
}
