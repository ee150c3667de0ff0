//! A scratch database (feature `host-ops`): created on the server a URL names, migrated, and
//! dropped at the end. The binary's demo and the store benchmark each run in one, so neither
//! touches the user's own database.

use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::{Error, PgStore, Result, parse_url};

/// A database created for one run, with a migrated [`PgStore`] on it. Not dropped
/// automatically (dropping needs `.await`): call [`ScratchDatabase::drop_database`].
#[derive(Debug)]
pub struct ScratchDatabase {
    /// A connection to the database of the URL, to drop the scratch database from.
    admin: PgStore,
    name: String,
    store: PgStore,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<random>` on the server of `url` (its user needs `CREATEDB`),
    /// connects `pool` to it and applies the migrations. The scratch pool keeps the URL's
    /// own options: no statement timeout, so a bulk load is not cut short.
    ///
    /// # Errors
    /// The server cannot be reached, refuses `CREATE DATABASE`, or the migrations fail.
    pub async fn create(url: &str, prefix: &str, pool: PgPoolOptions) -> Result<Self> {
        let admin = PgStore::connect(url).await?;
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        // The name is a prefix of ours and a UUID, never user input.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(admin.pool())
            .await
            .map_err(Error::query("create_database"))?;
        let options = parse_url(url)?.database(&name);
        let pool = pool
            .connect_with(options)
            .await
            .map_err(Error::query("connect_scratch_database"))?;
        let store = PgStore::from_pool(pool);
        store.migrate().await?;
        Ok(Self { admin, name, store })
    }

    /// The store on the scratch database (a clone sharing its pool).
    pub fn store(&self) -> PgStore {
        self.store.clone()
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the scratch pool and drops the database, forcing off any connection still
    /// open (`WITH (FORCE)`).
    ///
    /// # Errors
    /// `DROP DATABASE` failed; the database is then left behind, under [`Self::name`].
    pub async fn drop_database(self) -> Result<()> {
        self.store.pool().close().await;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(AssertSqlSafe(sql))
            .execute(self.admin.pool())
            .await
            .map_err(Error::query("drop_database"))?;
        Ok(())
    }
}
