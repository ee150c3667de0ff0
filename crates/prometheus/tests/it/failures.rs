//! Servers that fail the way a Prometheus (or what stands in front of it) can.

use std::time::Duration;

use chrono::Utc;
use idle_scaler_core::{ActivitySource, Error, Target};
use idle_scaler_prometheus::{PrometheusConfig, PrometheusSource, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn settings(url: String, timeout: Duration) -> Settings {
    Settings {
        timeout,
        ..Settings::from_config(&PrometheusConfig {
            prometheus_url: url,
            ..PrometheusConfig::default()
        })
    }
}

fn web() -> [Target; 1] {
    [Target {
        cluster: None,
        namespace: "apps".into(),
        name: "web".into(),
    }]
}

async fn ask(url: String, timeout: Duration) -> Error {
    PrometheusSource::new(settings(url, timeout))
        .expect("valid settings")
        .traffic(&web(), chrono::Duration::minutes(30), Utc::now())
        .await
        .expect_err("must fail")
}

#[tokio::test]
async fn nothing_listening_is_unavailable_and_names_the_address() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    }; // dropped: nothing listens there now
    let err = ask(format!("http://{addr}"), Duration::from_secs(2)).await;
    assert!(
        matches!(&err, Error::Unavailable { message: m, .. } if m.contains(&addr.to_string())),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_after_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accepts and holds the connection without a byte of answer.
    let held = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        std::future::pending::<()>().await;
        drop(socket);
    });
    let started = tokio::time::Instant::now();
    let err = ask(format!("http://{addr}"), Duration::from_secs(1)).await;
    let took = started.elapsed();
    held.abort();
    assert!(
        matches!(&err, Error::Unavailable { message: m, .. } if m.contains("did not answer within 1s")),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(5),
        "bounded by the timeout: {took:?}"
    );
}

#[tokio::test]
async fn a_5xx_from_a_proxy_is_unavailable_with_its_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        read_request(&mut socket).await;
        let body = "no healthy upstream";
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(answer.as_bytes()).await;
        let _ = socket.shutdown().await;
    });
    let err = ask(format!("http://{addr}"), Duration::from_secs(5)).await;
    assert!(
        matches!(&err, Error::Unavailable { message: m, .. } if m.contains("503") && m.contains("no healthy upstream")),
        "{err}"
    );
}

/// Reads one request (headers and a `content-length` body) so that the answer is not sent
/// over a request still being written, which the client would see as a reset.
async fn read_request(socket: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.expect("read request");
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return;
            }
        }
    }
}
