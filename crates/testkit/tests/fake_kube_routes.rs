//! The fake's Ingresses and Gateway API objects through the real kube client: the status
//! subresource, both versions of ReferenceGrant, discovery that follows the CRDs being
//! installed, and a list of 100,000 HTTPRoutes.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use idle_scaler_testkit::fake_kube::{FAKE_GATEWAY_CONTROLLER, FakeApiServer};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::discovery::Discovery;
use serde_json::{Value, json};

const GATEWAY: &str = "gateway.networking.k8s.io";
const DEADLINE: Duration = Duration::from_secs(10);

fn client(fake: &FakeApiServer) -> kube::Client {
    let config = kube::Config::new(fake.url().parse().expect("the fake's URL"));
    kube::Client::try_from(config).expect("a kube client")
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn routes() -> ApiResource {
    resource(GATEWAY, "v1", "HTTPRoute", "httproutes")
}

fn route(ns: &str, name: &str, host: &str, tier: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": { "name": name, "namespace": ns, "labels": { "tier": tier } },
        "spec": {
            "parentRefs": [{ "name": "gw", "namespace": "infra" }],
            "hostnames": [host],
            "rules": [{ "backendRefs": [{ "name": name, "port": 80 }] }],
        },
    })
}

fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("a DynamicObject")
}

fn code(result: Result<impl std::fmt::Debug, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn httproutes_are_created_accepted_listed_and_watched() {
    let fake = FakeApiServer::start().await;
    let c = client(&fake);
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), "apps", &routes());
    let all: Api<DynamicObject> = Api::all_with(c.clone(), &routes());
    let mut events = all
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();

    let mut body = route("apps", "web", "web.example.com", "front");
    body["status"] = json!({ "parents": [{ "controllerName": "ignored" }] });
    let created = api
        .create(&PostParams::default(), &dynamic(body))
        .await
        .expect("create");
    assert!(created.data["status"].is_null(), "create drops status");
    assert_eq!(created.metadata.generation, Some(1));

    let accepted = json!({ "status": { "parents": [{
        "parentRef": { "name": "gw", "namespace": "infra" },
        "controllerName": "example.net/gateway",
        "conditions": [{ "type": "Accepted", "status": "True", "reason": "Accepted",
                         "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" }],
    }] } });
    let patched = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&accepted))
        .await
        .expect("patch status");
    assert_eq!(
        patched.data["status"]["parents"][0]["conditions"][0]["type"],
        "Accepted"
    );
    let mut edited = patched.clone();
    edited.data["spec"]["hostnames"] = json!(["www.example.com"]);
    edited.data["status"] = json!({});
    let replaced = api
        .replace("web", &PostParams::default(), &edited)
        .await
        .expect("replace");
    assert_eq!(
        replaced.data["status"], patched.data["status"],
        "status kept"
    );
    assert_eq!(replaced.metadata.generation, Some(2));
    let stale = api.replace("web", &PostParams::default(), &edited).await;
    assert_eq!(
        code(stale),
        409,
        "the version read before the replace is stale"
    );

    fake.put_object(route("other", "db", "db.example.com", "back"));
    assert!(fake.accept_http_route("other", "db").is_some());
    let seeded = Api::<DynamicObject>::namespaced_with(c.clone(), "other", &routes())
        .get("db")
        .await
        .expect("get");
    assert_eq!(
        seeded.data["status"]["parents"][0]["controllerName"],
        FAKE_GATEWAY_CONTROLLER
    );
    let front = all
        .list(&ListParams::default().labels("tier=front"))
        .await
        .expect("list");
    assert_eq!(front.items.len(), 1);
    assert_eq!(
        front.items[0].data["spec"]["hostnames"][0],
        "www.example.com"
    );
    assert_eq!(
        all.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        2
    );

    let mut seen = Vec::new();
    while seen.last().is_none_or(|(_, name, _)| name != "db") || seen.len() < 5 {
        let (kind, o) = match tokio::time::timeout(DEADLINE, events.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(o)))) => ("ADDED", o),
            Ok(Ok(Some(WatchEvent::Modified(o)))) => ("MODIFIED", o),
            other => panic!("expected a route event, got {other:?} after {seen:?}"),
        };
        let generation = o.metadata.generation.unwrap_or_default();
        seen.push((kind, o.metadata.name.unwrap_or_default(), generation));
    }
    let seen: Vec<_> = seen.iter().map(|(k, n, g)| (*k, n.as_str(), *g)).collect();
    assert_eq!(
        seen,
        [
            ("ADDED", "web", 1),
            ("MODIFIED", "web", 1),
            ("MODIFIED", "web", 2),
            ("ADDED", "db", 1),
            ("MODIFIED", "db", 1),
        ]
    );
}

#[tokio::test]
async fn reference_grants_are_served_in_v1beta1_and_v1_and_ingresses_in_networking() {
    let fake = FakeApiServer::start().await;
    let c = client(&fake);
    let beta = resource(GATEWAY, "v1beta1", "ReferenceGrant", "referencegrants");
    let v1 = resource(GATEWAY, "v1", "ReferenceGrant", "referencegrants");
    let grant = json!({
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": { "name": "from-infra" },
        "spec": {
            "from": [{ "group": GATEWAY, "kind": "HTTPRoute", "namespace": "infra" }],
            "to": [{ "group": "", "kind": "Service" }],
        },
    });
    let created = Api::<DynamicObject>::namespaced_with(c.clone(), "apps", &beta)
        .create(&PostParams::default(), &dynamic(grant))
        .await
        .expect("create v1beta1");
    let types = created.types.expect("types");
    assert_eq!(types.api_version, "gateway.networking.k8s.io/v1beta1");
    let read = Api::<DynamicObject>::namespaced_with(c.clone(), "apps", &v1)
        .get("from-infra")
        .await
        .expect("get v1");
    assert_eq!(
        read.types.expect("types").api_version,
        "gateway.networking.k8s.io/v1"
    );
    assert_eq!(read.metadata.uid, created.metadata.uid, "one object");

    let ingresses = resource("networking.k8s.io", "v1", "Ingress", "ingresses");
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": { "name": "web" },
        "spec": { "rules": [{ "host": "web.example.com", "http": { "paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": { "service": { "name": "web", "port": { "number": 80 } } },
        }] } }] },
    });
    let api = Api::<DynamicObject>::namespaced_with(c.clone(), "apps", &ingresses);
    api.create(&PostParams::default(), &dynamic(ingress))
        .await
        .expect("create ingress");
    let listed = Api::<DynamicObject>::all_with(c, &ingresses)
        .list(&ListParams::default())
        .await
        .expect("list ingresses");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].data["spec"]["rules"][0]["host"],
        "web.example.com"
    );
    assert!(fake.object("Ingress", "apps", "web").is_some());
}

#[tokio::test]
async fn the_gateway_api_is_discovered_and_served_only_while_installed() {
    let fake = FakeApiServer::start().await;
    fake.put_object(route("apps", "web", "web.example.com", "front"));
    fake.uninstall_gateway_api();
    let c = client(&fake);
    let discovery = Discovery::new(c.clone()).run().await.expect("discovery");
    assert!(!discovery.has_group(GATEWAY));
    assert!(discovery.has_group("networking.k8s.io"));
    let all = Api::<DynamicObject>::all_with(c.clone(), &routes());
    assert_eq!(code(all.list(&ListParams::default()).await), 404);

    fake.install_gateway_api();
    let discovery = Discovery::new(c).run().await.expect("discovery");
    let group = discovery.get(GATEWAY).expect("the Gateway API group");
    assert_eq!(group.preferred_version_or_latest(), "v1");
    let kinds = |version: &str| -> Vec<String> {
        let mut kinds: Vec<String> = group
            .versioned_resources(version)
            .into_iter()
            .map(|(r, _)| r.kind)
            .collect();
        kinds.sort();
        kinds
    };
    assert_eq!(kinds("v1"), ["Gateway", "HTTPRoute", "ReferenceGrant"]);
    assert_eq!(kinds("v1beta1"), ["ReferenceGrant"]);
    let listed = all.list(&ListParams::default()).await.expect("list");
    assert!(listed.items.is_empty(), "uninstalling deleted the routes");
}

/// The route index is measured against this many routes: the fake must list them in
/// seconds, not minutes.
#[tokio::test]
async fn a_hundred_thousand_routes_list_through_the_client() {
    const ROUTES: usize = 100_000;
    let fake = FakeApiServer::start().await;
    let started = Instant::now();
    let written = fake.put_objects((0..ROUTES).map(|i| {
        let ns = format!("team-{}", i % 1000);
        route(
            &ns,
            &format!("app-{i}"),
            &format!("app-{i}.example.com"),
            "front",
        )
    }));
    assert_eq!(written, ROUTES);
    let put = started.elapsed();
    let started = Instant::now();
    let all = Api::<DynamicObject>::all_with(client(&fake), &routes());
    let listed = all.list(&ListParams::default()).await.expect("list");
    let list = started.elapsed();
    assert_eq!(listed.items.len(), ROUTES);
    let one_ns = Api::<DynamicObject>::namespaced_with(client(&fake), "team-7", &routes())
        .list(&ListParams::default())
        .await
        .expect("list one namespace");
    assert_eq!(one_ns.items.len(), ROUTES / 1000);
    eprintln!("{ROUTES} HTTPRoutes: put {put:?}, listed through the client in {list:?}");
}
