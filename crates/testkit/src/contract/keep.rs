//! The adaptive policy's keeps: `keep` holds an idle row out of the candidates and the claim
//! until its time runs out or a request (newer activity) ends it; `keeps` lists every keep for
//! the tick to settle, `end_keep` clears one; a sleep and a wake clear them.

use chrono::{DateTime, Duration, Utc};
use idle_scaler_core::{ClusterName, Kept, RhythmStore, ServedClusters, SleepState, Store};
use uuid::Uuid;

use super::{candidate_ids, claim, idle, idle_before, insert, mins, now, row};
use crate::host::{HostOps, NewDeployment};

/// Keeps `id` until `until` against the activity it has now.
async fn keep<S: Store + RhythmStore>(s: &S, id: Uuid, until: DateTime<Utc>) -> bool {
    let seen = row(s, id).await.last_activity_at;
    s.keep(id, seen, until).await.expect("keep")
}

async fn kept<S: RhythmStore>(s: &S, limit: u32) -> Vec<Kept> {
    s.keeps(&ServedClusters::default(), limit)
        .await
        .expect("keeps")
}

async fn kept_ids<S: RhythmStore>(s: &S) -> Vec<Uuid> {
    kept(s, 50).await.into_iter().map(|k| k.id).collect()
}

/// Candidates at `at` with the cases' idle window.
async fn candidates_at<S: Store>(s: &S, at: DateTime<Utc>) -> Vec<Uuid> {
    s.select_candidates(
        &ServedClusters::default(),
        at,
        at - (now() - idle_before()),
        50,
    )
    .await
    .expect("select")
    .into_iter()
    .map(|c| c.id)
    .collect()
}

/// A kept row is no candidate and no claim wins it until its time runs out; from then on it is
/// one again, at its activity. `keep` is a CAS on an awake row's activity.
pub async fn keep_holds_a_row_out_of_candidates_and_claim<S: Store + RhythmStore + HostOps>(s: &S) {
    let held = idle(s, "held", 90).await;
    let plain = idle(s, "plain", 60).await;
    let until = now() + mins(10);
    assert!(keep(s, held, until).await);
    assert_eq!(candidate_ids(s, 50).await, vec![plain]);
    assert!(!claim(s, held, Some(1)).await, "a claim wins a kept row");
    assert_eq!(
        candidates_at(s, until - Duration::microseconds(1)).await,
        vec![plain]
    );
    assert_eq!(candidates_at(s, until).await, vec![held, plain]);

    // Only an awake row with the activity the tick saw.
    let seen = row(s, plain).await.last_activity_at;
    assert!(!s.keep(plain, seen - mins(1), until).await.expect("keep"));
    let asleep = insert(
        s,
        NewDeployment::k8s("apps", "asleep", now() - mins(60)).sleep_state(
            SleepState::Asleep,
            now() - mins(20),
            Some(2),
        ),
    )
    .await;
    assert!(!keep(s, asleep, until).await);
    assert!(!s.keep(Uuid::new_v4(), seen, until).await.expect("keep"));
    assert_eq!(kept_ids(s).await, vec![held]);
}

/// A request (the row's activity moving past the keep's) ends the keep at once: the row is a
/// candidate again once idle, while `keeps` still lists it for the tick to settle; `end_keep`
/// clears the keep recorded against that activity only.
pub async fn a_request_ends_a_keep<S: Store + RhythmStore + HostOps>(s: &S) {
    let id = idle(s, "web", 90).await;
    let before = row(s, id).await.last_activity_at;
    assert!(keep(s, id, now() + mins(60)).await);
    assert!(candidate_ids(s, 50).await.is_empty());

    let request = now() - mins(40);
    assert!(s.bump_activity(id, request).await.expect("bump"));
    assert_eq!(candidate_ids(s, 50).await, vec![id]);
    let k = kept(s, 50).await;
    assert_eq!(
        k,
        vec![Kept {
            id,
            provider_id: "k8s:apps/web".to_owned(),
            last_activity_at: request,
            keep_activity_at: before,
            keep_until: now() + mins(60),
            prewarmed_at: None,
        }]
    );

    assert!(
        !s.end_keep(id, request).await.expect("end_keep"),
        "another keep"
    );
    assert!(s.end_keep(id, before).await.expect("end_keep"));
    assert!(kept_ids(s).await.is_empty());
    assert!(!s.end_keep(id, before).await.expect("end_keep"), "once");
    assert!(!s.end_keep(Uuid::new_v4(), before).await.expect("end_keep"));
}

/// A keep whose time ran out no longer holds the row, and the claim that sleeps it clears the
/// keep (a sleep starts afresh), as a wake does.
pub async fn claim_and_wake_clear_a_keep<S: Store + RhythmStore + HostOps>(s: &S) {
    let id = idle(s, "web", 90).await;
    assert!(
        keep(s, id, now()).await,
        "a keep ending at now holds no more"
    );
    assert_eq!(kept_ids(s).await, vec![id]);
    assert!(claim(s, id, Some(2)).await);
    assert!(kept_ids(s).await.is_empty(), "the claim cleared the keep");
    let r = row(s, id).await;
    assert!(
        s.revert_sleep(id, r.sleep_state_changed_at, now())
            .await
            .expect("revert")
    );
    assert!(kept_ids(s).await.is_empty());

    // A wake of an awake row (a request) clears the keep too.
    assert!(keep(s, id, now() + mins(30)).await);
    let r = row(s, id).await;
    assert!(
        s.finish_wake(id, SleepState::Awake, r.sleep_state_changed_at, now())
            .await
            .expect("finish_wake")
    );
    assert!(kept_ids(s).await.is_empty());
}

/// `keeps` lists every row holding a keep, held or not, soonest end first, within the limit,
/// of the served clusters only.
pub async fn keeps_lists_every_keep_soonest_first<S: Store + RhythmStore + HostOps>(s: &S) {
    let a = idle(s, "a", 90).await;
    let b = idle(s, "b", 80).await;
    let c = idle(s, "c", 70).await;
    let over = idle(s, "over", 60).await;
    let plain = idle(s, "plain", 50).await;
    let east = insert(s, NewDeployment::new("k8s@east:apps/a", now() - mins(90))).await;
    assert!(keep(s, a, now() + mins(30)).await);
    assert!(keep(s, b, now() + mins(10)).await);
    assert!(keep(s, c, now() + mins(20)).await);
    assert!(keep(s, over, now() - mins(5)).await);
    assert!(keep(s, east, now() + mins(1)).await);
    assert_eq!(kept_ids(s).await, vec![over, b, c, a]);
    let first: Vec<Uuid> = kept(s, 2).await.into_iter().map(|k| k.id).collect();
    assert_eq!(first, vec![over, b]);
    assert!(!kept_ids(s).await.contains(&plain));

    let both = ServedClusters::new(
        true,
        [ClusterName::new("east").expect("a valid cluster name")],
    );
    let all: Vec<Uuid> = s
        .keeps(&both, 50)
        .await
        .expect("keeps")
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(all, vec![over, east, b, c, a]);
    assert_eq!(candidate_ids(s, 50).await, vec![over, plain]);
}
