//! The job's entry and loop: the flag, fail-open, priming, the interval.

use super::*;

#[test]
fn flag_off_makes_no_call_on_any_port() {
    // Mocks without expectations panic on any call.
    let job = Job::builder(
        Config::default(),
        Arc::new(MockStore::new()),
        Arc::new(MockScalerFactory::new()),
    )
    .clock(Arc::new(MockClock::new()))
    .build();
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
    let mut source = MockScalerFactory::new();
    source
        .expect_scaler()
        .times(1)
        .returning(|| Err(Error::unavailable("no kubeconfig")));
    let job = Job::builder(enabled(), Arc::new(MockStore::new()), Arc::new(source))
        .clock(clock())
        .build();
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
    for r in crate::metrics::PARKING_RESULTS {
        assert_eq!(
            counter(&snap, crate::metrics::PARKING_TOTAL, ("result", r)),
            Some(0),
            "{r}"
        );
    }
    assert_eq!(gauge(&snap, crate::metrics::PARKED_SERVICES), Some(0.0));
}

#[tokio::test(start_paused = true)]
async fn run_ticks_every_interval_until_cancelled() {
    let mut store = MockStore::new();
    quiet(&mut store);
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    // Ticks at 0, 120, 240 and 360 s of virtual time, then the loop is cancelled.
    store
        .expect_select_candidates()
        .times(4)
        .returning(|_, _, _, _| Ok(vec![]));
    no_asleep(&mut store);
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
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    let mut calls = 0;
    store
        .expect_select_candidates()
        .times(3)
        .returning(move |_, _, _, _| {
            calls += 1;
            if calls == 1 {
                Err(Error::store("connection reset"))
            } else {
                Ok(vec![])
            }
        });
    no_asleep(&mut store);
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

#[test]
fn a_panicking_tick_is_caught_counted_and_the_loop_goes_on() {
    // A hand-written port: a mockall mock poisons itself when its closure panics.
    #[derive(Debug, Default)]
    struct PanicsOnce(std::sync::atomic::AtomicU32);
    #[async_trait::async_trait]
    impl crate::ScalerFactory for PanicsOnce {
        async fn scaler(&self) -> crate::Result<Arc<dyn crate::Scaler>> {
            // The first tick's port panics; the second fails open as usual.
            if self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                panic!("port bug");
            }
            Err(Error::unavailable("no kubeconfig"))
        }
    }
    let source = PanicsOnce::default();
    let job = Job::builder(enabled(), Arc::new(MockStore::new()), Arc::new(source))
        .clock(clock())
        .build();
    let shutdown = CancellationToken::new();
    let (results, snap) = recorded(async {
        let mut results = Vec::new();
        job.run_reporting(shutdown.clone(), |r| {
            results.push(r);
            if results.len() == 2 {
                shutdown.cancel();
            }
        })
        .await;
        results
    });
    assert!(
        matches!(&results[0], TickResult::Panicked(m) if m == "port bug"),
        "{results:?}"
    );
    assert!(
        matches!(&results[1], TickResult::Report(r) if r.no_scaler),
        "{results:?}"
    );
    assert_eq!(
        counter(&snap, crate::metrics::TICKS_TOTAL, ("result", "panic")),
        Some(1)
    );
    assert_eq!(
        counter(&snap, crate::metrics::TICKS_TOTAL, ("result", "no_scaler")),
        Some(1)
    );
}

#[test]
fn run_reporting_hands_each_tick_to_the_host() {
    let job = Job::builder(
        Config::default(),
        Arc::new(MockStore::new()),
        Arc::new(MockScalerFactory::new()),
    )
    .build();
    let shutdown = CancellationToken::new();
    let (disabled, _) = recorded(async {
        let mut disabled = 0;
        job.run_reporting(shutdown.clone(), |r| {
            if let TickResult::Report(r) = r {
                disabled += u32::from(r.disabled);
            }
            if disabled == 3 {
                shutdown.cancel();
            }
        })
        .await;
        disabled
    });
    assert_eq!(disabled, 3);
}

#[test]
fn the_recorder_check_tells_a_real_recorder_from_none() {
    assert!(!crate::metrics::recorder_installed());
    let recorder = DebuggingRecorder::new();
    ::metrics::with_local_recorder(&recorder, || {
        assert!(crate::metrics::recorder_installed());
    });
}

#[test]
fn a_job_built_disabled_says_so_once_at_info() {
    let ((), text) = super::logs::captured(tracing::Level::INFO, || {
        let job = Job::builder(
            Config::default(),
            Arc::new(MockStore::new()),
            Arc::new(MockScalerFactory::new()),
        )
        .build();
        let (_, _) = recorded(async {
            for _ in 0..3 {
                job.tick().await.expect("disabled tick");
            }
        });
        let _enabled = Job::builder(
            enabled(),
            Arc::new(MockStore::new()),
            Arc::new(MockScalerFactory::new()),
        )
        .build();
    });
    assert_eq!(
        text.matches("scale-to-zero is disabled").count(),
        1,
        "{text}"
    );
    assert!(text.contains(" INFO "), "{text}");
}

#[test]
fn priming_without_a_recorder_of_this_metrics_version_warns() {
    let ((), text) = super::logs::captured(tracing::Level::WARN, || {
        crate::metrics::prime(); // no recorder: a WARN
        let recorder = DebuggingRecorder::new();
        ::metrics::with_local_recorder(&recorder, crate::metrics::prime); // a recorder: none
    });
    assert_eq!(
        text.matches("no metrics recorder of metrics 0.24").count(),
        1,
        "{text}"
    );
}
