//! `PgStore` against a real PostgreSQL (`DATABASE_URL`); `#[sqlx::test]` gives each test a
//! fresh database. One binary, one module per topic.

mod chaos;
mod connect;
mod contract;
mod db_faults;
mod host_integration;
mod migrate;
mod races;
mod two_runners;
