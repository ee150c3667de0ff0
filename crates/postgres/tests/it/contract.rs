//! The `Store` contract suite (shared with the in-memory store) against `PgStore`.

use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::contract;
use sqlx::PgPool;

macro_rules! pg_case {
    ($($name:ident),* $(,)?) => {
        $(
            #[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
            async fn $name(pool: PgPool) {
                contract::$name(&PgStore::from_pool(pool)).await;
            }
        )*
    };
}

idle_scaler_testkit::contract_cases!(pg_case);
