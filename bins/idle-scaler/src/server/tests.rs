use super::*;
use axum::routing::get as get_route;

#[test]
fn bearer_scheme_is_case_insensitive() {
    for header in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR  t0k"] {
        assert_eq!(bearer_token(header), Some("t0k"), "{header}");
    }
    assert_eq!(bearer_token("Basic t0k"), None);
    assert_eq!(bearer_token("Bearert0k"), None);
}

#[test]
fn a_wake_of_another_instances_cluster_is_misdirected_not_a_server_error() {
    let id = Uuid::nil();
    let res = ApiError::Job(Error::ClusterNotServed {
        id,
        cluster: "west".into(),
    })
    .into_response();
    assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
}

#[test]
fn echoed_input_is_capped() {
    let long = "x".repeat(10_000);
    let cut = truncate(&long);
    assert_eq!(cut.chars().count(), ECHO_MAX_CHARS + 1);
    assert!(cut.ends_with('…'));
    assert_eq!(truncate("short"), "short");
    // Cut on a character boundary, never inside one.
    assert_eq!(
        truncate(&"é".repeat(100)).chars().count(),
        ECHO_MAX_CHARS + 1
    );
}

/// `GET path` on a fresh connection; the whole answer, read until the server closes.
async fn get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

const LOOPBACK: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

#[tokio::test]
async fn connections_beyond_the_cap_wait_in_a_backlog_as_long_as_the_cap() {
    // More than the standard library's backlog of 128 on each side of the cap.
    let limits = Limits {
        header_read_timeout: Duration::from_secs(300),
        idle_timeout: Duration::from_secs(300),
        max_connections: 150,
        listen_backlog: 150,
    };
    let shutdown = Shutdown::default();
    let (addr, _) = serve_router(
        SocketAddr::from(LOOPBACK),
        Router::new(),
        "a test",
        limits,
        shutdown.clone(),
    )
    .await
    .expect("serve");
    // Nothing is ever sent: the first 150 hold the cap, the next 150 are never accepted.
    // A connection past a full backlog would have its SYN dropped and its connect stall.
    let mut held = Vec::new();
    for i in 0..300 {
        let connected = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        held.push(
            connected
                .unwrap_or_else(|_| panic!("connection {i} found the backlog full"))
                .expect("connect"),
        );
    }
    assert_eq!(held.len(), 300);
    shutdown.stop.cancel();
}

#[tokio::test]
async fn requests_in_flight_at_the_cut_are_answered_503_and_the_others_their_own() {
    use tokio::sync::{Notify, oneshot};
    let (release, released) = oneshot::channel::<()>();
    let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
    let started = Arc::new(Notify::new());
    let app = Router::new()
        .route(
            "/released",
            get_route({
                let (started, released) = (started.clone(), released.clone());
                move || async move {
                    let wait = released.lock().await.take().expect("once");
                    started.notify_one();
                    let _ = wait.await;
                    "released\n"
                }
            }),
        )
        .route(
            "/forever",
            get_route({
                let started = started.clone();
                move || async move {
                    started.notify_one();
                    std::future::pending::<&str>().await
                }
            }),
        );
    let shutdown = Shutdown::default();
    let (addr, connections) = serve_router(
        SocketAddr::from(LOOPBACK),
        app,
        "a test",
        Limits::default(),
        shutdown.clone(),
    )
    .await
    .expect("serve");
    let first = tokio::spawn(get(addr, "/released"));
    started.notified().await;
    let second = tokio::spawn(get(addr, "/forever"));
    started.notified().await;

    // Stopped: both stay in flight; the one that finishes before the cut answers itself.
    shutdown.stop.cancel();
    release.send(()).expect("handler waiting");
    let answer = first.await.expect("first");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("released\n"),
        "{answer}"
    );
    assert!(!second.is_finished(), "answered before the cut");

    shutdown.cut.cancel();
    let answer = second.await.expect("second").to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("\r\nretry-after: 2\r\n"), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), connections.wait())
        .await
        .expect("every connection closed after the cut");
}
