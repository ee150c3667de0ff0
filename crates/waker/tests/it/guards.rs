//! The waker under hostile and unlucky traffic: a failed wake is remembered, wakes per
//! namespace are limited, a settled app's own error is passed through, a forged URI or a
//! client's copy of ingress-nginx's headers steers nothing.

use idle_scaler_testkit::clock::ManualClock;

use super::*;

/// Formatted log lines, collected.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// WARN and ERROR lines from now on, on this thread (and the tasks a current-thread
    /// runtime polls on it).
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        // Another test thread may have cached "no interest" for a callsite while this
        // subscriber was being set: recompute it, or an event can be dropped.
        tracing::callsite::rebuild_interest_cache();
        guard
    }

    fn lines(&self) -> Vec<String> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn scale_reads(fake: &FakeApiServer) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/scale"))
        .count()
}

/// The generic answer, as an unknown app gets it.
async fn generic(router: &Router) -> (http::StatusCode, http::HeaderMap, String) {
    let req = Request::builder()
        .header("X-Idle-Scaler-Target", "apps/nope")
        .body(Body::empty())
        .expect("request");
    let res = send(router, req).await;
    (res.status(), res.headers().clone(), text(res).await)
}

#[tokio::test]
async fn a_failed_wake_is_remembered_answered_generically_without_api_calls_and_logged_once() {
    let w = world(Duration::ZERO, None).await;
    assert!(
        w.fake.delete_deployment("apps", "web"),
        "the row outlives its Deployment"
    );
    let expected = generic(&w.router).await;
    let logs = Logs::default();
    let _guard = logs.capture();
    for i in 0..20 {
        let accept = if i % 2 == 0 {
            "application/json"
        } else {
            "text/html"
        };
        let req = nginx("GET", "/")
            .header("Accept", accept)
            .body(Body::empty());
        let res = send(&w.router, req.expect("request")).await;
        let answer = (res.status(), res.headers().clone(), text(res).await);
        assert_eq!(answer, expected, "request {i}: the generic 503");
    }
    assert_eq!(scale_reads(&w.fake), 1, "{:?}", w.fake.requests());
    let lines = logs.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("WARN"), "{lines:#?}");
}

#[tokio::test]
async fn wakes_per_namespace_are_limited_and_joining_a_wake_is_not_a_new_one() {
    let clock = ManualClock::new(Utc::now());
    let config = WakerConfig {
        waker_timeout_seconds: 10,
        waker_max_wakes_per_minute: 2,
        ..WakerConfig::default()
    };
    let w = world_with(Duration::ZERO, None, config, Arc::new(clock.clone())).await;
    let past = Utc::now() - chrono::Duration::hours(2);
    for (ns, name) in [("apps", "a"), ("apps", "b"), ("other", "c")] {
        w.fake.create_deployment(ns, name, 0);
        let row = NewDeployment::k8s(ns, name, past).sleep_state(SleepState::Asleep, past, Some(1));
        w.store.insert(row).await.expect("insert");
    }
    w.indexed().await;
    let ask = |target: &str| {
        Request::builder()
            .header("X-Idle-Scaler-Target", target)
            .body(Body::empty())
            .expect("request")
    };
    let expected = generic(&w.router).await;
    for target in ["apps/web", "apps/a", "apps/web"] {
        let res = send(&w.router, ask(target)).await;
        assert_eq!(res.status(), 307, "{target}: a wake, then one joined");
    }
    let res = send(&w.router, ask("apps/b")).await;
    let answer = (res.status(), res.headers().clone(), text(res).await);
    assert_eq!(answer, expected, "the third wake of apps in a minute");
    assert_eq!(w.fake.replicas("apps", "b"), Some(0), "not woken");
    assert_eq!(send(&w.router, ask("other/c")).await.status(), 307);
    assert_eq!(scale_writes(&w.fake), 3);

    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(
        send(&w.router, ask("apps/b")).await.status(),
        307,
        "a minute later"
    );
    assert_eq!(w.fake.replicas("apps", "b"), Some(1));
}

#[tokio::test]
async fn a_settled_apps_own_error_is_passed_through_not_redirected_to_itself() {
    let clock = ManualClock::new(Utc::now());
    let config = WakerConfig {
        waker_timeout_seconds: 10,
        ..WakerConfig::default()
    };
    let w = world_with(Duration::ZERO, None, config, Arc::new(clock.clone())).await;
    // apps/api is asleep in the table, but someone scaled it up meanwhile and it is ready.
    w.fake.create_deployment("apps", "api", 1);
    let past = Utc::now() - chrono::Duration::hours(2);
    let row =
        NewDeployment::k8s("apps", "api", past).sleep_state(SleepState::Asleep, past, Some(1));
    w.store.insert(row).await.expect("insert");
    // apps/up has run for hours and never slept: the waker does not know it (its index
    // holds the slept apps and those it woke), so its error gets the generic answer.
    w.fake.create_deployment("apps", "up", 1);
    let row = NewDeployment::k8s("apps", "up", past).sleep_state(SleepState::Awake, past, None);
    w.store.insert(row).await.expect("insert");
    w.indexed().await;
    let ask = |service: &str, code: &str, accept: &str| {
        Request::builder()
            .header("X-Namespace", "apps")
            .header("X-Service-Name", service)
            .header("X-Original-URI", "/orders")
            .header("X-Code", code)
            .header("Accept", accept)
            .body(Body::empty())
            .expect("request")
    };
    let expected = generic(&w.router).await;
    let res = send(&w.router, ask("up", "502", "application/json")).await;
    let answer = (res.status(), res.headers().clone(), text(res).await);
    assert_eq!(answer, expected, "an app the waker never slept nor woke");
    // Just found running: not settled, so the proxy's 502 may mean "no endpoint yet".
    assert_eq!(
        send(&w.router, ask("api", "502", "application/json"))
            .await
            .status(),
        307
    );
    // Seconds later its own answer is still an error: passed through.
    clock.advance(chrono::Duration::seconds(10));
    for (code, accept) in [
        ("502", "application/json"),
        ("503", "application/json"),
        ("502", "text/html"),
    ] {
        let res = send(&w.router, ask("api", code, accept)).await;
        assert_eq!(res.status().as_str(), code, "{code} {accept}");
        assert!(!res.headers().contains_key("location"));
        assert!(!res.headers().contains_key("x-idle-scaler-starting"));
        let body = text(res).await;
        assert!(
            body == "502 Bad Gateway\n" || body == "503 Service Unavailable\n",
            "{body}"
        );
    }
    // Another status is not the app's 502/503: the visitor is sent back as before.
    assert_eq!(
        send(&w.router, ask("api", "504", "*/*")).await.status(),
        307
    );
    // A slept app woken just now is not settled: its proxy's 503 means "no endpoint yet".
    let res = send(
        &w.router,
        nginx("GET", "/").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(res.status(), 307);
    assert_eq!(scale_writes(&w.fake), 1, "only apps/web was woken");
}

#[tokio::test]
async fn the_target_header_wins_over_a_clients_copies_of_ingress_nginx_headers() {
    let w = world(Duration::ZERO, None).await;
    let req = Request::builder()
        .header("X-Idle-Scaler-Target", "apps/web")
        .header("X-Namespace", "apps")
        .header("X-Service-Name", "nope")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&w.router, req).await.status(), 307);
    assert_eq!(
        w.fake.replicas("apps", "web"),
        Some(2),
        "the proxy's target was woken"
    );
}

#[tokio::test]
async fn a_control_character_in_the_original_uri_reaches_no_header_and_wakes_nothing() {
    let w = world(Duration::ZERO, None).await;
    let expected = generic(&w.router).await;
    // CR, LF and DEL cannot be in a header value at all (see the unit tests); TAB can.
    for evil in ["/\t/evil.example", "/shop\t", "\t//evil.example"] {
        let res = send(
            &w.router,
            nginx("GET", evil).body(Body::empty()).expect("request"),
        )
        .await;
        let answer = (res.status(), res.headers().clone(), text(res).await);
        assert_eq!(answer, expected, "{evil:?}");
    }
    assert_eq!(scale_writes(&w.fake), 0);
}
