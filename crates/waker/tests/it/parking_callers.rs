//! Who reaches an app through the parking listener: the `Host` alone names the app, and
//! only callers the app admits wake it.

use super::parking_world::*;

/// The generic answer's body and `Retry-After`: the same as the fallback listener's.
fn assert_generic(status: http::StatusCode, headers: &http::HeaderMap, body: &str) {
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(body, "503 Service Unavailable\n");
}

#[tokio::test]
async fn another_namespaces_pod_and_a_non_pod_source_are_refused_and_wake_nothing() {
    let w = parking_world().await;
    for from in [OTHER_POD, NO_POD] {
        for host in ["web.apps", "web.apps.svc.cluster.local", "10.96.0.7", "web"] {
            let (status, headers, body) = get_from(from, w.addr, host, &[]).await;
            assert_generic(status, &headers, &body);
        }
    }
    // An unknown Service from the app's own namespace: the same answer.
    let (status, headers, body) = get_from(APPS_POD, w.addr, "nope.apps", &[]).await;
    assert_generic(status, &headers, &body);
    assert_eq!(w.scale_writes("web"), 0, "nothing woken");
    assert_eq!(w.app.received(), 0);
}

#[tokio::test]
async fn the_apps_own_namespace_reaches_it_by_bare_name_and_listed_namespaces_too() {
    let w = parking_world().await;
    let ready = w.app_becomes_ready_when_scaled();
    let (status, headers, body) = get_from(APPS_POD, w.addr, "web", &[]).await;
    ready.await.expect("ready task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-app"], "web");

    // The Service admits `other` by its callers annotation: its pod may call it too.
    let mut admitting = web_service();
    admitting.callers = vec!["other".to_owned()];
    w.directory.park(admitting);
    let (status, _, body) = get_from(OTHER_POD, w.addr, "web.apps.svc", &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = get_from(OTHER_POD, w.addr, "web", &[]).await;
    assert_eq!(status, 503, "a bare name is of the caller's own namespace");
    assert_eq!(w.app.received(), 2);
}

#[tokio::test]
async fn headers_naming_another_app_never_choose_the_app() {
    let w = parking_world().await;
    let ready = w.app_becomes_ready_when_scaled();
    for (name, value) in [
        ("x-idle-scaler-target", "apps/other"),
        ("x-namespace", "apps"),
        ("x-service-name", "other"),
    ] {
        let (status, headers, body) =
            get_from(APPS_POD, w.addr, "web.apps", &[(name, value)]).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(headers["x-app"], "web", "{name}");
    }
    ready.await.expect("ready task");
    // Through no parked Service at all, the headers name nothing either.
    let (status, ..) = get_from(
        APPS_POD,
        w.addr,
        "unparked.apps",
        &[
            ("x-idle-scaler-target", "apps/other"),
            ("x-namespace", "apps"),
            ("x-service-name", "other"),
        ],
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(w.scale_writes("other"), 0, "app b never woken");
    assert_eq!(w.fake.replicas("apps", "other"), Some(0));
    assert_eq!(w.scale_writes("web"), 1);
}

#[tokio::test]
async fn a_trusted_gateways_forwarded_headers_are_kept_and_appended_to() {
    let w = parking_world_with(idle_scaler_waker::WakerConfig {
        waker_timeout_seconds: 10,
        waker_trusted_cidrs: "127.0.0.5/32".to_owned(),
        ..idle_scaler_waker::WakerConfig::default()
    })
    .await;
    let ready = w.app_becomes_ready_when_scaled();
    let claims = [
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.example"),
    ];
    let (status, _, body) = get_from("127.0.0.5", w.addr, "web.apps", &claims).await;
    ready.await.expect("ready task");
    assert_eq!(status, 200, "a gateway may call any parked Service: {body}");
    assert!(
        body.contains("x-forwarded-for: 203.0.113.9, 127.0.0.5\n"),
        "{body}"
    );
    assert!(body.contains("x-forwarded-proto: https\n"), "{body}");
    assert!(body.contains("x-forwarded-host: shop.example\n"), "{body}");
}

#[tokio::test]
async fn an_answer_given_without_reading_the_body_closes_the_connection_and_says_so() {
    // Found by the simulation: a refused caller's 200 KB PUT was answered 503 with its body
    // unread; hyper then closed the kept-alive connection without a word, and the caller's
    // next request on it met a closed connection instead of an answer.
    let w = parking_world().await;
    let (mut sender, driver) = client_from(OTHER_POD, w.addr).await;
    let put = http::Request::builder()
        .method("PUT")
        .uri("/upload")
        .header("host", "web.apps")
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            b'x';
            200_000
        ])))
        .expect("request");
    let res = sender.send_request(put).await.expect("answer");
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "the caller is told the connection ends"
    );
    drop(res);
    tokio::time::timeout(std::time::Duration::from_secs(5), driver)
        .await
        .expect("the connection was closed")
        .expect("driver");
    // Without a body nothing stands between two requests: the connection is kept.
    let (mut sender, _driver) = client_from(OTHER_POD, w.addr).await;
    for _ in 0..2 {
        let get = http::Request::builder()
            .uri("/")
            .header("host", "web.apps")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let res = sender
            .send_request(get)
            .await
            .expect("answer on the same connection");
        assert_eq!(res.status(), 503);
        assert!(res.headers().get("connection").is_none());
        http_body_util::BodyExt::collect(res.into_body())
            .await
            .expect("body");
    }
    assert_eq!(w.scale_writes("web"), 0);
}
