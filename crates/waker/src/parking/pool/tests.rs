use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A small app that keeps connections alive; its address.
async fn app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                TokioIo::new(stream),
                service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                }),
            ));
        }
    });
    addr
}

/// A new connection to `to`, its driver spawned.
async fn connection(to: SocketAddr) -> (SendRequest<Incoming>, tokio::task::JoinHandle<()>) {
    let stream = TcpStream::connect(to).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, driver)
}

#[tokio::test]
async fn a_connection_given_back_is_taken_again_for_its_endpoint_only() {
    let pool = Pool::new(4);
    let addr = app().await;
    pool.put(addr, connection(addr).await.0);
    assert_eq!(pool.idle(), 1);
    let other: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    assert!(pool.take(other).is_none(), "another endpoint has none");
    assert!(pool.take(addr).is_some());
    assert!(pool.take(addr).is_none(), "taken once");
    assert_eq!(pool.idle(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_not_reused_after_its_idle_time() {
    let pool = Pool::new(4);
    let addr = app().await;
    pool.put(addr, connection(addr).await.0);
    tokio::time::advance(IDLE_FOR).await;
    assert!(
        pool.take(addr).is_none(),
        "stale: the app may be closing it"
    );
}

#[tokio::test]
async fn at_most_the_cap_is_kept_per_endpoint() {
    let pool = Pool::new(2);
    let addr = app().await;
    for _ in 0..3 {
        pool.put(addr, connection(addr).await.0);
    }
    assert_eq!(pool.idle(), 2);
}

#[tokio::test]
async fn a_connection_the_app_closed_is_neither_kept_nor_taken() {
    let pool = Pool::new(4);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closing = listener.local_addr().expect("addr");
    let accept = tokio::spawn(async move { listener.accept().await.map(|(s, _)| drop(s)) });
    let (sender, driver) = connection(closing).await;
    accept.await.expect("accept").expect("accepted");
    // The app closed it: the driver sees the end and the sender says closed.
    driver.await.expect("driver");
    assert!(sender.is_closed());
    pool.put(closing, sender);
    assert!(pool.take(closing).is_none());
    assert_eq!(pool.idle(), 0);
}
