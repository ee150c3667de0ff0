//! HTTP/2 cleartext through the parking listener, with a real client (curl): served with
//! prior knowledge only for ports declared `kubernetes.io/h2c`; `Upgrade: h2c` is stripped.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use idle_scaler_core::ListenerPort;

use super::parking_world::*;

/// An HTTP/2-only app (prior knowledge) that answers with the version and URI it got.
async fn h2_app() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let text = format!("{:?} {} {}\n", req.version(), req.method(), req.uri());
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// curl from `from` to the listener with `args`; its output (headers, then body).
async fn curl(from: &str, to: std::net::SocketAddr, host: &str, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-D", "-", "--max-time", "20", "--interface", from])
        .args(["-H", &format!("Host: {host}")])
        .args(args)
        .arg(format!("http://{to}/greet?x=1"));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn http2_with_prior_knowledge_reaches_an_h2c_port_and_no_other() {
    let w = parking_world().await;
    let mut h2 = web_service();
    h2.name = "grpc".to_owned();
    h2.cluster_ip = None;
    h2.ports = vec![ListenerPort {
        offset: 0,
        name: Some("h2c".to_owned()),
        port: 50051,
        app_protocol: Some("kubernetes.io/h2c".to_owned()),
    }];
    w.directory.park(h2);

    // The `web` Service's port is plain HTTP: HTTP/2 there is refused and wakes nothing.
    let refused = curl(APPS_POD, w.addr, "web.apps", &["--http2-prior-knowledge"]).await;
    assert!(refused.starts_with("HTTP/2 503"), "{refused}");
    assert_eq!(w.scale_writes("web"), 0);

    let app = h2_app().await;
    let (fake, directory) = (w.fake.clone(), w.directory.clone());
    let ready = tokio::spawn(async move {
        until("the app is scaled up", || {
            fake.replicas("apps", "web").is_some_and(|r| r > 0)
        })
        .await;
        directory.set_endpoint("apps", "grpc", Some("h2c"), app);
    });
    let out = curl(
        APPS_POD,
        w.addr,
        "grpc.apps:50051",
        &["--http2-prior-knowledge"],
    )
    .await;
    ready.await.expect("ready task");
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(
        out.ends_with("HTTP/2.0 GET http://grpc.apps:50051/greet?x=1\n"),
        "the app got HTTP/2 with the caller's authority: {out}"
    );
    assert_eq!(w.scale_writes("web"), 1);

    // A long-lived HTTP/2 client (a gRPC channel) is sent GOAWAY after its answer, so it
    // reconnects to the app itself once unparked.
    let stream = connect_from(APPS_POD, w.addr).await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("handshake");
    let driver = tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("http://grpc.apps:50051/again")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = sender.send_request(req).await.expect("answer");
    assert_eq!(res.status(), 200);
    tokio::time::timeout(std::time::Duration::from_secs(5), driver)
        .await
        .expect("the waker ended the connection")
        .expect("join")
        .expect("a graceful end");
}

#[tokio::test]
async fn an_upgrade_to_h2c_is_stripped_and_the_request_goes_as_http1() {
    let w = parking_world().await;
    w.directory
        .set_endpoint("apps", "web", Some("http"), w.app.addr);
    let out = curl(APPS_POD, w.addr, "web.apps", &["--http2"]).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let lower = out.to_ascii_lowercase();
    assert!(!lower.contains("upgrade"), "{out}");
    assert!(!lower.contains("http2-settings"), "{out}");
    assert!(lower.contains("get /greet?x=1\n"), "{out}");
}
