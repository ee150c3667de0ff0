//! A slept app behind a real gateway: nginx routes `shop.example.test` as the app's
//! HTTPRoute says, to every EndpointSlice of its Service, so the parked slice sends visitors
//! to the binary's parking listener, which knows the public hostname through its route index
//! (for callers trusted as gateways only). Real curl, headless Chromium and a WebSocket
//! client are the visitors.

mod plane; // nginx rendered from the fake's slices and the routes, reloaded on change
mod rig; // the app, its Service and HTTPRoute, the binary, nginx
mod routes; // the Gateway API objects on the fake

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use idle_scaler_testkit::programs::http::Call;
use idle_scaler_testkit::programs::webdriver::Browser;
use idle_scaler_testkit::programs::{self, CHROMEDRIVER, CHROMIUM, CURL, NGINX};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_tungstenite::tungstenite::Message;

use crate::apps::Kind;
use crate::support::run_async;
use rig::*;

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn curl_through_nginx_by_public_hostname_is_answered_by_the_slept_app_itself(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    if !programs::available("gateway curl e2e", &[NGINX, CURL]) {
        return;
    }
    let w = world(&opts, Kind::Page, Duration::from_millis(800)).await;

    let mut curl = std::process::Command::new(CURL);
    curl.args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("{HOST}:{}:127.0.0.1", w.gateway.port))
        .args(["-d", "order=42"])
        .arg(format!("http://{HOST}:{}/orders?id=7", w.gateway.port));
    let out = run_async(curl).await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let (body, status) = out.stdout.rsplit_once('\n').expect("curl's status line");
    assert_eq!(status, "200", "{body}\n{}", w.daemon.output());
    // The app's own answer, to the request as it was sent, and no redirect on the way.
    assert!(
        body.contains("app saw POST /orders?id=7 order=42"),
        "{body}"
    );
    assert_eq!(w.app.hits("POST", "/orders?id=7"), 1);
    assert_eq!(w.scale_writes(), 1, "one wake");
    // Once the app is ready its slice replaces the parked one, and nginx sends visitors to
    // the app itself.
    w.gateway
        .until_upstream(HOST, &[w.app.addr], DEADLINE)
        .await;
    let next = w.through_gateway(get_host("/orders?id=8")).await;
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(w.app.hits("GET", "/orders?id=8"), 1);
    let log = w.gateway.access_log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"POST /orders?id=7 HTTP/1.1\" 200")
                && l.contains(&w.parking().to_string())),
        "the first request went through the parking listener:\n{log}"
    );
}

fn get_host(path: &str) -> Call<'_> {
    Call {
        method: "GET",
        path,
        headers: &[("Host", HOST)],
        body: "",
    }
}

/// Headless Chromium resolving the public hostname to nginx.
async fn browser(w: &World) -> Browser {
    Browser::start(&[format!(
        "--host-resolver-rules=MAP {HOST} 127.0.0.1:{}",
        w.gateway.port
    )])
    .await
}

/// How the page now shown was loaded: `navigate` (the first load) or `reload`.
async fn navigation_type(b: &Browser) -> String {
    let v = b
        .execute("return performance.getEntriesByType('navigation')[0].type;")
        .await;
    v.as_str().unwrap_or_default().to_owned()
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_browser_at_the_public_hostname_sees_the_starting_page_then_the_app_with_no_action(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    if !programs::available("gateway browser e2e", &[NGINX, CHROMIUM, CHROMEDRIVER]) {
        return;
    }
    let w = world(&opts, Kind::Page, Duration::from_secs(5)).await;
    let b = browser(&w).await;

    b.goto(&format!("http://{HOST}/")).await;
    let first = b.source().await;
    assert!(
        first.contains("id=\"idle-scaler-starting\"") && first.contains("Starting web"),
        "{first}\n{}",
        w.daemon.output()
    );
    b.screenshot("gateway-starting-page.png").await;

    // No action: the page's own script brings the app once it is ready.
    let until = tokio::time::Instant::now() + DEADLINE;
    let app = loop {
        let page = b.source().await;
        if page.contains("hello from apps/web") {
            break page;
        }
        if tokio::time::Instant::now() > until {
            b.screenshot("gateway-never-the-app.png").await;
            panic!(
                "never reached the app: {page}\nnginx:\n{}\n{}",
                w.gateway.access_log(),
                w.daemon.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    b.screenshot("gateway-app-page.png").await;
    assert!(app.contains("app saw GET / "), "{app}");
    assert!(!app.contains("idle-scaler-starting"), "{app}");
    assert_eq!(
        navigation_type(&b).await,
        "reload",
        "the starting page reloaded itself"
    );
    assert_eq!(w.scale_writes(), 1, "one wake");
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_browser_at_the_public_hostname_of_an_app_that_starts_in_half_a_second_sees_the_app_directly(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    if !programs::available("gateway browser e2e", &[NGINX, CHROMIUM, CHROMEDRIVER]) {
        return;
    }
    let w = world(&opts, Kind::Page, Duration::from_millis(500)).await;
    let b = browser(&w).await;

    b.goto(&format!("http://{HOST}/")).await;

    let page = b.source().await;
    b.screenshot("gateway-fast-app-page.png").await;
    assert!(
        page.contains("hello from apps/web"),
        "{page}\n{}",
        w.daemon.output()
    );
    // Never the starting page: the document was loaded once, by navigation (the starting
    // page would have reloaded it), the app answered `/` once, and nginx logged no 503.
    assert!(!page.contains("idle-scaler-starting"), "{page}");
    assert_eq!(navigation_type(&b).await, "navigate");
    assert_eq!(w.app.hits("GET", "/"), 1);
    let log = w.gateway.access_log();
    let documents: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"GET / HTTP/1.1\""))
        .collect();
    assert_eq!(documents.len(), 1, "{log}");
    assert!(documents[0].contains("\" 200 "), "{log}");
    assert_eq!(w.scale_writes(), 1, "one wake");
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_websocket_through_nginx_to_a_slept_app_is_answered_by_its_echo(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    if !programs::available("gateway WebSocket e2e", &[NGINX]) {
        return;
    }
    let w = world(&opts, Kind::Echo, Duration::from_millis(800)).await;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", w.gateway.port))
        .await
        .expect("connect nginx");

    let (mut ws, res) = tokio_tungstenite::client_async(format!("ws://{HOST}/chat"), stream)
        .await
        .unwrap_or_else(|e| panic!("the upgrade went through: {e}\n{}", w.daemon.output()));

    assert_eq!(res.status(), 101);
    for text in ["hello", "through nginx and the waker"] {
        ws.send(Message::text(text)).await.expect("send");
        let back = ws.next().await.expect("an answer").expect("a message");
        assert_eq!(back.into_text().expect("text").as_str(), text);
    }
    assert_eq!(w.app.hits("GET", "websocket"), 1);
    assert_eq!(w.scale_writes(), 1, "one wake");
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_caller_outside_the_trusted_range_naming_the_public_hostname_gets_the_generic_503_and_wakes_nothing(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    if !programs::available("gateway trust e2e", &[NGINX]) {
        return;
    }
    let w = world(&opts, Kind::Page, Duration::from_millis(500)).await;
    let unknown = w
        .direct(
            NO_POD,
            Call {
                headers: &[("Host", "nothing.example.test")],
                ..Call::get("/")
            },
        )
        .await;

    // A pod of the app's own namespace may use the cluster DNS names, not the public one;
    // an address no pod has may use neither.
    for source in [APPS_POD, NO_POD] {
        for host in [HOST, "SHOP.example.test:80"] {
            let call = Call {
                method: "POST",
                path: "/orders",
                headers: &[("Host", host)],
                body: "order=42",
            };
            let refused = w.direct(source, call).await;
            assert_eq!(refused.status, 503, "{source} {host}: {refused:?}");
            assert_eq!(refused.body, unknown.body, "the generic answer");
        }
    }
    assert_eq!(unknown.status, 503);
    assert!(!unknown.body.contains("web"), "{unknown:?}");
    assert_eq!(w.scale_writes(), 0, "nothing woken");
    assert_eq!(w.fake.replicas("apps", "web"), Some(0));
    assert_eq!(w.app.hits("POST", "/orders"), 0);
}
