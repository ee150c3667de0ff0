use chrono::{TimeZone, Utc};

use super::*;

fn settings() -> Settings {
    Settings {
        window: Duration::minutes(30),
        floor: Duration::minutes(5),
        tick: Duration::minutes(2),
        prewarm: Duration::minutes(5),
        max_keep: Duration::minutes(120),
        tz: Tz::UTC,
    }
}

/// 2026-01-05 was a Monday.
fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, hour, minute, 0).unwrap()
}

/// A rhythm fed requests `every` minutes apart, `n` of them, from Monday 00:00.
fn poller(every: i64, n: i64) -> (Rhythm, DateTime<Utc>) {
    let s = settings();
    let mut r = Rhythm::default();
    let mut t = at(5, 0, 0);
    for _ in 0..n {
        let next = t + Duration::minutes(every);
        r.observe(t, next, &s);
        t = next;
    }
    (r, t)
}

#[test]
fn gaps_shorter_than_the_floor_are_not_learned() {
    let s = settings();
    let mut r = Rhythm::default();
    assert!(!r.observe(at(5, 10, 0), at(5, 10, 4), &s));
    assert!(r.gaps.is_empty());
    assert!(r.observe(at(5, 10, 0), at(5, 10, 40), &s));
    assert_eq!(r.gaps[0].minutes, 40);
}

#[test]
fn the_history_is_bounded_and_forgets_old_weeks() {
    let (r, last) = poller(40, 500);
    assert_eq!(r.gaps.len(), GAP_SAMPLES);
    assert!(r.day_starts.len() <= DAY_STARTS);
    let mut r = r;
    r.forget_before(last + Duration::days(HISTORY_DAYS));
    assert!(r.gaps.is_empty());
}

#[test]
fn a_regular_poller_sleeps_early_and_is_prewarmed_before_its_next_request() {
    let s = settings();
    let (r, last) = poller(40, 10);
    assert!(r.sleeps_early(&s));
    assert_eq!(r.keep_until(last, last + Duration::minutes(30), &s), None);
    let p = r
        .next_prewarm(last, last + Duration::minutes(5), &s)
        .expect("a pre-warm");
    assert_eq!(p.at, last + Duration::minutes(35));
    assert_eq!(p.keep_until, last + Duration::minutes(42));
}

#[test]
fn too_little_history_or_a_scattered_one_says_nothing() {
    let s = settings();
    let (few, last) = poller(40, MIN_GAPS_FOR_TESTS - 1);
    assert!(!few.sleeps_early(&s));
    assert_eq!(few.next_prewarm(last, last, &s), None);
    let mut scattered = Rhythm::default();
    let mut t = at(5, 0, 0);
    for m in [35, 300, 50, 900, 41, 2000, 70, 400] {
        let next = t + Duration::minutes(m);
        scattered.observe(t, next, &s);
        t = next;
    }
    assert!(!scattered.sleeps_early(&s));
    assert_eq!(scattered.keep_until(t, t + Duration::minutes(30), &s), None);
    assert_eq!(scattered.next_prewarm(t, t, &s), None);
}

#[test]
fn gaps_just_past_the_window_keep_the_app_up_past_it() {
    let s = settings();
    let mut r = Rhythm::default();
    let mut t = at(5, 0, 0);
    // Short quiet spells, and long ones that mostly end soon after the window.
    for m in [10, 34, 12, 45, 38, 8, 50, 36, 40, 55] {
        let next = t + Duration::minutes(m);
        r.observe(t, next, &s);
        t = next;
    }
    assert!(!r.sleeps_early(&s));
    let kept = r
        .keep_until(t, t + Duration::minutes(30), &s)
        .expect("kept");
    // The 80th percentile of the long gaps, and a tick's margin.
    assert_eq!(kept, t + Duration::minutes(50 + 2));
    assert!(kept - t <= s.max_keep);
    // Nothing past the window holds the app once the keep's time has passed.
    assert_eq!(r.keep_until(t, kept, &s), None);
}

#[test]
fn the_first_request_of_the_day_in_the_same_slot_is_prewarmed_for() {
    let s = settings();
    let mut r = Rhythm::default();
    // Mondays 5, 12, 19 and 26 January: the first request at 09:00, 09:10, 08:55, 13:00.
    for (day, h, m) in [(5, 9, 0), (12, 9, 10), (19, 8, 55), (26, 13, 0)] {
        r.observe(at(day - 1, 18, 0), at(day, h, m), &s);
    }
    // Asleep since Friday evening: the next pre-warm is Monday 2 February, before 08:55.
    let last = at(30, 18, 0);
    let p = r.next_prewarm(last, at(31, 12, 0), &s).expect("a pre-warm");
    assert_eq!(p.at, Utc.with_ymd_and_hms(2026, 2, 2, 8, 50, 0).unwrap());
    // Kept a slot's width past its earliest minute (09:10 was the latest), and a tick.
    assert_eq!(
        p.keep_until,
        Utc.with_ymd_and_hms(2026, 2, 2, 9, 27, 0).unwrap()
    );
    // With pre-warm off there is none.
    let off = Settings {
        prewarm: Duration::zero(),
        ..s
    };
    assert_eq!(r.next_prewarm(last, at(31, 12, 0), &off), None);
    // Nobody came back: once the day starts are older than the history keeps, no more
    // pre-warms (an abandoned app is not woken every week for ever).
    let later = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    assert_eq!(r.next_prewarm(last, later, &s), None);
    assert_eq!(r.due_prewarm(last, later, &s), None);
}

#[test]
fn days_are_counted_in_the_configured_time_zone() {
    let s = Settings {
        tz: chrono_tz::Europe::Berlin,
        ..settings()
    };
    let mut r = Rhythm::default();
    // 23:30 UTC on 5 January is 00:30 on the 6th in Berlin: the first request of that day.
    r.observe(at(5, 12, 0), at(5, 23, 30), &s);
    assert_eq!(
        r.day_starts,
        [DayStart {
            date: NaiveDate::from_ymd_opt(2026, 1, 6).unwrap(),
            minute: 30
        }]
    );
}

#[test]
fn a_keep_that_costs_more_than_it_saves_is_not_made() {
    let s = settings();
    let mut r = Rhythm::default();
    let mut t = at(5, 8, 0);
    // Long gaps spread from just past the window to twice it: covering 80% of them costs
    // about 24 extra minutes per cold start saved, more than half a window.
    for m in [31, 35, 40, 45, 50, 55, 58, 59, 60, 62] {
        let next = t + Duration::minutes(m);
        r.observe(t, next, &s);
        t = next;
    }
    assert!(!r.sleeps_early(&s));
    assert_eq!(r.keep_until(t, t + Duration::minutes(30), &s), None);
    // Bunched just past the window (between short quiet spells), long gaps are worth a keep.
    let mut r = Rhythm::default();
    for m in [10, 31, 12, 33, 34, 35, 36, 37, 38, 39, 62] {
        let next = t + Duration::minutes(m);
        r.observe(t, next, &s);
        t = next;
    }
    assert_eq!(
        r.keep_until(t, t + Duration::minutes(30), &s),
        Some(t + Duration::minutes(38 + 2))
    );
}

#[test]
fn a_working_day_start_is_prewarmed_for_from_the_second_week() {
    let s = settings();
    let mut r = Rhythm::default();
    // Monday 5 to Friday 9 January: the first request between 08:50 and 09:10.
    for (day, m) in [(5, 50), (6, 60 + 5), (7, 55), (8, 60 + 10), (9, 58)] {
        r.observe(at(day - 1, 18, 0), at(day, 8, 0) + Duration::minutes(m), &s);
    }
    // Asleep since Friday evening: no slot on the weekend (the app kept it free a week
    // before, as far as it knows), Monday 12 January's is before 08:50.
    let last = at(9, 18, 0);
    let p = r.next_prewarm(last, at(9, 19, 0), &s).expect("a pre-warm");
    assert_eq!(p.at, at(12, 8, 45));
    assert_eq!(p.keep_until, at(12, 9, 22));
    // Without a start on that weekday a week before, no daily slot: from Thursday evening
    // the next one is Monday's too, not Friday's.
    let mut young = Rhythm::default();
    for (day, m) in [(5, 50), (6, 55), (7, 52), (8, 58)] {
        young.observe(at(day - 1, 18, 0), at(day, 8, m), &s);
    }
    let p = young.next_prewarm(at(8, 18, 0), at(8, 19, 0), &s);
    assert_eq!(p.map(|p| p.at), Some(at(12, 8, 45)));
}

#[test]
fn a_weekly_visitor_sleeps_early_after_three_weeks() {
    let s = settings();
    let visits = |days: &[u32]| {
        let mut r = Rhythm::default();
        // Mondays at 10:00, each visit's last request at 10:10.
        for day in days {
            r.observe(at(*day, 10, 10), at(day + 7, 10, 0), &s);
        }
        r
    };
    assert!(!visits(&[5, 12]).sleeps_early(&s));
    let mut r = visits(&[5, 12, 19]);
    assert!(r.sleeps_early(&s));
    // A quiet spell of 20 minutes inside a visit: no longer days apart.
    r.observe(at(26, 10, 10), at(26, 10, 30), &s);
    assert!(!r.sleeps_early(&s));
}

const MIN_GAPS_FOR_TESTS: i64 = advice::MIN_GAPS as i64;
