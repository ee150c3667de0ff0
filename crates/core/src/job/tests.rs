//! Unit tests of the tick and wake protocols over mocked ports.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use mockall::predicate::eq;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::*;
use crate::report::Planned;
use crate::{
    Candidate, Config, ConfirmOutcome, DeploymentRecord, Error, FixedScaler, MockClock, MockScaler,
    MockScalerSource, MockStore, Scale, SkipReason, SleepState, StaleIntent, Target, WakeResult,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn seen() -> DateTime<Utc> {
    t0() - chrono::Duration::hours(2)
}

fn idle_before() -> DateTime<Utc> {
    t0() - chrono::Duration::minutes(30)
}

fn enabled() -> Config {
    Config {
        enabled: true,
        ..Config::default()
    }
}

fn clock() -> Arc<MockClock> {
    let mut c = MockClock::new();
    c.expect_now().return_const(t0());
    Arc::new(c)
}

fn job(config: Config, store: MockStore, scaler: MockScaler) -> Job {
    Job::new(
        config,
        Arc::new(store),
        Arc::new(FixedScaler(Arc::new(scaler))),
        clock(),
    )
}

fn candidate(provider_id: &str) -> Candidate {
    Candidate {
        id: Uuid::new_v4(),
        provider_id: provider_id.into(),
        last_activity_at: seen(),
    }
}

fn web() -> Target {
    Target {
        namespace: "apps".into(),
        name: "web".into(),
    }
}

fn scale(replicas: i32, rv: &str) -> Scale {
    Scale {
        replicas,
        resource_version: rv.into(),
    }
}

fn record(id: Uuid, state: SleepState, replicas: Option<i32>) -> DeploymentRecord {
    DeploymentRecord {
        id,
        provider_id: "k8s:apps/web".into(),
        status: "healthy".into(),
        always_on: false,
        expires_at: None,
        last_activity_at: seen(),
        sleep_state: state,
        sleep_state_changed_at: seen(),
        replicas_before_sleep: replicas,
    }
}

/// A store that selects `candidates`, has no stale intents and counts `asleep` rows.
fn store_with(candidates: Vec<Candidate>, asleep: i64) -> MockStore {
    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_| Ok(vec![]));
    store
        .expect_select_candidates()
        .return_once(move |_, _, _| Ok(candidates));
    store.expect_count_asleep().returning(move || Ok(asleep));
    store
}

type Snapshot = Vec<(
    CompositeKey,
    Option<::metrics::Unit>,
    Option<::metrics::SharedString>,
    DebugValue,
)>;

/// Runs `f` on a current-thread runtime with a local metrics recorder.
fn recorded<F: Future>(f: F) -> (F::Output, Snapshot) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let out = ::metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    });
    (out, snapshotter.snapshot().into_vec())
}

fn counter(s: &Snapshot, name: &str, label: (&str, &str)) -> Option<u64> {
    s.iter().find_map(|(k, _, _, v)| {
        let key = k.key();
        let matches = key.name() == name
            && key
                .labels()
                .any(|l| l.key() == label.0 && l.value() == label.1);
        match v {
            DebugValue::Counter(n) if matches => Some(*n),
            _ => None,
        }
    })
}

fn outcome(s: &Snapshot, outcome: &str) -> u64 {
    counter(
        s,
        crate::metrics::SCALED_TO_ZERO_TOTAL,
        ("outcome", outcome),
    )
    .unwrap_or(0)
}

fn gauge(s: &Snapshot, name: &str) -> Option<f64> {
    s.iter().find_map(|(k, _, _, v)| match v {
        DebugValue::Gauge(g) if k.key().name() == name => Some(g.into_inner()),
        _ => None,
    })
}

#[tokio::test]
async fn flag_off_makes_no_call_on_any_port() {
    // Mocks without expectations panic on any call.
    let job = Job::new(
        Config::default(),
        Arc::new(MockStore::new()),
        Arc::new(MockScalerSource::new()),
        Arc::new(MockClock::new()),
    );
    let report = job.tick().await.unwrap();
    assert!(report.disabled);
    assert_eq!(report.candidates, 0);
}

#[test]
fn no_scaler_is_fail_open_without_store_calls() {
    let mut source = MockScalerSource::new();
    source
        .expect_scaler()
        .times(1)
        .returning(|| Err(Error::Unavailable("no kubeconfig".into())));
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
        .with(eq(id), eq(seen()), eq(t0()))
        .times(1)
        .returning(|_, _, _| Ok(ConfirmOutcome::Confirmed));
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .with(eq(web()))
        .returning(|_| Ok(scale(3, "7")));
    scaler
        .expect_set_replicas()
        .with(eq(web()), eq(0), eq(Some("7".to_string())))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let job = job(enabled(), store, scaler);
    let (report, snap) = recorded(job.tick());
    let report = report.unwrap();
    assert_eq!(report.outcome(Outcome::ScaledDown), 1);
    assert_eq!(
        report.slept,
        vec![Planned {
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
    store.expect_stale_intents().returning(|_| Ok(vec![]));
    store
        .expect_select_candidates()
        .with(eq(t0()), eq(t0() - chrono::Duration::minutes(45)), eq(7))
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    store.expect_count_asleep().returning(|| Ok(0));
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
        .returning(|_, _| Ok(true));
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
    let (report, snap) = sleep_fails_with(|| Error::Conflict("stale resourceVersion".into()));
    assert_eq!(report.skipped(SkipReason::Raced), 1);
    assert_eq!(outcome(&snap, "scale_failed"), 0);
}

#[test]
fn deployment_gone_reverts_and_is_not_a_failure() {
    let (report, snap) = sleep_fails_with(|| Error::NotFound("apps/web".into()));
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
    for err in [
        || Error::Unavailable("503".into()),
        || Error::Forbidden("rbac".into()),
    ] {
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
        .returning(|_| Err(Error::NotFound("apps/web".into())));
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
        .returning(move |_, _, _| Ok(confirm));
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
        .with(eq(web()), eq(0), eq(Some("7".into())))
        .times(1)
        .returning(|_, _, _| Ok(()));
    (store, scaler)
}

#[tokio::test]
async fn confirm_lost_to_a_wake_is_raced_and_leaves_the_woken_app_alone() {
    let (store, mut scaler) = confirm_lost(ConfirmOutcome::NotSleeping, SleepState::Awake, 3);
    scaler
        .expect_set_replicas()
        .with(eq(web()), eq(3), eq(None))
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
        .with(eq(web()), eq(3), eq(None))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.skipped(SkipReason::Raced), 1);
}

#[tokio::test]
async fn activity_during_the_sleep_restores_and_reverts() {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 0);
    store
        .expect_claim_sleep()
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .returning(|_, _, _| Ok(ConfirmOutcome::ActivityArrived));
    store
        .expect_revert_sleep()
        .times(1)
        .returning(|_, _| Ok(true));
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(4, "7")));
    scaler
        .expect_set_replicas()
        .with(eq(web()), eq(0), eq(Some("7".into())))
        .times(1)
        .returning(|_, _, _| Ok(()));
    scaler
        .expect_set_replicas()
        .with(eq(web()), eq(4), eq(None))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.skipped(SkipReason::Raced), 1);
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
        .returning(|_, _, _| Ok(ConfirmOutcome::Confirmed));
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(0, "3")));
    scaler.expect_set_replicas().times(0);
    let (report, snap) = recorded(job(enabled(), store, scaler).tick());
    assert_eq!(report.unwrap().outcome(Outcome::ScaledDown), 1);
    assert_eq!(outcome(&snap, "scaled_down"), 1);
}

fn stale(activity_after: bool) -> StaleIntent {
    let changed = t0() - chrono::Duration::minutes(10);
    StaleIntent {
        id: Uuid::new_v4(),
        provider_id: "k8s:apps/web".into(),
        last_activity_at: if activity_after {
            changed + chrono::Duration::minutes(1)
        } else {
            seen()
        },
        sleep_state_changed_at: changed,
        replicas_before_sleep: Some(2),
    }
}

fn recovery(
    intent: StaleIntent,
    replicas_now: i32,
    configure: impl FnOnce(&mut MockStore, &mut MockScaler),
) -> TickReport {
    let mut store = MockStore::new();
    store
        .expect_stale_intents()
        .with(eq(t0() - STALE_INTENT_AFTER))
        .times(1)
        .return_once(move |_| Ok(vec![intent]));
    store
        .expect_select_candidates()
        .returning(|_, _, _| Ok(vec![]));
    store.expect_count_asleep().returning(|| Ok(0));
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .returning(move |_| Ok(scale(replicas_now, "5")));
    configure(&mut store, &mut scaler);
    let (report, _) = recorded(job(enabled(), store, scaler).tick());
    report.unwrap()
}

#[test]
fn stale_intent_with_the_app_running_goes_back_to_awake() {
    let intent = stale(false);
    let (id, at) = (intent.id, intent.sleep_state_changed_at);
    let report = recovery(intent, 2, |store, scaler| {
        store
            .expect_settle_intent()
            .with(eq(id), eq(at), eq(SleepState::Awake), eq(t0()))
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        store.expect_revert_sleep().times(0);
        store.expect_confirm_sleep().times(0);
        scaler.expect_set_replicas().times(0);
    });
    assert_eq!(report.recovered("awake"), 1);
}

#[test]
fn stale_intent_with_the_app_at_zero_is_confirmed_asleep() {
    let intent = stale(false);
    let (id, at) = (intent.id, intent.sleep_state_changed_at);
    let report = recovery(intent, 0, |store, scaler| {
        store
            .expect_settle_intent()
            .with(eq(id), eq(at), eq(SleepState::Asleep), eq(t0()))
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        store.expect_confirm_sleep().times(0);
        store.expect_revert_sleep().times(0);
        scaler.expect_set_replicas().times(0);
    });
    assert_eq!(report.recovered("asleep"), 1);
}

#[test]
fn stale_intent_with_later_activity_is_restored_and_awake() {
    let report = recovery(stale(true), 0, |store, scaler| {
        store.expect_confirm_sleep().times(0);
        store
            .expect_settle_intent()
            .withf(|_, _, to, _| *to == SleepState::Awake)
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        // Conditional on the version read, so a live transition that touched it since wins.
        scaler
            .expect_set_replicas()
            .with(eq(web()), eq(2), eq(Some("5".to_owned())))
            .times(1)
            .returning(|_, _, _| Ok(()));
    });
    assert_eq!(report.recovered("restored"), 1);
}

/// Found by the simulation: two instances recover the same leftover; one reverts it and a
/// tick claims the row anew. The other's write must not undo that live intent: it is a
/// compare-and-set on the intent's change time, which the store refuses.
#[test]
fn recovery_never_settles_an_intent_other_than_the_one_it_read() {
    let report = recovery(stale(false), 2, |store, scaler| {
        store
            .expect_settle_intent()
            .times(1)
            .returning(|_, _, _, _| Ok(false));
        store.expect_revert_sleep().times(0);
        scaler.expect_set_replicas().times(0);
    });
    assert_eq!(report.recovered("raced"), 1);
    assert_eq!(report.recovered("awake"), 0);
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
        .returning(|_, _, _| Ok(ConfirmOutcome::Confirmed));
    let mut scaler = MockScaler::new();
    let mut reads = 0;
    scaler.expect_get_scale().times(2).returning(move |_| {
        reads += 1;
        Ok(scale(if reads == 1 { 3 } else { 0 }, "7"))
    });
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Err(Error::Unavailable("timed out".into())));
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
        .returning(|_, _, _| Err(Error::Unavailable("timed out".into())));
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
            Err(Error::Unavailable("connection refused".into()))
        }
    });
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Err(Error::Unavailable("timed out".into())));
    let report = job(enabled(), store, scaler).tick().await.unwrap();
    assert_eq!(report.outcome(Outcome::ScaleFailed), 1);
}

#[test]
fn gauge_sampling_error_does_not_fail_the_tick() {
    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_| Ok(vec![]));
    store
        .expect_select_candidates()
        .returning(|_, _, _| Ok(vec![]));
    store
        .expect_count_asleep()
        .times(1)
        .returning(|| Err(Error::Store("timeout".into())));
    let (report, snap) = recorded(job(enabled(), store, MockScaler::new()).tick());
    let report = report.unwrap();
    assert_eq!(report.idle_apps, None);
    assert_eq!(
        counter(&snap, crate::metrics::TICKS_TOTAL, ("result", "ok")),
        Some(1)
    );
}

#[test]
fn candidate_query_error_fails_the_tick_and_does_nothing_else() {
    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_| Ok(vec![]));
    store
        .expect_select_candidates()
        .times(1)
        .returning(|_, _, _| Err(Error::Store("boom".into())));
    store.expect_count_asleep().times(0);
    let job = job(enabled(), store, MockScaler::new());
    let (result, snap) = recorded(job.tick());
    assert!(matches!(result, Err(Error::Store(_))));
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
        .returning(|_, _| Ok(true));
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
        .returning(|_, _, _| Err(Error::Unavailable("500".into())));
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
        .returning(|_, _| Ok(true));
    store
        .expect_confirm_sleep()
        .times(3)
        .returning(|_, _, _| Ok(ConfirmOutcome::Confirmed));
    let mut scaler = MockScaler::new();
    // Every read sees a new version, so the failed write is known never to land: reverted.
    let mut version = 0;
    scaler.expect_get_scale().returning(move |_| {
        version += 1;
        Ok(scale(1, &version.to_string()))
    });
    scaler.expect_set_replicas().returning(|t, _, _| {
        if t.name == "web-2" {
            Err(Error::Unavailable("500".into()))
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
        .tick_until(&token)
        .await
        .unwrap();
    assert_eq!(report.skipped(SkipReason::ShuttingDown), 2);
}

#[tokio::test]
async fn dry_run_writes_nothing_and_calls_no_kubernetes_api() {
    let mut store = MockStore::new();
    let (a, b) = (candidate("k8s:apps/web"), candidate("fly:x"));
    let a_id = a.id;
    store
        .expect_select_candidates()
        .times(1)
        .return_once(move |_, _, _| Ok(vec![a, b]));
    // No other Store method and no ScalerSource call may happen.
    let job = Job::new(
        Config {
            dry_run: true,
            ..enabled()
        },
        Arc::new(store),
        Arc::new(MockScalerSource::new()),
        clock(),
    );
    let report = job.tick().await.unwrap();
    assert!(report.dry_run);
    assert_eq!(
        report.slept,
        vec![Planned {
            id: a_id,
            target: "apps/web".into(),
            replicas: None
        }]
    );
    assert_eq!(report.skipped(SkipReason::Foreign), 1);
}

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
        .with(eq(web()), eq(5), eq(None))
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
        .with(eq(web()), eq(2), eq(None))
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
        .with(eq(web()), eq(3), eq(None))
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
    store.expect_stale_intents().returning(|_| Ok(vec![]));
    // Ticks at 0, 120, 240 and 360 s of virtual time, then the loop is cancelled.
    store
        .expect_select_candidates()
        .times(4)
        .returning(|_, _, _| Ok(vec![]));
    store.expect_count_asleep().returning(|| Ok(0));
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
    store.expect_stale_intents().returning(|_| Ok(vec![]));
    let mut calls = 0;
    store
        .expect_select_candidates()
        .times(3)
        .returning(move |_, _, _| {
            calls += 1;
            if calls == 1 {
                Err(Error::Store("connection reset".into()))
            } else {
                Ok(vec![])
            }
        });
    store.expect_count_asleep().returning(|| Ok(0));
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

mod traffic;
