//! PostgreSQL store benchmark (a plain binary, `harness = false`):
//!
//! ```sh
//! cargo bench -p idle-scaler-postgres --bench store
//! ```
//!
//! Creates its own database on `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), loads 1,000,000 rows of which 1% are idle
//! candidates and 10% (100,000) back off, idle for longer than every candidate, and reports,
//! per call through `PgStore` (round trip and decoding included): the candidate query at
//! `max_per_tick` 50 and 500, the drift-check and backoff listings, an idle tick (a real
//! `Job::tick` with no candidates and a scaler that must never be called) and the asleep
//! count, plus the plans (`EXPLAIN ANALYZE`, custom and generic) with a check that none scans
//! `deployments` sequentially, that the candidate query (which skips 10,000 kept rows among
//! its candidates) uses `deployments_sleep_eligible_idx` and the adaptive policy's early path
//! `deployments_sleep_early_idx`. Drops its database at the end.

use idle_scaler_core::ServedClusters;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use idle_scaler_core::{
    Config, Error, FixedScalerFactory, Job, Result, RhythmStore, Scale, Scaler, Store, SystemClock,
    Target,
};
use idle_scaler_postgres::{ScratchDatabase, queries};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

// Under `store/`, not beside this file: cargo would take any `benches/*.rs` for a bench.
#[path = "store/explain.rs"]
mod explain;

use explain::explain;

const ROWS: i64 = 1_000_000;
const SAMPLES: usize = 500;
const WARMUP: usize = 20;
const IDLE_WINDOW_MINUTES: i64 = 30;

/// Targets from issue 3 (the candidate query at 500) and issue 11 (at 50, with 100,000
/// backed-off rows older than every candidate).
const CANDIDATE_P99_TARGET: Duration = Duration::from_millis(10);
const CANDIDATE_50_P99_TARGET: Duration = Duration::from_millis(5);
const EMPTY_TICK_TARGET: Duration = Duration::from_millis(5);

/// The idle tick must not touch Kubernetes: any call is counted and fails the run.
#[derive(Default)]
struct NeverCalled(AtomicU64);

#[async_trait]
impl Scaler for NeverCalled {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(Error::invalid(format!("idle tick touched {target}")))
    }
    async fn set_replicas<'a>(&self, target: &Target, _: i32, _: Option<&'a str>) -> Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(Error::invalid(format!("idle tick touched {target}")))
    }
}

struct Stats {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn measure<F, Fut, T>(mut f: F) -> Stats
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    for _ in 0..WARMUP {
        f().await;
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        f().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    Stats {
        p50: at(50),
        p99: at(99),
        max: samples[samples.len() - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Rows by `i % 100`: 0 idle candidate (1%), 1 asleep (1%), 2 idle but pinned, 3 idle but
/// unhealthy, 4 idle but expired, 5 another provider's, idle, 6 idle but kept for an hour by
/// the adaptive policy (1%, in the candidate index among the candidates); 10 to 19 (10%,
/// 100,000 rows) backing off for an hour or more, idle 3 days (longer than every candidate),
/// as `back_off` leaves them; the rest active within the idle window, 20 to 29 of them (10%)
/// with a rhythm that lets them sleep at the floor (the early path's rows).
const LOAD: &str = "
INSERT INTO deployments (id, provider_id, status, always_on, expires_at, last_activity_at,
                         sleep_state, sleep_state_changed_at, replicas_before_sleep,
                         sleep_retry_after, sleep_retry_key, sleep_backoff_activity_at,
                         sleep_backoff_count, sleep_skip_reason, sleep_keep_until,
                         sleep_keep_activity_at, sleep_early)
SELECT gen_random_uuid(),
       CASE WHEN m = 5 THEN 'docker:bench/app-' ELSE 'k8s:bench/app-' END || i,
       CASE WHEN m = 3 THEN 'failed' ELSE 'healthy' END,
       m = 2,
       CASE WHEN m = 4 THEN now() - interval '1 hour' END,
       a,
       CASE WHEN m = 1 THEN 'asleep' ELSE 'awake' END,
       now() - interval '1 day',
       CASE WHEN m = 1 THEN 2 END,
       CASE WHEN b THEN r END,
       CASE WHEN b THEN r - interval '30 minutes' END,
       CASE WHEN b THEN a END,
       CASE WHEN b THEN 1 + m % 5 ELSE 0 END,
       CASE WHEN b THEN 'not_found' END,
       CASE WHEN m = 6 THEN now() + interval '1 hour' END,
       CASE WHEN m = 6 THEN a END,
       m BETWEEN 20 AND 29
FROM generate_series(1, $1) AS i,
     LATERAL (SELECT i % 100 AS m) mm,
     LATERAL (SELECT m BETWEEN 10 AND 19 AS b,
                     now() + interval '1 hour' + (i % 3600) * interval '1 second' AS r) bb,
     LATERAL (SELECT CASE WHEN m BETWEEN 0 AND 6
                          THEN now() - interval '2 days' - i * interval '1 second'
                          WHEN b THEN now() - interval '3 days' - i * interval '1 second'
                          ELSE now() - (i % 1500) * interval '1 second' END AS a) aa";

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let scratch = ScratchDatabase::create(
        &url,
        "idle_scaler_bench",
        PgPoolOptions::new().max_connections(4),
    )
    .await
    .unwrap_or_else(|e| panic!("creating the bench database: {e}"));
    let store = scratch.store();
    let pool = store.pool().clone();

    let server: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await
        .expect("version");
    let started = Instant::now();
    sqlx::query(LOAD)
        .bind(ROWS)
        .execute(&pool)
        .await
        .expect("load");
    exec(&pool, "VACUUM ANALYZE deployments").await;
    let load_time = started.elapsed();

    let now = Utc::now();
    let idle_before = now - chrono::Duration::minutes(IDLE_WINDOW_MINUTES);
    let candidates = store
        .select_candidates(&ServedClusters::default(), now, idle_before, u32::MAX)
        .await
        .expect("select");
    let asleep = store.count_asleep().await.expect("count");
    let backing_off: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deployments WHERE sleep_retry_after > now()")
            .fetch_one(&pool)
            .await
            .expect("count backed off");
    println!("PostgreSQL {server}; {ROWS} rows loaded + VACUUM ANALYZE in {load_time:.1?}");
    println!(
        "idle candidates: {}; backing off (idle longer than every candidate): {backing_off}; \
         asleep: {asleep}; samples per row: {SAMPLES}\n",
        candidates.len()
    );
    assert_eq!(
        candidates.len(),
        10_000,
        "backed-off rows are no candidates"
    );

    let mut report = Vec::new();
    for limit in [50_u32, 500] {
        let s = measure(|| async {
            let n = store
                .select_candidates(&ServedClusters::default(), now, idle_before, limit)
                .await
                .expect("select");
            assert_eq!(n.len(), usize::try_from(limit).expect("small"));
        })
        .await;
        let target = if limit == 50 {
            CANDIDATE_50_P99_TARGET
        } else {
            CANDIDATE_P99_TARGET
        };
        report.push((
            format!("candidate query, max_per_tick {limit}"),
            s,
            Some(target),
        ));
    }
    let s = measure(|| async { store.count_asleep().await.expect("count") }).await;
    report.push(("count_asleep (gauge)".to_owned(), s, None));
    let checked_before = now - chrono::Duration::minutes(10);
    let s = measure(|| async {
        let due = store
            .asleep_to_check(&ServedClusters::default(), checked_before, 100)
            .await
            .expect("asleep_to_check");
        assert_eq!(due.len(), 100);
    })
    .await;
    report.push(("asleep_to_check, 100 (drift checks)".to_owned(), s, None));
    let s = measure(|| async {
        let listed = store.backed_off(now, 100).await.expect("backed_off");
        assert_eq!(listed.len(), 100);
    })
    .await;
    report.push(("backed_off, 100 (plan, status)".to_owned(), s, None));
    let early_before = now - chrono::Duration::minutes(5);
    let s = measure(|| async {
        let early = store
            .select_early(
                &ServedClusters::default(),
                now,
                early_before,
                idle_before,
                50,
            )
            .await
            .expect("select_early");
        assert_eq!(early.len(), 50);
    })
    .await;
    report.push(("select_early, 50 (adaptive early path)".to_owned(), s, None));

    let mut plans = String::new();
    for generic in [false, true] {
        plans += &explain(
            &pool,
            "candidate query, limit 500",
            queries::SELECT_CANDIDATES,
            generic,
        )
        .await;
    }
    plans += &explain(
        &pool,
        "candidate query, limit 50",
        queries::SELECT_CANDIDATES,
        false,
    )
    .await;
    plans += &explain(&pool, "asleep_to_check", queries::ASLEEP_TO_CHECK, false).await;
    plans += &explain(&pool, "backed_off", queries::BACKED_OFF, false).await;
    plans += &explain(&pool, "count_asleep", queries::COUNT_ASLEEP, false).await;
    plans += &explain(
        &pool,
        "sum_asleep_replicas",
        queries::SUM_ASLEEP_REPLICAS,
        false,
    )
    .await;
    plans += &explain(&pool, "stale intents", queries::STALE_INTENTS, false).await;
    for generic in [false, true] {
        plans += &explain(
            &pool,
            "select_early, limit 50",
            queries::SELECT_EARLY,
            generic,
        )
        .await;
    }
    plans += &explain(&pool, "keeps, limit 500", queries::KEEPS, false).await;
    plans += &explain(&pool, "prewarms_due", queries::PREWARMS_DUE, false).await;

    // The idle tick: a redeploy wave made every idle app active again, so nothing is a
    // candidate, and every asleep app was just checked, so no drift check is due; the tick
    // still recovers intents, looks for drift, selects and samples the gauge.
    exec(
        &pool,
        "UPDATE deployments SET last_activity_at = now() \
         WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on \
           AND last_activity_at < now() - interval '1 hour'",
    )
    .await;
    exec(
        &pool,
        "UPDATE deployments SET sleep_checked_at = now() WHERE sleep_state = 'asleep'",
    )
    .await;
    exec(&pool, "VACUUM ANALYZE deployments").await;
    // What the idle tick's drift look costs when nothing is due, in both plan shapes (a
    // prepared statement turns generic after five executions).
    for generic in [false, true] {
        plans += &explain(
            &pool,
            "asleep_to_check, none due",
            queries::ASLEEP_TO_CHECK,
            generic,
        )
        .await;
    }
    plans += &explain(
        &pool,
        "any_asleep_to_check, none due",
        queries::ANY_ASLEEP_TO_CHECK,
        false,
    )
    .await;
    let scaler = Arc::new(NeverCalled::default());
    let config = Config {
        enabled: true,
        max_per_tick: 50,
        ..Config::default()
    };
    let job = Job::builder(
        config,
        Arc::new(store.clone()),
        Arc::new(FixedScalerFactory(scaler.clone())),
    )
    .clock(Arc::new(SystemClock))
    .build();
    let s = measure(|| async {
        let r = job.tick().await.expect("tick");
        assert_eq!(r.candidates, 0);
    })
    .await;
    assert_eq!(
        scaler.0.load(Ordering::SeqCst),
        0,
        "the idle tick called the scaler"
    );
    report.push((
        "idle tick (Job::tick, no candidates)".to_owned(),
        s,
        Some(EMPTY_TICK_TARGET),
    ));

    println!("| measurement | p50 ms | p99 ms | max ms | target | met |");
    println!("|---|---:|---:|---:|---|---|");
    let mut all_met = true;
    for (name, s, target) in &report {
        let (target_text, met) = match target {
            Some(t) if name.starts_with("candidate") => {
                (format!("p99 < {} ms", t.as_millis()), s.p99 < *t)
            }
            Some(t) => (format!("< {} ms (p99)", t.as_millis()), s.p99 < *t),
            None => ("-".to_owned(), true),
        };
        all_met &= met;
        println!(
            "| {name} | {} | {} | {} | {target_text} | {} |",
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            if met { "yes" } else { "NO" }
        );
    }
    let seq_scan = plans.contains("Seq Scan on deployments");
    let walks = |title: &str, index: &str| {
        plans
            .split("-- ")
            .filter(|p| p.starts_with(title))
            .all(|p| p.contains(&format!("Index Scan using {index}")))
    };
    let eligible_index = walks("candidate query", "deployments_sleep_eligible_idx");
    let early_index = walks("select_early", "deployments_sleep_early_idx");
    println!(
        "\nSeq Scan on deployments in any plan: {}; candidate plans use \
         deployments_sleep_eligible_idx: {}; select_early plans use \
         deployments_sleep_early_idx: {}\n",
        if seq_scan { "YES" } else { "no" },
        if eligible_index { "yes" } else { "NO" },
        if early_index { "yes" } else { "NO" }
    );
    println!("{plans}");

    scratch
        .drop_database()
        .await
        .unwrap_or_else(|e| panic!("dropping the bench database: {e}"));
    // Latency depends on the machine and its neighbours, so a miss is reported, not fatal;
    // a sequential scan is a property of the schema and the query, so it fails the run.
    if !all_met {
        eprintln!("latency targets not met on this run (see the table)");
    }
    if seq_scan {
        eprintln!("a plan scans deployments sequentially");
        std::process::exit(1);
    }
    if !eligible_index {
        eprintln!("a candidate plan does not walk deployments_sleep_eligible_idx");
        std::process::exit(1);
    }
    if !early_index {
        eprintln!("a select_early plan does not walk deployments_sleep_early_idx");
        std::process::exit(1);
    }
}
