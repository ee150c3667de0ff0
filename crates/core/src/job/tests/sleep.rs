//! The sleep path: selection, claim, scale-down, confirm, blast radius, dry run.

use super::*;

#[test]
fn happy_path_sleeps_records_replicas_and_sets_the_gauge() {
    let c = candidate("k8s:apps/web");
    let id = c.id;
    let mut store = store_with(vec![c], 1);
    store
        .expect_claim_sleep()
        .with(eq(id), eq(seen()), eq(idle_before()), eq(Some(3)), eq(t0()))
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .with(eq(id), eq(seen()), eq(t0()), eq(t0()))
        .times(1)
        .returning(|_, _, _, _| Ok(ConfirmOutcome::Confirmed));
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .with(eq(web()))
        .returning(|_| Ok(scale(3, "7")));
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 0 && *rv == Some("7"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let job = job(enabled(), store, scaler);
    let (report, snap) = recorded(job.tick());
    let report = report.unwrap();
    assert_eq!(report.outcome(Outcome::ScaledDown), 1);
    assert_eq!(
        report.slept,
        vec![SleptApp {
            id,
            target: "apps/web".into(),
            replicas: Some(3)
        }]
    );
    assert_eq!(outcome(&snap, "scaled_down"), 1);
    assert_eq!(gauge(&snap, crate::metrics::IDLE_APPS), Some(1.0));
    assert!(job.last_success().is_some());
}

#[tokio::test]
async fn selection_uses_the_idle_window_and_max_per_tick() {
    let mut store = MockStore::new();
    quiet(&mut store);
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .with(
            eq(ServedClusters::default_only()),
            eq(t0()),
            eq(t0() - chrono::Duration::minutes(45)),
            eq(7),
        )
        .times(1)
        .returning(|_, _, _, _| Ok(vec![]));
    no_asleep(&mut store);
    let config = Config {
        idle_minutes: 45,
        max_per_tick: 7,
        ..enabled()
    };
    let report = job(config, store, MockScaler::new()).tick().await.unwrap();
    assert_eq!(report.candidates, 0);
}

#[tokio::test]
async fn lost_claim_never_scales() {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 0);
    store
        .expect_claim_sleep()
        .times(1)
        .returning(|_, _, _, _, _| Ok(false));
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(2, "1")));
    scaler.expect_set_replicas().times(0);
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.skipped(SkipReason::Raced), 1);
    assert_eq!(report.outcome(Outcome::ScaledDown), 0);
}

fn sleep_fails_with(err: fn() -> Error) -> (TickReport, Snapshot) {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 0);
    store
        .expect_claim_sleep()
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_revert_sleep()
        .times(1)
        .returning(|_, _, _| Ok(true));
    store.expect_confirm_sleep().times(0);
    let mut scaler = MockScaler::new();
    // After a failure the tick reads back: another version, so the write cannot land later.
    let mut version = 0;
    scaler.expect_get_scale().returning(move |_| {
        version += 1;
        Ok(scale(2, &version.to_string()))
    });
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(move |_, _, _| Err(err()));
    let (report, snap) = recorded(job(enabled(), store, scaler).tick());
    (report.unwrap(), snap)
}

#[test]
fn conflict_on_scale_reverts_and_counts_raced() {
    let (report, snap) = sleep_fails_with(|| Error::conflict("stale resourceVersion"));
    assert_eq!(report.skipped(SkipReason::Raced), 1);
    assert_eq!(outcome(&snap, "scale_failed"), 0);
}

#[test]
fn deployment_gone_reverts_and_is_not_a_failure() {
    let (report, snap) = sleep_fails_with(|| Error::not_found("apps/web"));
    assert_eq!(report.skipped(SkipReason::NotFound), 1);
    assert_eq!(report.outcome(Outcome::ScaleFailed), 0);
    assert_eq!(outcome(&snap, "scale_failed"), 0);
    assert_eq!(
        counter(
            &snap,
            crate::metrics::SKIPPED_TOTAL,
            ("reason", "not_found")
        ),
        Some(1)
    );
}

#[test]
fn scale_error_reverts_and_counts_scale_failed() {
    for err in [|| Error::unavailable("503"), || Error::forbidden("rbac")] {
        let (report, snap) = sleep_fails_with(err);
        assert_eq!(report.outcome(Outcome::ScaleFailed), 1);
        assert_eq!(outcome(&snap, "scale_failed"), 1);
        assert_eq!(outcome(&snap, "scaled_down"), 0);
    }
}

#[tokio::test]
async fn deployment_gone_before_the_claim_touches_no_row() {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 0);
    store.expect_claim_sleep().times(0);
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .returning(|_| Err(Error::not_found("apps/web")));
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.skipped(SkipReason::NotFound), 1);
}

/// A tick whose confirm loses with `confirm`; afterwards the row is `state_after` and the
/// Deployment reads `replicas_now`.
fn confirm_lost(
    confirm: ConfirmOutcome,
    state_after: SleepState,
    replicas_now: i32,
) -> (MockStore, MockScaler) {
    let c = candidate("k8s:apps/web");
    let id = c.id;
    let mut store = store_with(vec![c], 0);
    store
        .expect_claim_sleep()
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .times(1)
        .returning(move |_, _, _, _| Ok(confirm));
    store
        .expect_get()
        .returning(move |_| Ok(Some(record(id, state_after, None))));
    let mut scaler = MockScaler::new();
    let mut reads = 0;
    scaler.expect_get_scale().returning(move |_| {
        reads += 1;
        Ok(if reads == 1 {
            scale(3, "7")
        } else {
            scale(replicas_now, "9")
        })
    });
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 0 && *rv == Some("7"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    (store, scaler)
}

#[tokio::test]
async fn confirm_lost_to_a_wake_is_raced_and_leaves_the_woken_app_alone() {
    let (store, mut scaler) = confirm_lost(ConfirmOutcome::NotSleeping, SleepState::Awake, 3);
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 3 && rv.is_none())
        .times(0);
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.skipped(SkipReason::Raced), 1);
    assert_eq!(report.outcome(Outcome::ScaledDown), 0);
}

#[tokio::test]
async fn confirm_lost_to_a_same_count_wake_restores_the_app_left_at_zero() {
    // The wake wrote the count the app already had (no new resourceVersion), so our CAS 2
    // landed after it: the app is at 0 with its row awake and must be brought back.
    let (store, mut scaler) = confirm_lost(ConfirmOutcome::NotSleeping, SleepState::Awake, 0);
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 3 && *rv == Some("9"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.skipped(SkipReason::Raced), 1);
}

#[tokio::test]
async fn confirm_lost_to_a_wake_with_the_restore_failing_is_a_failure_not_a_race() {
    let (store, mut scaler) = confirm_lost(ConfirmOutcome::NotSleeping, SleepState::Awake, 0);
    scaler
        .expect_set_replicas()
        .withf(|t, r, _| *t == web() && *r == 3)
        .times(1)
        .returning(|_, _, _| Err(Error::unavailable("connection reset")));
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.outcome(Outcome::ScaleFailed), 1);
    assert_eq!(report.skipped(SkipReason::Raced), 0);
}

/// How the store answers around an owed restore.
#[derive(Clone, Copy)]
struct Owed {
    /// The row's state at the ticks after the first.
    later: SleepState,
    /// The first tick's read of the row fails.
    first_read_fails: bool,
    /// The candidate query fails at the ticks after the first.
    later_selects_fail: bool,
}

const OWED: Owed = Owed {
    later: SleepState::Awake,
    first_read_fails: false,
    later_selects_fail: false,
};

/// A wake wins the race against the first tick, which scaled the app to 0; every restore
/// write of it fails the first time; two more ticks follow. Returns the restore writes after
/// each tick.
async fn owed_restore(o: Owed) -> [usize; 3] {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let c = candidate("k8s:apps/web");
    let id = c.id;
    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    let mut selections = 0;
    store
        .expect_select_candidates()
        .returning(move |_, _, _, _| {
            selections += 1;
            match selections {
                1 => Ok(vec![c.clone()]),
                _ if o.later_selects_fail => Err(Error::store("statement timeout")),
                _ => Ok(vec![]),
            }
        });
    no_asleep(&mut store);
    quiet(&mut store);
    store
        .expect_claim_sleep()
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .times(1)
        .returning(|_, _, _, _| Ok(ConfirmOutcome::NotSleeping));
    let mut gets = 0;
    store.expect_get().returning(move |_| {
        gets += 1;
        match gets {
            1 if o.first_read_fails => Err(Error::store("connection reset")),
            1 => Ok(Some(record(id, SleepState::Awake, None))),
            _ => Ok(Some(record(id, o.later, None))),
        }
    });
    let mut scaler = MockScaler::new();
    let mut reads = 0;
    scaler.expect_get_scale().returning(move |_| {
        reads += 1;
        Ok(if reads == 1 {
            scale(3, "7")
        } else {
            scale(0, "9")
        })
    });
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 0 && *rv == Some("7"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = writes.clone();
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 3 && *rv == Some("9"))
        .returning(move |_, _, _| match counted.fetch_add(1, SeqCst) {
            0 => Err(Error::unavailable("connection reset")),
            _ => Ok(()),
        });
    let job = job(enabled(), store, scaler);
    let mut after = [0; 3];
    for (i, seen) in after.iter_mut().enumerate() {
        let report = job.tick().await;
        if i == 0 {
            assert_eq!(report.unwrap().outcome(Outcome::ScaleFailed), 1);
        }
        *seen = writes.load(SeqCst);
    }
    after
}

#[tokio::test]
async fn a_restore_a_lost_race_left_undone_is_paid_at_the_next_tick_and_once() {
    // Invariant 3: the app is not left at 0 under its awake row beyond one tick.
    assert_eq!(owed_restore(OWED).await, [1, 2, 2]);
}

#[tokio::test]
async fn an_unreadable_row_after_a_lost_race_is_owed_its_restore() {
    // The first tick cannot tell whether the row is awake: it owes the restore, and the next
    // ticks read the row and pay it (the first write fails, the second lands).
    let owed = Owed {
        first_read_fails: true,
        ..OWED
    };
    assert_eq!(owed_restore(owed).await, [0, 1, 2]);
}

#[tokio::test]
async fn an_owed_restore_is_paid_even_when_the_candidate_query_fails() {
    let owed = Owed {
        later_selects_fail: true,
        ..OWED
    };
    assert_eq!(owed_restore(owed).await, [1, 2, 2]);
}

#[tokio::test]
async fn an_owed_restore_is_dropped_once_the_row_is_asleep_again() {
    // Slept again by a later tick: 0 is right, nothing is written.
    let owed = Owed {
        later: SleepState::Asleep,
        ..OWED
    };
    assert_eq!(owed_restore(owed).await, [1, 1, 1]);
}

/// Activity arrived during the sleep (a redeploy): the tick puts back what it took, reading
/// first and writing with the version read.
fn activity_during_the_sleep(replicas_now: i32, restores: usize) -> TickReport {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 0);
    store
        .expect_claim_sleep()
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .returning(|_, _, _, _| Ok(ConfirmOutcome::ActivityArrived));
    store
        .expect_revert_sleep()
        .withf(|_, intent_at, _| *intent_at == t0())
        .times(1)
        .returning(|_, _, _| Ok(true));
    let mut scaler = MockScaler::new();
    let mut reads = 0;
    scaler.expect_get_scale().returning(move |_| {
        reads += 1;
        Ok(if reads == 1 {
            scale(4, "7")
        } else {
            scale(replicas_now, "8")
        })
    });
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 0 && *rv == Some("7"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 4 && *rv == Some("8"))
        .times(restores)
        .returning(|_, _, _| Ok(()));
    let (report, _) = recorded(job(enabled(), store, scaler).tick());
    report.unwrap()
}

#[test]
fn activity_during_the_sleep_restores_and_reverts() {
    let report = activity_during_the_sleep(0, 1);
    assert_eq!(report.skipped(SkipReason::Raced), 1);
}

#[test]
fn activity_during_the_sleep_leaves_an_app_already_started_alone() {
    // The redeploy started it at 2 already: no write, never back to 4.
    let report = activity_during_the_sleep(2, 0);
    assert_eq!(report.skipped(SkipReason::Raced), 1);
}

#[test]
fn activity_during_the_sleep_of_an_app_at_zero_starts_nothing() {
    // The tick never scaled it down (it was at 0 when read): it does not start it either.
    let mut store = store_with(vec![candidate("k8s:apps/web")], 0);
    store
        .expect_claim_sleep()
        .withf(|_, _, _, replicas, _| replicas.is_none())
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .returning(|_, _, _, _| Ok(ConfirmOutcome::ActivityArrived));
    store
        .expect_revert_sleep()
        .times(1)
        .returning(|_, _, _| Ok(true));
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(0, "7")));
    scaler.expect_set_replicas().times(0);
    let (report, _) = recorded(job(enabled(), store, scaler).tick());
    assert_eq!(report.unwrap().skipped(SkipReason::Raced), 1);
}

#[test]
fn deployment_already_at_zero_is_recorded_asleep_without_a_restore_count() {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 1);
    store
        .expect_claim_sleep()
        .withf(|_, _, _, replicas, _| replicas.is_none())
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .times(1)
        .returning(|_, _, _, _| Ok(ConfirmOutcome::Confirmed));
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(0, "3")));
    scaler.expect_set_replicas().times(0);
    let (report, snap) = recorded(job(enabled(), store, scaler).tick());
    assert_eq!(report.unwrap().outcome(Outcome::ScaledDown), 1);
    assert_eq!(outcome(&snap, "scaled_down"), 1);
}

/// Found by the simulation: a scale-down that timed out after the apiserver applied it.
/// Reverting blindly left the app at 0 under an `awake` row, which nothing repairs; the
/// tick reads it back and confirms the sleep instead.
#[tokio::test]
async fn a_scale_down_that_failed_but_took_effect_is_confirmed_not_reverted() {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 1);
    store
        .expect_claim_sleep()
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    store.expect_revert_sleep().times(0);
    store
        .expect_confirm_sleep()
        .times(1)
        .returning(|_, _, _, _| Ok(ConfirmOutcome::Confirmed));
    let mut scaler = MockScaler::new();
    let mut reads = 0;
    scaler.expect_get_scale().times(2).returning(move |_| {
        reads += 1;
        Ok(scale(if reads == 1 { 3 } else { 0 }, "7"))
    });
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Err(Error::unavailable("timed out")));
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.outcome(Outcome::ScaledDown), 1);
    assert_eq!(report.outcome(Outcome::ScaleFailed), 0);
}

/// A request the client gave up on may still be applied later: while the Deployment is at
/// the version the scale-down was conditioned on, the intent stays for recovery rather than
/// an `awake` row that the late write would leave over an app at 0.
#[tokio::test]
async fn a_failed_scale_down_that_may_still_land_leaves_the_intent() {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 0);
    store
        .expect_claim_sleep()
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    store.expect_revert_sleep().times(0);
    store.expect_confirm_sleep().times(0);
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .times(2)
        .returning(|_| Ok(scale(3, "7")));
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Err(Error::unavailable("timed out")));
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.outcome(Outcome::ScaleFailed), 1);
}

/// When the read-back fails too, the intent stays `sleeping` for recovery, which settles it
/// from what Kubernetes holds: never `awake` over an app that may be at 0.
#[tokio::test]
async fn a_failed_scale_down_that_cannot_be_read_back_leaves_the_intent() {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 0);
    store
        .expect_claim_sleep()
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    store.expect_revert_sleep().times(0);
    store.expect_confirm_sleep().times(0);
    let mut scaler = MockScaler::new();
    let mut reads = 0;
    scaler.expect_get_scale().times(2).returning(move |_| {
        reads += 1;
        if reads == 1 {
            Ok(scale(3, "7"))
        } else {
            Err(Error::unavailable("connection refused"))
        }
    });
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Err(Error::unavailable("timed out")));
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.outcome(Outcome::ScaleFailed), 1);
}

#[test]
fn gauge_sampling_error_does_not_fail_the_tick() {
    let mut store = MockStore::new();
    quiet(&mut store);
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .returning(|_, _, _, _| Ok(vec![]));
    store
        .expect_count_asleep()
        .times(1)
        .returning(|| Err(Error::store("timeout")));
    // The store is down: the tick does not wait on it a second time for the replicas.
    store.expect_sum_asleep_replicas().times(0);
    let (report, snap) = recorded(job(enabled(), store, MockScaler::new()).tick());
    let report = report.unwrap();
    assert_eq!(report.idle_apps, None);
    assert_eq!(
        counter(&snap, crate::metrics::TICKS_TOTAL, ("result", "ok")),
        Some(1)
    );
}

#[test]
fn the_tick_sets_the_replicas_asleep_gauge_counting_unknown_counts_as_the_default() {
    let mut store = MockStore::new();
    quiet(&mut store);
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .returning(|_, _, _, _| Ok(vec![]));
    store.expect_count_asleep().times(1).returning(|| Ok(4));
    // The store is asked with the replicas a wake restores to a row without a count.
    store
        .expect_sum_asleep_replicas()
        .with(eq(3))
        .times(1)
        .returning(|_| Ok(11));
    let config = Config {
        default_wake_replicas: 3,
        ..enabled()
    };
    let (report, snap) = recorded(job(config, store, MockScaler::new()).tick());
    assert_eq!(report.unwrap().idle_apps, Some(4));
    assert_eq!(gauge(&snap, crate::metrics::IDLE_APPS), Some(4.0));
    assert_eq!(gauge(&snap, crate::metrics::REPLICAS_ASLEEP), Some(11.0));
}

#[test]
fn a_failed_replica_sum_keeps_the_idle_apps_gauge_and_the_tick() {
    let mut store = MockStore::new();
    quiet(&mut store);
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .returning(|_, _, _, _| Ok(vec![]));
    store.expect_count_asleep().returning(|| Ok(2));
    store
        .expect_sum_asleep_replicas()
        .times(1)
        .returning(|_| Err(Error::store("timeout")));
    let (report, snap) = recorded(job(enabled(), store, MockScaler::new()).tick());
    assert_eq!(report.unwrap().idle_apps, Some(2));
    assert_eq!(gauge(&snap, crate::metrics::IDLE_APPS), Some(2.0));
    assert_eq!(gauge(&snap, crate::metrics::REPLICAS_ASLEEP), None);
    assert_eq!(
        counter(&snap, crate::metrics::TICKS_TOTAL, ("result", "ok")),
        Some(1)
    );
}

#[test]
fn candidate_query_error_fails_the_tick_and_does_nothing_else() {
    let mut store = MockStore::new();
    quiet(&mut store);
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .times(1)
        .returning(|_, _, _, _| Err(Error::store("boom")));
    store.expect_count_asleep().times(0);
    let job = job(enabled(), store, MockScaler::new());
    let (result, snap) = recorded(job.tick());
    assert!(matches!(result, Err(Error::Store { .. })));
    assert!(job.last_success().is_none());
    assert_eq!(
        counter(&snap, crate::metrics::TICKS_TOTAL, ("result", "error")),
        Some(1)
    );
}

#[tokio::test]
async fn foreign_malformed_and_protected_ids_are_skipped_without_kubernetes_calls() {
    let store = store_with(
        vec![
            candidate("fly:some-app"),
            candidate("k8s:Bad_Namespace/web"),
            candidate("k8s:kube-system/coredns"),
            candidate("k8s:ops/tool"),
        ],
        0,
    );
    let config = Config {
        protected_namespaces: vec!["kube-system".into(), "ops".into()],
        ..enabled()
    };
    let report = job(config, store, MockScaler::new()).tick().await.unwrap();
    assert_eq!(report.skipped(SkipReason::Foreign), 1);
    assert_eq!(report.skipped(SkipReason::Malformed), 1);
    assert_eq!(report.skipped(SkipReason::ProtectedNamespace), 2);
}

#[tokio::test]
async fn blast_radius_stops_the_tick_after_consecutive_failures() {
    let candidates: Vec<_> = (0..10)
        .map(|i| candidate(&format!("k8s:apps/web-{i}")))
        .collect();
    let mut store = store_with(candidates, 0);
    store
        .expect_claim_sleep()
        .times(3)
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_revert_sleep()
        .times(3)
        .returning(|_, _, _| Ok(true));
    let mut scaler = MockScaler::new();
    // Each failure is read back before the revert: still at 1 but at another version, so
    // the failed write can never land.
    let mut reads = 0;
    scaler.expect_get_scale().times(6).returning(move |_| {
        reads += 1;
        Ok(scale(1, if reads % 2 == 1 { "1" } else { "2" }))
    });
    scaler
        .expect_set_replicas()
        .times(3)
        .returning(|_, _, _| Err(Error::unavailable("500")));
    let config = Config {
        max_consecutive_failures: 3,
        concurrency: 1,
        ..enabled()
    };
    let report = job(config, store, scaler).tick().await.unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.outcome(Outcome::ScaleFailed), 3);
    assert_eq!(report.skipped(SkipReason::BlastRadius), 7);
}

#[tokio::test]
async fn one_failure_does_not_stop_the_others() {
    let candidates: Vec<_> = (0..4)
        .map(|i| candidate(&format!("k8s:apps/web-{i}")))
        .collect();
    let mut store = store_with(candidates, 3);
    store
        .expect_claim_sleep()
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_revert_sleep()
        .times(1)
        .returning(|_, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .times(3)
        .returning(|_, _, _, _| Ok(ConfirmOutcome::Confirmed));
    let mut scaler = MockScaler::new();
    // Every read sees a new version, so the failed write is known never to land: reverted.
    let mut version = 0;
    scaler.expect_get_scale().returning(move |_| {
        version += 1;
        Ok(scale(1, &version.to_string()))
    });
    scaler.expect_set_replicas().returning(|t, _, _| {
        if t.name == "web-2" {
            Err(Error::unavailable("500"))
        } else {
            Ok(())
        }
    });
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.outcome(Outcome::ScaleFailed), 1);
    assert_eq!(report.outcome(Outcome::ScaledDown), 3);
    assert!(!report.stopped_early);
}

#[tokio::test]
async fn shutdown_starts_no_new_transition() {
    let store = store_with(
        vec![candidate("k8s:apps/web"), candidate("k8s:apps/api")],
        0,
    );
    let token = CancellationToken::new();
    token.cancel();
    let report = job(enabled(), store, MockScaler::new())
        .tick_with_shutdown(&token)
        .await
        .unwrap();
    assert_eq!(report.skipped(SkipReason::ShuttingDown), 2);
}

#[tokio::test]
async fn dry_run_writes_nothing_and_calls_no_kubernetes_api() {
    let mut store = MockStore::new();
    quiet(&mut store);
    let (a, b) = (candidate("k8s:apps/web"), candidate("fly:x"));
    let a_id = a.id;
    store
        .expect_select_candidates()
        .times(1)
        .return_once(move |_, _, _, _| Ok(vec![a, b]));
    // No other Store method and no ScalerFactory call may happen.
    let job = Job::builder(
        Config {
            dry_run: true,
            ..enabled()
        },
        Arc::new(store),
        Arc::new(MockScalerFactory::new()),
    )
    .clock(clock())
    .build();
    let report = job.tick().await.unwrap();
    assert!(report.dry_run);
    assert_eq!(
        report.slept,
        vec![SleptApp {
            id: a_id,
            target: "apps/web".into(),
            replicas: None
        }]
    );
    assert_eq!(report.skipped(SkipReason::Foreign), 1);
}
