//! The adaptive policy (`policy = adaptive`): each app's rhythm, learned from what the job sees
//! itself, and what it advises. The job learns a request's time from a wake by a request (the
//! app was asleep) and from the activity that ended a keep (the app was kept up, or
//! pre-warmed, for it); a pre-warm is never a request. From the idle gaps before those
//! requests and the first request of each local day it advises:
//! - keep: the next request is likely soon after the window, and keeping the app up for it
//!   costs little per cold start saved, so the app is no candidate until then (skip reason
//!   `predicted_use`);
//! - early: its gaps are long (and, for a pre-warm, regular), so it may sleep at the floor;
//! - pre-warm: wake it `prewarm_minutes` before its next expected request (a regular gap after
//!   its last activity, or the slot its first request of the day came in on most of the last
//!   same weekdays, or on most of its last days when it came that weekday a week before), and
//!   keep it up only until that request is overdue.
//!
//! Where the history says nothing (too few or too scattered gaps) there is no advice, and the
//! app gets the fixed window exactly. Every advice stays inside the floor and
//! `max_keep_minutes`; the tick applies it at its own times.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::Config;
use crate::config::{IDLE_MINUTES_FLOOR, SleepPolicy};

mod advice;

pub use advice::Prewarm;

/// Idle gaps kept per app, the newest.
pub const GAP_SAMPLES: usize = 48;
/// First requests of a day kept per app, the newest: five weeks.
pub const DAY_STARTS: usize = 35;
/// History older than this is forgotten: the rhythm follows an app that changes.
pub const HISTORY_DAYS: i64 = 28;

/// One idle gap: the time between an app's activity and the request that ended its quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// When the request came.
    pub ended_at: DateTime<Utc>,
    /// The gap, in whole minutes.
    pub minutes: u32,
}

/// The first request of a local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStart {
    /// The local date.
    pub date: NaiveDate,
    /// Its local minute of the day (0..1440).
    pub minute: u16,
}

/// An app's rhythm: a bounded summary, never a row per request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rhythm {
    /// Idle gaps at least the floor long, oldest first, at most [`GAP_SAMPLES`].
    pub gaps: Vec<Gap>,
    /// First requests of the local days, oldest first, at most [`DAY_STARTS`].
    pub day_starts: Vec<DayStart>,
}

/// What the adaptive policy reads of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The configured idle window: the fallback.
    pub window: Duration,
    /// The shortest an app is ever idle before it sleeps.
    pub floor: Duration,
    /// The tick's period: advice lands on its grid.
    pub tick: Duration,
    /// How long before an expected request an app is woken (zero: never).
    pub prewarm: Duration,
    /// The longest a prediction keeps an app up.
    pub max_keep: Duration,
    /// Where days and weeks are counted.
    pub tz: Tz,
}

impl Settings {
    /// The adaptive policy's settings, or None under the fixed policy.
    pub fn of(config: &Config) -> Option<Self> {
        (config.policy == SleepPolicy::Adaptive).then(|| Self {
            window: config.idle_window(),
            floor: Duration::minutes(IDLE_MINUTES_FLOOR.into()),
            tick: Duration::seconds(i64::try_from(config.interval_seconds).unwrap_or(i64::MAX)),
            prewarm: Duration::minutes(config.prewarm_minutes.into()),
            max_keep: Duration::minutes(config.max_keep_minutes.into()),
            tz: config.time_zone(),
        })
    }
}

impl Rhythm {
    /// Learns a request at `at` whose app's previous activity was `prev`: a gap at least the
    /// floor long, and the first request of a local day when `prev` was on an earlier one.
    /// Forgets what is older than [`HISTORY_DAYS`]. False when nothing changed.
    pub fn observe(&mut self, prev: DateTime<Utc>, at: DateTime<Utc>, s: &Settings) -> bool {
        if at <= prev {
            return false;
        }
        let mut changed = self.forget_before(at - Duration::days(HISTORY_DAYS));
        let gap = at - prev;
        if gap >= s.floor {
            push_bounded(
                &mut self.gaps,
                Gap {
                    ended_at: at,
                    minutes: u32::try_from(gap.num_minutes()).unwrap_or(u32::MAX),
                },
                GAP_SAMPLES,
            );
            changed = true;
        }
        let local = at.with_timezone(&s.tz);
        let day = local.date_naive();
        let first_of_day = prev.with_timezone(&s.tz).date_naive() < day
            && self.day_starts.last().is_none_or(|d| d.date < day);
        if first_of_day {
            let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
            push_bounded(
                &mut self.day_starts,
                DayStart { date: day, minute },
                DAY_STARTS,
            );
            changed = true;
        }
        changed
    }

    /// Drops gaps that ended before `cutoff` and day starts of days before its date. True
    /// when something was dropped.
    pub fn forget_before(&mut self, cutoff: DateTime<Utc>) -> bool {
        let before = self.gaps.len() + self.day_starts.len();
        self.gaps.retain(|g| g.ended_at >= cutoff);
        let day = cutoff.date_naive();
        self.day_starts.retain(|d| d.date >= day);
        before != self.gaps.len() + self.day_starts.len()
    }
}

fn push_bounded<T>(v: &mut Vec<T>, item: T, cap: usize) {
    v.push(item);
    if v.len() > cap {
        v.drain(..v.len() - cap);
    }
}

/// `date` at `minute` of the day in `tz` (the earlier instant of a repeated local time, the
/// first instant after a skipped one).
fn local_time(tz: &Tz, date: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
    let naive = date.and_hms_opt(minute / 60, minute % 60, 0)?;
    let mut probe = naive;
    // A daylight-saving gap is at most a few hours wide; step over it.
    for _ in 0..6 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return Some(t.with_timezone(&Utc));
        }
        probe += Duration::minutes(30);
    }
    None
}

/// The weekday of a local date, for grouping day starts.
fn weekday(date: NaiveDate) -> chrono::Weekday {
    date.weekday()
}

#[cfg(test)]
mod tests;
