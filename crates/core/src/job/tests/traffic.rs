//! The traffic check of the tick and the dry run, over a mocked `ActivitySource`.

use std::collections::HashMap;

use super::*;
use crate::config::{ActivitySourceKind, UnknownActivity};
use crate::{MockActivitySource, Traffic};

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

/// A job over `store` and `scaler` that asks `source`.
fn traffic_job(
    config: Config,
    store: MockStore,
    scaler: MockScaler,
    source: MockActivitySource,
) -> Job {
    job_builder(config, store, scaler)
        .activity_source(Arc::new(source))
        .build()
}

/// A source that answers `answer` once, and checks it is asked exactly about `targets`,
/// with the idle window as lookback, at the tick's time.
fn source_answering(
    targets: Vec<Target>,
    answer: Result<HashMap<Target, Traffic>>,
) -> MockActivitySource {
    let mut source = MockActivitySource::new();
    source
        .expect_traffic()
        .withf(move |asked, lookback, at| {
            asked == targets.as_slice() && *lookback == minutes(30) && *at == t0()
        })
        .times(1)
        .return_once(move |_, _, _| answer);
    source
}

fn only(target: Target, traffic: Traffic) -> Result<HashMap<Target, Traffic>> {
    Ok(HashMap::from([(target, traffic)]))
}

/// A store and scaler that expect exactly one full, successful sleep of `apps/web`.
fn expect_one_sleep(store: &mut MockStore, scaler: &mut MockScaler) {
    store
        .expect_claim_sleep()
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .times(1)
        .returning(|_, _, _, _| Ok(ConfirmOutcome::Confirmed));
    scaler
        .expect_get_scale()
        .with(eq(web()))
        .times(1)
        .returning(|_| Ok(scale(2, "5")));
    scaler
        .expect_set_replicas()
        .withf(|t, r, rv| *t == web() && *r == 0 && *rv == Some("5"))
        .times(1)
        .returning(|_, _, _| Ok(()));
}

/// `recorded`, with the tracing events of the run captured too.
pub(super) fn recorded_and_logged<F: Future>(f: F) -> (F::Output, Snapshot, String) {
    recorded_and_logged_at(tracing::Level::WARN, f)
}

/// `recorded`, with the tracing events at `level` and above captured too.
pub(super) fn recorded_and_logged_at<F: Future>(
    level: tracing::Level,
    f: F,
) -> (F::Output, Snapshot, String) {
    let ((out, snap), logs) = super::logs::captured(level, || recorded(f));
    (out, snap, logs)
}

fn skipped_metric(snap: &Snapshot, reason: &str) -> Option<u64> {
    counter(snap, crate::metrics::SKIPPED_TOTAL, ("reason", reason))
}

fn unknown_metric(snap: &Snapshot, cause: &str) -> Option<u64> {
    counter(
        snap,
        crate::metrics::ACTIVITY_UNKNOWN_TOTAL,
        ("cause", cause),
    )
}

fn source_errors(snap: &Snapshot) -> Option<u64> {
    snap.iter().find_map(|(k, _, _, v)| match v {
        DebugValue::Counter(n)
            if k.key().name() == crate::metrics::ACTIVITY_SOURCE_ERRORS_TOTAL =>
        {
            Some(*n)
        }
        _ => None,
    })
}

#[test]
fn traffic_inside_the_window_keeps_the_app_up_and_is_recorded_in_its_row() {
    let c = candidate("k8s:apps/web");
    let id = c.id;
    let last_request = t0() - minutes(10);
    let mut store = store_with(vec![c], 0);
    store
        .expect_record_traffic()
        .with(eq(id), eq(last_request))
        .times(1)
        .returning(|_, _| Ok(true));
    store.expect_claim_sleep().times(0);
    // A scaler without expectations: any Kubernetes call panics.
    let source = source_answering(vec![web()], only(web(), Traffic::LastSeen(last_request)));
    let job = traffic_job(enabled(), store, MockScaler::new(), source);
    let (report, snap) = recorded(job.tick());
    let report = report.unwrap();
    assert_eq!(report.skipped(SkipReason::RecentTraffic), 1);
    assert_eq!(report.outcome(Outcome::ScaledDown), 0);
    assert_eq!(skipped_metric(&snap, "recent_traffic"), Some(1));
    assert_eq!(source_errors(&snap), None);
}

#[test]
fn traffic_at_the_window_edge_or_before_it_does_not_keep_the_app_up() {
    // The candidate predicate is `last_activity_at <= idle_before`: traffic exactly at the
    // edge is as idle as a stamp there.
    for last_request in [idle_before(), t0() - minutes(90)] {
        let mut store = store_with(vec![candidate("k8s:apps/web")], 1);
        store.expect_record_traffic().times(0);
        let mut scaler = MockScaler::new();
        expect_one_sleep(&mut store, &mut scaler);
        let source = source_answering(vec![web()], only(web(), Traffic::LastSeen(last_request)));
        let (report, _) = recorded(traffic_job(enabled(), store, scaler, source).tick());
        assert_eq!(
            report.unwrap().outcome(Outcome::ScaledDown),
            1,
            "{last_request}"
        );
    }
}

#[test]
fn a_quiet_app_is_slept() {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 1);
    let mut scaler = MockScaler::new();
    expect_one_sleep(&mut store, &mut scaler);
    let source = source_answering(vec![web()], only(web(), Traffic::Quiet));
    let (report, snap) = recorded(traffic_job(enabled(), store, scaler, source).tick());
    assert_eq!(report.unwrap().outcome(Outcome::ScaledDown), 1);
    assert_eq!(unknown_metric(&snap, "no_data"), None);
}

#[test]
fn a_source_clock_ahead_of_ours_never_stamps_the_row_in_the_future() {
    let c = candidate("k8s:apps/web");
    let id = c.id;
    let mut store = store_with(vec![c], 0);
    store
        .expect_record_traffic()
        .with(eq(id), eq(t0()))
        .times(1)
        .returning(|_, _| Ok(true));
    let source = source_answering(
        vec![web()],
        only(web(), Traffic::LastSeen(t0() + minutes(3))),
    );
    let report = recorded(traffic_job(enabled(), store, MockScaler::new(), source).tick()).0;
    assert_eq!(report.unwrap().skipped(SkipReason::RecentTraffic), 1);
}

#[test]
fn recording_the_traffic_failing_still_keeps_the_app_up() {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 0);
    store
        .expect_record_traffic()
        .times(1)
        .returning(|_, _| Err(Error::store("connection reset")));
    let source = source_answering(
        vec![web()],
        only(web(), Traffic::LastSeen(t0() - minutes(1))),
    );
    let (report, _, logs) =
        recorded_and_logged(traffic_job(enabled(), store, MockScaler::new(), source).tick());
    assert_eq!(report.unwrap().skipped(SkipReason::RecentTraffic), 1);
    assert!(logs.contains("recording the traffic failed"), "{logs}");
}

#[test]
fn no_data_for_an_app_keeps_it_awake_with_a_metric_and_a_warning() {
    let api = Target {
        cluster: None,
        namespace: "apps".into(),
        name: "api".into(),
    };
    let mut store = store_with(
        vec![candidate("k8s:apps/web"), candidate("k8s:apps/api")],
        1,
    );
    let mut scaler = MockScaler::new();
    expect_one_sleep(&mut store, &mut scaler);
    // Asked about both (sorted), knows only web.
    let source = source_answering(vec![api.clone(), web()], only(web(), Traffic::Quiet));
    let (report, snap, logs) =
        recorded_and_logged(traffic_job(enabled(), store, scaler, source).tick());
    let report = report.unwrap();
    assert_eq!(report.outcome(Outcome::ScaledDown), 1);
    assert_eq!(report.skipped(SkipReason::ActivityUnknown), 1);
    assert_eq!(skipped_metric(&snap, "activity_unknown"), Some(1));
    assert_eq!(unknown_metric(&snap, "no_data"), Some(1));
    assert!(logs.contains("WARN"), "{logs}");
    assert!(
        logs.contains("no data") && logs.contains("apps/api"),
        "{logs}"
    );
    assert!(logs.contains("KeepAwake"), "{logs}");
}

#[test]
fn an_unreachable_source_sleeps_nothing_and_says_so() {
    let store = store_with(
        vec![candidate("k8s:apps/web"), candidate("k8s:apps/api")],
        0,
    );
    let mut source = MockActivitySource::new();
    source
        .expect_traffic()
        .times(1)
        .returning(|_, _, _| Err(Error::unavailable("connect: connection refused")));
    // No Kubernetes call and no claim may happen (mocks without expectations panic).
    let (report, snap, logs) =
        recorded_and_logged(traffic_job(enabled(), store, MockScaler::new(), source).tick());
    let report = report.unwrap();
    assert_eq!(report.skipped(SkipReason::ActivityUnknown), 2);
    assert_eq!(report.outcome(Outcome::ScaledDown), 0);
    assert_eq!(source_errors(&snap), Some(1));
    assert_eq!(unknown_metric(&snap, "source_error"), Some(2));
    assert_eq!(
        counter(&snap, crate::metrics::TICKS_TOTAL, ("result", "ok")),
        Some(1),
        "a source outage is not a failed tick"
    );
    assert!(
        logs.contains("WARN") && logs.contains("activity source failed"),
        "{logs}"
    );
    assert!(logs.contains("connection refused"), "{logs}");
}

#[test]
fn the_sleep_policy_judges_unknown_apps_by_their_stamp() {
    let config = Config {
        activity_unknown: UnknownActivity::Sleep,
        ..enabled()
    };
    // Source down: the app is judged by its stamp alone, and the outage is still counted.
    let mut store = store_with(vec![candidate("k8s:apps/web")], 1);
    let mut scaler = MockScaler::new();
    expect_one_sleep(&mut store, &mut scaler);
    let mut source = MockActivitySource::new();
    source
        .expect_traffic()
        .returning(|_, _, _| Err(Error::unavailable("timeout")));
    let (report, snap) = recorded(traffic_job(config.clone(), store, scaler, source).tick());
    assert_eq!(report.unwrap().outcome(Outcome::ScaledDown), 1);
    assert_eq!(source_errors(&snap), Some(1));
    assert_eq!(unknown_metric(&snap, "source_error"), Some(1));

    // No data: the same.
    let mut store = store_with(vec![candidate("k8s:apps/web")], 1);
    let mut scaler = MockScaler::new();
    expect_one_sleep(&mut store, &mut scaler);
    let source = source_answering(vec![web()], Ok(HashMap::new()));
    let (report, snap) = recorded(traffic_job(config, store, scaler, source).tick());
    assert_eq!(report.unwrap().outcome(Outcome::ScaledDown), 1);
    assert_eq!(unknown_metric(&snap, "no_data"), Some(1));
}

#[test]
fn a_configured_source_that_is_not_attached_counts_as_unreachable() {
    let config = Config {
        activity_source: ActivitySourceKind::Prometheus,
        ..enabled()
    };
    let store = store_with(vec![candidate("k8s:apps/web")], 0);
    let (report, snap) = recorded(job(config, store, MockScaler::new()).tick());
    assert_eq!(report.unwrap().skipped(SkipReason::ActivityUnknown), 1);
    assert_eq!(source_errors(&snap), Some(1));
}

#[tokio::test]
async fn only_sleepable_targets_are_asked_about_once_each() {
    let store = store_with(
        vec![
            candidate("fly:some-app"),
            candidate("k8s:Bad_Namespace/web"),
            candidate("k8s:kube-system/coredns"),
            candidate("k8s:apps/web"),
            candidate("k8s:apps/web"),
        ],
        0,
    );
    let mut store = store;
    store
        .expect_record_traffic()
        .times(2)
        .returning(|_, _| Ok(true));
    let source = source_answering(
        vec![web()],
        only(web(), Traffic::LastSeen(t0() - minutes(5))),
    );
    let report = traffic_job(enabled(), store, MockScaler::new(), source)
        .tick()
        .await
        .unwrap();
    assert_eq!(report.skipped(SkipReason::Foreign), 1);
    assert_eq!(report.skipped(SkipReason::Malformed), 1);
    assert_eq!(report.skipped(SkipReason::ProtectedNamespace), 1);
    assert_eq!(report.skipped(SkipReason::RecentTraffic), 2);
}

#[tokio::test]
async fn no_candidates_means_no_question() {
    let store = store_with(vec![], 0);
    // A source without expectations panics if asked.
    let report = traffic_job(
        enabled(),
        store,
        MockScaler::new(),
        MockActivitySource::new(),
    )
    .tick()
    .await
    .unwrap();
    assert_eq!(report.candidates, 0);
}

#[tokio::test]
async fn shutdown_asks_no_question() {
    let store = store_with(vec![candidate("k8s:apps/web")], 0);
    let token = CancellationToken::new();
    token.cancel();
    let report = traffic_job(
        enabled(),
        store,
        MockScaler::new(),
        MockActivitySource::new(),
    )
    .tick_with_shutdown(&token)
    .await
    .unwrap();
    assert_eq!(report.skipped(SkipReason::ShuttingDown), 1);
}

#[tokio::test]
async fn the_dry_run_asks_the_source_and_reports_the_same_skips_writing_nothing() {
    let (busy, unknown, quiet) = (
        candidate("k8s:apps/busy"),
        candidate("k8s:apps/dark"),
        candidate("k8s:apps/web"),
    );
    let quiet_id = quiet.id;
    let mut store = MockStore::new();
    super::quiet(&mut store);
    store
        .expect_select_candidates()
        .times(1)
        .return_once(move |_, _, _, _| Ok(vec![busy, unknown, quiet]));
    // No other Store method (no record_traffic) and no ScalerFactory call may happen.
    let target = |name: &str| Target {
        cluster: None,
        namespace: "apps".into(),
        name: name.into(),
    };
    let source = source_answering(
        vec![target("busy"), target("dark"), web()],
        Ok(HashMap::from([
            (target("busy"), Traffic::LastSeen(t0() - minutes(2))),
            (web(), Traffic::Quiet),
        ])),
    );
    let job = Job::builder(
        Config {
            dry_run: true,
            ..enabled()
        },
        Arc::new(store),
        Arc::new(MockScalerFactory::new()),
    )
    .clock(clock())
    .activity_source(Arc::new(source))
    .build();
    let report = job.tick().await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.skipped(SkipReason::RecentTraffic), 1);
    assert_eq!(report.skipped(SkipReason::ActivityUnknown), 1);
    assert_eq!(
        report.slept,
        vec![SleptApp {
            id: quiet_id,
            target: "apps/web".into(),
            replicas: None
        }]
    );
}

#[test]
fn priming_creates_the_traffic_series_at_zero() {
    let ((), snap) = recorded(async { crate::metrics::prime() });
    for reason in ["recent_traffic", "activity_unknown"] {
        assert_eq!(skipped_metric(&snap, reason), Some(0), "{reason}");
    }
    for cause in crate::metrics::ACTIVITY_UNKNOWN_CAUSES {
        assert_eq!(unknown_metric(&snap, cause), Some(0), "{cause}");
    }
    assert_eq!(source_errors(&snap), Some(0));
}
