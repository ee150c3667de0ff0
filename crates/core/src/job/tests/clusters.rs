//! Several clusters: each served cluster has its own client, fails open on its own, and has
//! its own blast radius; the store is only asked for rows of clusters with a client.

use super::*;
use crate::{ClusterConfig, ClusterName, ScalerFactory};

fn east() -> ClusterName {
    ClusterName::new("east").expect("valid")
}

/// Serves the default cluster and `east`.
fn two_clusters() -> Config {
    let mut config = enabled();
    config.clusters.insert(
        east(),
        ClusterConfig {
            context: Some("east".into()),
            ..ClusterConfig::default()
        },
    );
    config
}

fn source(scaler: MockScaler) -> Arc<dyn ScalerFactory> {
    Arc::new(FixedScalerFactory(Arc::new(scaler)))
}

fn failing_source() -> Arc<dyn ScalerFactory> {
    let mut s = MockScalerFactory::new();
    s.expect_scaler().returning(|| {
        Err(Error::unavailable(
            "kubeconfig context east: connection refused",
        ))
    });
    Arc::new(s)
}

/// A scaler that sleeps every app it is asked about (at 2 replicas, version 1).
fn sleeping_scaler(times: usize) -> MockScaler {
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .times(times)
        .returning(|_| Ok(scale(2, "1")));
    scaler
        .expect_set_replicas()
        .times(times)
        .returning(|_, _, _| Ok(()));
    scaler
}

#[tokio::test]
async fn both_clusters_apps_sleep_each_through_its_own_client() {
    let mut store = MockStore::new();
    quiet(&mut store);
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .withf(|served, _, _, _| served.schemes() == ["k8s", "k8s@east"])
        .return_once(|_, _, _, _| {
            Ok(vec![
                candidate("k8s:apps/web"),
                candidate("k8s@east:apps/web"),
                candidate("k8s@east:apps/api"),
            ])
        });
    store.expect_count_asleep().returning(|| Ok(3));
    store.expect_sum_asleep_replicas().returning(|_| Ok(6));
    sleeps_confirmed(&mut store);
    let mut east_scaler = MockScaler::new();
    east_scaler
        .expect_get_scale()
        .withf(|t| t.cluster == Some(east()))
        .times(2)
        .returning(|_| Ok(scale(2, "1")));
    east_scaler
        .expect_set_replicas()
        .withf(|t, r, _| t.cluster == Some(east()) && *r == 0)
        .times(2)
        .returning(|_, _, _| Ok(()));
    let job = Job::builder(two_clusters(), Arc::new(store), source(sleeping_scaler(1)))
        .clock(clock())
        .cluster(east(), source(east_scaler))
        .build();
    let report = job.tick().await.expect("tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 3);
    assert!(report.clusters_unreachable.is_empty());
    let mut slept: Vec<_> = report.slept.iter().map(|s| s.target.as_str()).collect();
    slept.sort_unstable();
    assert_eq!(slept, ["apps/web", "east:apps/api", "east:apps/web"]);
}

#[test]
fn a_cluster_without_a_client_is_left_alone_and_the_others_go_on() {
    let mut store = MockStore::new();
    // Neither recovery, selection nor the drift check ask for east's rows this tick.
    store
        .expect_asleep_to_check()
        .withf(|served, _, _| *served == ServedClusters::default_only())
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    store.expect_back_off().times(0);
    store
        .expect_stale_intents()
        .withf(|served, _| *served == ServedClusters::default_only())
        .times(1)
        .returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .withf(|served, _, _, _| *served == ServedClusters::default_only())
        .return_once(|_, _, _, _| Ok(vec![candidate("k8s:apps/web")]));
    store.expect_count_asleep().returning(|| Ok(1));
    store.expect_sum_asleep_replicas().returning(|_| Ok(2));
    sleeps_confirmed(&mut store);
    let job = Job::builder(two_clusters(), Arc::new(store), source(sleeping_scaler(1)))
        .clock(clock())
        .cluster(east(), failing_source())
        .build();
    let (report, snap) = recorded(job.tick());
    let report = report.expect("a failing cluster never fails the tick");
    assert!(!report.no_scaler, "the default cluster had a client");
    assert_eq!(report.outcome(Outcome::ScaledDown), 1);
    assert_eq!(report.clusters_unreachable, ["east"]);
    assert_eq!(
        counter(
            &snap,
            crate::metrics::CLUSTER_UNREACHABLE_TOTAL,
            ("cluster", "east")
        ),
        Some(1)
    );
    assert_eq!(
        counter(
            &snap,
            crate::metrics::CLUSTER_UNREACHABLE_TOTAL,
            ("cluster", "default")
        ),
        None
    );
}

#[tokio::test]
async fn a_served_cluster_without_a_source_fails_open_alone() {
    let mut store = store_with(vec![candidate("k8s:apps/web")], 0);
    sleeps_confirmed(&mut store);
    // east is configured, but the host gave no source for it.
    let job = Job::builder(two_clusters(), Arc::new(store), source(sleeping_scaler(1)))
        .clock(clock())
        .build();
    let report = job.tick().await.expect("tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 1);
    assert_eq!(report.clusters_unreachable, ["east"]);
}

#[tokio::test]
async fn every_cluster_without_a_client_is_the_no_scaler_tick() {
    let mut store = MockStore::new();
    store.expect_select_candidates().times(0);
    store.expect_stale_intents().times(0);
    let job = Job::builder(two_clusters(), Arc::new(store), failing_source())
        .clock(clock())
        .cluster(east(), failing_source())
        .build();
    let report = job.tick().await.expect("fail-open");
    assert!(report.no_scaler);
    assert_eq!(report.clusters_unreachable, ["default", "east"]);
}

#[tokio::test]
async fn one_clusters_failures_stop_only_that_cluster() {
    // East's API fails every write; the default cluster's apps come after east's in the
    // selection and must still sleep.
    let mut candidates: Vec<_> = (0..4)
        .map(|i| candidate(&format!("k8s@east:apps/web-{i}")))
        .collect();
    candidates.extend((0..3).map(|i| candidate(&format!("k8s:apps/web-{i}"))));
    let mut store = store_with(candidates, 0);
    sleeps_confirmed(&mut store);
    store.expect_revert_sleep().returning(|_, _, _| Ok(true));
    let mut east_scaler = MockScaler::new();
    let mut version = 0;
    east_scaler.expect_get_scale().returning(move |_| {
        version += 1;
        Ok(scale(1, &version.to_string()))
    });
    east_scaler
        .expect_set_replicas()
        .times(2)
        .returning(|_, _, _| Err(Error::unavailable("500")));
    let config = Config {
        max_consecutive_failures: 2,
        concurrency: 1,
        ..two_clusters()
    };
    let job = Job::builder(config, Arc::new(store), source(sleeping_scaler(3)))
        .clock(clock())
        .cluster(east(), source(east_scaler))
        .build();
    let report = job.tick().await.expect("tick");
    assert!(report.stopped_early);
    assert_eq!(report.outcome(Outcome::ScaleFailed), 2);
    assert_eq!(report.skipped(SkipReason::BlastRadius), 2);
    assert_eq!(
        report.outcome(Outcome::ScaledDown),
        3,
        "the default cluster went on"
    );
}

#[test]
fn a_wake_of_an_app_in_an_unserved_cluster_is_refused_untouched() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store.expect_get().returning(move |_| {
        Ok(Some(DeploymentRecord {
            provider_id: "k8s@west:apps/web".into(),
            ..record(id, SleepState::Asleep, Some(2))
        }))
    });
    store.expect_begin_wake().times(0);
    store.expect_finish_wake().times(0);
    store.expect_touch_awake().times(0);
    let (result, snap) = recorded(async {
        let job = Job::builder(two_clusters(), Arc::new(store), failing_source())
            .clock(clock())
            .cluster(east(), failing_source())
            .build();
        job.wake(id).await
    });
    match result {
        Err(Error::ClusterNotServed { id: got, cluster }) => {
            assert_eq!((got, cluster.as_str()), (id, "west"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome(&snap, "wake_failed"), 0, "not a failed wake");
}

#[tokio::test]
async fn a_wake_uses_the_client_of_the_rows_cluster() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store.expect_get().returning(move |_| {
        Ok(Some(DeploymentRecord {
            provider_id: "k8s@east:apps/web".into(),
            ..record(id, SleepState::Asleep, Some(3))
        }))
    });
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
    store.expect_finish_wake().returning(|_, _, _, _| Ok(true));
    no_asleep(&mut store);
    let mut east_scaler = MockScaler::new();
    east_scaler
        .expect_get_scale()
        .withf(|t| t.cluster == Some(east()))
        .returning(|_| Ok(scale(0, "7")));
    east_scaler
        .expect_set_replicas()
        .withf(|t, r, rv| t.cluster == Some(east()) && *r == 3 && *rv == Some("7"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut default_scaler = MockScaler::new();
    default_scaler.expect_get_scale().times(0);
    let job = Job::builder(two_clusters(), Arc::new(store), source(default_scaler))
        .clock(clock())
        .cluster(east(), source(east_scaler))
        .build();
    let report = job.wake(id).await.expect("woken");
    assert_eq!(report.result, WakeResult::WokeUp);
}

fn asleep_in_east(id: Uuid) -> DeploymentRecord {
    DeploymentRecord {
        provider_id: "k8s@east:apps/web".into(),
        ..record(id, SleepState::Asleep, Some(3))
    }
}

/// A job over `store` serving the default cluster (whose client must not be used) and east,
/// reached through `east_source`.
fn east_only_job(store: MockStore, east_source: Arc<dyn ScalerFactory>) -> Job {
    let mut default_scaler = MockScaler::new();
    default_scaler.expect_get_scale().times(0);
    default_scaler.expect_set_replicas().times(0);
    Job::builder(two_clusters(), Arc::new(store), source(default_scaler))
        .clock(clock())
        .cluster(east(), east_source)
        .build()
}

/// Invariant 9 in a named cluster: 200 callers wake one of its apps at once; one read and
/// one scale write through that cluster's client, none through the default cluster's.
#[test]
fn concurrent_wakes_of_a_named_clusters_app_make_one_write_there() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store
        .expect_get()
        .times(1)
        .returning(move |_| Ok(Some(asleep_in_east(id))));
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
    store
        .expect_finish_wake()
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    no_asleep(&mut store);
    let mut east_scaler = MockScaler::new();
    east_scaler
        .expect_get_scale()
        .times(1)
        .returning(|_| Ok(scale(0, "7")));
    east_scaler
        .expect_set_replicas()
        .withf(|t, r, _| t.cluster == Some(east()) && *r == 3)
        .times(1)
        .returning(|_, _, _| Ok(()));
    let job = east_only_job(store, source(east_scaler));
    let (results, snap) = recorded(futures::future::join_all((0..200).map(|_| job.wake(id))));
    assert!(
        results
            .into_iter()
            .all(|r| r.expect("woken").result == WakeResult::WokeUp)
    );
    assert_eq!(outcome(&snap, "woke_up"), 1);
}

/// A wake of an app in a served cluster that cannot be reached: an `unavailable` error for
/// the caller, a `wake_failed`, no write anywhere, and the row left `asleep` (invariant 10:
/// the error is reported and the row is not flipped over an app still at 0).
#[test]
fn a_wake_in_a_served_but_unreachable_cluster_fails_and_leaves_the_row_asleep() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store
        .expect_get()
        .returning(move |_| Ok(Some(asleep_in_east(id))));
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
    store.expect_finish_wake().times(0);
    store.expect_touch_awake().times(0);
    let job = east_only_job(store, failing_source());
    let (result, snap) = recorded(job.wake(id));
    match result {
        Err(e @ Error::Unavailable { .. }) => {
            assert!(e.to_string().contains("connection refused"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome(&snap, "wake_failed"), 1);
}

#[test]
fn an_unreachable_api_gets_one_warn_naming_its_cluster_and_the_others_go_on() {
    let mut candidates: Vec<_> = (0..3)
        .map(|i| candidate(&format!("k8s@east:apps/web-{i}")))
        .collect();
    candidates.push(candidate("k8s:apps/web"));
    let mut store = store_with(candidates, 1);
    sleeps_confirmed(&mut store);
    let mut east_scaler = MockScaler::new();
    east_scaler
        .expect_get_scale()
        .returning(|_| Err(Error::unavailable("connect: connection refused")));
    east_scaler.expect_set_replicas().times(0);
    let config = Config {
        concurrency: 1,
        ..two_clusters()
    };
    let job = Job::builder(config, Arc::new(store), source(sleeping_scaler(1)))
        .clock(clock())
        .cluster(east(), source(east_scaler))
        .build();
    let (report, snap, logs) = super::traffic::recorded_and_logged(job.tick());
    let report = report.expect("tick");
    assert_eq!(
        report.outcome(Outcome::ScaledDown),
        1,
        "the default cluster went on"
    );
    assert_eq!(report.clusters_unreachable, ["east"]);
    let warns: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("Kubernetes API did not answer"))
        .collect();
    assert_eq!(warns.len(), 1, "one WARN per cluster and tick: {logs}");
    assert!(
        warns[0].contains("cluster=\"east\"") || warns[0].contains("cluster=east"),
        "{logs}"
    );
    assert_eq!(
        counter(
            &snap,
            crate::metrics::CLUSTER_UNREACHABLE_TOTAL,
            ("cluster", "east")
        ),
        Some(1)
    );
}

/// East's apps, one read of which fails with `error`; the others answer. The tick's report
/// and east's unreachable count.
fn east_with_one_failed_read(failures: usize, error: Error) -> (TickReport, Option<u64>) {
    let candidates: Vec<_> = (0..4)
        .map(|i| candidate(&format!("k8s@east:apps/web-{i}")))
        .collect();
    let mut store = store_with(candidates, 1);
    sleeps_confirmed(&mut store);
    let mut east_scaler = MockScaler::new();
    let mut left = failures;
    east_scaler.expect_get_scale().returning(move |_| {
        if left == 0 {
            return Ok(scale(2, "1"));
        }
        left -= 1;
        Err(error.clone())
    });
    east_scaler
        .expect_set_replicas()
        .returning(|_, _, _| Ok(()));
    let config = Config {
        concurrency: 1,
        ..two_clusters()
    };
    let job = Job::builder(config, Arc::new(store), source(sleeping_scaler(0)))
        .clock(clock())
        .cluster(east(), source(east_scaler))
        .build();
    let (report, snap, _) = super::traffic::recorded_and_logged(job.tick());
    let unreachable = counter(
        &snap,
        crate::metrics::CLUSTER_UNREACHABLE_TOTAL,
        ("cluster", "east"),
    );
    (report.expect("tick"), unreachable)
}

#[test]
fn one_answered_error_fails_its_app_only_and_the_cluster_is_not_unreachable() {
    for code in ["HTTP 500", "HTTP 429"] {
        let error = Error::unavailable(code).with_reach(crate::Reach::Answered);
        let (report, unreachable) = east_with_one_failed_read(1, error);
        assert!(report.clusters_unreachable.is_empty(), "{code}: {report:?}");
        assert_eq!(unreachable.unwrap_or(0), 0, "{code}");
        assert_eq!(report.outcome(Outcome::ScaledDown), 3, "{code}: {report:?}");
    }
}

#[test]
fn one_slow_request_is_not_an_outage_but_a_second_one_is() {
    let slow =
        || Error::unavailable("no answer within 10000 ms").with_reach(crate::Reach::NoAnswer);
    let (report, unreachable) = east_with_one_failed_read(1, slow());
    assert!(report.clusters_unreachable.is_empty(), "{report:?}");
    assert_eq!(unreachable.unwrap_or(0), 0);
    assert_eq!(report.outcome(Outcome::ScaledDown), 3, "{report:?}");

    let (report, unreachable) = east_with_one_failed_read(2, slow());
    assert_eq!(report.clusters_unreachable, ["east"], "{report:?}");
    assert_eq!(unreachable, Some(1), "counted once");
}

/// A stale intent of `provider_id`, older than the stale age, with no activity since.
fn stale_of(provider_id: &str) -> crate::StaleIntent {
    crate::StaleIntent {
        id: Uuid::new_v4(),
        provider_id: provider_id.into(),
        last_activity_at: seen(),
        sleep_state_changed_at: t0() - chrono::Duration::minutes(10),
        replicas_before_sleep: Some(2),
    }
}

/// East's API stops answering: recovery reads it once, not once per leftover intent, and
/// the default cluster's leftover and idle app are still settled and slept in that tick.
#[tokio::test]
async fn recovery_stops_reading_an_unreachable_cluster_and_the_others_go_on() {
    let mut store = MockStore::new();
    quiet(&mut store);
    store.expect_stale_intents().returning(|_, _| {
        Ok(vec![
            stale_of("k8s@east:apps/a"),
            stale_of("k8s@east:apps/b"),
            stale_of("k8s@east:apps/c"),
            stale_of("k8s:apps/home"),
        ])
    });
    // Only the default cluster's leftover is settled (its app is at 0: asleep).
    store
        .expect_settle_intent()
        .withf(|_, _, to, _| *to == SleepState::Asleep)
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    store
        .expect_select_candidates()
        .return_once(|_, _, _, _| Ok(vec![candidate("k8s:apps/web")]));
    no_asleep(&mut store);
    sleeps_confirmed(&mut store);
    let mut east_scaler = MockScaler::new();
    east_scaler
        .expect_get_scale()
        .times(1)
        .returning(|_| Err(Error::unavailable("east: connection refused")));
    let mut home = MockScaler::new();
    home.expect_get_scale()
        .withf(|t| t.name == "home")
        .times(1)
        .returning(|_| Ok(scale(0, "3")));
    home.expect_get_scale()
        .withf(|t| t.name == "web")
        .times(1)
        .returning(|_| Ok(scale(2, "1")));
    home.expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let job = Job::builder(two_clusters(), Arc::new(store), source(home))
        .clock(clock())
        .cluster(east(), source(east_scaler))
        .build();
    let report = job.tick().await.expect("tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 1, "{report:?}");
    assert_eq!(report.clusters_unreachable, ["east"], "{report:?}");
    assert_eq!(report.recovered.get(&crate::Recovery::Asleep), Some(&1));
    assert_eq!(report.recovered.get(&crate::Recovery::Failed), Some(&1));
}

/// East's API stops answering during the drift checks: the default cluster's asleep row
/// whose app runs is still set `awake`; east's rows are neither read again nor marked checked.
#[tokio::test]
async fn drift_checks_go_on_in_the_other_clusters_while_one_is_unreachable() {
    let slept = t0() - chrono::Duration::hours(1);
    let asleep = |provider_id: &str| crate::AsleepRow {
        id: Uuid::new_v4(),
        provider_id: provider_id.into(),
        last_activity_at: slept - chrono::Duration::minutes(30),
        sleep_state_changed_at: slept,
        wake_started_at: None,
    };
    let home = asleep("k8s:apps/web");
    let home_id = home.id;
    let mut store = MockStore::new();
    store.expect_back_off().returning(|_, _, _| Ok(true));
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .returning(|_, _, _, _| Ok(vec![]));
    store.expect_count_asleep().returning(|| Ok(4));
    store.expect_sum_asleep_replicas().returning(|_| Ok(4));
    let rows = vec![
        asleep("k8s@east:apps/a"),
        asleep("k8s@east:apps/b"),
        asleep("k8s@east:apps/c"),
        home,
    ];
    store
        .expect_asleep_to_check()
        .return_once(move |_, _, _| Ok(rows));
    store
        .expect_reconcile_awake()
        .withf(move |id, _, kind, _| *id == home_id && *kind == crate::Drift::WokenExternally)
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    store.expect_mark_checked().times(0);
    let mut east_scaler = MockScaler::new();
    east_scaler
        .expect_get_scale()
        .times(1)
        .returning(|_| Err(Error::unavailable("east: connection refused")));
    let mut home_scaler = MockScaler::new();
    home_scaler
        .expect_get_scale()
        .times(1)
        .returning(|_| Ok(scale(2, "5")));
    let config = Config {
        concurrency: 1,
        ..two_clusters()
    };
    let job = Job::builder(config, Arc::new(store), source(home_scaler))
        .clock(clock())
        .cluster(east(), source(east_scaler))
        .build();
    let report = job.tick().await.expect("tick");
    assert_eq!(report.drift.get(&crate::Drift::WokenExternally), Some(&1));
    assert_eq!(report.clusters_unreachable, ["east"], "{report:?}");
}

/// The flag off with clusters configured: no port is called, no cluster's client is built.
#[tokio::test]
async fn flag_off_with_clusters_makes_no_call() {
    let config = Config {
        enabled: false,
        ..two_clusters()
    };
    let mut east_source = MockScalerFactory::new();
    east_source.expect_scaler().times(0);
    let mut home_source = MockScalerFactory::new();
    home_source.expect_scaler().times(0);
    let job = Job::builder(config, Arc::new(MockStore::new()), Arc::new(home_source))
        .clock(clock())
        .cluster(east(), Arc::new(east_source))
        .build();
    let report = job.tick().await.expect("tick");
    assert!(report.disabled, "{report:?}");
}
