//! Recovery of intents a dead transition left: finding them, settling them.

use idle_scaler_core::ServedClusters;
use idle_scaler_core::{SleepState, Store};
use uuid::Uuid;

use super::{insert, mins, now, row};
use crate::host::{HostOps, NewDeployment};

/// `sleeping` rows whose intent is at or before the threshold, oldest first, with what
/// recovery needs; fresh intents and other states are left alone.
pub async fn stale_intents_are_old_sleeping_rows<S: Store + HostOps>(s: &S) {
    let threshold = now() - mins(5);
    let old = now() - mins(60);
    let leftover = insert(
        s,
        NewDeployment::k8s("apps", "a", old).sleep_state(
            SleepState::Sleeping,
            threshold - mins(1),
            Some(3),
        ),
    )
    .await;
    let at_edge = insert(
        s,
        NewDeployment::k8s("apps", "b", old).sleep_state(SleepState::Sleeping, threshold, None),
    )
    .await;
    insert(
        s,
        NewDeployment::k8s("apps", "fresh", old).sleep_state(
            SleepState::Sleeping,
            threshold + mins(1),
            Some(1),
        ),
    )
    .await;
    insert(
        s,
        NewDeployment::k8s("apps", "asleep", old).sleep_state(
            SleepState::Asleep,
            threshold - mins(9),
            Some(1),
        ),
    )
    .await;
    insert(s, NewDeployment::k8s("apps", "awake", old)).await;
    // Activity arrived after the intent: recovery must see it.
    assert!(s.bump_activity(at_edge, now()).await.expect("bump"));

    let stale = s
        .stale_intents(&ServedClusters::default(), threshold)
        .await
        .expect("stale_intents");
    assert_eq!(
        stale.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![leftover, at_edge]
    );
    assert_eq!(stale[0].provider_id, "k8s:apps/a");
    assert_eq!(stale[0].replicas_before_sleep, Some(3));
    assert_eq!(stale[0].sleep_state_changed_at, threshold - mins(1));
    assert!(!stale[0].activity_after_intent());
    assert_eq!(stale[1].replicas_before_sleep, None);
    assert!(stale[1].activity_after_intent());
}

/// Recovery's write: `sleeping -> awake` (restore count cleared) or `-> asleep` (kept), only
/// while the row holds the very intent read (same change time); `asleep` also needs no
/// activity after the intent. A newer intent, another state or a missing row: false, no change.
pub async fn settle_intent_is_a_cas_on_the_intent<S: Store + HostOps>(s: &S) {
    let old = now() - mins(60);
    let intent_at = now() - mins(10);
    let sleeping = |name: &str| {
        NewDeployment::k8s("apps", name, old).sleep_state(SleepState::Sleeping, intent_at, Some(3))
    };
    let to_awake = insert(s, sleeping("a")).await;
    assert!(
        s.settle_intent(to_awake, intent_at, SleepState::Awake, now())
            .await
            .expect("settle")
    );
    let r = row(s, to_awake).await;
    assert_eq!(
        (
            r.sleep_state,
            r.sleep_state_changed_at,
            r.replicas_before_sleep,
            r.last_activity_at
        ),
        (SleepState::Awake, now(), None, old),
        "a settle is not activity"
    );
    // Settled already: a second instance's settle of the same intent loses.
    assert!(
        !s.settle_intent(to_awake, intent_at, SleepState::Awake, now())
            .await
            .expect("settle")
    );

    let to_asleep = insert(s, sleeping("b")).await;
    assert!(
        s.settle_intent(to_asleep, intent_at, SleepState::Asleep, now())
            .await
            .expect("settle")
    );
    let r = row(s, to_asleep).await;
    assert_eq!(
        (
            r.sleep_state,
            r.sleep_state_changed_at,
            r.replicas_before_sleep
        ),
        (SleepState::Asleep, now(), Some(3))
    );

    // The row holds a newer intent (another instance's live transition): left alone.
    let renewed = insert(s, sleeping("c")).await;
    assert!(
        s.set_sleep_state(renewed, SleepState::Sleeping, now() - mins(1), Some(2))
            .await
            .expect("set")
    );
    for to in [SleepState::Awake, SleepState::Asleep] {
        assert!(
            !s.settle_intent(renewed, intent_at, to, now())
                .await
                .expect("settle")
        );
    }
    assert_eq!(row(s, renewed).await.sleep_state, SleepState::Sleeping);

    // Activity after the intent: never `asleep`, but `awake` is fine.
    let active = insert(s, sleeping("d")).await;
    assert!(
        s.bump_activity(active, intent_at + mins(1))
            .await
            .expect("bump")
    );
    assert!(
        !s.settle_intent(active, intent_at, SleepState::Asleep, now())
            .await
            .expect("settle")
    );
    assert_eq!(row(s, active).await.sleep_state, SleepState::Sleeping);
    assert!(
        s.settle_intent(active, intent_at, SleepState::Awake, now())
            .await
            .expect("settle")
    );

    let asleep = insert(
        s,
        NewDeployment::k8s("apps", "e", old).sleep_state(SleepState::Asleep, intent_at, Some(1)),
    )
    .await;
    assert!(
        !s.settle_intent(asleep, intent_at, SleepState::Awake, now())
            .await
            .expect("settle")
    );
    assert_eq!(row(s, asleep).await.sleep_state, SleepState::Asleep);
    assert!(
        !s.settle_intent(Uuid::new_v4(), intent_at, SleepState::Awake, now())
            .await
            .expect("settle")
    );
}
