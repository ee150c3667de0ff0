//! How long the parking listener holds: a browser until `waker_page_after_ms`, then the
//! starting page; anyone else until the app is ready or `waker_timeout_seconds` have passed.

use std::time::Duration;

use idle_scaler_waker::WakerConfig;
use tokio::time::Instant;

use super::parking_world::*;

#[tokio::test]
async fn a_browser_gets_the_starting_page_after_page_after_when_the_app_is_not_ready() {
    let w = parking_world_with(WakerConfig {
        waker_timeout_seconds: 10,
        waker_page_after_ms: 300,
        ..WakerConfig::default()
    })
    .await;
    let started = Instant::now();
    let (status, headers, body) =
        get_from(APPS_POD, w.addr, "web.apps", &[("accept", "text/html,*/*")]).await;
    let took = started.elapsed();
    assert_eq!(status, 503);
    assert_eq!(headers["x-idle-scaler-starting"], "1");
    assert!(body.contains("Starting web"), "{body}");
    assert!(
        took >= Duration::from_millis(300),
        "held for page_after: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "not for the whole timeout: {took:?}"
    );
    assert_eq!(w.scale_writes("web"), 1, "woken all the same");

    // Ready by then: the browser gets the app's own page.
    w.directory
        .set_endpoint("apps", "web", Some("http"), w.app.addr);
    let (status, headers, _) =
        get_from(APPS_POD, w.addr, "web.apps", &[("accept", "text/html")]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-app"], "web");
}

#[tokio::test]
async fn a_held_client_gets_503_with_retry_after_when_the_app_is_not_ready_in_time() {
    let w = parking_world_with(WakerConfig {
        waker_timeout_seconds: 1,
        ..WakerConfig::default()
    })
    .await;
    let started = Instant::now();
    let (status, headers, _) = get_from(APPS_POD, w.addr, "web.apps", &[]).await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "held until the timeout"
    );
    assert_eq!(w.app.received(), 0);
}

#[tokio::test]
async fn stopping_answers_every_held_request() {
    let w = parking_world().await;
    let held: Vec<_> = (0..20)
        .map(|_| tokio::spawn(get_from(APPS_POD, w.addr, "web.apps", &[])))
        .collect();
    // The app never gets an endpoint: all 20 wait for one.
    until("all 20 are held", || w.directory.waiting() == 20).await;
    until("the app was scaled up", || {
        w.fake.replicas("apps", "web") == Some(1)
    })
    .await;
    w.shutdown.cancel();
    for answer in held {
        let (status, headers, _) = answer.await.expect("an answer, never a dropped connection");
        assert_eq!(status, 503);
        assert!(headers.contains_key("retry-after"));
    }
    tokio::time::timeout(Duration::from_secs(5), w.served)
        .await
        .expect("serve returned after the drain")
        .expect("serve");
}

#[tokio::test]
async fn a_parked_app_the_waker_may_not_wake_is_held_for_its_own_endpoint_and_never_woken() {
    let w = parking_world_with(WakerConfig {
        waker_timeout_seconds: 1,
        ..WakerConfig::default()
    })
    .await;
    // Parked, but no row the waker may wake (started by someone else, or gone).
    let mut foreign = web_service();
    foreign.name = "started-elsewhere".to_owned();
    foreign.cluster_ip = None;
    foreign.target = idle_scaler_core::Target::new("apps", "started-elsewhere");
    w.directory.park(foreign);
    let answer = tokio::spawn(get_from(APPS_POD, w.addr, "started-elsewhere.apps", &[]));
    until("the request is held", || w.directory.waiting() == 1).await;
    w.directory
        .set_endpoint("apps", "started-elsewhere", Some("http"), w.app.addr);
    let (status, headers, _) = answer.await.expect("client");
    assert_eq!(status, 200);
    assert_eq!(headers["x-app"], "web");

    // No endpoint in time: the generic answer, as for any app the waker may not wake.
    w.directory
        .clear_endpoint("apps", "started-elsewhere", Some("http"));
    let (status, headers, body) = get_from(APPS_POD, w.addr, "started-elsewhere.apps", &[]).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (503, "503 Service Unavailable\n")
    );
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(
        w.fake
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count(),
        0,
        "nothing woken"
    );
}
