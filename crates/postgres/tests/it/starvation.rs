//! Liveness on PostgreSQL: rows the tick can never sleep, older than every real app, cost
//! one attempt each and then back off; the tick after sleeps `max_per_tick` real apps.

use std::sync::Arc;

use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::liveness::lasting_skips_never_starve;
use sqlx::PgPool;

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn unsleepable_rows_never_starve_the_sweep(pool: PgPool) {
    let run = lasting_skips_never_starve(Arc::new(PgStore::from_pool(pool)), 1_000, 200).await;
    eprintln!("starvation (PostgreSQL): {run:?}");
    assert_eq!(run.slept_after, 200);
    // A read and a write per real app; nothing else is tried again.
    assert_eq!(run.scaler_calls_after, 2 * 200);
}
