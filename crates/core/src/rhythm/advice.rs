//! What a rhythm advises. Percentiles over the gaps are the hybrid-histogram idea of
//! "Serverless in the Wild" (Shahrad et al., USENIX ATC 2020): the head of the gap
//! distribution says when to pre-warm, its tail how long to keep; a distribution that is too
//! thin or too wide says nothing.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::{Rhythm, Settings, local_time, weekday};

/// Fewer gaps than this: no opinion from gaps.
pub const MIN_GAPS: usize = 6;
/// A gap distribution is regular when its tail is at most this much longer than its head
/// (a poller with jitter).
const REGULAR_SPREAD: f64 = 1.25;
/// Fewer gaps than [`MIN_GAPS`] are enough to sleep at the floor when each is a day or more.
const DAY_GAPS: usize = 3;
/// Gaps whose head is at least this many idle windows long: sleeping at the floor costs
/// (almost) no cold start the window would have saved.
const LONG_GAP_WINDOWS: i32 = 4;
/// The share of an app's long gaps (longer than the window) a keep must cover to be worth
/// its minutes.
const KEEP_COVERS: f64 = 0.8;
/// What a keep may cost, in windows of extra awake time per cold start it saves, measured on
/// the app's own long gaps: every long gap pays the keep's minutes past the window (in full
/// when no request ends it, as after a working day's last request), only the covered ones
/// save a cold start. Half a window (15 minutes under the default 30): kept by the 80th
/// percentile alone, the policy benchmark's working-day apps stayed up every evening and spent
/// 8% more replica-minutes than under fixed 30; a poller just past the window pays less.
const KEEP_COST_WINDOWS: f64 = 0.5;
/// Same weekdays looked back at for a day's first request, and how many of them must agree.
const SLOT_WEEKS: usize = 4;
const SLOT_AGREE: usize = 3;
/// Days looked back at for a daily slot (any weekday), and how many of them must agree.
const DAILY_DAYS: usize = 5;
const DAILY_AGREE: usize = 4;
/// How close agreeing first requests of the day are; a slot's keep lasts at least this long
/// past its earliest minute.
const SLOT_WIDTH_MINUTES: u16 = 30;

/// A pre-warm: when to wake the app, and until when to keep it up for its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prewarm {
    /// When to wake it.
    pub at: DateTime<Utc>,
    /// No candidate before this time unless a request came (then the window runs as usual).
    pub keep_until: DateTime<Utc>,
}

impl Rhythm {
    /// The gaps' minutes, sorted.
    fn sorted_gaps(&self) -> Vec<u32> {
        let mut g: Vec<u32> = self.gaps.iter().map(|g| g.minutes).collect();
        g.sort_unstable();
        g
    }

    /// Whether the app may sleep at the floor instead of the window: enough gaps, and even
    /// the short ones (the head, 10th percentile) longer than the window, and either regular
    /// enough to pre-warm for or many windows long. An app that comes back once a week
    /// leaves at most four gaps in [`super::HISTORY_DAYS`]: `DAY_GAPS` gaps that are all
    /// days long are enough for it.
    pub fn sleeps_early(&self, s: &Settings) -> bool {
        let g = self.sorted_gaps();
        let head = minutes(pct(&g, 0.1));
        let days_apart = g.len() >= DAY_GAPS && head >= Duration::days(1);
        if g.len() < MIN_GAPS && !days_apart {
            return false;
        }
        head > s.window
            && (regular(&g) && s.prewarm > Duration::zero() || head >= s.window * LONG_GAP_WINDOWS)
    }

    /// Keep-alive: when the app's long gaps (those past the window) mostly end soon after it,
    /// the time (after `last_activity`) until which the app stays a non-candidate; None when
    /// the gaps say nothing, the keep would not be past `now`, or the app sleeps early.
    pub fn keep_until(
        &self,
        last_activity: DateTime<Utc>,
        now: DateTime<Utc>,
        s: &Settings,
    ) -> Option<DateTime<Utc>> {
        if self.sleeps_early(s) {
            return None;
        }
        let window = u32::try_from(s.window.num_minutes()).ok()?;
        let long: Vec<u32> = self
            .sorted_gaps()
            .into_iter()
            .filter(|m| *m > window)
            .collect();
        if long.len() < MIN_GAPS {
            return None;
        }
        let covers = pct(&long, KEEP_COVERS);
        let saved = long.iter().filter(|m| **m <= covers).count();
        let extra: u32 = long.iter().map(|m| (*m).min(covers) - window).sum();
        #[allow(clippy::cast_precision_loss)] // at most GAP_SAMPLES gaps of u32 minutes
        if f64::from(extra) > saved as f64 * f64::from(window) * KEEP_COST_WINDOWS {
            return None;
        }
        // A tick's margin: activity is learned on the tick grid.
        let keep = minutes(covers) + s.tick;
        if keep > s.max_keep {
            return None;
        }
        Some(last_activity + keep).filter(|t| *t > now)
    }

    /// The soonest pre-warm after `now` for an app whose last activity was `last_activity`:
    /// a regular gap's head (early sleepers), or a first-of-the-day slot; None without one, or
    /// when pre-warm is off.
    pub fn next_prewarm(
        &self,
        last_activity: DateTime<Utc>,
        now: DateTime<Utc>,
        s: &Settings,
    ) -> Option<Prewarm> {
        if s.prewarm <= Duration::zero() {
            return None;
        }
        // Only what is still history at `now`: an app nobody uses any more stops being
        // pre-warmed once its last requests are older than the history keeps.
        let fresh = self.fresh(now);
        [
            fresh.gap_prewarm(last_activity, s),
            fresh.slot_prewarm(last_activity, now, s),
        ]
        .into_iter()
        .flatten()
        .filter(|p| p.at > now)
        .min_by_key(|p| p.at)
    }

    fn gap_prewarm(&self, last_activity: DateTime<Utc>, s: &Settings) -> Option<Prewarm> {
        let g = self.sorted_gaps();
        if g.len() < MIN_GAPS || !regular(&g) || !self.sleeps_early(s) {
            return None;
        }
        let head = minutes(pct(&g, 0.1));
        let tail = minutes(pct(&g, 0.9));
        let at = last_activity + head - s.prewarm;
        let keep_until = (last_activity + tail + s.tick).min(at + s.max_keep);
        (at >= last_activity + s.floor).then_some(Prewarm { at, keep_until })
    }

    fn slot_prewarm(
        &self,
        last_activity: DateTime<Utc>,
        now: DateTime<Utc>,
        s: &Settings,
    ) -> Option<Prewarm> {
        let today = now.with_timezone(&s.tz).date_naive();
        (0..8)
            .filter_map(|ahead| self.slot_on(today + Duration::days(ahead), last_activity, s))
            .find(|p| p.at > now)
    }

    /// The pre-warm for the first-of-the-day slot of `date`, unless the day's first request
    /// already came (`last_activity` is at or after the slot's start).
    fn slot_on(
        &self,
        date: chrono::NaiveDate,
        last_activity: DateTime<Utc>,
        s: &Settings,
    ) -> Option<Prewarm> {
        let (first, last) = self.slot(date)?;
        let from = local_time(&s.tz, date, first.into())?;
        let to = local_time(&s.tz, date, last.into())?;
        if from <= last_activity {
            return None;
        }
        let at = from - s.prewarm;
        // The slot's own spread, but never narrower than an agreeing slot may be: a request
        // a little later than the history's latest still finds its app up.
        let until = to.max(from + Duration::minutes(SLOT_WIDTH_MINUTES.into()));
        Some(Prewarm {
            at,
            keep_until: (until + s.tick).min(at + s.max_keep),
        })
    }

    /// The pre-warm due at `now` (its time has come, its keep has not run out), for a
    /// pre-warm that runs late or whose rhythm moved since it was planned: its keep; None when
    /// no pre-warm the rhythm advises covers `now`.
    pub fn due_prewarm(
        &self,
        last_activity: DateTime<Utc>,
        now: DateTime<Utc>,
        s: &Settings,
    ) -> Option<Prewarm> {
        if s.prewarm <= Duration::zero() {
            return None;
        }
        let fresh = self.fresh(now);
        let today = now.with_timezone(&s.tz).date_naive();
        [today - Duration::days(1), today]
            .into_iter()
            .filter_map(|d| fresh.slot_on(d, last_activity, s))
            .chain(self.gap_prewarm(last_activity, s))
            .filter(|p| p.at <= now && p.keep_until > now)
            .max_by_key(|p| p.keep_until)
    }

    /// The slot the first request of `date` is expected in: its earliest and latest minute.
    /// Either the first requests of most of the last [`SLOT_WEEKS`] days of its weekday
    /// agree (a weekly visitor), or the app's day started on that weekday a week before and
    /// most of its last [`DAILY_DAYS`] days started alike (a working day: learned within a
    /// week, and never a weekend the app keeps free).
    /// The rhythm without what is older than [`super::HISTORY_DAYS`] before `now`.
    fn fresh(&self, now: DateTime<Utc>) -> Rhythm {
        let mut fresh = self.clone();
        fresh.forget_before(now - Duration::days(super::HISTORY_DAYS));
        fresh
    }

    fn slot(&self, date: NaiveDate) -> Option<(u16, u16)> {
        let day = weekday(date);
        let same: Vec<u16> = self
            .day_starts
            .iter()
            .rev()
            .filter(|d| weekday(d.date) == day)
            .take(SLOT_WEEKS)
            .map(|d| d.minute)
            .collect();
        agreeing(same, SLOT_AGREE).or_else(|| {
            let week_before = date - Duration::days(7);
            if !self.day_starts.iter().any(|d| d.date == week_before) {
                return None;
            }
            let daily = self
                .day_starts
                .iter()
                .rev()
                .filter(|d| d.date < date)
                .take(DAILY_DAYS)
                .map(|d| d.minute)
                .collect();
            agreeing(daily, DAILY_AGREE)
        })
    }
}

/// The first `agree` minutes within [`SLOT_WIDTH_MINUTES`] of each other: their earliest and
/// latest.
fn agreeing(mut minutes: Vec<u16>, agree: usize) -> Option<(u16, u16)> {
    if minutes.len() < agree {
        return None;
    }
    minutes.sort_unstable();
    minutes
        .windows(agree)
        .find(|w| w[agree - 1] - w[0] <= SLOT_WIDTH_MINUTES)
        .map(|w| (w[0], w[agree - 1]))
}

/// Whether sorted gaps cluster: the 90th percentile within [`REGULAR_SPREAD`] of the 10th.
fn regular(sorted: &[u32]) -> bool {
    f64::from(pct(sorted, 0.9)) <= f64::from(pct(sorted, 0.1)) * REGULAR_SPREAD
}

/// The `p` quantile of sorted values (nearest rank); 0 for none.
fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    // an index into at most GAP_SAMPLES values
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn minutes(m: u32) -> Duration {
    Duration::minutes(m.into())
}
