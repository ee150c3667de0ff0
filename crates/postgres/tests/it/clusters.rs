//! Several clusters in SQL: the candidate query and the drift checks walk one cluster's
//! entries of their index in order, and both the migration and the host script replace the
//! indexes of the earlier shape (without the cluster key).

use chrono::Utc;
use idle_scaler_core::{ServedClusters, Store};
use idle_scaler_postgres::{PgStore, queries};
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::PgPool;

const OLD_SHAPE: &str = "\
    DROP INDEX deployments_sleep_eligible_idx; \
    CREATE INDEX deployments_sleep_eligible_idx \
        ON deployments ((CASE WHEN sleep_retry_key IS NULL OR last_activity_at > sleep_backoff_activity_at \
                              THEN last_activity_at \
                              ELSE GREATEST(last_activity_at, sleep_retry_key) END), id) \
        WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on \
          AND provider_id LIKE 'k8s:%'; \
    DROP INDEX deployments_sleep_drift_idx; \
    CREATE INDEX deployments_sleep_drift_idx \
        ON deployments ((COALESCE(sleep_checked_at, sleep_state_changed_at)), id) \
        WHERE sleep_state = 'asleep'";

async fn index_def(pool: &PgPool, name: &str) -> String {
    sqlx::query_scalar("SELECT pg_get_indexdef(to_regclass($1))")
        .bind(name)
        .fetch_one(pool)
        .await
        .expect("index definition")
}

async fn eligible_index(pool: &PgPool) -> String {
    index_def(pool, "deployments_sleep_eligible_idx").await
}

/// The candidate plan for `scheme`; `generic`: the plan PostgreSQL may cache for sqlx's
/// prepared statement, with the cluster unknown to the planner.
async fn plan(pool: &PgPool, scheme: &str, generic: bool) -> String {
    // One statement name per call: the pool may run them on one connection.
    let mode = if generic {
        "force_generic_plan"
    } else {
        "force_custom_plan"
    };
    let name = format!("c_{}_{mode}", scheme.replace('@', "_"));
    super::explain(
        pool,
        format!(
            "SET plan_cache_mode = {mode}; \
             PREPARE {name}(timestamptz, timestamptz, bigint, text) AS {}; \
             EXPLAIN (ANALYZE, COSTS OFF) \
             EXECUTE {name}(now(), now() - interval '30 minutes', 50, '{scheme}'); \
             RESET plan_cache_mode",
            queries::SELECT_CANDIDATES
        ),
    )
    .await
}

/// 20,000 idle rows of the default cluster and 200 of east, then a fifth of them asleep:
/// east's walks (candidates, drift checks) read its own entries only, in index order (no
/// sort), and stop at the limit.
#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn each_cluster_is_one_ordered_walk_of_its_indexes(pool: PgPool) {
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO deployments (id, provider_id, status, last_activity_at) \
         SELECT gen_random_uuid(), \
                CASE WHEN i % 100 = 0 THEN 'k8s@east:apps/web-' ELSE 'k8s:apps/web-' END || i, \
                'healthy', now() - interval '1 day' - i * interval '1 second' \
         FROM generate_series(1, 20000) AS i",
    )
    .execute(&pool)
    .await
    .expect("rows");
    sqlx::raw_sql("ANALYZE deployments")
        .execute(&pool)
        .await
        .expect("analyze");
    for (scheme, generic) in [
        ("k8s", false),
        ("k8s@east", false),
        ("k8s", true),
        ("k8s@east", true),
    ] {
        let plan = plan(&pool, scheme, generic).await;
        assert!(
            plan.contains("Index Scan using deployments_sleep_eligible_idx"),
            "{scheme}: {plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{scheme}: {plan}");
        assert!(
            !plan.contains("Sort"),
            "{scheme}: the index gives the order: {plan}"
        );
    }
    // The drift walk of one cluster: its entries of the drift index only, in order.
    sqlx::query(
        "UPDATE deployments SET sleep_state = 'asleep', sleep_state_changed_at = last_activity_at \
         WHERE right(provider_id, 1) IN ('1', '3') OR right(provider_id, 3) ~ '^[02468]00$'",
    )
    .execute(&pool)
    .await
    .expect("asleep rows");
    sqlx::raw_sql("ANALYZE deployments")
        .execute(&pool)
        .await
        .expect("analyze");
    let drift = super::explain(
        &pool,
        format!(
            "PREPARE d(timestamptz, bigint, text) AS {}; \
             EXPLAIN (ANALYZE, COSTS OFF) EXECUTE d(now(), 100, 'k8s@east')",
            queries::ASLEEP_TO_CHECK
        ),
    )
    .await;
    assert!(
        drift.contains("Index Scan using deployments_sleep_drift_idx"),
        "{drift}"
    );
    assert!(
        !drift.contains("Sort"),
        "the index gives the order: {drift}"
    );
    let store = PgStore::from_pool(pool);
    let east = ServedClusters::new(false, [idle_scaler_core::ClusterName::new("east").unwrap()]);
    let due = store
        .asleep_to_check(&east, now, 1_000)
        .await
        .expect("asleep_to_check");
    assert!(!due.is_empty());
    assert!(due.iter().all(|r| r.provider_id.starts_with("k8s@east:")));
    let found = store
        .select_candidates(&east, now, now - chrono::Duration::minutes(30), 50)
        .await
        .expect("select");
    assert_eq!(found.len(), 50);
    assert!(found.iter().all(|c| c.provider_id.starts_with("k8s@east:")));
    assert!(
        found
            .windows(2)
            .all(|w| w[0].last_activity_at <= w[1].last_activity_at),
        "oldest first"
    );
}

/// A database migrated before clusters: the new migration rebuilds the candidate index with
/// the cluster key; a second run keeps it.
#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn the_index_of_the_earlier_shape_is_replaced(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    assert!(eligible_index(&pool).await.contains("split_part"));
    sqlx::raw_sql(OLD_SHAPE)
        .execute(&pool)
        .await
        .expect("old shape");
    assert!(!eligible_index(&pool).await.contains("split_part"));
    let drift = index_def(&pool, "deployments_sleep_drift_idx").await;
    assert!(!drift.contains("split_part"), "{drift}");
    // The host script is how a host table gets it; it is idempotent and replaces the old one.
    store
        .apply_host_integration()
        .await
        .expect("host-integration.sql");
    let def = eligible_index(&pool).await;
    assert!(def.contains("split_part"), "{def}");
    assert!(def.contains("'k8s%:%'"), "{def}");
    let drift = index_def(&pool, "deployments_sleep_drift_idx").await;
    assert!(drift.contains("split_part"), "{drift}");
    store.apply_host_integration().await.expect("a second run");
    assert_eq!(eligible_index(&pool).await, def);
    // Rows of every cluster are selected through it.
    let at = Utc::now() - chrono::Duration::hours(2);
    store
        .insert(NewDeployment::new("k8s@east:apps/web", at))
        .await
        .expect("insert");
    let east = ServedClusters::new(false, [idle_scaler_core::ClusterName::new("east").unwrap()]);
    let now = Utc::now();
    let found = store
        .select_candidates(&east, now, now - chrono::Duration::minutes(30), 5)
        .await
        .expect("select");
    assert_eq!(found.len(), 1);
}
