//! The end of a sleep: CAS 2 `sleeping -> asleep`, or the revert to `awake`.

use idle_scaler_core::{ConfirmOutcome, SleepState, Store};
use uuid::Uuid;

use super::{candidate_ids, claim, idle, mins, now, row};
use crate::host::HostOps;

/// `sleeping -> asleep`, keeping the restore count.
pub async fn confirm_flips_sleeping_to_asleep<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let seen = row(s, id).await.last_activity_at;
    assert!(claim(s, id, Some(4)).await);
    let later = now() + mins(1);
    assert_eq!(
        s.confirm_sleep(id, seen, now(), later)
            .await
            .expect("confirm"),
        ConfirmOutcome::Confirmed
    );
    let r = row(s, id).await;
    assert_eq!(r.sleep_state, SleepState::Asleep);
    assert_eq!(r.sleep_state_changed_at, later);
    assert_eq!(r.replicas_before_sleep, Some(4));
    // Confirming twice is not a second confirmation.
    assert_eq!(
        s.confirm_sleep(id, seen, now(), later)
            .await
            .expect("confirm"),
        ConfirmOutcome::NotSleeping
    );
}

/// A wake finished between claim and confirm: `NotSleeping`, the row stays awake.
pub async fn confirm_loses_to_wake<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let seen = row(s, id).await.last_activity_at;
    assert!(claim(s, id, Some(2)).await);
    assert!(
        s.finish_wake(
            id,
            SleepState::Sleeping,
            row(s, id).await.sleep_state_changed_at,
            now()
        )
        .await
        .expect("wake")
    );
    assert_eq!(
        s.confirm_sleep(id, seen, now(), now())
            .await
            .expect("confirm"),
        ConfirmOutcome::NotSleeping
    );
    let r = row(s, id).await;
    assert_eq!(r.sleep_state, SleepState::Awake);
    assert_eq!(r.last_activity_at, now());
}

/// A redeploy between claim and confirm: `ActivityArrived`, the row stays `sleeping` for the
/// tick to undo.
pub async fn confirm_loses_to_activity<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let seen = row(s, id).await.last_activity_at;
    assert!(claim(s, id, Some(2)).await);
    assert!(s.bump_activity(id, now()).await.expect("bump"));
    assert_eq!(
        s.confirm_sleep(id, seen, now(), now())
            .await
            .expect("confirm"),
        ConfirmOutcome::ActivityArrived
    );
    let r = row(s, id).await;
    assert_eq!(r.sleep_state, SleepState::Sleeping);
    assert_eq!(r.replicas_before_sleep, Some(2));
}

/// Confirming a row that is awake, or missing, is `NotSleeping` and changes nothing.
pub async fn confirm_of_row_not_sleeping<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let seen = row(s, id).await.last_activity_at;
    assert_eq!(
        s.confirm_sleep(id, seen, now(), now())
            .await
            .expect("confirm"),
        ConfirmOutcome::NotSleeping
    );
    assert_eq!(row(s, id).await.sleep_state, SleepState::Awake);
    assert_eq!(
        s.confirm_sleep(Uuid::new_v4(), seen, now(), now())
            .await
            .expect("confirm"),
        ConfirmOutcome::NotSleeping
    );
}

/// `sleeping -> awake` clearing the restore count; a no-op from any other state.
pub async fn revert_only_from_sleeping<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    assert!(
        !s.revert_sleep(id, now(), now()).await.expect("revert"),
        "reverted an awake row"
    );
    assert!(claim(s, id, Some(3)).await);
    let later = now() + mins(1);
    assert!(s.revert_sleep(id, now(), later).await.expect("revert"));
    let r = row(s, id).await;
    assert_eq!(r.sleep_state, SleepState::Awake);
    assert_eq!(r.replicas_before_sleep, None);
    assert_eq!(r.sleep_state_changed_at, later);
    assert_eq!(
        r.last_activity_at,
        now() - mins(60),
        "a revert is not activity"
    );
    // Idle again: the next tick may try again.
    assert_eq!(candidate_ids(s, 50).await, vec![id]);

    let asleep = idle(s, "asleep", 60).await;
    assert!(
        s.set_sleep_state(asleep, SleepState::Asleep, now(), Some(2))
            .await
            .expect("set")
    );
    assert!(
        !s.revert_sleep(asleep, now(), now()).await.expect("revert"),
        "reverted an asleep row"
    );
    assert_eq!(row(s, asleep).await.sleep_state, SleepState::Asleep);
    assert!(
        !s.revert_sleep(Uuid::new_v4(), now(), now())
            .await
            .expect("revert")
    );
}

/// Confirm and revert act only on the intent they were given: a row holding another intent
/// (another stamp, as a later claim writes) is `NotSleeping` to the confirm, and the revert
/// leaves it alone.
pub async fn confirm_and_revert_compare_the_intent_stamp<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let seen = row(s, id).await.last_activity_at;
    assert!(claim(s, id, Some(2)).await);
    let other = now() - mins(1);
    assert_eq!(
        s.confirm_sleep(id, seen, other, now() + mins(1))
            .await
            .expect("confirm"),
        ConfirmOutcome::NotSleeping,
        "another intent's confirm"
    );
    assert!(
        !s.revert_sleep(id, other, now() + mins(1))
            .await
            .expect("revert"),
        "another intent's revert"
    );
    let r = row(s, id).await;
    assert_eq!(
        (
            r.sleep_state,
            r.sleep_state_changed_at,
            r.replicas_before_sleep
        ),
        (SleepState::Sleeping, now(), Some(2)),
        "the row keeps its own intent"
    );
    // Activity moved too: still `NotSleeping`, since the intent is not this one.
    assert!(s.bump_activity(id, now()).await.expect("bump"));
    assert_eq!(
        s.confirm_sleep(id, seen, other, now())
            .await
            .expect("confirm"),
        ConfirmOutcome::NotSleeping
    );
    // Its own stamp: activity arrived, and its revert works.
    assert_eq!(
        s.confirm_sleep(id, seen, now(), now())
            .await
            .expect("confirm"),
        ConfirmOutcome::ActivityArrived
    );
    assert!(
        s.revert_sleep(id, now(), now() + mins(2))
            .await
            .expect("revert")
    );
    assert_eq!(row(s, id).await.sleep_state, SleepState::Awake);
}

/// The three outcomes of one confirm, side by side, each on the row state that causes it;
/// only `Confirmed` writes.
pub async fn confirm_distinguishes_three_outcomes<S: Store + HostOps>(s: &S) {
    let ok = idle(s, "ok", 60).await;
    let moved = idle(s, "moved", 60).await;
    let woken = idle(s, "woken", 60).await;
    let seen = now() - mins(60);
    for id in [ok, moved, woken] {
        assert!(claim(s, id, Some(1)).await);
    }
    assert!(s.bump_activity(moved, now() + mins(1)).await.expect("bump"));
    assert!(
        s.finish_wake(
            woken,
            SleepState::Sleeping,
            row(s, woken).await.sleep_state_changed_at,
            now()
        )
        .await
        .expect("wake")
    );
    let later = now() + mins(2);
    let outcome = |id| s.confirm_sleep(id, seen, now(), later);
    assert_eq!(outcome(ok).await.expect("ok"), ConfirmOutcome::Confirmed);
    assert_eq!(
        outcome(moved).await.expect("moved"),
        ConfirmOutcome::ActivityArrived
    );
    assert_eq!(
        outcome(woken).await.expect("woken"),
        ConfirmOutcome::NotSleeping
    );
    assert_eq!(
        outcome(Uuid::new_v4()).await.expect("missing"),
        ConfirmOutcome::NotSleeping
    );
    let r = row(s, moved).await;
    assert_eq!(
        (r.sleep_state, r.sleep_state_changed_at),
        (SleepState::Sleeping, now())
    );
    let r = row(s, woken).await;
    assert_eq!(
        (r.sleep_state, r.sleep_state_changed_at),
        (SleepState::Awake, now())
    );
    let r = row(s, ok).await;
    assert_eq!(
        (r.sleep_state, r.sleep_state_changed_at),
        (SleepState::Asleep, later)
    );
}
