//! Races the database must decide: writes committed on another connection between the tick's
//! select and its compare-and-set.

use idle_scaler_core::ServedClusters;
use std::time::{Duration, Instant};

use chrono::{Duration as Minutes, Utc};
use idle_scaler_core::{ConfirmOutcome, SleepState, Store};
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::{Connection, PgConnection, PgPool};

/// Another session, as the host platform's own writer would be.
async fn other_connection(pool: &PgPool) -> PgConnection {
    PgConnection::connect_with(&pool.connect_options())
        .await
        .expect("second connection")
}

/// Waits until some session of this database is blocked on a lock: the state, not a guess of
/// how long it takes to get there.
async fn until_a_session_waits_on_a_lock(observer: &mut PgConnection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock')",
        )
        .fetch_one(&mut *observer)
        .await
        .expect("pg_stat_activity");
        if waiting {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the claim never blocked on the row lock"
        );
        tokio::task::yield_now().await;
    }
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn claim_loses_to_activity_committed_on_another_connection(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    let now = Utc::now();
    let id = store
        .insert(NewDeployment::k8s("apps", "web", now - Minutes::hours(2)))
        .await
        .expect("insert");
    let idle_before = now - Minutes::minutes(30);
    let selected = store
        .select_candidates(&ServedClusters::default(), now, idle_before, 50)
        .await
        .expect("select");
    assert_eq!(selected.len(), 1);

    let mut host = other_connection(&pool).await;
    sqlx::query("UPDATE deployments SET last_activity_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut host)
        .await
        .expect("redeploy");

    let c = &selected[0];
    assert!(
        !store
            .claim_sleep(id, c.last_activity_at, idle_before, Some(2), now)
            .await
            .expect("claim")
    );
    assert_eq!(
        store.get(id).await.expect("get").expect("row").sleep_state,
        SleepState::Awake
    );
    host.close().await.expect("close");
}

/// The redeploy's transaction holds the row when the claim arrives: the claim waits, and after
/// the commit PostgreSQL re-checks its `WHERE` on the new row version, so it loses.
#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn claim_blocked_by_an_open_redeploy_rechecks_after_its_commit(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    let now = Utc::now();
    let id = store
        .insert(NewDeployment::k8s("apps", "web", now - Minutes::hours(2)))
        .await
        .expect("insert");
    let idle_before = now - Minutes::minutes(30);
    let c = store
        .select_candidates(&ServedClusters::default(), now, idle_before, 50)
        .await
        .expect("select")
        .remove(0);

    let mut host = other_connection(&pool).await;
    let mut tx = host.begin().await.expect("begin");
    sqlx::query("UPDATE deployments SET last_activity_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("redeploy");

    let claimer = store.clone();
    let claim = tokio::spawn(async move {
        claimer
            .claim_sleep(c.id, c.last_activity_at, idle_before, Some(2), now)
            .await
    });
    let mut observer = other_connection(&pool).await;
    until_a_session_waits_on_a_lock(&mut observer).await;
    tx.commit().await.expect("commit");

    assert!(
        !claim.await.expect("join").expect("claim"),
        "claim won over a committed redeploy"
    );
    assert_eq!(
        store.get(id).await.expect("get").expect("row").sleep_state,
        SleepState::Awake
    );
    host.close().await.expect("close");
    observer.close().await.expect("close");
}

/// A wake on another connection finishes between claim and confirm: the confirm reports
/// `NotSleeping` and the row stays awake.
#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn confirm_loses_to_a_wake_committed_on_another_connection(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    let now = Utc::now();
    let id = store
        .insert(NewDeployment::k8s("apps", "web", now - Minutes::hours(2)))
        .await
        .expect("insert");
    let idle_before = now - Minutes::minutes(30);
    let c = store
        .select_candidates(&ServedClusters::default(), now, idle_before, 50)
        .await
        .expect("select")
        .remove(0);
    assert!(
        store
            .claim_sleep(id, c.last_activity_at, idle_before, Some(2), now)
            .await
            .expect("claim")
    );

    let waker = PgStore::from_pool(
        sqlx::PgPool::connect_with(pool.connect_options().as_ref().clone())
            .await
            .expect("pool"),
    );
    let intent_at = store
        .get(id)
        .await
        .expect("get")
        .expect("row")
        .sleep_state_changed_at;
    assert!(
        waker
            .finish_wake(id, SleepState::Sleeping, intent_at, Utc::now())
            .await
            .expect("wake")
    );

    assert_eq!(
        store
            .confirm_sleep(id, c.last_activity_at, now, now)
            .await
            .expect("confirm"),
        ConfirmOutcome::NotSleeping
    );
    assert_eq!(
        store.get(id).await.expect("get").expect("row").sleep_state,
        SleepState::Awake
    );
    waker.pool().close().await;
}

/// The confirm is one statement with three outcomes: blocked behind a write on another
/// connection, it judges the row as that write committed it (READ COMMITTED follows the
/// update), not the snapshot it started with. `write` runs in the other transaction; the
/// confirm then reports `expected`.
async fn confirm_blocked_by(pool: PgPool, write: &'static str, expected: ConfirmOutcome) {
    let store = PgStore::from_pool(pool.clone());
    let now = Utc::now();
    let id = store
        .insert(NewDeployment::k8s("apps", "web", now - Minutes::hours(2)))
        .await
        .expect("insert");
    let c = store
        .select_candidates(
            &ServedClusters::default(),
            now,
            now - Minutes::minutes(30),
            50,
        )
        .await
        .expect("select")
        .remove(0);
    assert!(
        store
            .claim_sleep(
                id,
                c.last_activity_at,
                now - Minutes::minutes(30),
                Some(2),
                now
            )
            .await
            .expect("claim")
    );

    let mut host = other_connection(&pool).await;
    let mut tx = host.begin().await.expect("begin");
    sqlx::query(write)
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("the other write");
    let confirmer = store.clone();
    let confirm = tokio::spawn(async move {
        confirmer
            .confirm_sleep(id, c.last_activity_at, now, Utc::now())
            .await
    });
    let mut observer = other_connection(&pool).await;
    until_a_session_waits_on_a_lock(&mut observer).await;
    tx.commit().await.expect("commit");

    assert_eq!(confirm.await.expect("join").expect("confirm"), expected);
    assert_ne!(
        store.get(id).await.expect("get").expect("row").sleep_state,
        SleepState::Asleep
    );
    host.close().await.expect("close");
    observer.close().await.expect("close");
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn confirm_blocked_by_an_open_redeploy_reports_the_activity(pool: PgPool) {
    confirm_blocked_by(
        pool,
        "UPDATE deployments SET last_activity_at = now() WHERE id = $1",
        ConfirmOutcome::ActivityArrived,
    )
    .await;
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn confirm_blocked_by_an_open_wake_reports_not_sleeping(pool: PgPool) {
    confirm_blocked_by(
        pool,
        "UPDATE deployments SET sleep_state = 'awake', sleep_state_changed_at = now(), \
         last_activity_at = now(), replicas_before_sleep = NULL WHERE id = $1",
        ConfirmOutcome::NotSleeping,
    )
    .await;
}
