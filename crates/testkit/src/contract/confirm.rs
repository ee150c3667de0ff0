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
        s.confirm_sleep(id, seen, later).await.expect("confirm"),
        ConfirmOutcome::Confirmed
    );
    let r = row(s, id).await;
    assert_eq!(r.sleep_state, SleepState::Asleep);
    assert_eq!(r.sleep_state_changed_at, later);
    assert_eq!(r.replicas_before_sleep, Some(4));
    // Confirming twice is not a second confirmation.
    assert_eq!(
        s.confirm_sleep(id, seen, later).await.expect("confirm"),
        ConfirmOutcome::NotSleeping
    );
}

/// A wake finished between claim and confirm: `NotSleeping`, the row stays awake.
pub async fn confirm_loses_to_wake<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let seen = row(s, id).await.last_activity_at;
    assert!(claim(s, id, Some(2)).await);
    assert!(
        s.finish_wake(id, SleepState::Sleeping, now())
            .await
            .expect("wake")
    );
    assert_eq!(
        s.confirm_sleep(id, seen, now()).await.expect("confirm"),
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
        s.confirm_sleep(id, seen, now()).await.expect("confirm"),
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
        s.confirm_sleep(id, seen, now()).await.expect("confirm"),
        ConfirmOutcome::NotSleeping
    );
    assert_eq!(row(s, id).await.sleep_state, SleepState::Awake);
    assert_eq!(
        s.confirm_sleep(Uuid::new_v4(), seen, now())
            .await
            .expect("confirm"),
        ConfirmOutcome::NotSleeping
    );
}

/// `sleeping -> awake` clearing the restore count; a no-op from any other state.
pub async fn revert_only_from_sleeping<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    assert!(
        !s.revert_sleep(id, now()).await.expect("revert"),
        "reverted an awake row"
    );
    assert!(claim(s, id, Some(3)).await);
    let later = now() + mins(1);
    assert!(s.revert_sleep(id, later).await.expect("revert"));
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
        !s.revert_sleep(asleep, now()).await.expect("revert"),
        "reverted an asleep row"
    );
    assert_eq!(row(s, asleep).await.sleep_state, SleepState::Asleep);
    assert!(!s.revert_sleep(Uuid::new_v4(), now()).await.expect("revert"));
}
