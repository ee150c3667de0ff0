//! The `Store` contract, written once and run against every store: the in-memory one (in
//! this crate's tests) and `PgStore` (in `idle-scaler-postgres`'s tests, one fresh database
//! per case). Each case starts from an empty store and panics on a violation.
//!
//! Run them all with [`contract_cases!`](crate::contract_cases), which hands the list of case
//! names to a macro of the caller's that wraps each in a test.

use chrono::{DateTime, Duration, TimeZone, Utc};
use idle_scaler_core::{ConfirmOutcome, SleepState, Store};
use uuid::Uuid;

use crate::host::{HostOps, NewDeployment};

/// Calls `$m! { case, case, ... }` with every contract case name, so a test file turns each
/// into a test of its store without keeping its own list (which could drift).
#[macro_export]
macro_rules! contract_cases {
    ($m:ident) => {
        $m! {
            get_round_trips_every_column,
            get_of_missing_row_is_none,
            select_takes_idle_healthy_awake_rows,
            select_excludes_pinned,
            select_excludes_expired,
            select_excludes_unhealthy,
            select_excludes_sleeping_and_asleep,
            select_excludes_recent_activity,
            select_orders_oldest_first_and_limits,
            claim_flips_awake_to_sleeping,
            claim_rechecks_the_whole_predicate,
            claim_loses_to_activity_bump,
            claim_wins_once,
            claim_rejects_zero_replicas,
            confirm_flips_sleeping_to_asleep,
            confirm_loses_to_wake,
            confirm_loses_to_activity,
            confirm_of_row_not_sleeping,
            revert_only_from_sleeping,
            stale_intents_are_old_sleeping_rows,
            settle_intent_is_a_cas_on_the_intent,
            finish_wake_is_a_cas_on_state,
            touch_awake_only_when_awake,
            record_traffic_moves_activity_forward_only_while_awake,
            count_asleep_counts_asleep_only,
            list_sleeping_lists_sleeping_and_asleep,
            host_ops_change_what_they_say,
        }
    };
}

/// A fixed instant the cases build on (deterministic, far from now).
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

/// "now" of the cases; rows idle when active at or before `idle_before()`.
fn now() -> DateTime<Utc> {
    t0() + mins(120)
}

fn idle_before() -> DateTime<Utc> {
    now() - mins(30)
}

async fn insert<S: HostOps>(s: &S, row: NewDeployment) -> Uuid {
    s.insert(row).await.expect("insert")
}

/// An idle, sleepable app named `name`, last active `ago` minutes before `now()`.
async fn idle<S: HostOps>(s: &S, name: &str, ago: i64) -> Uuid {
    insert(s, NewDeployment::k8s("apps", name, now() - mins(ago))).await
}

async fn candidate_ids<S: Store>(s: &S, limit: u32) -> Vec<Uuid> {
    s.select_candidates(now(), idle_before(), limit)
        .await
        .expect("select_candidates")
        .into_iter()
        .map(|c| c.id)
        .collect()
}

async fn row<S: Store>(s: &S, id: Uuid) -> idle_scaler_core::DeploymentRecord {
    s.get(id).await.expect("get").expect("row exists")
}

/// Claims `id` as the tick would, with the activity it was selected with.
async fn claim<S: Store>(s: &S, id: Uuid, replicas: Option<i32>) -> bool {
    let seen = row(s, id).await.last_activity_at;
    s.claim_sleep(id, seen, idle_before(), replicas, now())
        .await
        .expect("claim_sleep")
}

/// `get` returns what was inserted, timestamps cut to microseconds as `timestamptz` keeps them.
pub async fn get_round_trips_every_column<S: Store + HostOps>(s: &S) {
    let at = t0() + Duration::nanoseconds(1_234_567_891);
    let new = NewDeployment::k8s("ns", "app", at)
        .status("degraded")
        .always_on(true)
        .expires_at(at + mins(5))
        .sleep_state(SleepState::Asleep, at + mins(1), Some(3));
    let id = insert(s, new.clone()).await;
    let got = row(s, id).await;
    let micros = t0() + Duration::microseconds(1_234_567);
    assert_eq!(got.id, new.id);
    assert_eq!(got.provider_id, "k8s:ns/app");
    assert_eq!(got.status, "degraded");
    assert!(got.always_on);
    assert_eq!(got.expires_at, Some(micros + mins(5)));
    assert_eq!(got.last_activity_at, micros);
    assert_eq!(got.sleep_state, SleepState::Asleep);
    assert_eq!(got.sleep_state_changed_at, micros + mins(1));
    assert_eq!(got.replicas_before_sleep, Some(3));
    assert_eq!(s.read(id).await.expect("read"), Some(got));
}

/// A missing row is `None`, not an error.
pub async fn get_of_missing_row_is_none<S: Store + HostOps>(s: &S) {
    assert_eq!(s.get(Uuid::new_v4()).await.expect("get"), None);
}

/// The basic candidate: healthy, awake, unpinned, no expiry, idle. Fields as stored.
pub async fn select_takes_idle_healthy_awake_rows<S: Store + HostOps>(s: &S) {
    let id = idle(s, "idle", 60).await;
    let found = s
        .select_candidates(now(), idle_before(), 50)
        .await
        .expect("select");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].provider_id, "k8s:apps/idle");
    assert_eq!(found[0].last_activity_at, now() - mins(60));
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
        .select_candidates(now(), idle_before(), 50)
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

    let stale = s.stale_intents(threshold).await.expect("stale_intents");
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
        !s.finish_wake(asleep, SleepState::Sleeping, now())
            .await
            .expect("wake")
    );
    assert_eq!(row(s, asleep).await.sleep_state, SleepState::Asleep);

    for id in [asleep, sleeping] {
        let from = row(s, id).await.sleep_state;
        assert!(s.finish_wake(id, from, now()).await.expect("wake"));
        let r = row(s, id).await;
        assert_eq!(r.sleep_state, SleepState::Awake);
        assert_eq!(r.last_activity_at, now());
        assert_eq!(r.sleep_state_changed_at, now());
        assert_eq!(r.replicas_before_sleep, None);
        // A second wake of the same read loses: the state moved.
        assert!(!s.finish_wake(id, from, now()).await.expect("wake"));
    }
    assert!(
        !s.finish_wake(Uuid::new_v4(), SleepState::Asleep, now())
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

/// The gauge: `asleep` rows only.
pub async fn count_asleep_counts_asleep_only<S: Store + HostOps>(s: &S) {
    assert_eq!(s.count_asleep().await.expect("count"), 0);
    let old = now() - mins(60);
    for (i, state) in [
        SleepState::Asleep,
        SleepState::Asleep,
        SleepState::Sleeping,
        SleepState::Awake,
    ]
    .into_iter()
    .enumerate()
    {
        insert(
            s,
            NewDeployment::k8s("apps", &format!("a{i}"), old).sleep_state(state, old, None),
        )
        .await;
    }
    assert_eq!(s.count_asleep().await.expect("count"), 2);
}

/// Status listing: `asleep` and `sleeping` rows, by state change time then id.
pub async fn list_sleeping_lists_sleeping_and_asleep<S: Store + HostOps>(s: &S) {
    assert!(s.list_sleeping().await.expect("list").is_empty());
    let old = now() - mins(60);
    let asleep = insert(
        s,
        NewDeployment::k8s("apps", "asleep", old).sleep_state(
            SleepState::Asleep,
            now() - mins(2),
            Some(2),
        ),
    )
    .await;
    let sleeping = insert(
        s,
        NewDeployment::k8s("apps", "sleeping", old).sleep_state(
            SleepState::Sleeping,
            now() - mins(3),
            Some(1),
        ),
    )
    .await;
    insert(s, NewDeployment::k8s("apps", "awake", old)).await;
    let listed = s.list_sleeping().await.expect("list");
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![sleeping, asleep]
    );
    assert_eq!(listed[1], row(s, asleep).await);
}

/// The fixtures themselves: each changes its column and reports whether the row existed;
/// a duplicate id and a restore count of 0 are refused as the schema refuses them.
pub async fn host_ops_change_what_they_say<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let missing = Uuid::new_v4();
    assert!(
        s.insert(NewDeployment::k8s("apps", "dup", now()).id(id))
            .await
            .is_err()
    );
    assert!(
        s.insert(NewDeployment::k8s("apps", "zero", now()).sleep_state(
            SleepState::Asleep,
            now(),
            Some(0)
        ))
        .await
        .is_err()
    );

    assert!(s.bump_activity(id, now()).await.expect("bump"));
    assert!(s.set_always_on(id, true).await.expect("pin"));
    assert!(
        s.set_expires_at(id, Some(now() + mins(9)))
            .await
            .expect("expiry")
    );
    assert!(s.set_status(id, "failed").await.expect("status"));
    assert!(
        s.set_sleep_state(id, SleepState::Sleeping, now() - mins(1), Some(7))
            .await
            .expect("state")
    );
    assert!(
        s.set_sleep_state(id, SleepState::Asleep, now(), Some(0))
            .await
            .is_err()
    );
    let r = row(s, id).await;
    assert_eq!(r.last_activity_at, now());
    assert!(r.always_on);
    assert_eq!(r.expires_at, Some(now() + mins(9)));
    assert_eq!(r.status, "failed");
    assert_eq!(
        (
            r.sleep_state,
            r.sleep_state_changed_at,
            r.replicas_before_sleep
        ),
        (SleepState::Sleeping, now() - mins(1), Some(7))
    );
    assert!(s.set_expires_at(id, None).await.expect("expiry"));
    assert_eq!(row(s, id).await.expires_at, None);
    assert_eq!(s.rows().await.expect("rows"), vec![row(s, id).await]);

    assert!(!s.bump_activity(missing, now()).await.expect("bump"));
    assert!(!s.set_always_on(missing, true).await.expect("pin"));
    assert!(!s.set_expires_at(missing, None).await.expect("expiry"));
    assert!(!s.set_status(missing, "x").await.expect("status"));
    assert!(
        !s.set_sleep_state(missing, SleepState::Awake, now(), None)
            .await
            .expect("state")
    );
    assert!(s.delete(id).await.expect("delete"));
    assert!(!s.delete(id).await.expect("delete"));
    assert_eq!(s.read(id).await.expect("read"), None);
}
