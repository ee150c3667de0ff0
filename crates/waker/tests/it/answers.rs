//! What each client gets: a browser's page, a held client's redirect or timeout, and the
//! one generic answer for robots and apps the waker may not wake.

use idle_scaler_core::{MockReadiness, ReadyState};

use super::*;

#[tokio::test]
async fn a_browser_gets_the_starting_page_at_once_and_its_poll_sees_ready() {
    let w = world(Duration::from_millis(300), None).await;
    let req = nginx("GET", "/")
        .header("Accept", "text/html,application/xhtml+xml")
        .body(Body::empty())
        .expect("request");
    let res = send(&w.router, req).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "2");
    assert!(res.headers().contains_key("x-idle-scaler-cold-start-ms"));
    let page = text(res).await;
    assert!(page.contains("Starting web"), "{page}");
    assert!(
        page.contains("http-equiv=\"refresh\""),
        "works without JavaScript"
    );
    assert!(
        !page.contains("src=") && !page.contains("href="),
        "no external assets"
    );

    // The page polls; the app becomes ready without anyone else asking.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let poll = nginx("GET", "/")
            .header("X-Idle-Scaler-Poll", "1")
            .body(Body::empty())
            .expect("request");
        let res = send(&w.router, poll).await;
        if res.status() == 200 {
            assert!(!res.headers().contains_key("x-idle-scaler-starting"));
            break;
        }
        assert_eq!(res.headers()["x-idle-scaler-starting"], "1");
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scale_writes(&w.fake), 1);
}

#[tokio::test]
async fn the_target_header_names_the_app_too() {
    let w = world(Duration::ZERO, None).await;
    let req = Request::builder()
        .uri("/shop")
        .header("X-Idle-Scaler-Target", "apps/web")
        .body(Body::empty())
        .expect("request");
    let res = send(&w.router, req).await;
    assert_eq!(res.status(), 307);
    assert_eq!(res.headers()["location"], "/shop");
}

#[tokio::test]
async fn a_held_client_gets_503_with_retry_after_on_timeout() {
    let mut readiness = MockReadiness::new();
    readiness
        .expect_wait_ready()
        .returning(|_, _| Ok(ReadyState::TimedOut));
    let w = world(Duration::ZERO, Some(Arc::new(readiness))).await;
    let req = nginx("GET", "/").body(Body::empty()).expect("request");
    let res = send(&w.router, req).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert!(res.headers().contains_key("x-idle-scaler-cold-start-ms"));
}

#[tokio::test]
async fn robots_and_apps_it_may_not_wake_get_one_generic_answer_and_wake_nothing() {
    let w = world(Duration::ZERO, None).await;
    let past = Utc::now() - chrono::Duration::hours(2);
    let asleep = |ns: &str, name: &str| {
        NewDeployment::k8s(ns, name, past).sleep_state(SleepState::Asleep, past, Some(1))
    };
    for row in [
        asleep("apps", "pinned").always_on(true),
        asleep("apps", "expired").expires_at(past),
        asleep("apps", "broken").status("failed"),
        asleep("kube-system", "dns"),
        NewDeployment::new("ecs:apps/foreign", past),
    ] {
        w.store.insert(row).await.expect("insert");
    }
    w.indexed().await;
    let generic = |service: &str, agent: &str, uri: &str| {
        Request::builder()
            .uri("/")
            .header("X-Namespace", service.split('/').next().unwrap_or(""))
            .header("X-Service-Name", service.split('/').nth(1).unwrap_or(""))
            .header("X-Original-URI", uri)
            .header("User-Agent", agent)
            .body(Body::empty())
            .expect("request")
    };
    let browser = "Mozilla/5.0";
    let cases = [
        generic("apps/nope", browser, "/"),
        generic("apps/pinned", browser, "/"),
        generic("apps/expired", browser, "/"),
        generic("apps/broken", browser, "/"),
        generic("kube-system/dns", browser, "/"),
        generic("apps/foreign", browser, "/"),
        generic("apps/web", "Mozilla/5.0 (compatible; UptimeRobot/2.0)", "/"),
        generic("apps/web", "kube-probe/1.33", "/"),
        generic("apps/web", "Googlebot/2.1", "/"),
        generic("apps/web", browser, "/robots.txt"),
        Request::builder()
            .uri("/")
            .body(Body::empty())
            .expect("no target at all"),
    ];
    let mut answers = Vec::new();
    for req in cases {
        let res = send(&w.router, req).await;
        let head = (res.status(), res.headers().clone());
        answers.push((head, text(res).await));
    }
    let first = &answers[0];
    assert_eq!(first.0.0, 503);
    assert_eq!(first.0.1["retry-after"], "30");
    for a in &answers {
        assert_eq!(a, first, "every such answer is the same");
    }
    assert_eq!(scale_writes(&w.fake), 0, "nothing woken");
    assert_eq!(w.fake.replicas("apps", "web"), Some(0));
}

#[tokio::test]
async fn the_redirect_never_leaves_the_host() {
    let w = world(Duration::ZERO, None).await;
    for evil in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let req = nginx("GET", evil).body(Body::empty()).expect("request");
        let res = send(&w.router, req).await;
        assert_eq!(res.status(), 307);
        assert_eq!(res.headers()["location"], "/", "{evil}");
    }
}
