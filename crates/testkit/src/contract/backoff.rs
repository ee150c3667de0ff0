//! Per-row backoff: a row that cannot be slept for a lasting reason is no candidate before its
//! retry time, unless its activity moves or a wake clears it.

use chrono::{DateTime, Duration, Utc};
use idle_scaler_core::ServedClusters;
use idle_scaler_core::{BackOff, SleepState, Store};
use uuid::Uuid;

use super::{candidate_ids, claim, idle, idle_before, mins, now, row};
use crate::host::HostOps;

/// The idle window of the cases (`now() - idle_before()`).
fn window() -> Duration {
    now() - idle_before()
}

/// A backoff for `reason` until `retry_after`, keyed as the tick keys it.
fn until(reason: &str, retry_after: DateTime<Utc>) -> BackOff {
    BackOff {
        reason: reason.to_owned(),
        retry_after,
        retry_key: retry_after - window(),
    }
}

async fn back_off<S: Store + HostOps>(s: &S, id: Uuid, backoff: &BackOff) -> bool {
    let seen = row(s, id).await.last_activity_at;
    s.back_off(id, seen, backoff).await.expect("back_off")
}

/// Candidates at `at` with the cases' idle window.
async fn candidates_at<S: Store>(s: &S, at: DateTime<Utc>) -> Vec<Uuid> {
    s.select_candidates(&ServedClusters::default(), at, at - window(), 50)
        .await
        .expect("select")
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// A backed-off row is no candidate (and no claim wins it) before `retry_after`; from then on
/// it is one again, sorted at its retry key (behind rows that became idle before that), and
/// its count says how many backoffs it had. `back_off` itself is a CAS on an awake row's
/// activity.
pub async fn backoff_hides_row_until_retry_after<S: Store + HostOps>(s: &S) {
    let stuck = idle(s, "stuck", 600).await;
    let plain = idle(s, "plain", 60).await;
    let retry = now() + mins(10);
    assert!(back_off(s, stuck, &until("not_found", retry)).await);
    assert_eq!(candidate_ids(s, 50).await, vec![plain]);
    assert!(
        !claim(s, stuck, Some(1)).await,
        "a claim wins a row that backs off"
    );
    assert_eq!(
        candidates_at(s, retry - Duration::microseconds(1)).await,
        vec![plain]
    );

    // At its retry time it is a candidate again, behind `late`, idle since before the key.
    let late = idle(s, "late", 55).await;
    assert_eq!(candidates_at(s, retry).await, vec![plain, late, stuck]);
    let found = s
        .select_candidates(&ServedClusters::default(), retry, retry - window(), 50)
        .await
        .expect("select");
    let c = found.iter().find(|c| c.id == stuck).expect("stuck");
    assert_eq!(
        (c.backoff_count, c.last_activity_at),
        (1, now() - mins(600))
    );

    // The explicit retry time holds even if the key says otherwise (another idle window).
    let odd = BackOff {
        retry_key: now() - mins(900),
        ..until("raced", now() + mins(20))
    };
    assert!(back_off(s, stuck, &odd).await);
    assert_eq!(candidates_at(s, now() + mins(19)).await, vec![plain, late]);
    let c = s
        .select_candidates(
            &ServedClusters::default(),
            now() + mins(20),
            now() - mins(10),
            50,
        )
        .await
        .expect("select");
    assert_eq!(c[0].id, stuck, "sorted at its (old) key once due");
    assert_eq!(c[0].backoff_count, 2);

    // The CAS: the activity seen, an awake row, a row that exists.
    let seen = row(s, plain).await.last_activity_at;
    let b = until("not_found", retry);
    assert!(
        !s.back_off(plain, seen - mins(1), &b)
            .await
            .expect("back_off")
    );
    assert!(claim(s, plain, Some(1)).await);
    assert!(!s.back_off(plain, seen, &b).await.expect("back_off"));
    assert!(
        !s.back_off(Uuid::new_v4(), seen, &b)
            .await
            .expect("back_off")
    );
    let listed = s.backed_off(now(), 50).await.expect("backed_off");
    assert_eq!(listed.iter().map(|b| b.id).collect::<Vec<_>>(), vec![stuck]);
}

/// Activity newer than the backoff (a deploy, recorded traffic) ends it at once, with nobody
/// clearing a column: the host only bumps `last_activity_at`.
pub async fn backoff_ends_with_newer_activity<S: Store + HostOps>(s: &S) {
    let redeployed = idle(s, "redeployed", 600).await;
    let traffic = idle(s, "traffic", 600).await;
    for id in [redeployed, traffic] {
        assert!(back_off(s, id, &until("fights_back", now() + mins(600))).await);
    }
    assert!(candidate_ids(s, 50).await.is_empty());
    assert_eq!(s.backed_off(now(), 50).await.expect("backed_off").len(), 2);

    assert!(
        s.bump_activity(redeployed, now() - mins(45))
            .await
            .expect("bump")
    );
    assert!(
        s.record_traffic(traffic, now() - mins(40))
            .await
            .expect("traffic")
    );
    let found = s
        .select_candidates(&ServedClusters::default(), now(), idle_before(), 50)
        .await
        .expect("select");
    let ids: Vec<Uuid> = found.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![redeployed, traffic], "sorted by activity again");
    assert_eq!(
        found[0].backoff_count, 1,
        "the count stays until a sleep or a wake clears it"
    );
    assert!(
        s.backed_off(now(), 50)
            .await
            .expect("backed_off")
            .is_empty()
    );

    // The row can be claimed again, which clears the backoff entirely.
    assert!(claim(s, redeployed, Some(1)).await);
    assert!(
        s.revert_sleep(redeployed, now(), now())
            .await
            .expect("revert")
    );
    let found = s
        .select_candidates(&ServedClusters::default(), now(), idle_before(), 50)
        .await
        .expect("select");
    assert_eq!(found[0].id, redeployed);
    assert_eq!(found[0].backoff_count, 0, "a claim clears the backoff");
}

/// A wake clears a backoff (and its count): the next sleep attempt starts afresh.
pub async fn backoff_is_cleared_by_a_wake<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 600).await;
    assert!(back_off(s, id, &until("activity_unknown", now() + mins(600))).await);
    assert!(back_off(s, id, &until("activity_unknown", now() + mins(600))).await);
    assert!(
        s.finish_wake(
            id,
            SleepState::Awake,
            row(s, id).await.sleep_state_changed_at,
            now()
        )
        .await
        .expect("wake")
    );
    assert!(
        s.backed_off(now(), 50)
            .await
            .expect("backed_off")
            .is_empty()
    );
    let later = now() + mins(60);
    let found = s
        .select_candidates(&ServedClusters::default(), later, later - window(), 50)
        .await
        .expect("select");
    assert_eq!(found.len(), 1);
    assert_eq!(
        (
            found[0].id,
            found[0].backoff_count,
            found[0].last_activity_at
        ),
        (id, 0, now())
    );
}

/// `backed_off` lists the rows whose backoff still runs, soonest retry first, with reason,
/// next attempt and count; not those due, those whose activity moved, nor those asleep.
pub async fn backed_off_lists_reason_and_next_attempt<S: Store + HostOps>(s: &S) {
    let late = idle(s, "late", 600).await;
    let soon = idle(s, "soon", 600).await;
    let due = idle(s, "due", 600).await;
    let moved = idle(s, "moved", 600).await;
    let slept = idle(s, "slept", 600).await;
    assert!(back_off(s, late, &until("not_found", now() + mins(90))).await);
    assert!(back_off(s, late, &until("not_found", now() + mins(120))).await);
    assert!(back_off(s, soon, &until("protected_namespace", now() + mins(5))).await);
    assert!(back_off(s, due, &until("raced", now())).await);
    assert!(back_off(s, moved, &until("malformed", now() + mins(5))).await);
    assert!(
        s.bump_activity(moved, now() - mins(500))
            .await
            .expect("bump")
    );
    assert!(back_off(s, slept, &until("scale_failed", now() + mins(5))).await);
    let at = row(s, slept).await.last_activity_at;
    assert!(
        s.set_sleep_state(slept, SleepState::Asleep, at, Some(1))
            .await
            .expect("asleep")
    );

    let listed = s.backed_off(now(), 50).await.expect("backed_off");
    let summary: Vec<(Uuid, &str, &str, DateTime<Utc>, u32)> = listed
        .iter()
        .map(|b| {
            (
                b.id,
                b.provider_id.as_str(),
                b.reason.as_str(),
                b.retry_after,
                b.backoff_count,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                soon,
                "k8s:apps/soon",
                "protected_namespace",
                now() + mins(5),
                1
            ),
            (late, "k8s:apps/late", "not_found", now() + mins(120), 2),
        ]
    );
    let first = s.backed_off(now(), 1).await.expect("backed_off");
    assert_eq!(first.iter().map(|b| b.id).collect::<Vec<_>>(), vec![soon]);
    assert_eq!(
        s.backed_off(now() - mins(1), 50)
            .await
            .expect("backed_off")
            .len(),
        3,
        "a minute earlier `due` still backed off"
    );
}
