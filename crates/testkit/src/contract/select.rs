//! Candidate selection: which rows a tick may try to put to sleep, in which order.

use chrono::Duration;
use idle_scaler_core::ServedClusters;
use idle_scaler_core::{SleepState, Store};

use super::{candidate_ids, idle, idle_before, insert, mins, now};
use crate::host::{HostOps, NewDeployment};

/// The basic candidate: healthy, awake, unpinned, no expiry, idle. Fields as stored.
pub async fn select_takes_idle_healthy_awake_rows<S: Store + HostOps>(s: &S) {
    let id = idle(s, "idle", 60).await;
    let found = s
        .select_candidates(&ServedClusters::default(), now(), idle_before(), 50)
        .await
        .expect("select");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].provider_id, "k8s:apps/idle");
    assert_eq!(found[0].last_activity_at, now() - mins(60));
    assert_eq!(found[0].sleep_state_changed_at, now() - mins(60));
    assert_eq!(
        (found[0].backoff_count, found[0].flaps, found[0].flaps_since),
        (0, 0, None),
        "a row with no history"
    );
}

/// Only this scaler's rows (`provider_id` starting with `k8s:`) are ever selected; other
/// providers' rows, however idle, are not even looked at.
pub async fn select_excludes_other_providers<S: Store + HostOps>(s: &S) {
    let keep = idle(s, "mine", 60).await;
    for provider in [
        "docker:web",
        "K8S:apps/upper",
        "k8s-apps/web",
        "k8s",
        "",
        "fly:k8s:x",
    ] {
        insert(s, NewDeployment::new(provider, now() - mins(600))).await;
    }
    assert_eq!(candidate_ids(s, 50).await, vec![keep]);
}

/// Pinned rows are never candidates.
pub async fn select_excludes_pinned<S: Store + HostOps>(s: &S) {
    let keep = idle(s, "plain", 60).await;
    insert(
        s,
        NewDeployment::k8s("apps", "pinned", now() - mins(60)).always_on(true),
    )
    .await;
    assert_eq!(candidate_ids(s, 50).await, vec![keep]);
}

/// Rows expired at `now` (`expires_at <= now`) belong to the expirer; a future expiry is fine.
pub async fn select_excludes_expired<S: Store + HostOps>(s: &S) {
    let future = insert(
        s,
        NewDeployment::k8s("apps", "f", now() - mins(61)).expires_at(now() + mins(1)),
    )
    .await;
    insert(
        s,
        NewDeployment::k8s("apps", "past", now() - mins(60)).expires_at(now() - mins(1)),
    )
    .await;
    insert(
        s,
        NewDeployment::k8s("apps", "edge", now() - mins(60)).expires_at(now()),
    )
    .await;
    assert_eq!(candidate_ids(s, 50).await, vec![future]);
}

/// Only `healthy` rows may be slept.
pub async fn select_excludes_unhealthy<S: Store + HostOps>(s: &S) {
    let keep = idle(s, "ok", 60).await;
    for status in ["failed", "deploying", "Healthy", ""] {
        insert(
            s,
            NewDeployment::k8s("apps", status, now() - mins(60)).status(status),
        )
        .await;
    }
    assert_eq!(candidate_ids(s, 50).await, vec![keep]);
}

/// Rows already `sleeping` or `asleep` are not selected again.
pub async fn select_excludes_sleeping_and_asleep<S: Store + HostOps>(s: &S) {
    let keep = idle(s, "awake", 60).await;
    let old = now() - mins(60);
    insert(
        s,
        NewDeployment::k8s("apps", "sleeping", old).sleep_state(SleepState::Sleeping, old, Some(1)),
    )
    .await;
    insert(
        s,
        NewDeployment::k8s("apps", "asleep", old).sleep_state(SleepState::Asleep, old, Some(1)),
    )
    .await;
    assert_eq!(candidate_ids(s, 50).await, vec![keep]);
}

/// Activity after `idle_before` excludes; exactly at `idle_before` is idle.
pub async fn select_excludes_recent_activity<S: Store + HostOps>(s: &S) {
    let edge = insert(s, NewDeployment::k8s("apps", "edge", idle_before())).await;
    insert(
        s,
        NewDeployment::k8s("apps", "recent", idle_before() + Duration::microseconds(1)),
    )
    .await;
    insert(s, NewDeployment::k8s("apps", "fresh", now())).await;
    assert_eq!(candidate_ids(s, 50).await, vec![edge]);
}

/// Oldest activity first, ties by id, at most `limit`.
pub async fn select_orders_oldest_first_and_limits<S: Store + HostOps>(s: &S) {
    let oldest = idle(s, "oldest", 300).await;
    let mid = idle(s, "mid", 200).await;
    let tie_a = idle(s, "tie-a", 100).await;
    let tie_b = idle(s, "tie-b", 100).await;
    let (first_tie, second_tie) = if tie_a < tie_b {
        (tie_a, tie_b)
    } else {
        (tie_b, tie_a)
    };
    assert_eq!(
        candidate_ids(s, 50).await,
        vec![oldest, mid, first_tie, second_tie]
    );
    assert_eq!(candidate_ids(s, 2).await, vec![oldest, mid]);
    assert_eq!(candidate_ids(s, 3).await, vec![oldest, mid, first_tie]);
}
