//! The reconcile of parking: asleep apps at 0 parked again, the parked apps swept once per
//! period, and `parking = off` draining what is still parked.

use super::*;

/// A tick with nothing to sleep and no asleep row, whose store answers `rows` by provider id.
fn sweep_store(rows: Vec<(&'static str, Option<SleepState>)>) -> MockStore {
    let mut store = ticks_store(vec![]);
    store.expect_find_by_provider_id().returning(move |pid| {
        let (_, state) = rows
            .iter()
            .find(|(p, _)| *p == pid)
            .unwrap_or_else(|| panic!("no row asked for {pid}"));
        Ok(state.map(|s| record(Uuid::new_v4(), s, Some(1))))
    });
    store
}

#[test]
fn parking_off_sleeps_without_parking_and_drains_fifty_apps_a_tick_until_none_is_left() {
    let (store, scaler) = one_sleep();
    let mut parker = MockParker::new();
    parker.expect_park().times(0);
    let apps = |n: usize| -> Vec<ParkedApp> {
        (0..n)
            .map(|i| parked_app("apps", &format!("app-{i}"), 1))
            .collect()
    };
    // What is left after each tick's unparks: 60, then 10, then none.
    let mut lists = vec![vec![], apps(10), apps(60)];
    parker
        .expect_parked()
        .times(3)
        .returning(move || Ok(lists.pop().expect("three lists")));
    parker
        .expect_unpark_now()
        .times(60)
        .returning(|_| Ok(report_of(&[("unparked", 1)])));
    let job = parked_job(enabled(), store, scaler, parker);
    let (reports, snap) = recorded(async {
        let mut reports = Vec::new();
        // The fourth tick finds the drain over and lists nothing (the mock allows three).
        for _ in 0..4 {
            reports.push(job.tick().await.expect("tick"));
        }
        reports
    });
    assert_eq!(reports[0].outcome(Outcome::ScaledDown), 1);
    let unparked: Vec<_> = reports.iter().map(|r| r.parking.get("unparked")).collect();
    assert_eq!(unparked, [Some(&50), Some(&10), None, None]);
    assert_eq!(gauge(&snap, PARKED_SERVICES), Some(0.0));
}

#[test]
fn the_reconcile_unparks_apps_woken_elsewhere_and_without_a_row_and_leaves_asleep_ones() {
    let store = sweep_store(vec![
        ("k8s:apps/woken", Some(SleepState::Awake)),
        ("k8s:apps/gone", None),
        ("k8s:apps/asleep", Some(SleepState::Asleep)),
        ("k8s:apps/sleeping", Some(SleepState::Sleeping)),
    ]);
    let mut parker = MockParker::new();
    parker.expect_parked().times(1).returning(|| {
        Ok(vec![
            parked_app("apps", "woken", 2),
            parked_app("apps", "gone", 1),
            parked_app("apps", "asleep", 3),
            parked_app("apps", "sleeping", 1),
        ])
    });
    parker
        .expect_unpark()
        .withf(|t| t.name == "woken")
        .times(1)
        .returning(|_| Ok(Unpark::Done(report_of(&[("unparked", 2)]))));
    parker
        .expect_unpark_now()
        .withf(|t| t.name == "gone")
        .times(1)
        .returning(|_| Ok(report_of(&[("unparked", 1)])));
    let job = parked_job(parking(), store, MockScaler::new(), parker);
    let (report, snap) = recorded(job.tick());
    assert_eq!(report.expect("tick").parking.get("unparked"), Some(&3));
    // What stays parked: the asleep and the sleeping app's Services.
    assert_eq!(gauge(&snap, PARKED_SERVICES), Some(4.0));
}

#[test]
fn the_parked_apps_are_listed_once_per_reconcile_period_not_every_tick() {
    let store = sweep_store(vec![]);
    let mut parker = MockParker::new();
    parker.expect_parked().times(2).returning(|| Ok(vec![]));
    let now = Arc::new(std::sync::Mutex::new(t0()));
    let mut clock = MockClock::new();
    let at = now.clone();
    clock.expect_now().returning(move || *at.lock().unwrap());
    let config = Config {
        interval_seconds: 60,
        reconcile_minutes: 10,
        ..parking()
    };
    let job = Job::builder(
        config,
        Arc::new(store),
        Arc::new(FixedScalerFactory(Arc::new(MockScaler::new()))),
    )
    .clock(Arc::new(clock))
    .parker(Arc::new(parker), None)
    .build();
    let ((), _) = recorded(async {
        // Ticks a minute apart for 20 minutes: listed at 0 and at 10 minutes, and not between.
        for _ in 0..20 {
            job.tick().await.expect("tick");
            *now.lock().unwrap() += chrono::Duration::minutes(1);
        }
    });
}

#[test]
fn an_asleep_app_still_at_zero_is_parked_again_by_the_drift_check() {
    let row = web_asleep();
    let mut store = drift_store(row);
    store.expect_mark_checked().returning(|_, _| Ok(true));
    let mut scaler = MockScaler::new();
    scaler.expect_get_scale().returning(|_| Ok(scale(0, "7")));
    let mut parker = MockParker::new();
    parker
        .expect_park()
        .with(eq(web()))
        .times(1)
        .returning(|_| Ok(report_of(&[("parked", 1), ("unchanged", 1)])));
    parker.expect_parked().returning(|| Ok(vec![]));
    let (report, _) = recorded(parked_job(parking(), store, scaler, parker).tick());
    let report = report.expect("tick");
    assert_eq!(report.parking.get("parked"), Some(&1));
    assert_eq!(report.parking.get("unchanged"), Some(&1));
}
