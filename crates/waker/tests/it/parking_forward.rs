//! The parking listener forwards: a held request reaches the app once it is ready, unchanged,
//! and its answer comes back streamed, trailers included.

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::parking_world::*;

#[tokio::test]
async fn a_request_by_dns_name_reaches_the_app_with_method_body_and_trailers_intact() {
    let w = parking_world().await;
    let ready = w.app_becomes_ready_when_scaled();
    let (mut sender, _driver) = client_from(APPS_POD, w.addr).await;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "c0ffee".parse().expect("value"));
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"first chunk, "))),
        Ok(Frame::data(Bytes::from_static(b"second chunk"))),
        Ok(Frame::trailers(trailers)),
    ];
    let req = http::Request::builder()
        .method("POST")
        .uri("/orders?id=7&x=%20y")
        .header("host", "web.apps.svc.cluster.local:80")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("x-request-id", "r-1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "dropped")
        .body(StreamBody::new(futures::stream::iter(frames)))
        .expect("request");
    let res = sender.send_request(req).await.expect("answer");
    ready.await.expect("ready task");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-app"], "web", "the app answered");
    assert_eq!(
        res.headers()["connection"],
        "close",
        "the caller reconnects to the app"
    );
    let collected = res.into_body().collect().await.expect("body");
    let echoed = collected
        .trailers()
        .and_then(|t| t.get("x-echo-checksum"))
        .cloned();
    let body = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
    assert!(body.starts_with("POST /orders?id=7&x=%20y\n"), "{body}");
    assert!(
        body.contains("host: web.apps.svc.cluster.local:80\n"),
        "Host kept: {body}"
    );
    assert!(body.contains("x-request-id: r-1\n"), "{body}");
    assert!(
        body.contains("x-forwarded-for: 127.0.0.2\n"),
        "a pod's claim replaced: {body}"
    );
    assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
    assert!(
        !body.contains("x-hop"),
        "a header Connection lists is hop-by-hop: {body}"
    );
    assert!(body.ends_with("\nfirst chunk, second chunk"), "{body}");
    assert_eq!(
        echoed.as_ref().map(|v| v.to_str().expect("ascii")),
        Some("c0ffee"),
        "trailers both ways"
    );
    assert_eq!(w.app.received(), 1);
    assert_eq!(w.scale_writes("web"), 1);
    assert_eq!(w.fake.replicas("apps", "web"), Some(1));
}

#[tokio::test]
async fn two_hundred_concurrent_held_requests_make_one_scale_write_and_all_reach_the_app() {
    let w = parking_world().await;
    let ready = w.app_becomes_ready_when_scaled();
    let requests = (0..200).map(|_| get_from(APPS_POD, w.addr, "web.apps", &[]));
    let answers = futures::future::join_all(requests).await;
    ready.await.expect("ready task");
    for (status, headers, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(headers["x-app"], "web");
    }
    assert_eq!(w.app.received(), 200);
    assert_eq!(w.scale_writes("web"), 1);
}

#[tokio::test]
async fn forwards_to_a_ready_app_reuse_their_connections_to_it() {
    let w = parking_world().await;
    let ready = w.app_becomes_ready_when_scaled();
    let (status, ..) = get_from(APPS_POD, w.addr, "web.apps", &[]).await;
    assert_eq!(status, 200);
    ready.await.expect("ready task");
    // Callers that keep coming through the waker (until the unpark): each on a new
    // connection to the waker, told to close it; the waker's own connection to the app stays.
    for _ in 0..20 {
        let (status, headers, _) = get_from(APPS_POD, w.addr, "web.apps", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(headers["connection"], "close");
    }
    assert_eq!(w.app.received(), 21, "each request forwarded once");
    assert!(
        w.app.connections() <= 10,
        "{} connections to the app for 21 requests one after another",
        w.app.connections()
    );
}

#[tokio::test]
async fn a_keep_alive_client_across_the_unpark_is_told_to_reconnect() {
    let w = parking_world().await;
    let ready = w.app_becomes_ready_when_scaled();
    let (mut sender, driver) = client_from(APPS_POD, w.addr).await;
    let req = http::Request::builder()
        .uri("/")
        .header("host", "web.apps")
        .header("connection", "keep-alive")
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let res = sender.send_request(req).await.expect("answer");
    ready.await.expect("ready task");
    assert_eq!(res.headers()["connection"], "close");
    res.into_body().collect().await.expect("body");
    // The waker closes its side: the client's connection ends instead of idling in its pool.
    tokio::time::timeout(std::time::Duration::from_secs(5), driver)
        .await
        .expect("the connection was closed")
        .expect("driver");
    // The same client's next request, after the unpark, goes to the app on a new connection.
    w.directory.unpark("apps", "web");
    let (status, ..) = get_from(APPS_POD, w.app.addr, "web.apps", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(w.app.received(), 2);
}

#[tokio::test]
async fn an_app_that_refuses_connections_at_first_gets_the_request_once() {
    let w = parking_world().await;
    // An endpoint that is ready before its process listens: the port is free, connects are
    // refused until the app binds it.
    let late = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let late_addr = late.local_addr().expect("addr");
    drop(late);
    w.directory
        .set_endpoint("apps", "web", Some("http"), late_addr);
    let answer = tokio::spawn(get_from(APPS_POD, w.addr, "web.apps", &[]));
    until("the app was scaled up", || {
        w.fake.replicas("apps", "web") == Some(1)
    })
    .await;
    // The app's start: it listens a little later than its endpoint says it is ready.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let app = App::serve_on(
        tokio::net::TcpListener::bind(late_addr)
            .await
            .expect("rebind"),
    );
    let (status, headers, body) = answer.await.expect("client");
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-app"], "web");
    assert_eq!(app.received(), 1, "forwarded once");
}
