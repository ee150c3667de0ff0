//! CAS 1 of a sleep: `awake -> sleeping`, which rechecks everything selection checked.

use idle_scaler_core::ServedClusters;
use idle_scaler_core::{SleepState, Store};

use super::{candidate_ids, claim, idle, idle_before, mins, now, row};
use crate::host::HostOps;

/// CAS 1 flips `awake -> sleeping`, stamps the change and records the restore count.
pub async fn claim_flips_awake_to_sleeping<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let at_zero = idle(s, "zero", 60).await;
    assert!(claim(s, id, Some(3)).await);
    assert!(claim(s, at_zero, None).await);
    let r = row(s, id).await;
    assert_eq!(r.sleep_state, SleepState::Sleeping);
    assert_eq!(r.sleep_state_changed_at, now());
    assert_eq!(r.replicas_before_sleep, Some(3));
    assert_eq!(
        r.last_activity_at,
        now() - mins(60),
        "a claim is not activity"
    );
    assert_eq!(row(s, at_zero).await.replicas_before_sleep, None);
    assert!(candidate_ids(s, 50).await.is_empty());
}

/// Between select and claim the row got pinned, expired, unhealthy or not idle by
/// `idle_before`, or vanished: each makes the claim a no-op.
pub async fn claim_rechecks_the_whole_predicate<S: Store + HostOps>(s: &S) {
    let pinned = idle(s, "pinned", 60).await;
    let expired = idle(s, "expired", 60).await;
    let expiring_now = idle(s, "expiring-now", 60).await;
    let unhealthy = idle(s, "unhealthy", 60).await;
    let recent = idle(s, "recent", 10).await;
    let gone = idle(s, "gone", 60).await;
    assert_eq!(candidate_ids(s, 50).await.len(), 5);
    assert!(s.set_always_on(pinned, true).await.expect("pin"));
    assert!(
        s.set_expires_at(expired, Some(now() - mins(1)))
            .await
            .expect("expire")
    );
    assert!(
        s.set_expires_at(expiring_now, Some(now()))
            .await
            .expect("expire")
    );
    assert!(s.set_status(unhealthy, "failed").await.expect("status"));
    assert!(s.delete(gone).await.expect("delete"));
    for id in [pinned, expired, expiring_now, unhealthy] {
        assert!(
            !claim(s, id, Some(1)).await,
            "claimed a row that left the predicate"
        );
        assert_eq!(row(s, id).await.sleep_state, SleepState::Awake);
    }
    // Not idle by the caller's `idle_before`, even with the activity it saw.
    assert!(!claim(s, recent, Some(1)).await);
    assert!(
        !s.claim_sleep(gone, now() - mins(60), idle_before(), Some(1), now())
            .await
            .expect("claim")
    );
    // Already asleep: a claim never moves it back to sleeping.
    let asleep = idle(s, "asleep", 60).await;
    assert!(
        s.set_sleep_state(asleep, SleepState::Asleep, now() - mins(5), Some(2))
            .await
            .expect("set")
    );
    assert!(!claim(s, asleep, Some(1)).await);
    assert_eq!(row(s, asleep).await.sleep_state, SleepState::Asleep);
}

/// A redeploy (activity bump) between select and claim wins, even when the new activity is
/// itself old enough to be idle: the claim compares with what was selected.
pub async fn claim_loses_to_activity_bump<S: Store + HostOps>(s: &S) {
    let bumped = idle(s, "bumped", 90).await;
    let still_idle = idle(s, "still-idle", 90).await;
    let selected = s
        .select_candidates(&ServedClusters::default(), now(), idle_before(), 50)
        .await
        .expect("select");
    assert_eq!(selected.len(), 2);
    assert!(s.bump_activity(bumped, now()).await.expect("bump"));
    assert!(
        s.bump_activity(still_idle, now() - mins(45))
            .await
            .expect("bump")
    );
    for c in &selected {
        let claimed = s
            .claim_sleep(c.id, c.last_activity_at, idle_before(), Some(2), now())
            .await
            .expect("claim");
        assert!(!claimed, "claim won over an activity bump");
        assert_eq!(row(s, c.id).await.sleep_state, SleepState::Awake);
    }
}

/// Two claims of one row (two job instances): exactly one wins.
pub async fn claim_wins_once<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let seen = row(s, id).await.last_activity_at;
    let first = s
        .claim_sleep(id, seen, idle_before(), Some(2), now())
        .await
        .expect("claim");
    let second = s
        .claim_sleep(id, seen, idle_before(), Some(5), now())
        .await
        .expect("claim");
    assert!(first && !second);
    assert_eq!(row(s, id).await.replicas_before_sleep, Some(2));
}

/// A restore count of 0 is refused (wake must never "restore" to 0): an error, row unchanged.
pub async fn claim_rejects_zero_replicas<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let seen = row(s, id).await.last_activity_at;
    assert!(
        s.claim_sleep(id, seen, idle_before(), Some(0), now())
            .await
            .is_err()
    );
    assert_eq!(row(s, id).await.sleep_state, SleepState::Awake);
}
