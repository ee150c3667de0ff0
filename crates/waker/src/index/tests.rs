use chrono::TimeDelta;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::MemoryStore;

use super::*;

fn asleep(name: &str, at: DateTime<Utc>) -> NewDeployment {
    NewDeployment::k8s("apps", name, at).sleep_state(SleepState::Asleep, at, Some(2))
}

#[tokio::test]
async fn a_refresh_lists_the_asleep_and_sleeping_rows_and_nothing_else() {
    let store = MemoryStore::default();
    let past = Utc::now() - TimeDelta::hours(2);
    store.insert(asleep("web", past)).await.expect("insert");
    store
        .insert(NewDeployment::k8s("apps", "going", past).sleep_state(
            SleepState::Sleeping,
            past,
            Some(1),
        ))
        .await
        .expect("insert");
    store
        .insert(NewDeployment::k8s("apps", "up", past))
        .await
        .expect("insert");
    let index = AppIndex::default();
    assert!(
        index.get("k8s:apps/web").is_none(),
        "nothing before a refresh"
    );
    index.refresh(&store).await.expect("refresh");
    assert_eq!(
        index.get("k8s:apps/web").map(|r| r.sleep_state),
        Some(SleepState::Asleep)
    );
    assert_eq!(
        index.get("k8s:apps/going").map(|r| r.sleep_state),
        Some(SleepState::Sleeping)
    );
    assert!(
        index.get("k8s:apps/up").is_none(),
        "an awake app is not indexed"
    );
    assert!(index.get("k8s:apps/nope").is_none());
}

#[tokio::test]
async fn of_several_rows_for_one_app_the_one_with_the_latest_activity_is_kept() {
    let store = MemoryStore::default();
    let past = Utc::now() - TimeDelta::hours(2);
    store.insert(asleep("web", past)).await.expect("insert");
    let later = store
        .insert(asleep("web", past + TimeDelta::minutes(5)))
        .await
        .expect("insert");
    let index = AppIndex::default();
    index.refresh(&store).await.expect("refresh");
    assert_eq!(index.get("k8s:apps/web").map(|r| r.id), Some(later));
}

#[tokio::test]
async fn a_woken_app_stays_known_as_awake_until_listed_asleep_again() {
    let store = MemoryStore::default();
    let past = Utc::now() - TimeDelta::hours(2);
    store.insert(asleep("web", past)).await.expect("insert");
    let index = AppIndex::default();
    index.refresh(&store).await.expect("refresh");
    let now = Utc::now();
    index.mark_awake("k8s:apps/web", now);
    let row = index.get("k8s:apps/web").expect("still known");
    assert_eq!(row.sleep_state, SleepState::Awake);
    assert_eq!(row.sleep_state_changed_at, now);
    // Marking again (a joined wake of an awake app) keeps the first time.
    index.mark_awake("k8s:apps/web", now + TimeDelta::seconds(30));
    assert_eq!(
        index.get("k8s:apps/web").map(|r| r.sleep_state_changed_at),
        Some(now)
    );
    // The store still lists it asleep (the wake's write is the job's): a refresh read
    // before the mark would hide the wake, a later one says what the store says.
    index.refresh(&store).await.expect("refresh");
    assert_eq!(
        index.get("k8s:apps/web").map(|r| r.sleep_state),
        Some(SleepState::Asleep),
        "listed after the mark: the store's word"
    );
}

#[tokio::test]
async fn a_wake_newer_than_the_last_list_wins_over_it() {
    let store = MemoryStore::default();
    let past = Utc::now() - TimeDelta::hours(2);
    store.insert(asleep("web", past)).await.expect("insert");
    let index = AppIndex::default();
    index.refresh(&store).await.expect("refresh");
    index.mark_awake("k8s:apps/web", Utc::now());
    assert_eq!(
        index.get("k8s:apps/web").map(|r| r.sleep_state),
        Some(SleepState::Awake)
    );
}

#[tokio::test(start_paused = true)]
async fn a_woken_app_is_forgotten_after_the_memory_once_no_longer_listed() {
    let store = MemoryStore::default();
    let past = Utc::now() - TimeDelta::hours(2);
    let id = store.insert(asleep("web", past)).await.expect("insert");
    let index = AppIndex::default();
    index.refresh(&store).await.expect("refresh");
    index.mark_awake("k8s:apps/web", Utc::now());
    store.delete(id).await.expect("delete");
    tokio::time::advance(Duration::from_secs(1)).await;
    index.refresh(&store).await.expect("refresh");
    assert!(index.get("k8s:apps/web").is_some(), "woken, remembered");
    tokio::time::advance(WOKEN_MEMORY).await;
    assert!(index.get("k8s:apps/web").is_none(), "forgotten");
}

#[tokio::test(start_paused = true)]
async fn a_lookup_waits_for_the_first_load_at_most_the_timeout() {
    let index = Arc::new(AppIndex::default());
    let started = Instant::now();
    index.loaded(Duration::from_secs(5)).await;
    assert_eq!(started.elapsed(), Duration::from_secs(5), "never loaded");
    let store = MemoryStore::default();
    let waiting = tokio::spawn({
        let index = index.clone();
        async move {
            let started = Instant::now();
            index.loaded(Duration::from_secs(60)).await;
            started.elapsed()
        }
    });
    tokio::task::yield_now().await;
    index.refresh(&store).await.expect("refresh");
    assert!(waiting.await.expect("join") < Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn the_refresh_task_reads_every_period_and_stops_with_the_index() {
    let store = MemoryStore::default();
    let index = Arc::new(AppIndex::default());
    // Every refresh marks the channel changed, loaded or not before.
    let mut refreshed = index.loaded.subscribe();
    let task = spawn_refresh(Arc::downgrade(&index), Arc::new(store.clone()), REFRESH);
    refreshed.changed().await.expect("first refresh");
    assert!(index.get("k8s:apps/web").is_none());
    let past = Utc::now() - TimeDelta::hours(2);
    store.insert(asleep("web", past)).await.expect("insert");
    let started = Instant::now();
    refreshed.changed().await.expect("second refresh");
    assert_eq!(started.elapsed(), REFRESH, "one period later");
    assert!(
        index.get("k8s:apps/web").is_some(),
        "the next refresh saw it"
    );
    drop(index);
    tokio::time::sleep(REFRESH).await;
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("the task ended with the index")
        .expect("join");
}
