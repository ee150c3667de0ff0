//! The adaptive policy through the real job on PostgreSQL: a poller's requests replayed minute
//! by minute on a virtual clock (the in-memory store runs the same scenario in the test kit's
//! `tests/adaptive.rs`). The store's statements, not the advice, are under test here: learning,
//! the early path, pre-warms and keeps must carry the job through as they do in memory.

use chrono::Duration;
use idle_scaler_core::{RhythmStore, SleepPolicy, SleepState};
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::host::HostOps;
use idle_scaler_testkit::one_app::{OneApp, poller, start};
use sqlx::PgPool;

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_poller_is_prewarmed_before_every_poll_and_sleeps_at_the_floor(pool: PgPool) {
    let store = PgStore::from_pool(pool);
    let mut app = OneApp::new(store.clone(), SleepPolicy::Adaptive).await;
    // Eight hours to learn, then eight measured: 12 polls.
    app.run(8 * 60, poller).await;
    app.reset();
    app.run(8 * 60, poller).await;
    assert_eq!(app.cold_starts, 0, "pre-warmed before every poll");
    // The fixed window keeps it up 30 of every 40 minutes (360 of 480); the floor and the
    // pre-warm's lead, about 10.
    assert!(
        app.awake_minutes < 180,
        "awake {} minutes",
        app.awake_minutes
    );
    let ids: Vec<_> = store
        .rows()
        .await
        .expect("rows")
        .iter()
        .map(|r| r.id)
        .collect();
    let rhythms = store.rhythms(&ids).await.expect("rhythms");
    assert!(!rhythms[&ids[0]].gaps.is_empty(), "learned from PostgreSQL");
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_prewarm_nobody_uses_is_no_activity_and_sleeps_again(pool: PgPool) {
    let store = PgStore::from_pool(pool);
    let mut app = OneApp::new(store.clone(), SleepPolicy::Adaptive).await;
    app.run(8 * 60, poller).await;
    app.reset();
    app.run(3 * 60, |_| false).await;
    assert_eq!(app.cold_starts, 0);
    assert!(
        app.awake_minutes <= 12,
        "awake {} minutes",
        app.awake_minutes
    );
    let row = &store.rows().await.expect("rows")[0];
    assert_eq!(row.sleep_state, SleepState::Asleep);
    assert_eq!(row.last_activity_at, start() + Duration::minutes(8 * 60));
}
