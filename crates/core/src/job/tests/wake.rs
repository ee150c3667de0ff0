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

/// A store whose row `id` is asleep with `replicas` recorded, and whose wake may begin.
fn asleep_row(id: Uuid, replicas: Option<i32>) -> MockStore {
    let mut store = MockStore::new();
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
    store
        .expect_get()
        .returning(move |_| Ok(Some(record(id, SleepState::Asleep, replicas))));
    store
}

#[test]
fn wake_restores_the_exact_count() {
    let id = Uuid::new_v4();
    let mut store = asleep_row(id, Some(5));
    store
        .expect_finish_wake()
        .with(
            eq(id),
            eq(SleepState::Asleep),
            mockall::predicate::always(),
            eq(t0()),
        )
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    store.expect_count_asleep().times(1).returning(|| Ok(4));
    store.expect_sum_asleep_replicas().returning(|_| Ok(0));
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .times(1)
        .returning(|_| Ok(scale(0, "9")));
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 5 && *rv == Some("9"))
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
    let mut store = asleep_row(id, None);
    store.expect_finish_wake().returning(|_, _, _, _| Ok(true));
    no_asleep(&mut store);
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(0, "9")));
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 2 && *rv == Some("9"))
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
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
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
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
    store.expect_get().returning(|_| Ok(None));
    let (result, snap) = recorded(wake_job(store, MockScaler::new()).wake(id));
    assert!(matches!(result, Err(Error::UnknownDeployment(x)) if x == id));
    assert_eq!(outcome(&snap, "wake_failed"), 0);
}

/// The scale-up was applied but its answer lost: the wake reads the scale back, finds the
/// app running and marks the row awake instead of leaving it asleep.
#[test]
fn a_scale_up_whose_answer_was_lost_is_read_back_and_counts_as_woken() {
    for reach in [crate::Reach::NoAnswer, crate::Reach::Answered] {
        let id = Uuid::new_v4();
        let mut store = MockStore::new();
        store.expect_begin_wake().returning(|_, _, _| Ok(true));
        store
            .expect_get()
            .returning(move |_| Ok(Some(record(id, SleepState::Asleep, Some(3)))));
        store
            .expect_finish_wake()
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        no_asleep(&mut store);
        let mut scaler = MockScaler::new();
        let mut reads = 0;
        scaler.expect_get_scale().times(2).returning(move |_| {
            reads += 1;
            Ok(if reads == 1 {
                scale(0, "9")
            } else {
                scale(3, "10")
            })
        });
        scaler
            .expect_set_replicas()
            .times(1)
            .returning(move |_, _, _| {
                Err(Error::unavailable("connection closed before the answer").with_reach(reach))
            });
        let (report, snap) = recorded(wake_job(store, scaler).wake(id));
        let report = report.expect("woken");
        assert_eq!(
            (report.result, report.replicas),
            (WakeResult::WokeUp, Some(3)),
            "{reach:?}"
        );
        assert_eq!(outcome(&snap, "wake_failed"), 0, "{reach:?}");
    }
}

#[test]
fn a_lost_scale_up_that_did_not_land_is_a_failure() {
    let id = Uuid::new_v4();
    let mut store = asleep_row(id, Some(3));
    store.expect_finish_wake().times(0);
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .times(2)
        .returning(|_| Ok(scale(0, "9")));
    scaler.expect_set_replicas().times(1).returning(|_, _, _| {
        Err(Error::unavailable("no answer").with_reach(crate::Reach::NoAnswer))
    });
    let (result, snap) = recorded(wake_job(store, scaler).wake(id));
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    assert_eq!(outcome(&snap, "wake_failed"), 1);
}

#[test]
fn failed_wake_scale_leaves_the_row_asleep_and_counts_wake_failed() {
    let id = Uuid::new_v4();
    let mut store = asleep_row(id, Some(3));
    store.expect_finish_wake().times(0);
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(0, "9")));
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Err(Error::unavailable("timeout")));
    let (result, snap) = recorded(wake_job(store, scaler).wake(id));
    assert!(matches!(result, Err(Error::Unavailable { .. })));
    assert_eq!(outcome(&snap, "wake_failed"), 1);
    assert_eq!(outcome(&snap, "woke_up"), 0);
}

#[tokio::test]
async fn wake_of_a_sleeping_row_that_a_tick_confirms_meanwhile_retries() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
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
        .with(
            eq(id),
            eq(SleepState::Asleep),
            mockall::predicate::always(),
            eq(t0()),
        )
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    no_asleep(&mut store);
    let mut scaler = MockScaler::new();
    // At 0 when first read; running at the second look, after this wake scaled it up.
    let mut reads = 0;
    scaler.expect_get_scale().times(2).returning(move |_| {
        reads += 1;
        Ok(if reads == 1 {
            scale(0, "9")
        } else {
            scale(3, "10")
        })
    });
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 3 && *rv == Some("9"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let report = wake_job(store, scaler).wake(id).await.unwrap();
    assert_eq!(
        (report.result, report.replicas),
        (WakeResult::WokeUp, Some(3))
    );
}

/// Found by the simulation: a wake of a row whose sleep is in flight (a fresh intent) wrote
/// the same count (a no-op, so the tick's resourceVersion stayed valid), flipped the row to
/// `awake` and reported success; the tick's scale-down then landed. The wake now waits for
/// the transition to settle, and past one transition's bound answers a retryable conflict
/// that touches nothing and is not a `wake_failed`.
#[test]
fn wake_of_a_row_whose_sleep_stays_in_flight_is_a_retryable_conflict() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
    store.expect_get().returning(move |_| {
        let mut row = record(id, SleepState::Sleeping, Some(3));
        row.sleep_state_changed_at = t0() - chrono::Duration::seconds(2);
        Ok(Some(row))
    });
    store.expect_finish_wake().times(0);
    let mut scaler = MockScaler::new();
    scaler.expect_set_replicas().times(0);
    let (result, snap) = recorded(wake_job(store, scaler).wake(id));
    assert!(matches!(result, Err(Error::Conflict { .. })), "{result:?}");
    assert_eq!(outcome(&snap, "wake_failed"), 0);
    assert_eq!(
        counter(&snap, crate::metrics::WAKE_CONFLICTS_TOTAL, ("", "")),
        Some(1)
    );
}

#[test]
fn wake_waits_for_a_sleep_in_flight_then_wakes() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
    let mut reads = 0;
    store.expect_get().returning(move |_| {
        reads += 1;
        if reads <= 3 {
            let mut row = record(id, SleepState::Sleeping, Some(3));
            row.sleep_state_changed_at = t0() - chrono::Duration::seconds(2);
            Ok(Some(row))
        } else {
            Ok(Some(record(id, SleepState::Asleep, Some(3))))
        }
    });
    store
        .expect_finish_wake()
        .with(
            eq(id),
            eq(SleepState::Asleep),
            mockall::predicate::always(),
            eq(t0()),
        )
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    no_asleep(&mut store);
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .times(1)
        .returning(|_| Ok(scale(0, "9")));
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 3 && *rv == Some("9"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let (result, snap) = recorded(wake_job(store, scaler).wake(id));
    assert_eq!(result.unwrap().result, WakeResult::WokeUp);
    assert_eq!(outcome(&snap, "woke_up"), 1);
}

/// Sleep at 3, someone scales it to 5 by hand: the wake marks the row awake and writes
/// nothing; it never sets the app back to 3.
#[test]
fn wake_never_lowers_a_running_app() {
    let id = Uuid::new_v4();
    let mut store = asleep_row(id, Some(3));
    store
        .expect_finish_wake()
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    no_asleep(&mut store);
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(5, "12")));
    scaler.expect_set_replicas().times(0);
    let (result, snap) = recorded(wake_job(store, scaler).wake(id));
    let report = result.unwrap();
    assert_eq!(
        (report.result, report.replicas),
        (WakeResult::AlreadyRunning, Some(5))
    );
    assert_eq!(outcome(&snap, "woke_up"), 0);
    assert_eq!(outcome(&snap, "wake_failed"), 0);
}

#[test]
fn a_conflict_on_the_scale_up_reads_again_and_never_fails_the_wake() {
    let id = Uuid::new_v4();
    let mut store = asleep_row(id, Some(3));
    store
        .expect_finish_wake()
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    no_asleep(&mut store);
    let mut scaler = MockScaler::new();
    let mut reads = 0;
    scaler.expect_get_scale().times(2).returning(move |_| {
        reads += 1;
        Ok(scale(0, if reads == 1 { "9" } else { "11" }))
    });
    scaler
        .expect_set_replicas()
        .withf(|_, _, rv| *rv == Some("9"))
        .times(1)
        .returning(|_, _, _| Err(Error::conflict("modified")));
    scaler
        .expect_set_replicas()
        .withf(|_, _, rv| *rv == Some("11"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let (result, snap) = recorded(wake_job(store, scaler).wake(id));
    assert_eq!(result.unwrap().result, WakeResult::WokeUp);
    assert_eq!(outcome(&snap, "wake_failed"), 0);
}

/// 500 callers wake one asleep app at once: one read, one scale write, one row flip, and
/// every caller gets the same answer.
#[test]
fn concurrent_wakes_of_one_app_share_one_attempt() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
    store
        .expect_get()
        .times(1)
        .returning(move |_| Ok(Some(record(id, SleepState::Asleep, Some(3)))));
    store
        .expect_finish_wake()
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    store.expect_count_asleep().times(1).returning(|| Ok(0));
    store.expect_sum_asleep_replicas().returning(|_| Ok(0));
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .times(1)
        .returning(|_| Ok(scale(0, "9")));
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let job = wake_job(store, scaler);
    let (results, snap) = recorded(futures::future::join_all((0..500).map(|_| job.wake(id))));
    assert_eq!(results.len(), 500);
    for r in results {
        assert_eq!(r.unwrap().result, WakeResult::WokeUp);
    }
    assert_eq!(outcome(&snap, "woke_up"), 1);
}

/// A scaler whose scale-up waits until the test lets it go.
struct HeldScaler {
    release: Arc<tokio::sync::Notify>,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl crate::Scaler for HeldScaler {
    async fn get_scale(&self, _: &Target) -> Result<Scale> {
        Ok(scale(0, "9"))
    }
    async fn set_replicas<'a>(&self, _: &Target, _: i32, _: Option<&'a str>) -> Result<()> {
        self.release.notified().await;
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// The caller goes away (an HTTP client disconnects) while the scale-up is in flight: the
/// wake still flips the row, so the app never runs under an `asleep` row.
#[tokio::test(start_paused = true)]
async fn a_wake_whose_caller_goes_away_runs_to_its_end() {
    let id = Uuid::new_v4();
    let mut store = asleep_row(id, Some(3));
    let (flipped_tx, flipped_rx) = tokio::sync::oneshot::channel();
    let flipped_tx = std::sync::Mutex::new(Some(flipped_tx));
    store
        .expect_finish_wake()
        .times(1)
        .returning(move |_, _, _, _| {
            if let Some(tx) = flipped_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            Ok(true)
        });
    no_asleep(&mut store);
    let release = Arc::new(tokio::sync::Notify::new());
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let scaler = HeldScaler {
        release: release.clone(),
        writes: writes.clone(),
    };
    let job = Job::builder(
        Config {
            default_wake_replicas: 2,
            ..enabled()
        },
        Arc::new(store),
        Arc::new(FixedScalerFactory(Arc::new(scaler))),
    )
    .clock(clock())
    .build();
    // The caller gives up after 1 s, long before the scale-up is let go.
    let gave_up = tokio::time::timeout(Duration::from_secs(1), job.wake(id)).await;
    assert!(gave_up.is_err(), "the caller timed out");
    release.notify_one();
    tokio::time::timeout(Duration::from_secs(60), flipped_rx)
        .await
        .expect("the wake finished on its own")
        .expect("flipped");
    job.finish_wakes().await;
    assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 1);
}
