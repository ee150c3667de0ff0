//! Reads: one row by id, the asleep gauges, the status listing.

use chrono::Duration;
use idle_scaler_core::{SleepState, Store};
use uuid::Uuid;

use super::{insert, mins, now, row, t0};
use crate::host::{HostOps, NewDeployment};

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

/// The waker's lookup: exact `provider_id` only (no prefix or case folding), the row with
/// the latest activity when several share it, `None` for an app the table does not list.
pub async fn find_by_provider_id_finds_the_latest_row_of_that_app<S: Store + HostOps>(s: &S) {
    assert_eq!(
        s.find_by_provider_id("k8s:apps/web").await.expect("find"),
        None
    );
    let older = insert(s, NewDeployment::k8s("apps", "web", t0())).await;
    let newer = insert(s, NewDeployment::k8s("apps", "web", t0() + mins(5))).await;
    insert(s, NewDeployment::k8s("apps", "web2", t0() + mins(9))).await;
    insert(s, NewDeployment::k8s("other", "web", t0() + mins(9))).await;
    let found = s.find_by_provider_id("k8s:apps/web").await.expect("find");
    assert_eq!(found.map(|r| r.id), Some(newer));
    assert_ne!(older, newer);
    for absent in ["k8s:apps/we", "k8s:APPS/web", "apps/web", ""] {
        assert_eq!(
            s.find_by_provider_id(absent).await.expect("find"),
            None,
            "{absent:?}"
        );
    }
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

/// The replicas-asleep gauge: the restore counts of `asleep` rows, a row without one counted
/// as the default; `sleeping` and `awake` rows count nothing.
pub async fn sum_asleep_replicas_sums_restore_counts_of_asleep_rows<S: Store + HostOps>(s: &S) {
    assert_eq!(s.sum_asleep_replicas(4).await.expect("sum"), 0);
    let old = now() - mins(60);
    for (i, (state, replicas)) in [
        (SleepState::Asleep, Some(3)),
        (SleepState::Asleep, Some(2)),
        (SleepState::Asleep, None),
        (SleepState::Sleeping, Some(7)),
        (SleepState::Awake, None),
    ]
    .into_iter()
    .enumerate()
    {
        insert(
            s,
            NewDeployment::k8s("apps", &format!("a{i}"), old).sleep_state(state, old, replicas),
        )
        .await;
    }
    assert_eq!(s.sum_asleep_replicas(4).await.expect("sum"), 3 + 2 + 4);
    assert_eq!(s.sum_asleep_replicas(1).await.expect("sum"), 3 + 2 + 1);
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
