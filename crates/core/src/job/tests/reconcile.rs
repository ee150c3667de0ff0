//! Drift: `asleep` rows whose app runs are set `awake`, by kind.

use super::*;
use crate::{AsleepRow, Drift};

fn asleep_row(activity_after: bool, wake_started: Option<i64>) -> AsleepRow {
    let slept = t0() - chrono::Duration::hours(1);
    AsleepRow {
        id: Uuid::new_v4(),
        provider_id: "k8s:apps/web".into(),
        last_activity_at: if activity_after {
            slept + chrono::Duration::minutes(5)
        } else {
            slept - chrono::Duration::minutes(30)
        },
        sleep_state_changed_at: slept,
        wake_started_at: wake_started.map(|ago| t0() - chrono::Duration::seconds(ago)),
    }
}

/// One tick with no candidates and `row` due for a check while the app runs at `replicas`.
fn drift_tick(row: AsleepRow, replicas: i32) -> (TickReport, Snapshot, Option<Drift>, bool) {
    let reconciled = Arc::new(std::sync::Mutex::new(None));
    let checked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut store = drift_store(row);
    let sink = reconciled.clone();
    store
        .expect_reconcile_awake()
        .returning(move |_, _, kind, _| {
            *sink.lock().unwrap() = Some(kind);
            Ok(true)
        });
    let sink = checked.clone();
    store.expect_mark_checked().returning(move |_, _| {
        sink.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(true)
    });
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .returning(move |_| Ok(scale(replicas, "7")));
    scaler.expect_set_replicas().times(0);
    let (report, snap) = recorded(job(enabled(), store, scaler).tick());
    let kind = *reconciled.lock().unwrap();
    (
        report.unwrap(),
        snap,
        kind,
        checked.load(std::sync::atomic::Ordering::SeqCst),
    )
}

#[test]
fn an_asleep_app_scaled_up_by_someone_else_is_set_awake_and_counted() {
    let (report, snap, kind, checked) = drift_tick(asleep_row(false, None), 2);
    assert_eq!(kind, Some(Drift::WokenExternally));
    assert!(!checked);
    assert_eq!(report.drift.get(&Drift::WokenExternally), Some(&1));
    assert_eq!(
        counter(
            &snap,
            crate::metrics::DRIFT_TOTAL,
            ("kind", "woken_externally")
        ),
        Some(1)
    );
}

#[test]
fn a_redeployed_asleep_app_is_counted_redeployed() {
    let (_, _, kind, _) = drift_tick(asleep_row(true, None), 1);
    assert_eq!(kind, Some(Drift::Redeployed));
}

#[test]
fn a_wake_cut_short_is_counted_wake_interrupted() {
    // Marked an hour ago: that wake is long over.
    let (_, _, kind, _) = drift_tick(asleep_row(false, Some(3_600)), 1);
    assert_eq!(kind, Some(Drift::WakeInterrupted));
}

#[test]
fn a_wake_in_flight_is_left_to_finish_the_row() {
    let (_, _, kind, checked) = drift_tick(asleep_row(false, Some(2)), 1);
    assert_eq!(kind, None);
    assert!(!checked);
}

#[test]
fn an_app_still_at_zero_is_only_marked_checked() {
    let (report, _, kind, checked) = drift_tick(asleep_row(false, None), 0);
    assert_eq!(kind, None);
    assert!(checked);
    assert!(report.drift.is_empty());
}

#[test]
fn an_app_answering_403_goes_to_the_back_of_the_queue() {
    // Never marked, it would stay the least recently checked row and head every slice.
    let checked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .returning(|_, _, _, _| Ok(vec![]));
    store.expect_count_asleep().returning(|| Ok(1));
    store.expect_sum_asleep_replicas().returning(|_| Ok(1));
    let row = asleep_row(false, None);
    store
        .expect_asleep_to_check()
        .return_once(move |_, _, _| Ok(vec![row]));
    store.expect_reconcile_awake().times(0);
    let sink = checked.clone();
    store
        .expect_mark_checked()
        .with(mockall::predicate::always(), eq(t0()))
        .times(1)
        .returning(move |_, _| {
            sink.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(true)
        });
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .returning(|_| Err(Error::forbidden("deployments/scale is forbidden")));
    scaler.expect_set_replicas().times(0);
    let (report, _) = recorded(job(enabled(), store, scaler).tick());
    let report = report.unwrap();
    assert!(checked.load(std::sync::atomic::Ordering::SeqCst));
    assert!(report.drift.is_empty());
}
