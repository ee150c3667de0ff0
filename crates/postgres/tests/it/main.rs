//! `PgStore` against a real PostgreSQL (`DATABASE_URL`); `#[sqlx::test]` gives each test a
//! fresh database. One binary, one module per topic.

mod adaptive; // the adaptive policy through the real job on PostgreSQL
mod chaos; // both real adapters under concurrency and injected Kubernetes faults
mod clusters; // several clusters: one ordered index walk per cluster, the index's upgrade
mod connect; // connecting: timeouts, bad URLs, passwords never echoed
mod contract; // the shared `Store` contract suite on the reference schema
mod db_faults; // the database failing under the job: terminated connections, a dead server
mod host_integration; // a host's own table: the integration SQL, then the contract on it
mod host_migrations; // a host's own sqlx migrations beside the library's, in either order
mod liveness; // backed-off and foreign rows at scale never starve the candidate query
mod migrate; // migrations: schema, idempotence, incompatible tables
mod races; // writes on another connection between a tick's select and its CAS
mod scratch; // `ScratchDatabase`, the demo's and the bench's throwaway database
mod starvation; // liveness: rows the tick can never sleep do not starve the real ones
mod two_runners; // two job instances on one database, also serving overlapping clusters

/// The text of `EXPLAIN` output (the last result set of `sql`, which prepares and explains a
/// store query), one line per plan node.
async fn explain(pool: &sqlx::PgPool, sql: String) -> String {
    use sqlx::Row;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}
