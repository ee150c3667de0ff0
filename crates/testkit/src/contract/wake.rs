//! Wake and activity: finishing a wake, touching an awake row, recording traffic.

use chrono::Duration;
use idle_scaler_core::{SleepState, Store};
use uuid::Uuid;

use super::{candidate_ids, idle, idle_before, insert, mins, now, row};
use crate::host::{HostOps, NewDeployment};

/// Wake: `from -> awake` with activity = now and no restore count, only from `from`.
pub async fn finish_wake_is_a_cas_on_state<S: Store + HostOps>(s: &S) {
    let old = now() - mins(60);
    let asleep = insert(
        s,
        NewDeployment::k8s("apps", "asleep", old).sleep_state(SleepState::Asleep, old, Some(3)),
    )
    .await;
    let sleeping = insert(
        s,
        NewDeployment::k8s("apps", "sleeping", old).sleep_state(SleepState::Sleeping, old, Some(2)),
    )
    .await;

    // A wake that read `sleeping` loses once a tick confirmed the row.
    assert!(
        !s.finish_wake(
            asleep,
            SleepState::Sleeping,
            row(s, asleep).await.sleep_state_changed_at,
            now()
        )
        .await
        .expect("wake")
    );
    assert_eq!(row(s, asleep).await.sleep_state, SleepState::Asleep);

    for id in [asleep, sleeping] {
        let from = row(s, id).await.sleep_state;
        assert!(
            s.finish_wake(id, from, row(s, id).await.sleep_state_changed_at, now())
                .await
                .expect("wake")
        );
        let r = row(s, id).await;
        assert_eq!(r.sleep_state, SleepState::Awake);
        assert_eq!(r.last_activity_at, now());
        assert_eq!(r.sleep_state_changed_at, now());
        assert_eq!(r.replicas_before_sleep, None);
        // A second wake of the same read loses: the state moved.
        assert!(
            !s.finish_wake(id, from, row(s, id).await.sleep_state_changed_at, now())
                .await
                .expect("wake")
        );
    }
    // A wake that read one sleep loses to a later sleep of the same row: between its read
    // and its write the row was set awake (a drift check) and slept again, app at 0.
    let old = now() - mins(60);
    let again = insert(
        s,
        NewDeployment::k8s("apps", "again", old).sleep_state(SleepState::Asleep, old, Some(3)),
    )
    .await;
    let read_at = row(s, again).await.sleep_state_changed_at;
    s.set_sleep_state(again, SleepState::Asleep, now() - mins(1), Some(3))
        .await
        .expect("slept again");
    assert!(
        !s.finish_wake(again, SleepState::Asleep, read_at, now())
            .await
            .expect("wake")
    );
    assert_eq!(row(s, again).await.sleep_state, SleepState::Asleep);
    assert!(
        !s.finish_wake(Uuid::new_v4(), SleepState::Asleep, now(), now())
            .await
            .expect("wake")
    );
}

/// Bumps activity of an awake row only; never wakes or touches a sleeping one.
pub async fn touch_awake_only_when_awake<S: Store + HostOps>(s: &S) {
    let awake = idle(s, "awake", 60).await;
    assert!(s.touch_awake(awake, now()).await.expect("touch"));
    let r = row(s, awake).await;
    assert_eq!(
        (r.last_activity_at, r.sleep_state),
        (now(), SleepState::Awake)
    );

    let old = now() - mins(60);
    for state in [SleepState::Sleeping, SleepState::Asleep] {
        let id = insert(
            s,
            NewDeployment::k8s("apps", state.as_str(), old).sleep_state(state, old, Some(1)),
        )
        .await;
        assert!(!s.touch_awake(id, now()).await.expect("touch"));
        let r = row(s, id).await;
        assert_eq!((r.last_activity_at, r.sleep_state), (old, state));
    }
    assert!(!s.touch_awake(Uuid::new_v4(), now()).await.expect("touch"));
}

/// Traffic seen by an activity source: moves `last_activity_at` forward (never back) on an
/// `awake` row only, touches nothing else, and makes a claim with the old stamp lose.
pub async fn record_traffic_moves_activity_forward_only_while_awake<S: Store + HostOps>(s: &S) {
    let awake = idle(s, "awake", 60).await;
    let seen = row(s, awake).await;
    let traffic = now() - mins(10) + Duration::nanoseconds(1_500);
    assert!(s.record_traffic(awake, traffic).await.expect("record"));
    let r = row(s, awake).await;
    let micros = now() - mins(10) + Duration::microseconds(1);
    assert_eq!(r.last_activity_at, micros, "stored as timestamptz keeps it");
    assert_eq!(
        (
            r.sleep_state,
            r.sleep_state_changed_at,
            r.replicas_before_sleep
        ),
        (
            seen.sleep_state,
            seen.sleep_state_changed_at,
            seen.replicas_before_sleep
        )
    );
    assert!(candidate_ids(s, 10).await.is_empty(), "no longer idle");
    assert!(
        !s.claim_sleep(awake, seen.last_activity_at, idle_before(), Some(1), now())
            .await
            .expect("claim"),
        "a claim with the stamp seen before the traffic loses"
    );

    // Older traffic (a lagging source, a second instance) never moves the stamp back.
    assert!(
        s.record_traffic(awake, now() - mins(50))
            .await
            .expect("record")
    );
    assert_eq!(row(s, awake).await.last_activity_at, micros);

    let old = now() - mins(60);
    for state in [SleepState::Sleeping, SleepState::Asleep] {
        let id = insert(
            s,
            NewDeployment::k8s("apps", state.as_str(), old).sleep_state(state, old, Some(1)),
        )
        .await;
        assert!(!s.record_traffic(id, now()).await.expect("record"));
        let r = row(s, id).await;
        assert_eq!((r.last_activity_at, r.sleep_state), (old, state));
    }
    assert!(
        !s.record_traffic(Uuid::new_v4(), now())
            .await
            .expect("record")
    );
}
