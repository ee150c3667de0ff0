//! The job's entry and loop: the flag, fail-open, priming, the interval.

use super::*;

#[test]
fn flag_off_makes_no_call_on_any_port() {
    // Mocks without expectations panic on any call.
    let job = Job::new(
        Config::default(),
        Arc::new(MockStore::new()),
        Arc::new(MockScalerSource::new()),
        Arc::new(MockClock::new()),
    );
    let (report, snap) = recorded(job.tick());
    let report = report.unwrap();
    assert!(report.disabled);
    assert_eq!(report.candidates, 0);
    // Still a good tick for the "no good tick" alert (metrics are not I/O).
    assert!(gauge(&snap, crate::metrics::LAST_SUCCESS_TIMESTAMP).is_some_and(|t| t > 0.0));
    assert_eq!(
        counter(&snap, crate::metrics::TICKS_TOTAL, ("result", "disabled")),
        Some(1)
    );
}

#[test]
fn no_scaler_is_fail_open_without_store_calls() {
    let mut source = MockScalerSource::new();
    source
        .expect_scaler()
        .times(1)
        .returning(|| Err(Error::unavailable("no kubeconfig")));
    let job = Job::new(
        enabled(),
        Arc::new(MockStore::new()),
        Arc::new(source),
        clock(),
    );
    let (report, snap) = recorded(job.tick());
    let report = report.unwrap();
    assert!(report.no_scaler);
    assert_eq!(outcome(&snap, "scale_failed"), 0);
    assert_eq!(
        counter(&snap, crate::metrics::TICKS_TOTAL, ("result", "no_scaler")),
        Some(1)
    );
}

#[test]
fn priming_creates_every_outcome_series_at_zero() {
    let ((), snap) = recorded(async { crate::metrics::prime() });
    for o in ["scaled_down", "woke_up", "wake_failed", "scale_failed"] {
        assert_eq!(
            counter(&snap, crate::metrics::SCALED_TO_ZERO_TOTAL, ("outcome", o)),
            Some(0),
            "{o}"
        );
    }
    assert_eq!(gauge(&snap, crate::metrics::IDLE_APPS), Some(0.0));
}

#[tokio::test(start_paused = true)]
async fn run_ticks_every_interval_until_cancelled() {
    let mut store = MockStore::new();
    quiet(&mut store);
    store.expect_stale_intents().returning(|_| Ok(vec![]));
    // Ticks at 0, 120, 240 and 360 s of virtual time, then the loop is cancelled.
    store
        .expect_select_candidates()
        .times(4)
        .returning(|_, _, _| Ok(vec![]));
    store.expect_count_asleep().returning(|| Ok(0));
    store.expect_sum_asleep_replicas().returning(|_| Ok(0));
    let job = Arc::new(job(enabled(), store, MockScaler::new()));
    let token = CancellationToken::new();
    let handle = tokio::spawn({
        let (job, token) = (job.clone(), token.clone());
        async move { job.run(token).await }
    });
    tokio::time::sleep(Duration::from_secs(361)).await;
    token.cancel();
    handle.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_tick_does_not_stop_the_loop() {
    let mut store = MockStore::new();
    quiet(&mut store);
    store.expect_stale_intents().returning(|_| Ok(vec![]));
    let mut calls = 0;
    store
        .expect_select_candidates()
        .times(3)
        .returning(move |_, _, _| {
            calls += 1;
            if calls == 1 {
                Err(Error::store("connection reset"))
            } else {
                Ok(vec![])
            }
        });
    store.expect_count_asleep().returning(|| Ok(0));
    store.expect_sum_asleep_replicas().returning(|_| Ok(0));
    let job = Arc::new(job(enabled(), store, MockScaler::new()));
    let token = CancellationToken::new();
    let handle = tokio::spawn({
        let (job, token) = (job.clone(), token.clone());
        async move { job.run(token).await }
    });
    tokio::time::sleep(Duration::from_secs(241)).await;
    token.cancel();
    handle.await.unwrap();
    assert!(job.last_success().is_some());
}
