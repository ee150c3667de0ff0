//! `sql/host-integration.sql` applied to a host table shaped like the reference one minus the
//! sleep columns (plus columns of the host's own): the migration then accepts the table, old
//! rows are awake, and the whole `Store` contract holds on it.

use chrono::Utc;
use idle_scaler_core::ServedClusters;
use idle_scaler_core::{SleepState, Store};
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::contract;
use idle_scaler_testkit::host::HostOps;
use sqlx::PgPool;

const HOST_SCRIPT: &str = include_str!("../../sql/host-integration.sql");

/// The host's table before integration: the reference columns the platform owns, plus its
/// own (`name`, `created_at`), without always_on/expires_at (a platform with no pinning or
/// expiry yet) and without the sleep columns.
const HOST_TABLE: &str = "CREATE TABLE deployments (
    id               uuid        PRIMARY KEY,
    name             text        NOT NULL,
    provider_id      text        NOT NULL,
    status           text        NOT NULL,
    last_activity_at timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
)";

async fn integrated(pool: PgPool) -> PgStore {
    sqlx::raw_sql(HOST_TABLE)
        .execute(&pool)
        .await
        .expect("host table");
    let store = PgStore::from_pool(pool);
    // The library's own copy of the script, applied by the library.
    store
        .apply_host_integration()
        .await
        .expect("host-integration.sql");
    store
        .migrate()
        .await
        .expect("the migration accepts an integrated host table");
    store
}

#[test]
fn the_library_ships_the_script_as_it_is_in_the_repository() {
    assert_eq!(idle_scaler_postgres::HOST_INTEGRATION_SQL, HOST_SCRIPT);
}

#[sqlx::test(migrations = false)]
async fn script_is_additive_idempotent_and_keeps_existing_rows(pool: PgPool) {
    sqlx::raw_sql(HOST_TABLE)
        .execute(&pool)
        .await
        .expect("host table");
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO deployments (id, name, provider_id, status, last_activity_at) \
         VALUES ($1, 'web', 'k8s:apps/web', 'healthy', now() - interval '2 hours')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("existing row");

    // Before the script the migration refuses the table, naming what is missing.
    let err = PgStore::from_pool(pool.clone())
        .migrate()
        .await
        .expect_err("not integrated yet");
    assert!(
        err.to_string().contains("column sleep_state is missing"),
        "{err}"
    );

    for _ in 0..2 {
        sqlx::raw_sql(HOST_SCRIPT)
            .execute(&pool)
            .await
            .expect("host-integration.sql");
    }
    let store = PgStore::from_pool(pool.clone());
    store.migrate().await.expect("migrate");
    assert_eq!(indexes(&pool).await, INDEXES);

    let row = store.get(id).await.expect("get").expect("row kept");
    assert_eq!(row.sleep_state, SleepState::Awake);
    assert!(!row.always_on);
    assert_eq!(row.replicas_before_sleep, None);
    let now = Utc::now();
    let found = store
        .select_candidates(
            &ServedClusters::default(),
            now,
            now - chrono::Duration::minutes(30),
            50,
        )
        .await
        .expect("select");
    assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(store.rows().await.expect("rows").len(), 1);

    let name: String = sqlx::query_scalar("SELECT name FROM deployments WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("host column untouched");
    assert_eq!(name, "web");
}

/// The indexes of an integrated table, as of the reference schema.
const INDEXES: [&str; 10] = [
    "deployments_pkey",
    "deployments_provider_id_idx",
    "deployments_sleep_asleep_replicas_idx",
    "deployments_sleep_backoff_idx",
    "deployments_sleep_drift_idx",
    "deployments_sleep_early_idx",
    "deployments_sleep_eligible_idx",
    "deployments_sleep_keep_idx",
    "deployments_sleep_prewarm_idx",
    "deployments_sleep_state_idx",
];

async fn indexes(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'deployments' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("pg_indexes")
}

/// What the host script added before the liveness columns existed, with the index it built.
const INTEGRATED_BEFORE_LIVENESS: &str = "
ALTER TABLE deployments
    ADD COLUMN always_on boolean NOT NULL DEFAULT false,
    ADD COLUMN expires_at timestamptz NULL,
    ADD COLUMN sleep_state text NOT NULL DEFAULT 'awake',
    ADD COLUMN sleep_state_changed_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN replicas_before_sleep integer NULL
        CONSTRAINT deployments_replicas_before_sleep_check CHECK (replicas_before_sleep > 0),
    ADD CONSTRAINT deployments_sleep_state_check
        CHECK (sleep_state IN ('awake', 'sleeping', 'asleep'));
CREATE INDEX deployments_sleep_candidates_idx ON deployments (last_activity_at, id)
    WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on;
CREATE INDEX deployments_sleep_state_idx ON deployments (sleep_state, sleep_state_changed_at)
    WHERE sleep_state <> 'awake';
";

/// A host table integrated by an earlier version of the script: the migration alone adds
/// the liveness columns with neutral values and swaps the candidate index; running the
/// current script afterwards (or before) changes nothing more.
#[sqlx::test(migrations = false)]
async fn a_table_integrated_before_liveness_is_upgraded(pool: PgPool) {
    sqlx::raw_sql(HOST_TABLE)
        .execute(&pool)
        .await
        .expect("host table");
    sqlx::raw_sql(INTEGRATED_BEFORE_LIVENESS)
        .execute(&pool)
        .await
        .expect("old integration");
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO deployments (id, name, provider_id, status, last_activity_at) \
         VALUES ($1, 'web', 'k8s:apps/web', 'healthy', now() - interval '2 hours')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("existing row");

    let store = PgStore::from_pool(pool.clone());
    store.migrate().await.expect("migrate");
    assert_eq!(indexes(&pool).await, INDEXES);
    let now = Utc::now();
    let found = store
        .select_candidates(
            &ServedClusters::default(),
            now,
            now - chrono::Duration::minutes(30),
            50,
        )
        .await
        .expect("select");
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].id, found[0].backoff_count, found[0].flaps),
        (id, 0, 0)
    );
    sqlx::raw_sql(HOST_SCRIPT)
        .execute(&pool)
        .await
        .expect("host-integration.sql after the migration");
    assert_eq!(indexes(&pool).await, INDEXES);
}

/// A host column named like a liveness column but of another type is named by the migration.
#[sqlx::test(migrations = false)]
async fn a_liveness_column_of_another_type_is_a_clear_error(pool: PgPool) {
    sqlx::raw_sql(HOST_TABLE)
        .execute(&pool)
        .await
        .expect("host table");
    sqlx::raw_sql(HOST_SCRIPT)
        .execute(&pool)
        .await
        .expect("host-integration.sql");
    sqlx::raw_sql(
        "ALTER TABLE deployments DROP COLUMN sleep_flaps; \
         ALTER TABLE deployments ADD COLUMN sleep_flaps text",
    )
    .execute(&pool)
    .await
    .expect("a host column of that name");
    let err = PgStore::from_pool(pool)
        .migrate()
        .await
        .expect_err("incompatible");
    assert!(
        err.to_string()
            .contains("column sleep_flaps is text (want integer)"),
        "{err}"
    );
}

/// The host's inserts name only its own columns; the contract suite's fixtures insert every
/// reference column, so fill the host's extra NOT NULL column with a default for them.
async fn integrated_for_fixtures(pool: PgPool) -> PgStore {
    let store = integrated(pool).await;
    sqlx::query("ALTER TABLE deployments ALTER COLUMN name SET DEFAULT 'fixture'")
        .execute(store.pool())
        .await
        .expect("default for the host column");
    store
}

macro_rules! integrated_case {
    ($($name:ident),* $(,)?) => {
        mod contract_on_integrated_host_table {
            use super::*;
            $(
                #[sqlx::test(migrations = false)]
                async fn $name(pool: PgPool) {
                    contract::$name(&integrated_for_fixtures(pool).await).await;
                }
            )*
        }
    };
}

idle_scaler_testkit::contract_cases!(integrated_case);

/// The definitions of the `deployments` indexes in `schema` but the primary key, with the
/// schema's name taken out.
async fn index_defs(pool: &PgPool, schema: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT indexname::text, replace(indexdef, schemaname || '.', '') FROM pg_indexes \
         WHERE tablename = 'deployments' AND schemaname = $1 AND indexname <> 'deployments_pkey' \
         ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("pg_indexes")
}

/// The script builds every index exactly as the migrations build it on the reference table
/// (same expressions, same `WHERE`): a host table's plans are the reference table's.
#[sqlx::test(migrations = false)]
async fn script_builds_the_indexes_the_migrations_build(pool: PgPool) {
    // The reference schema in a schema of its own, on one connection.
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::raw_sql("CREATE SCHEMA reference; SET search_path = reference")
        .execute(&mut *conn)
        .await
        .expect("reference schema");
    idle_scaler_postgres::MIGRATOR
        .run(&mut *conn)
        .await
        .expect("migrations");
    sqlx::raw_sql("RESET search_path")
        .execute(&mut *conn)
        .await
        .expect("reset");
    drop(conn);
    sqlx::raw_sql(HOST_TABLE)
        .execute(&pool)
        .await
        .expect("host table");
    sqlx::raw_sql(HOST_SCRIPT)
        .execute(&pool)
        .await
        .expect("host-integration.sql");

    let reference = index_defs(&pool, "reference").await;
    assert_eq!(reference.len(), INDEXES.len() - 1, "{reference:?}");
    assert_eq!(index_defs(&pool, "public").await, reference);
}
