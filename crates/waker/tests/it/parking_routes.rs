//! Public hostnames: a trusted gateway's request for `shop.example.test` names no Service by
//! cluster DNS, so the route index says which backend the gateway chose; only a parked
//! backend wakes, and only a trusted gateway gets that far.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use idle_scaler_core::{RouteBackend, RouteIndex};
use idle_scaler_waker::WakerConfig;

use super::parking_world::*;

/// The trusted gateway's address (`waker_trusted_cidrs`).
const GATEWAY: &str = "127.0.0.5";
const SHOP: &str = "shop.example.test";

/// A route index of a few rules: host, path prefix, backends; counts its lookups.
#[derive(Default)]
struct Routes {
    rules: Vec<(&'static str, &'static str, Vec<RouteBackend>)>,
    resolved: AtomicUsize,
}

impl Routes {
    fn rule(mut self, host: &'static str, prefix: &'static str, backends: &[(&str, i32)]) -> Self {
        let backends = backends
            .iter()
            .map(|(service, port)| RouteBackend {
                namespace: "apps".to_owned(),
                service: (*service).to_owned(),
                port: Some(*port),
                port_name: None,
            })
            .collect();
        self.rules.push((host, prefix, backends));
        self
    }

    /// A rule whose backends name their port by name, as an `Ingress` may.
    fn rule_by_name(mut self, host: &'static str, backends: &[(&str, &str)]) -> Self {
        let backends = backends
            .iter()
            .map(|(service, name)| RouteBackend {
                namespace: "apps".to_owned(),
                service: (*service).to_owned(),
                port: None,
                port_name: Some((*name).to_owned()),
            })
            .collect();
        self.rules.push((host, "/", backends));
        self
    }
}

impl RouteIndex for Routes {
    fn resolve(&self, host: &str, path: &str) -> Vec<RouteBackend> {
        self.resolved.fetch_add(1, Ordering::SeqCst);
        self.rules
            .iter()
            .find(|(h, prefix, _)| *h == host && path.starts_with(prefix))
            .map(|(_, _, backends)| backends.clone())
            .unwrap_or_default()
    }

    fn route_ports(&self, _namespace: &str, _service: &str) -> Vec<i32> {
        Vec::new()
    }
}

/// The parking world with [`GATEWAY`] trusted and `routes` as the index.
async fn routed_world(routes: Routes) -> (ParkingWorld, Arc<Routes>) {
    let routes = Arc::new(routes);
    let w = parking_world_routed(
        WakerConfig {
            waker_timeout_seconds: 10,
            waker_trusted_cidrs: format!("{GATEWAY}/32"),
            ..WakerConfig::default()
        },
        Some(routes.clone()),
    )
    .await;
    (w, routes)
}

fn assert_generic(status: http::StatusCode, headers: &http::HeaderMap, body: &str) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(body, "503 Service Unavailable\n");
}

#[tokio::test]
async fn a_trusted_gateways_public_hostname_wakes_the_routed_app_and_is_forwarded() {
    let (w, _) = routed_world(Routes::default().rule(SHOP, "/hello", &[("web", 80)])).await;
    let ready = w.app_becomes_ready_when_scaled();
    let (status, headers, body) = get_from(GATEWAY, w.addr, "shop.example.test:80", &[]).await;
    ready.await.expect("ready task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-app"], "web");
    assert!(body.starts_with("GET /hello?x=1\n"), "{body}");
    assert!(
        body.contains("host: shop.example.test:80\n"),
        "Host kept: {body}"
    );
    assert_eq!(w.scale_writes("web"), 1);
    assert_eq!(w.app.received(), 1);
}

#[tokio::test]
async fn a_public_hostname_from_anyone_but_a_gateway_is_refused_and_never_looked_up() {
    let (w, routes) = routed_world(Routes::default().rule(SHOP, "/", &[("web", 80)])).await;
    for from in [APPS_POD, OTHER_POD, NO_POD] {
        let (status, headers, body) = get_from(from, w.addr, SHOP, &[]).await;
        assert_generic(status, &headers, &body);
    }
    assert_eq!(routes.resolved.load(Ordering::SeqCst), 0);
    assert_eq!(w.scale_writes("web"), 0, "nothing woken");
    assert_eq!(w.app.received(), 0);
}

#[tokio::test]
async fn a_route_to_an_unparked_service_or_to_no_rule_wakes_nothing() {
    // `apps/other` is asleep but its Service is not parked.
    let routes = Routes::default().rule(SHOP, "/", &[("other", 80)]).rule(
        "api.example.test",
        "/v2",
        &[("web", 80)],
    );
    let (w, routes) = routed_world(routes).await;
    let (status, headers, body) = get_from(GATEWAY, w.addr, SHOP, &[]).await;
    assert_generic(status, &headers, &body);
    // A host whose rule is for another path: no rule matches `/hello`.
    let (status, headers, body) = get_from(GATEWAY, w.addr, "api.example.test", &[]).await;
    assert_generic(status, &headers, &body);
    assert_eq!(routes.resolved.load(Ordering::SeqCst), 2);
    assert_eq!(w.scale_writes("other"), 0);
    assert_eq!(w.scale_writes("web"), 0);
    assert_eq!(w.fake.replicas("apps", "other"), Some(0));
}

#[tokio::test]
async fn a_split_with_one_parked_backend_wakes_that_one() {
    let split = Routes::default().rule(SHOP, "/", &[("other", 80), ("web", 80)]);
    let (w, _) = routed_world(split).await;
    let ready = w.app_becomes_ready_when_scaled();
    let (status, headers, body) = get_from(GATEWAY, w.addr, SHOP, &[]).await;
    ready.await.expect("ready task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-app"], "web");
    assert_eq!(w.scale_writes("web"), 1);
    assert_eq!(
        w.scale_writes("other"),
        0,
        "the unparked backend stays asleep"
    );
}

#[tokio::test]
async fn a_backend_naming_its_port_by_name_wakes_its_parked_app() {
    // `other` is not parked; `web` is, its port `http` at offset 0. (Which of two parked
    // backends a name picks: the unit tests of `identify`.)
    let by_name = Routes::default().rule_by_name(SHOP, &[("other", "http"), ("web", "http")]);
    let (w, _) = routed_world(by_name).await;
    let ready = w.app_becomes_ready_when_scaled();
    let (status, headers, body) = get_from(GATEWAY, w.addr, SHOP, &[]).await;
    ready.await.expect("ready task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-app"], "web");
    assert_eq!(w.scale_writes("web"), 1);
    assert_eq!(w.scale_writes("other"), 0);
}
