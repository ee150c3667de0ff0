//! The `Store` contract against the in-memory store, plus what only it offers (failure
//! injection, call counts, sharing between clones).

use idle_scaler_core::{Error, Store};
use idle_scaler_testkit::contract;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::{MemoryStore, StoreMethod};

macro_rules! memory_case {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                contract::$name(&MemoryStore::new()).await;
            }
        )*
    };
}

idle_scaler_testkit::contract_cases!(memory_case);

#[tokio::test]
async fn injected_failure_fires_once_for_its_method_only() {
    let s = MemoryStore::new();
    s.fail_next(StoreMethod::CountAsleep, Error::unavailable("injected"));
    assert!(
        s.get(uuid::Uuid::new_v4()).await.is_ok(),
        "another method is unaffected"
    );
    assert!(
        matches!(s.count_asleep().await, Err(Error::Unavailable { message: m, .. }) if m == "injected")
    );
    assert_eq!(s.count_asleep().await.expect("second call"), 0);
    assert_eq!(s.calls(StoreMethod::CountAsleep), 2);
    assert_eq!(s.total_calls(), 3);
}

#[tokio::test]
async fn clones_share_rows() {
    let s = MemoryStore::new();
    let other = s.clone();
    let id = s
        .insert(NewDeployment::k8s("ns", "app", contract::t0()))
        .await
        .expect("insert");
    assert!(other.get(id).await.expect("get").is_some());
}

/// The liveness case at full size: 10,000 backed-off rows of each lasting skip, and as many
/// foreign ones, all older than the real candidates.
#[tokio::test]
async fn backed_off_rows_never_starve_candidates_at_10k_per_kind() {
    contract::backed_off_rows_never_starve_at(&MemoryStore::new(), 10_000).await;
}
