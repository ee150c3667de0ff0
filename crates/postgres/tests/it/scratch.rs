//! `ScratchDatabase`, the throwaway database of the demo and the bench: created migrated on
//! the server `DATABASE_URL` names, isolated from it, and gone after `drop_database`.

use idle_scaler_core::Store;
use idle_scaler_postgres::{PgStore, ScratchDatabase};
use idle_scaler_testkit::contract;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::PgPoolOptions;

async fn exists(admin: &PgStore, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(admin.pool())
        .await
        .expect("pg_database")
}

#[tokio::test]
async fn scratch_database_is_created_migrated_and_dropped() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let admin = PgStore::connect(&url).await.expect("connect");
    let scratch = ScratchDatabase::create(&url, "idle_scaler_it", PgPoolOptions::new())
        .await
        .expect("create");
    let name = scratch.name().to_owned();
    assert!(name.starts_with("idle_scaler_it_"), "{name}");
    assert!(exists(&admin, &name).await);

    let store = scratch.store();
    let id = store
        .insert(NewDeployment::k8s("apps", "web", contract::t0()))
        .await
        .expect("insert into the migrated schema");
    assert!(store.get(id).await.expect("get").is_some());

    // An open connection (the store clone above) does not keep the database alive.
    scratch.drop_database().await.expect("drop");
    assert!(!exists(&admin, &name).await);
}
