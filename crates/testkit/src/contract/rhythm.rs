//! The adaptive policy's other rows: the early path (`select_early`), each app's rhythm
//! (`rhythms`, `save_rhythm`), and pre-warms (`set_prewarm`, `prewarms_due`,
//! `finish_prewarm`).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use idle_scaler_core::rhythm::{DayStart, Gap, Rhythm};
use idle_scaler_core::{
    AsleepRow, BackOff, ConfirmOutcome, Drift, RhythmStore, ServedClusters, SleepState, Store,
};
use uuid::Uuid;

use super::{candidate_ids, claim, idle, idle_before, insert, mins, now, row, t0};
use crate::host::{HostOps, NewDeployment};

/// The floor: rows idle this long may sleep early.
fn early_before() -> DateTime<Utc> {
    now() - mins(5)
}

async fn early_ids<S: RhythmStore>(s: &S, limit: u32) -> Vec<Uuid> {
    s.select_early(
        &ServedClusters::default(),
        now(),
        early_before(),
        idle_before(),
        limit,
    )
    .await
    .expect("select_early")
    .into_iter()
    .map(|c| c.id)
    .collect()
}

/// A rhythm with `n` gaps (ended before `now()`) and one day start.
fn rhythm(n: u32) -> Rhythm {
    Rhythm {
        gaps: (0..n)
            .map(|i| Gap {
                ended_at: t0() - Duration::hours(i64::from(n - i)),
                minutes: 40 + i,
            })
            .collect(),
        day_starts: vec![DayStart {
            date: NaiveDate::from_ymd_opt(2024, 12, 31).expect("a date"),
            minute: 9 * 60 + 5,
        }],
    }
}

async fn early<S: RhythmStore>(s: &S, id: Uuid) {
    assert!(
        s.save_rhythm(id, &rhythm(3), true)
            .await
            .expect("save_rhythm")
    );
}

async fn asleep<S: HostOps>(s: &S, name: &str, at: DateTime<Utc>) -> Uuid {
    let row = NewDeployment::k8s("apps", name, now() - mins(90));
    insert(s, row.sleep_state(SleepState::Asleep, at, Some(2))).await
}

async fn due_ids<S: RhythmStore>(s: &S, served: &ServedClusters, at: DateTime<Utc>) -> Vec<Uuid> {
    s.prewarms_due(served, at, 50)
        .await
        .expect("prewarms_due")
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// The early path takes the sleepable rows whose rhythm lets them sleep at the floor, idle past
/// it but not past the window (those are the candidate query's), oldest first, within the
/// limit; the rest of the sleep rule (pin, backoff, keep) holds as for the candidates.
pub async fn select_early_takes_early_rows_between_the_floor_and_the_window<
    S: Store + RhythmStore + HostOps,
>(
    s: &S,
) {
    let ten = idle(s, "ten", 10).await;
    let twenty = idle(s, "twenty", 20).await;
    let fresh = idle(s, "fresh", 3).await;
    let old = idle(s, "old", 60).await;
    let plain = idle(s, "plain", 15).await;
    let pinned = insert(
        s,
        NewDeployment::k8s("apps", "pinned", now() - mins(12)).always_on(true),
    )
    .await;
    let backing = idle(s, "backing", 14).await;
    let kept = idle(s, "kept", 13).await;
    let east = insert(s, NewDeployment::new("k8s@east:apps/x", now() - mins(11))).await;
    for id in [ten, twenty, fresh, old, pinned, backing, kept, east] {
        early(s, id).await;
    }
    let seen = |id| async move { row(s, id).await.last_activity_at };
    let backoff = BackOff {
        reason: "not_found".to_owned(),
        retry_after: now() + mins(10),
        retry_key: now() - mins(20),
    };
    assert!(
        s.back_off(backing, seen(backing).await, &backoff)
            .await
            .expect("back_off")
    );
    assert!(
        s.keep(kept, seen(kept).await, now() + mins(10))
            .await
            .expect("keep")
    );

    assert_eq!(early_ids(s, 50).await, vec![twenty, ten]);
    assert_eq!(early_ids(s, 1).await, vec![twenty]);
    assert_eq!(
        candidate_ids(s, 50).await,
        vec![old],
        "apart from the candidates"
    );
    let c = s
        .select_early(
            &ServedClusters::default(),
            now(),
            early_before(),
            idle_before(),
            1,
        )
        .await
        .expect("select_early");
    assert_eq!(
        (
            c[0].last_activity_at,
            c[0].backoff_count,
            c[0].provider_id.as_str()
        ),
        (now() - mins(20), 0, "k8s:apps/twenty")
    );

    // A rhythm that no longer says so takes the row out of the early path; `plain` never was.
    assert!(
        s.save_rhythm(twenty, &rhythm(3), false)
            .await
            .expect("save_rhythm")
    );
    assert_eq!(early_ids(s, 50).await, vec![ten]);
    assert!(!early_ids(s, 50).await.contains(&plain));
}

/// A rhythm saved is read back as it was; saving again replaces it; it outlives a sleep and a
/// wake, and goes with its row (a new row of that id starts without one).
pub async fn rhythms_round_trip_and_go_with_their_row<S: Store + RhythmStore + HostOps>(s: &S) {
    let a = idle(s, "a", 60).await;
    let b = idle(s, "b", 60).await;
    let missing = Uuid::new_v4();
    assert!(s.rhythms(&[a, b]).await.expect("rhythms").is_empty());
    assert!(s.save_rhythm(a, &rhythm(2), false).await.expect("save"));
    assert!(
        s.save_rhythm(a, &rhythm(48), true)
            .await
            .expect("save again")
    );
    assert!(
        s.save_rhythm(b, &Rhythm::default(), false)
            .await
            .expect("save")
    );
    assert!(
        !s.save_rhythm(missing, &rhythm(1), true)
            .await
            .expect("save")
    );
    let got = s.rhythms(&[a, b, missing]).await.expect("rhythms");
    assert_eq!(got.len(), 2);
    assert_eq!(got[&a], rhythm(48));
    assert_eq!(got[&b], Rhythm::default());

    // Through a sleep and a wake: the rhythm and the early mark stay.
    assert!(claim(s, a, Some(2)).await);
    let r = row(s, a).await;
    let at = r.sleep_state_changed_at;
    let confirmed = s.confirm_sleep(a, r.last_activity_at, at, now()).await;
    assert_eq!(confirmed.expect("confirm"), ConfirmOutcome::Confirmed);
    let at = row(s, a).await.sleep_state_changed_at;
    assert!(
        s.finish_wake(a, SleepState::Asleep, at, now())
            .await
            .expect("wake")
    );
    assert_eq!(s.rhythms(&[a]).await.expect("rhythms")[&a], rhythm(48));
    let early_later = s
        .select_early(
            &ServedClusters::default(),
            now() + mins(10),
            now() + mins(5),
            now() - mins(20),
            50,
        )
        .await
        .expect("select_early");
    assert_eq!(
        early_later.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![a]
    );

    assert!(s.delete(a).await.expect("delete"));
    assert!(!s.rhythms(&[a]).await.expect("rhythms").contains_key(&a));
    insert(s, NewDeployment::k8s("apps", "a", now() - mins(60)).id(a)).await;
    assert!(s.rhythms(&[a]).await.expect("rhythms").is_empty());
    assert_eq!(s.rhythms(&[b]).await.expect("rhythms").len(), 1);
}

/// A pre-warm time is set on an `asleep` row still stamped as read, and the row is due from
/// then on, soonest first, of the served clusters only; clearing it takes it out.
pub async fn prewarms_come_due_in_order<S: Store + RhythmStore + HostOps>(s: &S) {
    let served = ServedClusters::default();
    let stamp = now() - mins(30);
    let a = asleep(s, "a", stamp).await;
    let b = asleep(s, "b", stamp).await;
    let awake = idle(s, "awake", 60).await;
    let east = insert(
        s,
        NewDeployment::new("k8s@east:apps/a", now() - mins(90)).sleep_state(
            SleepState::Asleep,
            stamp,
            Some(1),
        ),
    )
    .await;
    assert!(
        !s.set_prewarm(a, stamp - mins(1), Some(now()))
            .await
            .expect("set")
    );
    let awake_at = row(s, awake).await.sleep_state_changed_at;
    assert!(
        !s.set_prewarm(awake, awake_at, Some(now()))
            .await
            .expect("set")
    );
    assert!(
        s.set_prewarm(a, stamp, Some(now() + mins(20)))
            .await
            .expect("set")
    );
    assert!(
        s.set_prewarm(b, stamp, Some(now() + mins(10)))
            .await
            .expect("set")
    );
    assert!(s.set_prewarm(east, stamp, Some(now())).await.expect("set"));

    assert!(due_ids(s, &served, now()).await.is_empty());
    assert_eq!(due_ids(s, &served, now() + mins(10)).await, vec![b]);
    assert_eq!(due_ids(s, &served, now() + mins(30)).await, vec![b, a]);
    let first = s
        .prewarms_due(&served, now() + mins(30), 1)
        .await
        .expect("prewarms_due");
    assert_eq!(
        first,
        vec![AsleepRow {
            id: b,
            provider_id: "k8s:apps/b".to_owned(),
            last_activity_at: now() - mins(90),
            sleep_state_changed_at: stamp,
            wake_started_at: None,
        }]
    );
    assert!(s.set_prewarm(b, stamp, None).await.expect("clear"));
    assert_eq!(due_ids(s, &served, now() + mins(30)).await, vec![a]);
}

/// `finish_prewarm` wakes an `asleep` row still stamped as read, like a wake but leaving its
/// activity: the row is kept until `keep_until` against that activity, marked pre-warmed, and
/// no longer due; a request ends the keep.
pub async fn finish_prewarm_wakes_without_activity_and_keeps<S: Store + RhythmStore + HostOps>(
    s: &S,
) {
    let stamp = now() - mins(30);
    let id = asleep(s, "web", stamp).await;
    let activity = row(s, id).await.last_activity_at;
    assert!(s.set_prewarm(id, stamp, Some(now())).await.expect("set"));
    assert!(s.begin_wake(id, stamp, now()).await.expect("begin_wake"));
    let until = now() + mins(15);
    assert!(
        !s.finish_prewarm(id, stamp - mins(1), now(), until)
            .await
            .expect("finish")
    );
    assert!(
        s.finish_prewarm(id, stamp, now(), until)
            .await
            .expect("finish")
    );
    assert!(
        !s.finish_prewarm(id, stamp, now(), until)
            .await
            .expect("once")
    );

    let r = row(s, id).await;
    assert_eq!(
        (
            r.sleep_state,
            r.sleep_state_changed_at,
            r.last_activity_at,
            r.replicas_before_sleep
        ),
        (SleepState::Awake, now(), activity, None)
    );
    assert!(
        due_ids(s, &ServedClusters::default(), now() + mins(60))
            .await
            .is_empty()
    );
    let k = s
        .keeps(&ServedClusters::default(), 50)
        .await
        .expect("keeps");
    assert_eq!(k.len(), 1);
    assert_eq!(
        (
            k[0].id,
            k[0].keep_activity_at,
            k[0].keep_until,
            k[0].prewarmed_at
        ),
        (id, activity, until, Some(now()))
    );
    assert!(
        candidate_ids(s, 50).await.is_empty(),
        "kept for its request"
    );

    // Its request comes: no longer held (the tick then settles the keep).
    assert!(s.bump_activity(id, now() - mins(31)).await.expect("bump"));
    assert_eq!(candidate_ids(s, 50).await, vec![id]);
    // A keep-alive recorded over it drops the pre-warm mark.
    let seen = row(s, id).await.last_activity_at;
    assert!(s.keep(id, seen, until).await.expect("keep"));
    let k = s
        .keeps(&ServedClusters::default(), 50)
        .await
        .expect("keeps");
    assert_eq!((k[0].keep_activity_at, k[0].prewarmed_at), (seen, None));
}

/// A wake, and a drift fix that finds the app running, clear a pending pre-warm: a row that
/// sleeps again later is never pre-warmed on a stale time.
pub async fn wake_and_drift_fix_clear_a_prewarm<S: Store + RhythmStore + HostOps>(s: &S) {
    let served = ServedClusters::default();
    let stamp = now() - mins(30);
    let woken = asleep(s, "woken", stamp).await;
    let fixed = asleep(s, "fixed", stamp).await;
    for id in [woken, fixed] {
        assert!(s.set_prewarm(id, stamp, Some(now())).await.expect("set"));
    }
    assert!(
        s.finish_wake(woken, SleepState::Asleep, stamp, now())
            .await
            .expect("wake")
    );
    assert!(
        s.reconcile_awake(fixed, stamp, Drift::WokenExternally, now())
            .await
            .expect("reconcile")
    );
    let later = now() + mins(60);
    for id in [woken, fixed] {
        assert!(
            s.set_sleep_state(id, SleepState::Asleep, later, Some(1))
                .await
                .expect("asleep again")
        );
    }
    assert!(due_ids(s, &served, later + mins(60)).await.is_empty());
}
