//! Parking through a mocked Parker: what the job asks of it after a sleep, after a wake, in
//! the reconcile, and never (flag off, parking off, another cluster).

use super::*;
use crate::{
    AsleepRow, ClusterConfig, ClusterName, MockParker, ParkReport, ParkedApp, Parking, Unpark,
    WakeReport,
    metrics::{PARKED_SERVICES, PARKING_TOTAL},
};

fn parking() -> Config {
    Config {
        parking: Parking::EndpointSlices,
        ..enabled()
    }
}

fn report_of(results: &[(&'static str, u64)]) -> ParkReport {
    ParkReport {
        results: results.iter().copied().collect(),
    }
}

fn parked_app(namespace: &str, name: &str, services: u32) -> ParkedApp {
    ParkedApp {
        target: Target::new(namespace, name),
        services,
    }
}

fn parking_count(snap: &Snapshot, result: &str) -> u64 {
    counter(snap, PARKING_TOTAL, ("result", result)).unwrap_or(0)
}

/// A store that selects `candidates` at the first tick and none after; no asleep row.
fn ticks_store(candidates: Vec<Candidate>) -> MockStore {
    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    let first = std::sync::Mutex::new(Some(candidates));
    store
        .expect_select_candidates()
        .returning(move |_, _, _, _| Ok(first.lock().unwrap().take().unwrap_or_default()));
    no_asleep(&mut store);
    quiet(&mut store);
    store
}

/// A scaler whose apps run 2 replicas and that is asked to scale down exactly `times` times.
fn scaler_sleeping(times: usize) -> MockScaler {
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(2, "4")));
    scaler
        .expect_set_replicas()
        .times(times)
        .returning(|_, _, _| Ok(()));
    scaler
}

/// The asleep row of `k8s:apps/web`, slept two hours ago and not waking.
fn web_asleep() -> AsleepRow {
    AsleepRow {
        id: Uuid::new_v4(),
        provider_id: "k8s:apps/web".into(),
        last_activity_at: seen(),
        sleep_state_changed_at: seen(),
        wake_started_at: None,
    }
}

/// A store and scaler whose one candidate, `k8s:apps/web`, sleeps at the first tick.
fn one_sleep() -> (MockStore, MockScaler) {
    let mut store = ticks_store(vec![candidate("k8s:apps/web")]);
    sleeps_confirmed(&mut store);
    let scaler = scaler_sleeping(1);
    (store, scaler)
}

fn parked_job(config: Config, store: MockStore, scaler: MockScaler, parker: MockParker) -> Job {
    job_builder(config, store, scaler)
        .parker(Arc::new(parker), None)
        .build()
}

/// Wakes `id` and waits for the wake's unpark to end.
async fn wake_and_finish(job: &Job, id: Uuid) -> WakeReport {
    let woke = job.wake(id).await.expect("wake");
    job.finish_wakes().await;
    woke
}

#[test]
fn a_confirmed_sleep_parks_the_app_in_the_same_tick_and_counts_each_result() {
    let (store, scaler) = one_sleep();
    let mut parker = MockParker::new();
    parker
        .expect_park()
        .with(eq(web()))
        .times(1)
        .returning(|_| Ok(report_of(&[("parked", 2), ("headless", 1)])));
    parker.expect_parked().times(1).returning(|| Ok(vec![]));
    let (report, snap) = recorded(parked_job(parking(), store, scaler, parker).tick());
    let report = report.expect("tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 1);
    assert_eq!(report.parking.get("parked"), Some(&2));
    assert_eq!(report.parking.get("headless"), Some(&1));
    assert_eq!(parking_count(&snap, "parked"), 2);
    assert_eq!(parking_count(&snap, "headless"), 1);
}

#[test]
fn a_park_that_fails_leaves_the_sleep_as_it_is_and_is_counted_failed() {
    let (store, scaler) = one_sleep();
    let mut parker = MockParker::new();
    parker
        .expect_park()
        .times(1)
        .returning(|_| Err(Error::unavailable("apiserver: connection refused")));
    parker.expect_parked().returning(|| Ok(vec![]));
    let (report, snap) = recorded(parked_job(parking(), store, scaler, parker).tick());
    let report = report.expect("a parking failure never fails the tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 1);
    assert_eq!(report.slept.len(), 1);
    assert_eq!(outcome(&snap, "scaled_down"), 1);
    assert_eq!(report.parking.get("failed"), Some(&1));
    assert_eq!(parking_count(&snap, "failed"), 1);
}

#[test]
fn a_park_that_keeps_failing_is_logged_at_warn_once_per_app() {
    let asleep = web_asleep();
    // The next ticks' drift check finds the app at 0 and parks it again.
    let mut store = MockStore::new();
    let first = std::sync::Mutex::new(Some(vec![candidate("k8s:apps/web")]));
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .returning(move |_, _, _, _| Ok(first.lock().unwrap().take().unwrap_or_default()));
    sleeps_confirmed(&mut store);
    store.expect_count_asleep().returning(|| Ok(1));
    store.expect_sum_asleep_replicas().returning(|_| Ok(2));
    store
        .expect_asleep_to_check()
        .returning(move |_, _, _| Ok(vec![asleep.clone()]));
    store.expect_mark_checked().returning(|_, _| Ok(true));
    let mut scaler = MockScaler::new();
    let mut replicas = vec![0, 2];
    scaler
        .expect_get_scale()
        .returning(move |_| Ok(scale(replicas.pop().unwrap_or(0), "4")));
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut parker = MockParker::new();
    parker
        .expect_park()
        .times(3)
        .returning(|_| Err(Error::unavailable("apiserver: connection refused")));
    parker.expect_parked().returning(|| Ok(vec![]));
    let job = parked_job(parking(), store, scaler, parker);
    let (_, snap, logs) = super::traffic::recorded_and_logged(async {
        // The sleep's park and the drift check's fail at the first tick, the drift check's
        // at the second.
        for _ in 0..2 {
            job.tick().await.expect("tick");
        }
    });
    assert_eq!(parking_count(&snap, "failed"), 3);
    assert_eq!(
        logs.matches("parking the slept app failed").count(),
        1,
        "{logs}"
    );
}

#[test]
fn a_job_serving_two_clusters_says_once_at_build_which_one_is_not_parked() {
    let mut config = parking();
    config.clusters.insert(
        ClusterName::new("east").expect("valid"),
        ClusterConfig {
            context: Some("east".into()),
            ..ClusterConfig::default()
        },
    );
    let (_, _, logs) = super::traffic::recorded_and_logged_at(tracing::Level::INFO, async {
        job_builder(config, MockStore::new(), MockScaler::new())
            .parker(Arc::new(MockParker::new()), None)
            .build()
    });
    let line = logs
        .lines()
        .find(|l| l.contains("parking serves one cluster"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains(" INFO ") && line.contains("east"), "{line}");
    assert!(
        line.contains("parked=\"default\"") || line.contains("parked=default"),
        "{line}"
    );
}

#[test]
fn with_the_flag_off_the_parker_is_never_called() {
    // No expectation: any call panics.
    let job = job_builder(
        Config {
            enabled: false,
            ..parking()
        },
        MockStore::new(),
        MockScaler::new(),
    )
    .parker(Arc::new(MockParker::new()), None)
    .build();
    let (report, _) = recorded(job.tick());
    assert!(report.expect("tick").disabled);
}

#[test]
fn a_dry_run_never_parks() {
    let store = store_with(vec![candidate("k8s:apps/web")], 0);
    let config = Config {
        dry_run: true,
        ..parking()
    };
    let job = job_builder(config, store, MockScaler::new())
        .parker(Arc::new(MockParker::new()), None)
        .build();
    let (report, _) = recorded(job.tick());
    assert_eq!(report.expect("tick").slept.len(), 1);
}

#[test]
fn an_app_of_another_cluster_is_never_parked() {
    let east = ClusterName::new("east").expect("valid");
    let mut config = parking();
    config.clusters.insert(
        east.clone(),
        ClusterConfig {
            context: Some("east".into()),
            ..ClusterConfig::default()
        },
    );
    let mut store = store_with(
        vec![candidate("k8s@east:apps/web"), candidate("k8s:apps/api")],
        2,
    );
    sleeps_confirmed(&mut store);
    let scaler = scaler_sleeping(2);
    let scaler = Arc::new(scaler);
    let mut parker = MockParker::new();
    parker
        .expect_park()
        .withf(|t| t.cluster.is_none() && t.name == "api")
        .times(1)
        .returning(|_| Ok(report_of(&[("parked", 1)])));
    parker.expect_parked().returning(|| Ok(vec![]));
    let job = Job::builder(
        config,
        Arc::new(store),
        Arc::new(FixedScalerFactory(scaler.clone())),
    )
    .clock(clock())
    .cluster(east, Arc::new(FixedScalerFactory(scaler)))
    .parker(Arc::new(parker), None)
    .build();
    let (report, _) = recorded(job.tick());
    let report = report.expect("tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 2);
    assert_eq!(report.parking.get("parked"), Some(&1));
}

#[test]
fn a_wake_unparks_once_ready_and_finish_wakes_waits_for_it() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store.expect_begin_wake().returning(|_, _, _| Ok(true));
    store
        .expect_get()
        .returning(move |_| Ok(Some(record(id, SleepState::Asleep, Some(2)))));
    store.expect_finish_wake().returning(|_, _, _, _| Ok(true));
    no_asleep(&mut store);
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(0, "9")));
    scaler
        .expect_set_replicas()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut parker = MockParker::new();
    parker.expect_unpark_now().times(0);
    parker.expect_unpark().times(0);
    parker
        .expect_unpark_when_ready()
        .withf(|t, timeout| *t == web() && *timeout == crate::job::UNPARK_WAIT)
        .times(1)
        .returning(|_, _| Ok(Unpark::Done(report_of(&[("unparked", 1)]))));
    let job = parked_job(parking(), store, scaler, parker);
    let (woke, snap) = recorded(wake_and_finish(&job, id));
    assert_eq!(woke.result, WakeResult::WokeUp);
    assert_eq!(parking_count(&snap, "unparked"), 1);
}

#[test]
fn an_unpark_that_finds_the_app_not_ready_is_counted_and_left_to_the_reconcile() {
    let id = Uuid::new_v4();
    let mut store = MockStore::new();
    store
        .expect_get()
        .returning(move |_| Ok(Some(record(id, SleepState::Asleep, Some(2)))));
    store.expect_finish_wake().returning(|_, _, _, _| Ok(true));
    no_asleep(&mut store);
    let mut scaler = MockScaler::new();
    // Someone else runs it already: `already_running` unparks too.
    scaler.expect_get_scale().returning(|_| Ok(scale(3, "9")));
    let mut parker = MockParker::new();
    parker
        .expect_unpark_when_ready()
        .times(1)
        .returning(|_, _| Ok(Unpark::NotReady));
    let job = parked_job(parking(), store, scaler, parker);
    let (woke, snap) = recorded(wake_and_finish(&job, id));
    assert_eq!(woke.result, WakeResult::AlreadyRunning);
    assert_eq!(parking_count(&snap, "not_ready"), 1);
}

// The reconcile: re-parks, the sweep of parked apps, the drain of `parking = off`.
mod reconcile;
