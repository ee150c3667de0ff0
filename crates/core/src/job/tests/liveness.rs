//! Liveness: lasting skips back off, the blast radius, fights_back, intents stamped at write.

use super::*;
use crate::BackOff;

/// A store with one candidate whose back_off call is captured.
fn backing_off(c: Candidate) -> (MockStore, Arc<std::sync::Mutex<Vec<BackOff>>>) {
    let seen_backoffs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .return_once(move |_, _, _, _| Ok(vec![c]));
    no_asleep(&mut store);
    store
        .expect_asleep_to_check()
        .returning(|_, _, _| Ok(vec![]));
    let sink = seen_backoffs.clone();
    store.expect_back_off().returning(move |_, _, b| {
        sink.lock().unwrap().push(b.clone());
        Ok(true)
    });
    (store, seen_backoffs)
}

#[test]
fn a_deployment_that_is_gone_backs_off_one_interval_then_doubles() {
    for (earlier, intervals) in [(0, 1), (1, 2), (3, 8)] {
        let mut c = candidate("k8s:apps/web");
        c.backoff_count = earlier;
        let (store, backoffs) = backing_off(c);
        let mut scaler = MockScaler::new();
        scaler
            .expect_get_scale()
            .returning(|_| Err(Error::not_found("apps/web")));
        let (report, _) = recorded(job(enabled(), store, scaler).tick());
        assert_eq!(report.unwrap().skipped(SkipReason::NotFound), 1);
        let b = backoffs.lock().unwrap().pop().expect("backed off");
        assert_eq!(b.reason, "not_found");
        // enabled() ticks every 120 s.
        assert_eq!(
            b.retry_after,
            t0() + chrono::Duration::seconds(120 * intervals)
        );
        assert_eq!(b.retry_key, b.retry_after - chrono::Duration::minutes(30));
    }
}

#[test]
fn the_backoff_is_capped_at_a_day() {
    let b = crate::job::sleep::backoff_for(&enabled(), 40, false, "not_found", t0());
    assert_eq!(b.retry_after, t0() + chrono::Duration::hours(24));
}

#[test]
fn a_forbidden_read_is_a_failure_that_backs_off() {
    let (store, backoffs) = backing_off(candidate("k8s:apps/web"));
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .returning(|_| Err(Error::forbidden("deployments/scale")));
    let (report, _) = recorded(job(enabled(), store, scaler).tick());
    assert_eq!(report.unwrap().outcome(Outcome::ScaleFailed), 1);
    assert_eq!(backoffs.lock().unwrap()[0].reason, "scale_failed");
}

#[test]
fn a_transient_failure_does_not_back_off() {
    let (store, backoffs) = backing_off(candidate("k8s:apps/web"));
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .returning(|_| Err(Error::unavailable("timeout")));
    let (report, _) = recorded(job(enabled(), store, scaler).tick());
    assert_eq!(report.unwrap().outcome(Outcome::ScaleFailed), 1);
    assert!(backoffs.lock().unwrap().is_empty());
}

#[test]
fn a_first_conflict_only_starts_the_count_and_a_repeated_one_waits() {
    for (earlier, wait) in [(0, 0), (1, 120), (2, 360)] {
        let mut c = candidate("k8s:apps/web");
        c.backoff_count = earlier;
        let (mut store, backoffs) = backing_off(c);
        store
            .expect_claim_sleep()
            .returning(|_, _, _, _, _| Ok(true));
        store.expect_revert_sleep().returning(|_, _, _| Ok(true));
        let mut scaler = MockScaler::new();
        scaler.expect_get_scale().returning(|_| Ok(scale(2, "7")));
        scaler
            .expect_set_replicas()
            .returning(|_, _, _| Err(Error::conflict("modified")));
        let (report, _) = recorded(job(enabled(), store, scaler).tick());
        assert_eq!(report.unwrap().skipped(SkipReason::Raced), 1);
        let b = backoffs.lock().unwrap().pop().expect("counted");
        assert_eq!(b.retry_after, t0() + chrono::Duration::seconds(wait));
    }
}

#[test]
fn malformed_protected_and_unknown_traffic_back_off_without_kubernetes_calls() {
    for provider_id in ["k8s:Bad_Name/x", "k8s:kube-system/dns"] {
        let (store, backoffs) = backing_off(candidate(provider_id));
        let mut scaler = MockScaler::new();
        scaler.expect_get_scale().times(0);
        let (report, _) = recorded(job(enabled(), store, scaler).tick());
        report.unwrap();
        assert_eq!(backoffs.lock().unwrap().len(), 1, "{provider_id}");
    }
}

/// Five permanent 403s at the head of the queue stop the tick (blast radius) once; backed
/// off, they are not selected again, and the next tick sleeps the app behind them.
#[test]
fn permanent_failures_at_the_head_of_the_queue_stop_one_tick_only() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let bad: Vec<Candidate> = (0..5)
        .map(|i| candidate(&format!("k8s:apps/bad-{i}")))
        .collect();
    let good = candidate("k8s:apps/web");
    let backed_off = Arc::new(AtomicBool::new(false));
    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    let (flag, bad_rows, good_row) = (backed_off.clone(), bad.clone(), good.clone());
    store
        .expect_select_candidates()
        .returning(move |_, _, _, _| {
            // The store hides rows that back off.
            Ok(if flag.load(Ordering::SeqCst) {
                vec![good_row.clone()]
            } else {
                bad_rows.iter().cloned().chain([good_row.clone()]).collect()
            })
        });
    let flag = backed_off.clone();
    store.expect_back_off().returning(move |_, _, _| {
        flag.store(true, Ordering::SeqCst);
        Ok(true)
    });
    no_asleep(&mut store);
    store
        .expect_asleep_to_check()
        .returning(|_, _, _| Ok(vec![]));
    sleeps_confirmed(&mut store);
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|t| {
        if t.name.starts_with("bad") {
            Err(Error::forbidden("deployments/scale"))
        } else {
            Ok(scale(1, "7"))
        }
    });
    scaler.expect_set_replicas().returning(|_, _, _| Ok(()));
    let job = job(
        Config {
            concurrency: 1,
            ..enabled()
        },
        store,
        scaler,
    );
    let (first, _) = recorded(job.tick());
    let first = first.unwrap();
    assert!(first.stopped_early);
    assert_eq!(first.outcome(Outcome::ScaledDown), 0);
    let (second, _) = recorded(job.tick());
    let second = second.unwrap();
    assert!(!second.stopped_early);
    assert_eq!(second.outcome(Outcome::ScaledDown), 1);
}

fn flapping(flaps: u32, since_hours_ago: i64, activity_after_drift: bool) -> Candidate {
    let mut c = candidate("k8s:apps/web");
    c.sleep_state_changed_at = seen() + chrono::Duration::minutes(1);
    if activity_after_drift {
        c.last_activity_at = c.sleep_state_changed_at + chrono::Duration::seconds(1);
    }
    c.flaps = flaps;
    c.flaps_since = Some(t0() - chrono::Duration::hours(since_hours_ago));
    c
}

#[test]
fn an_app_scaled_back_up_again_and_again_is_skipped_fights_back() {
    let (store, backoffs) = backing_off(flapping(3, 2, false));
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().times(0);
    let (report, snap) = recorded(job(enabled(), store, scaler).tick());
    assert_eq!(report.unwrap().skipped(SkipReason::FightsBack), 1);
    assert_eq!(backoffs.lock().unwrap()[0].reason, "fights_back");
    assert_eq!(
        counter(
            &snap,
            crate::metrics::SKIPPED_TOTAL,
            ("reason", "fights_back")
        ),
        Some(1)
    );
}

#[test]
fn fights_back_ends_with_the_window_or_new_activity() {
    // Below the limit, an old window, or activity since: slept as usual.
    for c in [
        flapping(2, 2, false),
        flapping(3, 25, false),
        flapping(3, 2, true),
    ] {
        let mut store = store_with(vec![c], 1);
        sleeps_confirmed(&mut store);
        let mut scaler = MockScaler::new();
        scaler.expect_get_scale().returning(|_| Ok(scale(1, "7")));
        scaler.expect_set_replicas().returning(|_, _, _| Ok(()));
        let (report, _) = recorded(job(enabled(), store, scaler).tick());
        assert_eq!(report.unwrap().outcome(Outcome::ScaledDown), 1);
    }
}

/// A clock that moves on by a second at every reading, as a slow tick's would.
fn ticking_clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    let mut n = 0;
    clock.expect_now().returning(move || {
        n += 1;
        t0() + chrono::Duration::seconds(n)
    });
    Arc::new(clock)
}

/// The intent carries the time of its own write, and confirm compares exactly that stamp:
/// a tick that started long before does not write intents that look stale on arrival.
#[test]
fn the_intent_is_stamped_when_written_and_confirm_compares_that_stamp() {
    let stamps = Arc::new(std::sync::Mutex::new((None, None)));
    let mut store = store_with(vec![candidate("k8s:apps/web")], 1);
    let sink = stamps.clone();
    store.expect_claim_sleep().returning(move |_, _, _, _, at| {
        sink.lock().unwrap().0 = Some(at);
        Ok(true)
    });
    let sink = stamps.clone();
    store
        .expect_confirm_sleep()
        .returning(move |_, _, intent_at, _| {
            sink.lock().unwrap().1 = Some(intent_at);
            Ok(ConfirmOutcome::Confirmed)
        });
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(1, "7")));
    scaler.expect_set_replicas().returning(|_, _, _| Ok(()));
    let job = Job::builder(
        enabled(),
        Arc::new(store),
        Arc::new(FixedScalerFactory(Arc::new(scaler))),
    )
    .clock(ticking_clock())
    .build();
    let (report, _) = recorded(job.tick());
    assert_eq!(report.unwrap().outcome(Outcome::ScaledDown), 1);
    let (claimed_at, confirmed_at) = *stamps.lock().unwrap();
    let claimed_at = claimed_at.expect("claimed");
    // The tick read the clock first (its start); the claim took a later reading.
    assert!(
        claimed_at > t0() + chrono::Duration::seconds(1),
        "{claimed_at}"
    );
    assert_eq!(confirmed_at, Some(claimed_at));
}

#[test]
fn a_job_cannot_be_built_from_an_invalid_config() {
    let base = enabled();
    for (config, key) in [
        (
            Config {
                idle_minutes: 0,
                ..base.clone()
            },
            "idle_minutes",
        ),
        (
            // Above the year the environment path allows.
            Config {
                idle_minutes: crate::config::IDLE_MINUTES_MAX + 1,
                ..base.clone()
            },
            "idle_minutes",
        ),
        (
            Config {
                interval_seconds: 0,
                ..base.clone()
            },
            "interval_seconds",
        ),
        (
            Config {
                default_wake_replicas: 0,
                ..base.clone()
            },
            "default_wake_replicas",
        ),
        (
            Config {
                request_timeout_seconds: 80,
                ..base.clone()
            },
            "request_timeout_seconds",
        ),
    ] {
        let err = Job::builder(
            config,
            Arc::new(MockStore::new()),
            Arc::new(MockScalerFactory::new()),
        )
        .clock(clock())
        .try_build()
        .expect_err(key);
        assert!(err.to_string().contains(key), "{err}");
    }
}
