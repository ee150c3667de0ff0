//! Migrations: the reference schema, idempotence, and a clear error on an incompatible table.

use idle_scaler_postgres::{Error, PgStore};
use sqlx::PgPool;

async fn indexes(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'deployments' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("pg_indexes")
}

#[sqlx::test(migrations = false)]
async fn migrate_creates_the_reference_schema_and_is_idempotent(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    store.migrate().await.expect("first run");
    store.migrate().await.expect("second run is a no-op");
    assert_eq!(
        indexes(&pool).await,
        [
            "deployments_pkey",
            "deployments_provider_id_idx",
            "deployments_sleep_asleep_replicas_idx",
            "deployments_sleep_backoff_idx",
            "deployments_sleep_drift_idx",
            "deployments_sleep_early_idx",
            "deployments_sleep_eligible_idx",
            "deployments_sleep_keep_idx",
            "deployments_sleep_prewarm_idx",
            "deployments_sleep_state_idx"
        ]
    );
    // The schema itself refuses what the protocol must never write.
    let bad_state = sqlx::query(
        "INSERT INTO deployments (id, provider_id, status, last_activity_at, sleep_state) \
         VALUES (gen_random_uuid(), 'k8s:a/b', 'healthy', now(), 'dozing')",
    )
    .execute(&pool)
    .await;
    assert!(bad_state.is_err());
    let zero_restore = sqlx::query(
        "INSERT INTO deployments (id, provider_id, status, last_activity_at, replicas_before_sleep) \
         VALUES (gen_random_uuid(), 'k8s:a/b', 'healthy', now(), 0)",
    )
    .execute(&pool)
    .await;
    assert!(zero_restore.is_err());
    let defaults: (String, bool) = sqlx::query_as(
        "INSERT INTO deployments (id, provider_id, status, last_activity_at) \
         VALUES (gen_random_uuid(), 'k8s:a/b', 'healthy', now()) RETURNING sleep_state, always_on",
    )
    .fetch_one(&pool)
    .await
    .expect("insert with defaults");
    assert_eq!(defaults, ("awake".to_owned(), false));
}

#[sqlx::test(migrations = false)]
async fn incompatible_existing_table_is_a_clear_error_and_nothing_is_applied(pool: PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE deployments (id serial PRIMARY KEY, provider_id text, status integer NOT NULL, \
         last_activity_at timestamptz NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("host table");
    let err = PgStore::from_pool(pool.clone())
        .migrate()
        .await
        .expect_err("incompatible");
    let Error::IncompatibleSchema(problems) = &err else {
        panic!("wrong error: {err:?}")
    };
    for expected in [
        "column id is integer (want uuid)",
        "column provider_id is nullable (want NOT NULL)",
        "column status is integer (want text)",
        "column always_on is missing",
        "column sleep_state is missing",
        "column replicas_before_sleep is missing",
    ] {
        assert!(
            problems.contains(expected),
            "{expected:?} not in {problems:?}"
        );
    }
    assert!(!problems.contains("last_activity_at"), "{problems}");
    assert!(
        err.to_string().contains("docs/host-integration.md"),
        "{err}"
    );
    // The migration ran in a transaction: no index, no recorded migration.
    assert_eq!(indexes(&pool).await, ["deployments_pkey"]);
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _idle_scaler_migrations WHERE success")
            .fetch_one(&pool)
            .await
            .expect("migrations table");
    assert_eq!(applied, 0);
}
