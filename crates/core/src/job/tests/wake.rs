//! Wake.

use super::*;

fn wake_job(store: MockStore, scaler: MockScaler) -> Job {
    job(
        Config {
            default_wake_replicas: 2,
            ..enabled()
        },
        store,
        scaler,
    )
}

#[test]
fn wake_restores_the_exact_count() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store
        .expect_get()
        .returning(move |_| Ok(Some(record(id, SleepState::Asleep, Some(5)))));
    store
        .expect_finish_wake()
        .with(eq(id), eq(SleepState::Asleep), eq(t0()))
        .times(1)
        .returning(|_, _, _| Ok(true));
    store.expect_count_asleep().times(1).returning(|| Ok(4));
    let mut scaler = MockScaler::new();
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 5 && rv.is_none())
        .times(1)
        .returning(|_, _, _| Ok(()));
    let (report, snap) = recorded(wake_job(store, scaler).wake(id));
    let report = report.unwrap();
    assert_eq!(
        (report.result, report.replicas),
        (WakeResult::WokeUp, Some(5))
    );
    assert_eq!(outcome(&snap, "woke_up"), 1);
    assert_eq!(gauge(&snap, crate::metrics::IDLE_APPS), Some(4.0));
    assert_eq!(gauge(&snap, crate::metrics::IDLE_APPS), Some(4.0));
}

#[tokio::test]
async fn wake_without_a_recorded_count_uses_the_default() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store
        .expect_get()
        .returning(move |_| Ok(Some(record(id, SleepState::Asleep, None))));
    store.expect_finish_wake().returning(|_, _, _| Ok(true));
    store.expect_count_asleep().returning(|| Ok(0));
    let mut scaler = MockScaler::new();
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 2 && rv.is_none())
        .times(1)
        .returning(|_, _, _| Ok(()));
    assert_eq!(
        wake_job(store, scaler).wake(id).await.unwrap().replicas,
        Some(2)
    );
}

#[test]
fn wake_of_an_awake_app_bumps_activity() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store
        .expect_get()
        .returning(move |_| Ok(Some(record(id, SleepState::Awake, None))));
    store
        .expect_touch_awake()
        .with(eq(id), eq(t0()))
        .times(1)
        .returning(|_, _| Ok(true));
    let (report, snap) = recorded(wake_job(store, MockScaler::new()).wake(id));
    assert_eq!(report.unwrap().result, WakeResult::AlreadyAwake);
    assert_eq!(outcome(&snap, "woke_up"), 0);
}

#[test]
fn wake_of_an_unknown_id_is_not_found_and_not_a_failure() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store.expect_get().returning(|_| Ok(None));
    let (result, snap) = recorded(wake_job(store, MockScaler::new()).wake(id));
    assert!(matches!(result, Err(Error::UnknownDeployment(x)) if x == id));
    assert_eq!(outcome(&snap, "wake_failed"), 0);
}

#[test]
fn failed_wake_scale_leaves_the_row_asleep_and_counts_wake_failed() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store
        .expect_get()
        .returning(move |_| Ok(Some(record(id, SleepState::Asleep, Some(3)))));
    store.expect_finish_wake().times(0);
    let mut scaler = MockScaler::new();
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Err(Error::Unavailable("timeout".into())));
    let (result, snap) = recorded(wake_job(store, scaler).wake(id));
    assert!(matches!(result, Err(Error::Unavailable(_))));
    assert_eq!(outcome(&snap, "wake_failed"), 1);
    assert_eq!(outcome(&snap, "woke_up"), 0);
}

#[tokio::test]
async fn wake_of_a_sleeping_row_that_a_tick_confirms_meanwhile_retries() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    let mut reads = 0;
    store.expect_get().returning(move |_| {
        reads += 1;
        let state = if reads == 1 {
            SleepState::Sleeping
        } else {
            SleepState::Asleep
        };
        Ok(Some(record(id, state, Some(3))))
    });
    // The stale intent it read is settled by the tick meanwhile: the compare-and-set on that
    // intent fails, and the retry wakes the row from `asleep`.
    store
        .expect_settle_intent()
        .with(eq(id), eq(seen()), eq(SleepState::Awake), eq(t0()))
        .times(1)
        .returning(|_, _, _, _| Ok(false));
    store
        .expect_finish_wake()
        .with(eq(id), eq(SleepState::Asleep), eq(t0()))
        .times(1)
        .returning(|_, _, _| Ok(true));
    store.expect_count_asleep().returning(|| Ok(0));
    let mut scaler = MockScaler::new();
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 3 && rv.is_none())
        .times(2)
        .returning(|_, _, _| Ok(()));
    assert_eq!(
        wake_job(store, scaler).wake(id).await.unwrap().result,
        WakeResult::WokeUp
    );
}

/// Found by the simulation: a wake of a row whose sleep is in flight (a fresh intent) wrote
/// the same count (a no-op, so the tick's resourceVersion stayed valid), flipped the row to
/// `awake` and reported success; the tick's scale-down then landed. The wake now declines
/// until the transition settles (a retryable conflict) and touches nothing.
#[test]
fn wake_of_a_row_whose_sleep_is_in_flight_is_a_retryable_conflict() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store.expect_get().returning(move |_| {
        let mut row = record(id, SleepState::Sleeping, Some(3));
        row.sleep_state_changed_at = t0() - chrono::Duration::seconds(2);
        Ok(Some(row))
    });
    store.expect_finish_wake().times(0);
    let mut scaler = MockScaler::new();
    scaler.expect_set_replicas().times(0);
    let (result, _) = recorded(wake_job(store, scaler).wake(id));
    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
}
