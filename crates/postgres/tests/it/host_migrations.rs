//! A host's own sqlx migrations and the library's on one database: each migrator keeps its
//! own tracking table, in either order and across restarts; older installs that recorded the
//! library's migrations in `_sqlx_migrations` have those rows moved.

use std::borrow::Cow;

use idle_scaler_postgres::{LEGACY_MIGRATIONS_TABLE, MIGRATIONS_TABLE, MIGRATOR, PgStore};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, PgPool, SqlSafeStr};

/// A host's migrator: sqlx's defaults (table `_sqlx_migrations`, unknown versions refused).
fn host_migrator() -> Migrator {
    let migration = |version, sql: &'static str| {
        Migration::new(
            version,
            Cow::Borrowed("host"),
            MigrationType::Simple,
            AssertSqlSafe(sql).into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(
            1,
            "CREATE TABLE host_jobs (id bigserial PRIMARY KEY, name text NOT NULL)",
        ),
        migration(
            2,
            "ALTER TABLE host_jobs ADD COLUMN done boolean NOT NULL DEFAULT false",
        ),
    ])
}

async fn versions(pool: &PgPool, table: &str) -> Vec<i64> {
    let sql = format!("SELECT version FROM {table} WHERE success ORDER BY version");
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .expect("versions")
}

fn library_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

async fn assert_both_recorded_apart(pool: &PgPool) {
    assert_eq!(versions(pool, LEGACY_MIGRATIONS_TABLE).await, [1, 2]);
    assert_eq!(versions(pool, MIGRATIONS_TABLE).await, library_versions());
}

#[sqlx::test(migrations = false)]
async fn host_migrations_first_then_the_library(pool: PgPool) {
    host_migrator().run(&pool).await.expect("host first");
    PgStore::from_pool(pool.clone())
        .migrate()
        .await
        .expect("library second");
    assert_both_recorded_apart(&pool).await;
}

#[sqlx::test(migrations = false)]
async fn library_first_then_the_host_migrations(pool: PgPool) {
    PgStore::from_pool(pool.clone())
        .migrate()
        .await
        .expect("library first");
    host_migrator()
        .run(&pool)
        .await
        .expect("host second: no unknown version in its table");
    assert_both_recorded_apart(&pool).await;
}

#[sqlx::test(migrations = false)]
async fn restarts_run_both_again_as_no_ops(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    for _ in 0..3 {
        // A restart: each side runs its migrator, in whatever order the host's startup has.
        store.migrate().await.expect("library");
        host_migrator().run(&pool).await.expect("host");
        host_migrator().run(&pool).await.expect("host again");
        store.migrate().await.expect("library again");
    }
    assert_both_recorded_apart(&pool).await;
}

#[sqlx::test(migrations = false)]
async fn an_install_that_recorded_the_library_in_sqlx_migrations_is_moved_once(pool: PgPool) {
    // An older install: the library's migrations recorded in sqlx's default table, beside
    // the host's own.
    host_migrator().run(&pool).await.expect("host");
    let mut legacy = Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
    legacy.set_ignore_missing(true);
    legacy.run(&pool).await.expect("legacy library run");
    let mut all = vec![1, 2];
    all.extend(library_versions());
    assert_eq!(versions(&pool, LEGACY_MIGRATIONS_TABLE).await, all);

    let store = PgStore::from_pool(pool.clone());
    store.migrate().await.expect("moved, not run again");
    assert_both_recorded_apart(&pool).await;
    // The host's migrator no longer meets versions it does not know.
    host_migrator()
        .run(&pool)
        .await
        .expect("host after the move");
    store.migrate().await.expect("restart");
    assert_both_recorded_apart(&pool).await;
}
