//! Several clusters: every query that chooses rows to act on takes the served clusters, and
//! rows of clusters not served never leave the store.

use idle_scaler_core::{ClusterName, ServedClusters, SleepState, Store};
use uuid::Uuid;

use super::{idle_before, insert, mins, now};
use crate::host::{HostOps, NewDeployment};

fn named(names: &[&str]) -> impl Iterator<Item = ClusterName> {
    names
        .iter()
        .map(|n| ClusterName::new(n).expect("a valid cluster name"))
        .collect::<Vec<_>>()
        .into_iter()
}

/// `default`: the default cluster too; `names`: named clusters.
fn serving(default: bool, names: &[&str]) -> ServedClusters {
    ServedClusters::new(default, named(names))
}

/// An idle app at `provider_id`, last active `ago` minutes before `now()`.
async fn idle_at<S: HostOps>(s: &S, provider_id: &str, ago: i64) -> Uuid {
    insert(s, NewDeployment::new(provider_id, now() - mins(ago))).await
}

async fn selected<S: Store>(s: &S, served: &ServedClusters, limit: u32) -> Vec<Uuid> {
    s.select_candidates(served, now(), idle_before(), limit)
        .await
        .expect("select_candidates")
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Each instance sees the candidates of the clusters it serves, and only those: the
/// default cluster's (`k8s:`), a named one's (`k8s@<name>:`); a third cluster's rows, however
/// idle, are never returned, nor ids that only look like a cluster's.
pub async fn select_returns_only_rows_of_served_clusters<S: Store + HostOps>(s: &S) {
    let home = idle_at(s, "k8s:apps/web", 60).await;
    let east = idle_at(s, "k8s@east:apps/web", 70).await;
    let west = idle_at(s, "k8s@west:apps/web", 80).await;
    for other in [
        "k8s@north:apps/web",
        "k8s@east",
        "k8seast:apps/web",
        "k8s@eastern:apps/web",
        "k8s@eas:apps/web",
    ] {
        idle_at(s, other, 600).await;
    }
    assert_eq!(
        selected(s, &ServedClusters::default(), 50).await,
        vec![home]
    );
    assert_eq!(
        selected(s, &serving(false, &["east"]), 50).await,
        vec![east]
    );
    assert_eq!(
        selected(s, &serving(false, &["east", "west"]), 50).await,
        vec![west, east]
    );
    assert_eq!(
        selected(s, &serving(true, &["west"]), 50).await,
        vec![west, home]
    );
    assert!(
        selected(s, &serving(false, &["south"]), 50)
            .await
            .is_empty()
    );
}

/// Across clusters the candidates come oldest first, and `limit` bounds the whole answer,
/// shared fairly: each cluster's oldest comes before any cluster's second, so one cluster's
/// backlog (its API down, its apps left alone tick after tick) never takes every slot.
pub async fn select_merges_clusters_oldest_first_within_the_limit<S: Store + HostOps>(s: &S) {
    let a = idle_at(s, "k8s@east:apps/a", 90).await;
    let b = idle_at(s, "k8s:apps/b", 80).await;
    let c = idle_at(s, "k8s@east:apps/c", 70).await;
    let d = idle_at(s, "k8s:apps/d", 60).await;
    idle_at(s, "k8s@west:apps/old", 900).await;
    let both = serving(true, &["east"]);
    assert_eq!(selected(s, &both, 50).await, vec![a, b, c, d]);
    assert_eq!(selected(s, &both, 3).await, vec![a, b, c]);
    assert_eq!(selected(s, &both, 1).await, vec![a]);

    // East's backlog is older than anything of the default cluster: the default cluster
    // still gets its share of a small limit.
    let backlog = [
        idle_at(s, "k8s@east:apps/e1", 300).await,
        idle_at(s, "k8s@east:apps/e2", 290).await,
        idle_at(s, "k8s@east:apps/e3", 280).await,
    ];
    assert_eq!(selected(s, &both, 2).await, vec![backlog[0], b]);
    assert_eq!(
        selected(s, &both, 4).await,
        vec![backlog[0], backlog[1], b, d]
    );
}

/// Recovery of an instance sees its clusters' stale intents and those of rows of no cluster
/// (another provider's id, settled without Kubernetes), never another cluster's; its drift
/// checks see its clusters' rows only.
pub async fn stale_intents_and_drift_checks_skip_unserved_clusters<S: Store + HostOps>(s: &S) {
    let at = now() - mins(60);
    let mut sleeping = Vec::new();
    let mut asleep = Vec::new();
    for id in [
        "k8s:apps/a",
        "k8s@east:apps/a",
        "k8s@west:apps/a",
        "fly:app",
    ] {
        let row = || NewDeployment::new(id, at - mins(5));
        let sleeping_row = row().sleep_state(SleepState::Sleeping, at, Some(1));
        sleeping.push(insert(s, sleeping_row).await);
        asleep.push(insert(s, row().sleep_state(SleepState::Asleep, at, Some(1))).await);
    }
    let stale_ids = |served: ServedClusters| async move {
        let mut ids: Vec<Uuid> = s
            .stale_intents(&served, now())
            .await
            .expect("stale_intents")
            .into_iter()
            .map(|i| i.id)
            .collect();
        ids.sort();
        ids
    };
    let due_ids = |served: ServedClusters| async move {
        let mut ids: Vec<Uuid> = s
            .asleep_to_check(&served, now(), 50)
            .await
            .expect("asleep_to_check")
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    };
    let pick = |v: &[Uuid], which: &[usize]| {
        let mut ids: Vec<Uuid> = which.iter().map(|i| v[*i]).collect();
        ids.sort();
        ids
    };
    // Default only: its row (and, for recovery, the foreign one).
    assert_eq!(
        stale_ids(ServedClusters::default()).await,
        pick(&sleeping, &[0, 3])
    );
    assert_eq!(
        due_ids(ServedClusters::default()).await,
        pick(&asleep, &[0])
    );
    // East only: east's row (and the foreign intent); never west's or the default cluster's.
    assert_eq!(
        stale_ids(serving(false, &["east"])).await,
        pick(&sleeping, &[1, 3])
    );
    assert_eq!(
        due_ids(serving(false, &["east"])).await,
        pick(&asleep, &[1])
    );
    // Default and west.
    assert_eq!(
        stale_ids(serving(true, &["west"])).await,
        pick(&sleeping, &[0, 2, 3])
    );
    assert_eq!(
        due_ids(serving(true, &["west"])).await,
        pick(&asleep, &[0, 2])
    );
}

/// Drift checks across clusters come least recently checked first, within `limit` in all,
/// shared fairly between the clusters as the candidates are.
pub async fn drift_checks_merge_clusters_oldest_first_within_the_limit<S: Store + HostOps>(s: &S) {
    let asleep_since = |id: &str, ago: i64| {
        let at = now() - mins(ago);
        NewDeployment::new(id, at - mins(1)).sleep_state(SleepState::Asleep, at, Some(1))
    };
    let a = insert(s, asleep_since("k8s@east:apps/a", 90)).await;
    let b = insert(s, asleep_since("k8s:apps/b", 80)).await;
    let c = insert(s, asleep_since("k8s@east:apps/c", 70)).await;
    insert(s, asleep_since("k8s@west:apps/old", 900)).await;
    let both = serving(true, &["east"]);
    let due = |limit: u32| {
        let both = both.clone();
        async move {
            s.asleep_to_check(&both, now(), limit)
                .await
                .expect("asleep_to_check")
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(due(50).await, vec![a, b, c]);
    assert_eq!(due(2).await, vec![a, b]);
    assert!(due(0).await.is_empty());
    // East's rows, checked less recently than any other, do not take every slot.
    let e = insert(s, asleep_since("k8s@east:apps/e", 300)).await;
    assert_eq!(due(2).await, vec![e, b]);
}
