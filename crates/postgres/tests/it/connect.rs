//! Bad input: an unreachable or silent server fails within the bound, naming host and port and
//! never the password; a bad URL does not echo the password either.

use std::time::{Duration, Instant};

use idle_scaler_core::Store;
use idle_scaler_postgres::{DEFAULT_CONNECT_TIMEOUT, Error, PgStore};
use sqlx::PgPool;

#[tokio::test]
async fn unreachable_server_fails_fast_naming_host_and_port_not_password() {
    let started = Instant::now();
    let err = PgStore::connect("postgres://u:secret@127.0.0.1:1/db")
        .await
        .expect_err("port 1 is closed");
    assert!(
        started.elapsed() <= DEFAULT_CONNECT_TIMEOUT + Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
    assert!(!format!("{err:?}").contains("secret"));
    assert!(matches!(err, Error::Connect { port: 1, .. }), "{err:?}");
    // The core sees a store failure that says the database is unreachable, cause attached.
    let core: idle_scaler_core::Error = err.into();
    assert!(
        matches!(&core, idle_scaler_core::Error::Store { message, source: Some(_) } if message.contains("unreachable")),
        "{core:?}"
    );
}

/// A server that accepts TCP and never answers (a hung proxy, a black-holed route) is the
/// case the bound is for: the connect must give up at the timeout, not hang.
#[tokio::test]
async fn silent_server_fails_at_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let bound = Duration::from_millis(500);
    let started = Instant::now();
    let url = format!("postgres://u:hunter2@127.0.0.1:{port}/db");
    let err = PgStore::connect_with_timeout(&url, bound)
        .await
        .expect_err("nothing answers");
    let took = started.elapsed();
    assert!(
        took >= bound && took < bound + Duration::from_secs(2),
        "took {took:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    holder.abort();
}

#[tokio::test]
async fn invalid_url_does_not_echo_the_password() {
    let err = PgStore::connect("postgres://u:secret@127.0.0.1:notaport/db")
        .await
        .expect_err("bad port");
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");
}

/// The test database's own options, turned back into a URL.
fn url_of(pool: &PgPool) -> String {
    let opts = pool.connect_options();
    let db = opts.get_database().expect("test database name");
    format!(
        "postgres://{}@{}:{}/{db}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port()
    )
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn connect_to_a_live_server_works(pool: PgPool) {
    let url = url_of(&pool);
    let store = PgStore::connect(&url).await.expect("connect");
    assert_eq!(store.count_asleep().await.expect("count"), 0);
    assert!(!format!("{store:?}").contains("postgres://"));
    store.pool().close().await;
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_lost_database_is_an_unreachable_store_to_the_core(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    pool.close().await;
    let err = store.count_asleep().await.expect_err("pool closed");
    assert!(
        matches!(&err, idle_scaler_core::Error::Store { message, .. } if message.contains("unreachable")),
        "{err:?}"
    );
}

async fn statement_timeout(store: &PgStore) -> String {
    sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(store.pool())
        .await
        .expect("show")
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn statements_are_bounded_and_migrations_are_not(pool: PgPool) {
    let url = url_of(&pool);
    for store in [
        PgStore::connect(&url).await.expect("connect"),
        PgStore::connect_lazy(&url).expect("lazy"),
    ] {
        // A row lock held by the host fails the tick after this, rather than hanging it.
        assert_eq!(statement_timeout(&store).await, "30s");
        store.migrate().await.expect("migrate");
        // The migration's unbounded session setting does not leak back into the pool.
        assert_eq!(statement_timeout(&store).await, "30s");
        store.pool().close().await;
    }
}

#[test]
fn lazy_store_checks_the_url_without_echoing_the_password() {
    let err = PgStore::connect_lazy("postgres://app:secret@[bad").expect_err("bad URL");
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_host_pool_bounds_the_store_statements_and_not_the_host_ones(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    // The host's sessions carry no timeout of ours...
    assert_eq!(statement_timeout(&store).await, "0");
    // ...while every statement of the store runs under the same bound as a connected store.
    assert_eq!(
        store.statement_timeout_in_force().await.expect("in force"),
        "30s"
    );
    assert_eq!(store.count_asleep().await.expect("count"), 0);
    assert_eq!(
        statement_timeout(&store).await,
        "0",
        "the bound leaked into the host pool"
    );
    let connected = PgStore::connect(&url_of(&pool)).await.expect("connect");
    assert_eq!(
        connected
            .statement_timeout_in_force()
            .await
            .expect("in force"),
        "30s"
    );
    connected.pool().close().await;
}
