//! Drift checks of `asleep` rows: the wake mark, which rows are due for a check, recording a
//! check, and setting a row whose app was found running back to `awake`.

use chrono::{DateTime, Duration, Utc};
use idle_scaler_core::ServedClusters;
use idle_scaler_core::{AsleepRow, Candidate, Drift, SleepState, Store};
use uuid::Uuid;

use super::{idle, insert, mins, now, row};
use crate::host::{HostOps, NewDeployment};

/// An app asleep since `at` (last active an hour before `now()`).
async fn asleep<S: HostOps>(s: &S, name: &str, at: DateTime<Utc>) -> Uuid {
    insert(
        s,
        NewDeployment::k8s("apps", name, now() - mins(60)).sleep_state(
            SleepState::Asleep,
            at,
            Some(2),
        ),
    )
    .await
}

async fn due<S: Store>(s: &S, checked_before: DateTime<Utc>, limit: u32) -> Vec<AsleepRow> {
    s.asleep_to_check(&ServedClusters::default(), checked_before, limit)
        .await
        .expect("asleep_to_check")
}

async fn due_ids<S: Store>(s: &S, checked_before: DateTime<Utc>) -> Vec<Uuid> {
    due(s, checked_before, 50)
        .await
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// The row as a candidate, to read its flaps: idle before any stamp these tests write (a
/// drift repair sets the activity to the repair's time, up to two days after `now()`).
async fn candidate<S: Store>(s: &S, id: Uuid) -> Candidate {
    let idle_before = now() + Duration::days(30);
    s.select_candidates(&ServedClusters::default(), now(), idle_before, 50)
        .await
        .expect("select")
        .into_iter()
        .find(|c| c.id == id)
        .expect("a candidate")
}

/// `begin_wake` marks an `asleep` or `sleeping` row still stamped as the wake read it; the
/// drift check sees the mark; finishing the wake clears it.
pub async fn begin_wake_marks_the_state_it_read<S: Store + HostOps>(s: &S) {
    let at = now() - mins(30);
    let id = asleep(s, "asleep", at).await;
    let sleeping = insert(
        s,
        NewDeployment::k8s("apps", "sleeping", now() - mins(60)).sleep_state(
            SleepState::Sleeping,
            at,
            Some(1),
        ),
    )
    .await;
    let awake = idle(s, "awake", 60).await;

    assert!(
        !s.begin_wake(id, at - mins(1), now())
            .await
            .expect("begin_wake"),
        "another stamp"
    );
    assert_eq!(due(s, now(), 50).await[0].wake_started_at, None);
    assert!(s.begin_wake(id, at, now()).await.expect("begin_wake"));
    assert!(s.begin_wake(sleeping, at, now()).await.expect("begin_wake"));
    let awake_at = row(s, awake).await.sleep_state_changed_at;
    assert!(
        !s.begin_wake(awake, awake_at, now())
            .await
            .expect("begin_wake")
    );
    assert!(
        !s.begin_wake(Uuid::new_v4(), at, now())
            .await
            .expect("begin_wake")
    );
    let r = &due(s, now(), 50).await[0];
    assert_eq!((r.id, r.wake_started_at), (id, Some(now())));
    let stored = row(s, id).await;
    assert_eq!(
        (stored.sleep_state, stored.sleep_state_changed_at),
        (SleepState::Asleep, at),
        "the mark changes nothing else"
    );

    // The wake finishes: the mark is gone with it (seen once the row sleeps again).
    assert!(
        s.finish_wake(
            id,
            SleepState::Asleep,
            row(s, id).await.sleep_state_changed_at,
            now()
        )
        .await
        .expect("wake")
    );
    assert!(
        s.set_sleep_state(id, SleepState::Asleep, at, Some(2))
            .await
            .expect("asleep again")
    );
    assert_eq!(due(s, now(), 50).await[0].wake_started_at, None);
}

/// Due for a check: `asleep` rows whose last check (or, never checked, whose sleep) is at or
/// before the bound; least recently checked first, ties by id, at most `limit`. A check moves
/// a row to the back; only `asleep` rows can be marked.
pub async fn asleep_to_check_orders_filters_and_marks<S: Store + HostOps>(s: &S) {
    let oldest = asleep(s, "oldest", now() - mins(90)).await;
    let mid = asleep(s, "mid", now() - mins(60)).await;
    let edge = asleep(s, "edge", now() - mins(30)).await;
    let fresh = asleep(s, "fresh", now() - mins(29)).await;
    let at = now() - mins(90);
    let sleeping = insert(
        s,
        NewDeployment::k8s("apps", "sleeping", at).sleep_state(SleepState::Sleeping, at, Some(1)),
    )
    .await;
    let awake = idle(s, "awake", 600).await;
    let bound = now() - mins(30);

    let rows = due(s, bound, 50).await;
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![oldest, mid, edge]
    );
    assert_eq!(
        rows[0],
        AsleepRow {
            id: oldest,
            provider_id: "k8s:apps/oldest".to_owned(),
            last_activity_at: now() - mins(60),
            sleep_state_changed_at: now() - mins(90),
            wake_started_at: None,
        }
    );
    assert_eq!(
        due(s, bound, 2)
            .await
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![oldest, mid]
    );

    // Checked: behind the others, due again once the bound passes its check.
    assert!(
        s.mark_checked(oldest, now() - mins(45))
            .await
            .expect("mark")
    );
    assert_eq!(due_ids(s, bound).await, vec![mid, oldest, edge]);
    assert!(s.mark_checked(oldest, now()).await.expect("mark"));
    assert_eq!(due_ids(s, bound).await, vec![mid, edge]);
    assert_eq!(due_ids(s, now()).await, vec![mid, edge, fresh, oldest]);
    assert_eq!(
        row(s, oldest).await.sleep_state_changed_at,
        now() - mins(90),
        "a check is no state change"
    );

    for id in [sleeping, awake, Uuid::new_v4()] {
        assert!(!s.mark_checked(id, now()).await.expect("mark"));
    }
    // A tie is broken by id.
    let twin = asleep(s, "twin", now() - mins(60)).await;
    let (a, b) = if mid < twin { (mid, twin) } else { (twin, mid) };
    assert_eq!(due_ids(s, bound).await, vec![a, b, edge]);
}

/// `reconcile_awake`: `asleep -> awake` for the stamp read, clearing the restore count, the
/// wake mark and the check, with activity at the repair (never moved back); only `woken_externally` counts a flap, within a 24 h window that
/// restarts at 1 once over; a wake clears the flaps.
pub async fn reconcile_awake_is_a_cas_and_counts_flaps<S: Store + HostOps>(s: &S) {
    let at = now() - mins(30);
    let id = asleep(s, "app", at).await;
    assert!(s.begin_wake(id, at, now()).await.expect("begin_wake"));
    assert!(s.mark_checked(id, now() - mins(20)).await.expect("mark"));

    let t1 = now();
    assert!(
        !s.reconcile_awake(id, at - mins(1), Drift::WokenExternally, t1)
            .await
            .expect("reconcile"),
        "another stamp"
    );
    assert!(
        !s.reconcile_awake(Uuid::new_v4(), at, Drift::WokenExternally, t1)
            .await
            .expect("reconcile")
    );
    assert!(
        s.reconcile_awake(id, at, Drift::WokenExternally, t1)
            .await
            .expect("reconcile")
    );
    let r = row(s, id).await;
    assert_eq!(
        (
            r.sleep_state,
            r.sleep_state_changed_at,
            r.replicas_before_sleep,
            r.last_activity_at
        ),
        (SleepState::Awake, t1, None, t1),
        "an app started outside the job starts a fresh idle window"
    );
    let c = candidate(s, id).await;
    assert_eq!(
        (c.flaps, c.flaps_since, c.sleep_state_changed_at),
        (1, Some(t1), t1)
    );
    assert!(
        !s.reconcile_awake(id, at, Drift::WokenExternally, t1)
            .await
            .expect("reconcile"),
        "already awake"
    );

    // Asleep again (as the host fixture forces it, keeping the other columns): no wake mark,
    // no check left over.
    let sleep_again = |at: DateTime<Utc>| s.set_sleep_state(id, SleepState::Asleep, at, Some(2));
    assert!(sleep_again(t1).await.expect("asleep"));
    let r = &due(s, t1, 50).await[0];
    assert_eq!((r.wake_started_at, r.sleep_state_changed_at), (None, t1));

    // Within the window: counts up, window start kept. Other kinds count nothing.
    let t2 = t1 + Duration::hours(1);
    assert!(
        s.reconcile_awake(id, t1, Drift::WokenExternally, t2)
            .await
            .expect("reconcile")
    );
    assert_eq!(
        {
            let c = candidate(s, id).await;
            (c.flaps, c.flaps_since)
        },
        (2, Some(t1))
    );
    for (i, kind) in [Drift::Redeployed, Drift::WakeInterrupted]
        .into_iter()
        .enumerate()
    {
        let stamp = t2 + mins(i64::try_from(i).unwrap_or(0));
        assert!(sleep_again(stamp).await.expect("asleep"));
        assert!(
            s.reconcile_awake(id, stamp, kind, stamp + mins(1))
                .await
                .expect("reconcile")
        );
        let c = candidate(s, id).await;
        assert_eq!((c.flaps, c.flaps_since), (2, Some(t1)), "{kind:?}");
        assert_eq!(
            row(s, id).await.last_activity_at,
            stamp + mins(1),
            "{kind:?}"
        );
    }

    // 24 h after the window started it is over: the count restarts at 1.
    let t3 = t1 + Duration::hours(24);
    assert!(sleep_again(t3 - mins(1)).await.expect("asleep"));
    assert!(
        s.reconcile_awake(id, t3 - mins(1), Drift::WokenExternally, t3)
            .await
            .expect("reconcile")
    );
    let c = candidate(s, id).await;
    assert_eq!((c.flaps, c.flaps_since), (1, Some(t3)));

    // One microsecond inside a window still counts up.
    assert!(sleep_again(t3).await.expect("asleep"));
    let inside = t3 + Duration::hours(24) - Duration::microseconds(1);
    assert!(
        s.reconcile_awake(id, t3, Drift::WokenExternally, inside)
            .await
            .expect("reconcile")
    );
    let c = candidate(s, id).await;
    assert_eq!((c.flaps, c.flaps_since), (2, Some(t3)));

    // A wake clears the flaps.
    assert!(sleep_again(inside).await.expect("asleep"));
    assert!(
        s.finish_wake(
            id,
            SleepState::Asleep,
            row(s, id).await.sleep_state_changed_at,
            now() - mins(40)
        )
        .await
        .expect("wake")
    );
    let c = candidate(s, id).await;
    assert_eq!((c.flaps, c.flaps_since), (0, None));

    // A repair stamped before the latest activity does not move it back.
    let latest = row(s, id).await.last_activity_at;
    let again = inside + mins(1);
    assert!(sleep_again(again).await.expect("asleep"));
    assert!(
        s.reconcile_awake(id, again, Drift::Redeployed, latest - mins(5))
            .await
            .expect("reconcile")
    );
    assert_eq!(row(s, id).await.last_activity_at, latest);
}
