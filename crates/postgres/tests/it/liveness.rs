//! The liveness case at full size on PostgreSQL: 10,000 backed-off rows of each lasting skip
//! and 10,000 rows of another provider, all idle longer than the real candidates, loaded in
//! bulk (the contract runs the same check with fewer rows through `HostOps`). The candidate
//! query still returns the 50 oldest real candidates, walking the eligibility index.

use chrono::{Duration, Utc};
use idle_scaler_core::ServedClusters;
use idle_scaler_core::Store;
use idle_scaler_postgres::{PgStore, queries};
use idle_scaler_testkit::contract::{LASTING_SKIPS, REAL_CANDIDATES};
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::PgPool;

const PER_KIND: i64 = 10_000;
const IDLE_WINDOW: Duration = Duration::minutes(30);

/// $1 count, $2 now, $3 kind index, $4 reason. Writes what `back_off` writes.
const BACKED_OFF_ROWS: &str = "
INSERT INTO deployments (id, provider_id, status, last_activity_at, sleep_state_changed_at,
                         sleep_retry_after, sleep_retry_key, sleep_backoff_activity_at,
                         sleep_backoff_count, sleep_skip_reason)
SELECT gen_random_uuid(), 'k8s:' || $4 || '/app-' || i, 'healthy', a, a,
       $2 + interval '1 hour' + $3 * interval '1 minute',
       $2 + interval '30 minutes' + $3 * interval '1 minute',
       a, 1, $4
FROM generate_series(1, $1) AS i,
     LATERAL (SELECT $2 - interval '50000 minutes' - i * interval '1 second' AS a) t";

/// $1 count, $2 now.
const FOREIGN_ROWS: &str = "
INSERT INTO deployments (id, provider_id, status, last_activity_at, sleep_state_changed_at)
SELECT gen_random_uuid(), 'docker:app-' || i, 'healthy', t, t
FROM generate_series(1, $1) AS i,
     LATERAL (SELECT $2 - interval '100000 minutes' - i * interval '1 second' AS t) x";

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn backed_off_rows_never_starve_candidates_at_10k_per_kind(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    let now = Utc::now();
    sqlx::query(FOREIGN_ROWS)
        .bind(PER_KIND)
        .bind(now)
        .execute(&pool)
        .await
        .expect("foreign rows");
    for (k, reason) in LASTING_SKIPS.iter().enumerate() {
        sqlx::query(BACKED_OFF_ROWS)
            .bind(PER_KIND)
            .bind(now)
            .bind(i32::try_from(k).expect("small"))
            .bind(*reason)
            .execute(&pool)
            .await
            .expect("backed-off rows");
    }
    let mut real = Vec::new();
    for i in 0..REAL_CANDIDATES {
        let at = now - Duration::minutes(60 + i64::try_from(REAL_CANDIDATES - i).expect("small"));
        let row = NewDeployment::k8s("real", &format!("app-{i}"), at);
        real.push(store.insert(row).await.expect("insert"));
    }
    sqlx::raw_sql("ANALYZE deployments")
        .execute(&pool)
        .await
        .expect("analyze");

    let ids: Vec<_> = store
        .select_candidates(&ServedClusters::default(), now, now - IDLE_WINDOW, 50)
        .await
        .expect("select")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, real[..50]);
    let listed = store.backed_off(now, 10).await.expect("backed_off");
    assert_eq!(listed.len(), 10);
    assert!(listed.iter().all(|b| b.reason == LASTING_SKIPS[0]));

    // The plan walks the eligibility index and reads about `limit` entries, not the 70,000
    // rows backing off.
    let plan = super::explain(
        &pool,
        format!(
            "PREPARE c(timestamptz, timestamptz, bigint, text) AS {}; \
             EXPLAIN (ANALYZE, COSTS OFF) \
             EXECUTE c(now(), now() - interval '30 minutes', 50, 'k8s')",
            queries::SELECT_CANDIDATES
        ),
    )
    .await;
    assert!(
        plan.contains("Index Scan using deployments_sleep_eligible_idx"),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan"), "{plan}");
    assert!(!plan.contains("Sort"), "the index gives the order: {plan}");
}
