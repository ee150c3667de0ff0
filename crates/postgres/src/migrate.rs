//! The library's migrations and where they are recorded.
//!
//! They are recorded in their own table, [`MIGRATIONS_TABLE`], not in sqlx's default
//! `_sqlx_migrations`: a host that runs its own sqlx migrations on the same database keeps its
//! table to itself, so neither migrator finds versions it does not know (sqlx refuses those
//! unless told to ignore them), whichever runs first and however often the process restarts.
//!
//! Installs from before the move recorded this library's migrations in `_sqlx_migrations`.
//! [`adopt_legacy_records`] moves exactly those rows (same version and checksum) to the
//! library's table before the migrator runs, so such a database is not migrated twice and the
//! host's table is left with only the host's rows.

use std::borrow::Cow;

use sqlx::PgConnection;
use sqlx::migrate::{Migrate, MigrateError, Migrator};

/// The table the library records its applied migrations in.
pub const MIGRATIONS_TABLE: &str = "_idle_scaler_migrations";

/// sqlx's default table, where installs before [`MIGRATIONS_TABLE`] recorded them.
pub const LEGACY_MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// The embedded migrations (`crates/postgres/migrations/`), recorded in [`MIGRATIONS_TABLE`].
/// Each migration runs in a transaction, so a failure leaves nothing half-applied.
pub static MIGRATOR: Migrator = Migrator {
    table_name: Cow::Borrowed(MIGRATIONS_TABLE),
    ..sqlx::migrate!("./migrations")
};

/// Moves this library's rows from `_sqlx_migrations` to [`MIGRATIONS_TABLE`], once. A row is
/// ours only if both its version and its checksum match an embedded migration, so a host
/// migration is never touched. A no-op when there is no legacy table or nothing to move.
/// Runs in one transaction under an advisory lock: two processes starting at once move the
/// rows once.
pub(crate) async fn adopt_legacy_records(conn: &mut PgConnection) -> Result<u64, MigrateError> {
    let (versions, checksums): (Vec<i64>, Vec<Vec<u8>>) = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, m.checksum.to_vec()))
        .unzip();
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // Any constant key works: only callers of this function take it.
    sqlx::query("SELECT pg_advisory_xact_lock(7318042915)")
        .execute(&mut *tx)
        .await?;
    let legacy: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(LEGACY_MIGRATIONS_TABLE)
        .fetch_one(&mut *tx)
        .await?;
    if legacy.is_none() {
        return Ok(0);
    }
    tx.ensure_migrations_table(MIGRATIONS_TABLE).await?;
    // The two table names as in the constants above (a statement must be a literal).
    let moved = sqlx::query(
        "WITH ours AS (\
             DELETE FROM _sqlx_migrations l \
             USING unnest($1::bigint[], $2::bytea[]) AS m(version, checksum) \
             WHERE l.version = m.version AND l.checksum = m.checksum \
             RETURNING l.*) \
         INSERT INTO _idle_scaler_migrations \
         SELECT * FROM ours ON CONFLICT (version) DO NOTHING",
    )
    .bind(&versions)
    .bind(&checksums)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if moved > 0 {
        tracing::info!(
            moved,
            from = LEGACY_MIGRATIONS_TABLE,
            to = MIGRATIONS_TABLE,
            "moved idle-scaler's migration records to its own table"
        );
    }
    Ok(moved)
}
