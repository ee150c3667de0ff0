use chrono::{Datelike, Duration, Timelike};

use super::*;

fn gaps_minutes(app: &App) -> Vec<i64> {
    app.requests
        .windows(2)
        .map(|w| (w[1] - w[0]).num_minutes())
        .collect()
}

fn of(w: &Workload, class: Class) -> impl Iterator<Item = &App> {
    w.apps.iter().filter(move |a| a.class == class)
}

#[test]
fn same_seed_same_workload() {
    let a = Workload::generate(Mix::PERIODIC_20, 50, 7);
    let b = Workload::generate(Mix::PERIODIC_20, 50, 7);
    let c = Workload::generate(Mix::PERIODIC_20, 50, 8);
    let times =
        |w: &Workload| -> Vec<Vec<_>> { w.apps.iter().map(|a| a.requests.clone()).collect() };
    assert_eq!(times(&a), times(&b));
    assert_ne!(times(&a), times(&c));
    assert!(
        a.apps
            .iter()
            .zip(&b.apps)
            .all(|(x, y)| x.pod_start == y.pod_start)
    );
}

#[test]
fn the_mix_gives_each_class_its_share() {
    for (mix, periodic) in [(Mix::PERIODIC_20, 200), (Mix::PERIODIC_10, 100)] {
        assert_eq!(mix.shares.iter().map(|(_, p)| p).sum::<u32>(), 100);
        let classes = mix.classes(1000);
        assert_eq!(classes.len(), 1000);
        let n = |c| classes.iter().filter(|x| **x == c).count();
        assert_eq!(n(Class::Periodic), periodic);
        assert_eq!(n(Class::BusinessHours), 300);
    }
    // Rounding leaves the rest to the last class, never more or fewer apps.
    assert_eq!(Mix::PERIODIC_20.classes(7).len(), 7);
}

#[test]
fn requests_are_sorted_inside_the_weeks_and_pods_start_in_range() {
    let w = Workload::generate(Mix::PERIODIC_20, 100, 1);
    assert_eq!(w.end - w.start, Duration::weeks(WEEKS));
    assert_eq!(w.start.weekday(), chrono::Weekday::Mon);
    for app in &w.apps {
        assert!(!app.requests.is_empty(), "{:?} has no request", app.class);
        assert!(app.requests.windows(2).all(|p| p[0] <= p[1]));
        assert!(app.requests.iter().all(|t| *t >= w.start && *t < w.end));
        let s = app.pod_start.num_seconds();
        assert!(
            (POD_START_SECONDS.0..=POD_START_SECONDS.1).contains(&s),
            "{s}"
        );
    }
}

#[test]
fn business_hours_apps_work_weekdays_from_a_usual_morning_time() {
    let w = Workload::generate(Mix::PERIODIC_20, 300, 2);
    for app in of(&w, Class::BusinessHours) {
        assert!(
            app.requests
                .iter()
                .all(|t| t.weekday().number_from_monday() <= 5)
        );
        assert!(app.requests.iter().all(|t| (7..20).contains(&t.hour())));
        let mut prev = None;
        let firsts: Vec<i64> = app
            .requests
            .iter()
            .filter(|t| {
                let first = first_of_day(prev, **t);
                prev = Some(**t);
                first
            })
            .map(|t| i64::from(t.hour() * 60 + t.minute()))
            .collect();
        // About 40 working days, 5% off; each day starts within ±16 minutes of the usual.
        assert!((30..=40).contains(&firsts.len()), "{}", firsts.len());
        let (lo, hi) = (firsts.iter().min().unwrap(), firsts.iter().max().unwrap());
        assert!(hi - lo <= 32, "day starts spread over {} minutes", hi - lo);
    }
}

#[test]
fn periodic_apps_keep_their_period_day_and_night() {
    let w = Workload::generate(Mix::PERIODIC_20, 300, 3);
    for app in of(&w, Class::Periodic) {
        let g = gaps_minutes(app);
        let (lo, hi) = (*g.iter().min().unwrap(), *g.iter().max().unwrap());
        assert!(lo >= 13 && hi <= 92 && hi - lo <= 4, "gaps {lo}..{hi}");
        assert!(app.requests.iter().any(|t| t.hour() < 6));
    }
}

#[test]
fn weekly_apps_come_on_one_weekday_each_week() {
    let w = Workload::generate(Mix::PERIODIC_20, 300, 4);
    for app in of(&w, Class::Weekly) {
        let days: std::collections::BTreeSet<_> = app
            .requests
            .iter()
            .map(|t| t.weekday().num_days_from_monday())
            .collect();
        assert_eq!(days.len(), 1, "{days:?}");
        let visits = app
            .requests
            .windows(2)
            .filter(|p| p[1] - p[0] > Duration::days(5));
        assert_eq!(visits.count() + 1, usize::try_from(WEEKS).unwrap());
    }
}

#[test]
fn sparse_apps_are_hours_apart_and_bursty_ones_come_in_bursts() {
    let w = Workload::generate(Mix::PERIODIC_20, 1000, 5);
    for app in of(&w, Class::Sparse) {
        let g = gaps_minutes(app);
        #[allow(clippy::cast_precision_loss)]
        let mean = g.iter().sum::<i64>() as f64 / g.len() as f64;
        assert!(
            (60.0..=36.0 * 60.0).contains(&mean),
            "mean gap {mean} minutes"
        );
    }
    for app in of(&w, Class::Bursty) {
        let mut g = gaps_minutes(app);
        g.sort_unstable();
        // Most gaps are inside a burst (minutes at most), a few are hours long.
        assert!(g[g.len() / 2] <= 3, "median gap {} minutes", g[g.len() / 2]);
        assert!(*g.last().unwrap() >= 60);
    }
}

/// A short replay: the first two days of a small workload.
fn short(apps: usize, seed: u64) -> Workload {
    let mut w = Workload::generate(Mix::PERIODIC_20, apps, seed);
    w.end = w.start + Duration::days(2);
    for app in &mut w.apps {
        app.requests.retain(|t| *t < w.end);
    }
    w
}

#[tokio::test]
async fn a_longer_window_costs_replica_minutes_and_saves_cold_starts() {
    let w = short(20, 9);
    let r10 = replay(&w, Policy::ALL[0]).await;
    let r60 = replay(&w, Policy::ALL[2]).await;
    assert_eq!(r10.ticks, 24 * 60 * 2 / 2);
    assert_eq!(r10.overall.requests, w.requests() as u64);
    assert!(r10.overall.cold_starts > r60.overall.cold_starts);
    assert!(r10.overall.replica_minutes() < r60.overall.replica_minutes());
    for r in [&r10, &r60] {
        let o = r.overall;
        assert!(o.request_wakes <= o.cold_starts && o.cold_starts <= o.requests);
        // The fixed policies never pre-warm.
        assert_eq!(o.prewarms_used + o.prewarms_wasted, 0);
        // Never more replica-time than every app up the whole time.
        assert!(o.replica_seconds <= 20 * 2 * 86_400);
    }
}
