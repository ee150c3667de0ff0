//! The route index over real HTTP against the fake: Ingresses and accepted HTTPRoutes
//! resolved by host and path, kept current by watches; Gateways' listeners and
//! ReferenceGrants applied; a cluster without the Gateway API; a kind it may not list; a
//! port an Ingress names by name, parked.

use std::sync::Arc;

use idle_scaler_core::parking::Parker;
use idle_scaler_core::{RouteBackend, RouteIndex};
use idle_scaler_kube::{KubeRouteIndex, RouteIndexSettings};
use idle_scaler_testkit::fake_kube::Fault;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::parking::{parker, slice, target};
use super::*;

fn index(fake: &FakeApiServer, crd_recheck: Duration) -> KubeRouteIndex {
    let config = kube::Config::new(fake.url().parse().expect("url"));
    let client = idle_scaler_kube::client::build(config).expect("client");
    KubeRouteIndex::start(
        client,
        RouteIndexSettings {
            request_timeout: TIMEOUT,
            crd_recheck,
        },
    )
}

/// Waits (at most 5 s) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tick.tick().await;
    }
}

fn gateway(listener_host: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": { "name": "public", "namespace": "infra" },
        "spec": { "gatewayClassName": "fake", "listeners": [
            { "name": "http", "port": 80, "protocol": "HTTP", "hostname": listener_host },
        ]},
    })
}

/// An HTTPRoute of `apps` to `backends` (`[{"name": .., "port": ..}]`), attached to the
/// Gateway, hostnames only when given.
fn http_route(name: &str, hostnames: &[&str], backends: Value) -> Value {
    let mut spec = json!({
        "parentRefs": [{ "name": "public", "namespace": "infra" }],
        "rules": [{ "backendRefs": backends }],
    });
    if !hostnames.is_empty() {
        spec["hostnames"] = json!(hostnames);
    }
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": { "name": name, "namespace": "apps" },
        "spec": spec,
    })
}

fn ingress(name: &str, host: &str, service: &str, port: i32) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": { "name": name, "namespace": "apps" },
        "spec": { "rules": [{ "host": host, "http": { "paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": { "service": { "name": service, "port": { "number": port } } },
        }]}}]},
    })
}

fn services(index: &KubeRouteIndex, host: &str, path: &str) -> Vec<String> {
    index
        .resolve(host, path)
        .into_iter()
        .map(|b| format!("{}/{}", b.namespace, b.service))
        .collect()
}

#[tokio::test]
async fn accepted_routes_and_ingresses_resolve_and_follow_their_changes() {
    let fake = FakeApiServer::start().await;
    fake.put_object(gateway("*.example.test"));
    fake.put_object(http_route(
        "shop",
        &[],
        json!([{ "name": "shop", "port": 8080 }]),
    ));
    fake.accept_http_route("apps", "shop").expect("accepted");
    // Not accepted by any Gateway: not indexed.
    fake.put_object(http_route(
        "pending",
        &["pending.example.test"],
        json!([{ "name": "pending", "port": 80 }]),
    ));
    fake.put_object(ingress("legacy", "legacy.example.org", "legacy", 80));

    let idx = index(&fake, Duration::from_secs(180));
    assert!(idx.synced(TIMEOUT).await, "listed in time");
    assert_eq!(
        idx.resolve("shop.example.test", "/cart"),
        [RouteBackend {
            namespace: "apps".into(),
            service: "shop".into(),
            port: Some(8080),
            port_name: None,
        }],
        "the route takes its listener's wildcard hostname"
    );
    assert!(services(&idx, "example.test", "/").is_empty());
    assert_eq!(
        services(&idx, "pending.example.test", "/"),
        ["apps/shop"],
        "not accepted: the wildcard's route"
    );
    assert_eq!(services(&idx, "legacy.example.org", "/"), ["apps/legacy"]);
    assert_eq!(idx.route_ports("apps", "shop"), [8080]);
    assert_eq!(idx.routes(), 2);

    // One event at a time: acceptance, a new Ingress, a deletion.
    fake.accept_http_route("apps", "pending").expect("accepted");
    until(
        "the accepted route, its exact host before the wildcard",
        || services(&idx, "pending.example.test", "/") == ["apps/pending"],
    )
    .await;
    fake.put_object(ingress("more", "more.example.org", "more", 9000));
    until("the new ingress", || {
        idx.route_ports("apps", "more") == [9000]
    })
    .await;
    assert!(fake.delete_object("HTTPRoute", "apps", "shop"));
    until("the deleted route gone", || {
        services(&idx, "shop.example.test", "/").is_empty()
    })
    .await;
    assert!(idx.route_ports("apps", "shop").is_empty());
}

#[tokio::test]
async fn a_gateway_listener_change_and_a_reference_grant_reduce_the_routes_again() {
    let fake = FakeApiServer::start().await;
    fake.put_object(gateway("*.example.test"));
    fake.put_object(http_route(
        "shop",
        &[],
        json!([{ "name": "api", "namespace": "shared", "port": 80 }, { "name": "shop", "port": 80 }]),
    ));
    fake.accept_http_route("apps", "shop").expect("accepted");
    let idx = index(&fake, Duration::from_secs(180));
    assert!(idx.synced(TIMEOUT).await);
    assert_eq!(
        services(&idx, "a.example.test", "/"),
        ["apps/shop"],
        "no grant: the cross-namespace backend is left out"
    );

    fake.put_object(gateway("*.example.org"));
    until("the route under the listener's new hostname", || {
        services(&idx, "a.example.org", "/") == ["apps/shop"]
    })
    .await;
    assert!(services(&idx, "a.example.test", "/").is_empty());

    fake.put_object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": { "name": "from-apps", "namespace": "shared" },
        "spec": {
            "from": [{ "group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "apps" }],
            "to": [{ "group": "", "kind": "Service", "name": "api" }],
        },
    }));
    until("the granted backend", || {
        services(&idx, "a.example.org", "/") == ["shared/api", "apps/shop"]
    })
    .await;
}

#[tokio::test]
async fn without_the_gateway_api_ingresses_are_indexed_and_routes_follow_once_it_appears() {
    let fake = FakeApiServer::start().await;
    fake.uninstall_gateway_api();
    fake.put_object(ingress("legacy", "legacy.example.org", "legacy", 80));
    let idx = index(&fake, Duration::from_millis(50));
    assert!(idx.synced(TIMEOUT).await, "a missing API is not an error");
    assert_eq!(services(&idx, "legacy.example.org", "/"), ["apps/legacy"]);

    fake.install_gateway_api();
    fake.put_object(gateway("*.example.test"));
    fake.put_object(http_route(
        "shop",
        &[],
        json!([{ "name": "shop", "port": 80 }]),
    ));
    fake.accept_http_route("apps", "shop").expect("accepted");
    until("the route after the CRDs appeared", || {
        services(&idx, "shop.example.test", "/") == ["apps/shop"]
    })
    .await;
}

#[tokio::test]
async fn a_forbidden_kind_is_skipped_and_the_others_indexed() {
    let fake = FakeApiServer::start().await;
    fake.inject(Fault::status(403).on_path("/ingresses").times(usize::MAX));
    fake.put_object(gateway("*.example.test"));
    fake.put_object(http_route(
        "shop",
        &[],
        json!([{ "name": "shop", "port": 80 }]),
    ));
    fake.accept_http_route("apps", "shop").expect("accepted");
    fake.put_object(ingress("legacy", "legacy.example.org", "legacy", 80));
    let idx = index(&fake, Duration::from_secs(180));
    assert!(
        idx.synced(TIMEOUT).await,
        "a forbidden kind counts as listed"
    );
    assert_eq!(services(&idx, "shop.example.test", "/"), ["apps/shop"]);
    assert!(services(&idx, "legacy.example.org", "/").is_empty());
}

#[tokio::test]
async fn a_list_of_many_pages_is_indexed_whole() {
    let fake = FakeApiServer::start().await;
    let n = 1_201;
    fake.put_objects(
        (0..n).map(|i| ingress(&format!("i-{i}"), &format!("h{i}.example.org"), "web", 80)),
    );
    let idx = index(&fake, Duration::from_secs(180));
    assert!(idx.synced(TIMEOUT).await);
    assert_eq!(idx.routes(), n);
    assert_eq!(services(&idx, "h1200.example.org", "/"), ["apps/web"]);
    let pages = fake
        .requests()
        .iter()
        .filter(|r| {
            r.path.ends_with("/ingresses")
                && r.query.as_deref().is_some_and(|q| q.contains("continue="))
        })
        .count();
    assert_eq!(pages, 2, "pages of 500 after the first");
}

#[tokio::test]
async fn a_port_an_ingress_names_by_name_is_parked() {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 0);
    // Neither name says HTTP: only a route makes either parked.
    fake.create_service("apps", "web", "web", &[("metrics", 9090), ("app", 3000)]);
    let mut by_name = ingress("web", "web.example.org", "web", 0);
    by_name["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] =
        json!({ "name": "app" });
    fake.put_object(by_name);
    let idx = index(&fake, Duration::from_secs(180));
    assert!(idx.synced(TIMEOUT).await);
    assert_eq!(idx.route_port_names("apps", "web"), ["app"]);
    assert!(idx.route_ports("apps", "web").is_empty());
    assert_eq!(
        idx.resolve("web.example.org", "/")[0].port_name.as_deref(),
        Some("app")
    );

    let report = parker(&fake)
        .routes(Arc::new(idx))
        .park(&target("apps", "web"))
        .await
        .expect("park");
    assert_eq!(report.count("parked"), 1, "{report:?}");
    let parked = slice(&fake, "apps", "idle-scaler-web").expect("parked slice");
    let ports: Vec<&Value> = parked["ports"].as_array().expect("ports").iter().collect();
    assert_eq!(ports.len(), 1, "{parked}");
    assert_eq!(ports[0]["name"], "app", "metrics stays unparked: {parked}");
}
