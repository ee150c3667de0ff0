//! The store bench's plans: `EXPLAIN (ANALYZE, BUFFERS)` of each statement as the tick binds it.

use idle_scaler_postgres::queries;
use sqlx::{AssertSqlSafe, PgPool, Row};

use super::IDLE_WINDOW_MINUTES;

/// `EXPLAIN (ANALYZE, BUFFERS)` of a store statement as the tick binds it. `generic`: of the
/// prepared statement forced to its generic plan, the plan PostgreSQL may cache for sqlx's
/// prepared statements after a few executions, with the parameters left unknown to the planner.
pub(crate) async fn explain(pool: &PgPool, title: &str, sql: &str, generic: bool) -> String {
    let mut conn = pool.acquire().await.expect("connection");
    let (types, args) = match sql {
        // The default cluster's walk: the store runs one per served cluster.
        s if s == queries::SELECT_CANDIDATES => (
            "(timestamptz, timestamptz, bigint, text)",
            format!(
                "(now(), now() - interval '{IDLE_WINDOW_MINUTES} minutes', {}, 'k8s')",
                // The title names the limit: "candidate query, limit N".
                title.rsplit(' ').next().unwrap_or("500")
            ),
        ),
        s if s == queries::STALE_INTENTS => (
            "(timestamptz, text[])",
            "(now() - interval '5 minutes', '{k8s}')".to_owned(),
        ),
        // As the idle tick asks: one interval back, the first tick's slice.
        // The default cluster's walks: the store runs one per served cluster.
        s if s == queries::ASLEEP_TO_CHECK && title.ends_with("none due") => (
            "(timestamptz, bigint, text)",
            "(now() - interval '2 minutes', 2000, 'k8s')".to_owned(),
        ),
        s if s == queries::ANY_ASLEEP_TO_CHECK => (
            "(timestamptz, text)",
            "(now() - interval '2 minutes', 'k8s')".to_owned(),
        ),
        s if s == queries::ASLEEP_TO_CHECK => (
            "(timestamptz, bigint, text)",
            "(now() - interval '10 minutes', 100, 'k8s')".to_owned(),
        ),
        s if s == queries::BACKED_OFF => ("(timestamptz, bigint)", "(now(), 100)".to_owned()),
        s if s == queries::SUM_ASLEEP_REPLICAS => ("(integer)", "(1)".to_owned()),
        // The default cluster's walks, as the adaptive tick asks: the floor is 5 minutes.
        s if s == queries::SELECT_EARLY => (
            "(timestamptz, timestamptz, timestamptz, bigint, text)",
            format!(
                "(now(), now() - interval '5 minutes', \
                  now() - interval '{IDLE_WINDOW_MINUTES} minutes', 50, 'k8s')"
            ),
        ),
        s if s == queries::KEEPS => ("(bigint, text)", "(500, 'k8s')".to_owned()),
        s if s == queries::PREWARMS_DUE => (
            "(timestamptz, bigint, text)",
            "(now(), 50, 'k8s')".to_owned(),
        ),
        _ => ("", String::new()),
    };
    let mode = if generic {
        "force_generic_plan"
    } else {
        "force_custom_plan"
    };
    exec_on(&mut conn, &format!("SET plan_cache_mode = {mode}")).await;
    exec_on(&mut conn, &format!("PREPARE bench_stmt{types} AS {sql}")).await;
    let rows = sqlx::raw_sql(AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_stmt{args}"
    )))
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("{title}: {e}"));
    exec_on(&mut conn, "DEALLOCATE bench_stmt; RESET plan_cache_mode").await;
    let lines: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    let kind = if generic {
        "generic plan"
    } else {
        "custom plan"
    };
    format!("-- {title} ({kind})\n{}\n", lines.join("\n"))
}

async fn exec_on(conn: &mut sqlx::PgConnection, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .expect(sql);
}
