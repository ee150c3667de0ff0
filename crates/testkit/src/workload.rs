//! Synthetic workloads for the policy benchmark (`cargo bench -p idle-scaler-testkit --bench
//! policy`): apps of five classes, each with its sorted request times over [`WEEKS`] weeks and
//! the time its pod takes to become ready, and [`replay`] to run one through the real job.
//!
//! Every draw comes from the seeded [`Rng`]: a workload is a function of its mix, its size and
//! its seed. Days are UTC days (the benchmark's time zone); the first day is a Monday. The
//! classes and their parameters (each app draws its own from the ranges, then its requests):
//!
//! | class | per app | per request |
//! |---|---|---|
//! | business hours | day starts at 07:30..10:00, lasts 7..9 h; mean gap 3..20 min | weekdays only, 5% of them off; the day's first request within ±15 min of its start; then Poisson |
//! | periodic | period 15..90 min, random phase | every period, ±1 min jitter, day and night |
//! | weekly | one weekday, a time 08:00..20:00 | each week that day within ±10 min: 3..10 requests within 15 min |
//! | sparse | mean gap 2..24 h | Poisson (nothing to learn) |
//! | bursty | mean gap between bursts 6..48 h | Poisson bursts of 10..100 requests within 2..30 min |
//!
//! Every pod takes 5..60 s to become ready after a scale-up.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::rng::Rng;

pub mod replay;
mod report;

pub use replay::{Figures, Policy, RunResult, replay};
pub use report::{Goal, goals, render};

/// Simulated weeks.
pub const WEEKS: i64 = 8;
/// Apps in the benchmark's workloads.
pub const APPS: usize = 1_000;
/// The shortest and longest time a pod takes to become ready, in seconds.
pub const POD_START_SECONDS: (i64, i64) = (5, 60);

/// The first simulated instant: a Monday, 00:00 UTC.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0)
        .single()
        .expect("a valid date")
}

/// The kind of traffic an app gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// People at work: weekdays, from a usual morning time for most of the day.
    BusinessHours,
    /// A poller or cron job: one request every 15 to 90 minutes.
    Periodic,
    /// Someone who looks once a week, on the same day at about the same time.
    Weekly,
    /// Random requests hours apart (Poisson): nothing to learn.
    Sparse,
    /// Random bursts of many requests.
    Bursty,
}

impl Class {
    /// Every class, in table order.
    pub const ALL: [Self; 5] = [
        Self::BusinessHours,
        Self::Periodic,
        Self::Weekly,
        Self::Sparse,
        Self::Bursty,
    ];

    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::BusinessHours => "business hours",
            Self::Periodic => "periodic",
            Self::Weekly => "weekly",
            Self::Sparse => "sparse (Poisson)",
            Self::Bursty => "bursty",
        }
    }
}

/// How many of the apps (in percent) each class gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Its name in the report.
    pub name: &'static str,
    /// Percent per class, summing to 100.
    pub shares: [(Class, u32); 5],
}

impl Mix {
    /// The mix: 20% periodic apps.
    pub const PERIODIC_20: Self = Self {
        name: "20% periodic",
        shares: [
            (Class::BusinessHours, 30),
            (Class::Periodic, 20),
            (Class::Weekly, 15),
            (Class::Sparse, 20),
            (Class::Bursty, 15),
        ],
    };

    /// Half the pollers: the other 10% are sparse.
    pub const PERIODIC_10: Self = Self {
        name: "10% periodic",
        shares: [
            (Class::BusinessHours, 30),
            (Class::Periodic, 10),
            (Class::Weekly, 15),
            (Class::Sparse, 30),
            (Class::Bursty, 15),
        ],
    };

    /// The class of each of `apps` apps, in contiguous runs in table order (the last class
    /// takes what rounding leaves).
    pub fn classes(&self, apps: usize) -> Vec<Class> {
        let mut out = Vec::with_capacity(apps);
        for (i, (class, percent)) in self.shares.iter().enumerate() {
            let n = if i + 1 == self.shares.len() {
                apps - out.len()
            } else {
                (apps * usize::try_from(*percent).unwrap_or(0) / 100).min(apps - out.len())
            };
            out.extend(std::iter::repeat_n(*class, n));
        }
        out
    }
}

/// One app of a workload.
#[derive(Debug, Clone)]
pub struct App {
    /// Its class.
    pub class: Class,
    /// How long its pod takes to become ready after a scale-up.
    pub pod_start: Duration,
    /// Its requests, sorted, all in `[epoch(), epoch() + WEEKS)`.
    pub requests: Vec<DateTime<Utc>>,
}

/// A workload: the apps, from `start` to `end`.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The mix it was drawn from.
    pub mix: Mix,
    /// The seed it was drawn with.
    pub seed: u64,
    /// The first instant.
    pub start: DateTime<Utc>,
    /// The end (exclusive).
    pub end: DateTime<Utc>,
    /// The apps, app `i` named `app-<i>`.
    pub apps: Vec<App>,
}

impl Workload {
    /// Draws `apps` apps of `mix` with `seed`.
    pub fn generate(mix: Mix, apps: usize, seed: u64) -> Self {
        let start = epoch();
        let end = start + Duration::weeks(WEEKS);
        let mut master = Rng::new(seed);
        let apps = mix
            .classes(apps)
            .into_iter()
            .map(|class| {
                // One stream per app: an app's requests do not depend on the others' draws.
                let mut rng = Rng::new(master.next_u64());
                let pod_start =
                    Duration::seconds(rng.range(POD_START_SECONDS.0, POD_START_SECONDS.1));
                let mut requests = draw(class, &mut rng, start, end);
                requests.retain(|t| *t >= start && *t < end);
                requests.sort_unstable();
                App {
                    class,
                    pod_start,
                    requests,
                }
            })
            .collect();
        Self {
            mix,
            seed,
            start,
            end,
            apps,
        }
    }

    /// Requests of all apps.
    pub fn requests(&self) -> usize {
        self.apps.iter().map(|a| a.requests.len()).sum()
    }
}

/// Whether `at` is an app's first request of its (UTC) day, given the request before it.
pub fn first_of_day(prev: Option<DateTime<Utc>>, at: DateTime<Utc>) -> bool {
    prev.is_none_or(|p| p.date_naive() < at.date_naive())
}

fn draw(
    class: Class,
    rng: &mut Rng,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    match class {
        Class::BusinessHours => business_hours(rng, start),
        Class::Periodic => periodic(rng, start, end),
        Class::Weekly => weekly(rng, start),
        Class::Sparse => {
            let mean = minutes_f(rng.range(2 * 60, 24 * 60));
            poisson(rng, start, end, mean)
        }
        Class::Bursty => bursty(rng, start, end),
    }
}

fn business_hours(rng: &mut Rng, start: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let usual = rng.range(7 * 60 + 30, 10 * 60);
    let length = Duration::minutes(rng.range(7 * 60, 9 * 60));
    let mean_gap = minutes_f(rng.range(3, 20));
    let mut out = Vec::new();
    for day in 0..WEEKS * 7 {
        let midnight = start + Duration::days(day);
        if weekend(midnight.date_naive()) || rng.percent(5) {
            continue;
        }
        let first = midnight
            + Duration::minutes(usual + rng.range(-15, 15))
            + Duration::seconds(rng.range(0, 59));
        let close = first + length;
        let mut t = first;
        while t < close {
            out.push(t);
            t += seconds(rng.exponential(mean_gap));
        }
    }
    out
}

fn periodic(rng: &mut Rng, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let period = Duration::minutes(rng.range(15, 90));
    let mut out = Vec::new();
    let mut t = start + Duration::seconds(rng.range(0, period.num_seconds()));
    while t < end {
        out.push(t + Duration::seconds(rng.range(-60, 60)));
        t += period;
    }
    out
}

fn weekly(rng: &mut Rng, start: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let weekday = rng.range(0, 6);
    let minute = rng.range(8 * 60, 20 * 60);
    let mut out = Vec::new();
    for week in 0..WEEKS {
        let visit = start
            + Duration::days(week * 7 + weekday)
            + Duration::minutes(minute + rng.range(-10, 10));
        out.push(visit);
        for _ in 1..rng.range(3, 10) {
            out.push(visit + Duration::seconds(rng.range(1, 15 * 60)));
        }
    }
    out
}

fn poisson(
    rng: &mut Rng,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    mean: f64,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = start + seconds(rng.exponential(mean));
    while t < end {
        out.push(t);
        t += seconds(rng.exponential(mean));
    }
    out
}

fn bursty(rng: &mut Rng, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mean = minutes_f(rng.range(6 * 60, 48 * 60));
    let mut out = Vec::new();
    for burst in poisson(rng, start, end, mean) {
        let span = rng.range(2 * 60, 30 * 60);
        out.push(burst);
        for _ in 1..rng.range(10, 100) {
            out.push(burst + Duration::seconds(rng.range(1, span)));
        }
    }
    out
}

fn weekend(date: NaiveDate) -> bool {
    date.weekday().number_from_monday() > 5
}

/// Whole minutes as seconds in floating point.
fn minutes_f(m: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // a few thousand minutes
    let m = m as f64;
    m * 60.0
}

/// Floating-point seconds as a duration, to the second (at least one: time moves on).
fn seconds(s: f64) -> Duration {
    #[allow(clippy::cast_possible_truncation)] // gaps are far below i64::MAX seconds
    Duration::seconds((s.round() as i64).max(1))
}

#[cfg(test)]
mod tests;
