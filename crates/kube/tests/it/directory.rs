//! The parking directory over real HTTP against the fake: the index of parked Services kept
//! by watches, the caller's namespace by pod address (cached), and the app's own ready
//! endpoint.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use idle_scaler_core::{ListenerPort, ParkedServiceInfo, ParkingDirectory};
use idle_scaler_kube::{DirectorySettings, KubeParkingDirectory};
use idle_scaler_testkit::fake_kube::Fault;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

use super::*;

const BASE: u16 = 8081;

fn client(fake: &FakeApiServer) -> kube::Client {
    let config = kube::Config::new(fake.url().parse().expect("url"));
    idle_scaler_kube::client::build(config).expect("client")
}

fn directory(fake: &FakeApiServer) -> KubeParkingDirectory {
    let mut settings = DirectorySettings::new(BASE);
    settings.allow_loopback = true;
    settings.own_addresses = vec!["127.0.0.2".parse().expect("ip")];
    KubeParkingDirectory::start(client(fake), settings)
}

/// What idle-scaler's parking writes for `svc` (port `http` at the listener's first port).
fn parked_slice(svc: &str, deploy: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("idle-scaler-{svc}"),
            "labels": {
                "endpointslice.kubernetes.io/managed-by": "idle-scaler",
                "kubernetes.io/service-name": svc,
                "idle-scaler.dev/deployment": deploy,
            },
        },
        "addressType": "IPv4",
        "endpoints": [{ "addresses": ["10.0.0.9"], "conditions": { "ready": true } }],
        "ports": [{ "name": "http", "port": BASE }],
    }))
    .expect("slice")
}

async fn create_slice(fake: &FakeApiServer, ns: &str, slice: &EndpointSlice) {
    Api::<EndpointSlice>::namespaced(client(fake), ns)
        .create(&PostParams::default(), slice)
        .await
        .expect("create slice");
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

fn cluster_ip(service: &serde_json::Value) -> IpAddr {
    service["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .expect("a ClusterIP")
}

#[tokio::test]
async fn a_parked_service_is_found_by_every_host_form_and_a_bare_name_only_from_its_namespace() {
    let fake = FakeApiServer::start().await;
    let svc = fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.create_service("apps", "api", "api", &[("http", 80)]);
    create_slice(&fake, "apps", &parked_slice("web", "web")).await;
    let dir = directory(&fake);
    assert!(dir.synced(TIMEOUT).await);
    let ip = cluster_ip(&svc).to_string();
    for host in [
        "web.apps",
        "web.apps.svc",
        "web.apps.svc.cluster.local",
        ip.as_str(),
    ] {
        let found = dir.lookup(host, None).unwrap_or_else(|| panic!("{host}"));
        assert_eq!(
            (found.namespace.as_str(), found.name.as_str()),
            ("apps", "web")
        );
        assert_eq!(found.target, web());
        assert_eq!(found.ports.len(), 1);
        assert_eq!((found.ports[0].offset, found.ports[0].port), (0, 80));
    }
    assert!(
        dir.lookup("web", None).is_none(),
        "bare, no caller namespace"
    );
    assert!(
        dir.lookup("web", Some("shop")).is_none(),
        "bare, another namespace"
    );
    assert!(
        dir.lookup("web", Some("apps")).is_some(),
        "bare, its namespace"
    );
    assert!(dir.lookup("api.apps", None).is_none(), "not parked");
    assert_eq!(dir.parked_services(), 1);
}

#[tokio::test]
async fn the_index_follows_slices_created_and_deleted() {
    let fake = FakeApiServer::start().await;
    let dir = directory(&fake);
    assert!(dir.synced(TIMEOUT).await);
    assert!(dir.lookup("web.apps", None).is_none());
    // The Service existed before its slice: the directory reads it when the slice comes,
    // again after a failed read (its watch would not bring it: it does not change).
    let svc = fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.inject(
        Fault::status(503)
            .on_method("GET")
            .on_path("/namespaces/apps/services/web")
            .times(1),
    );
    create_slice(&fake, "apps", &parked_slice("web", "web")).await;
    until("the parked service", || {
        dir.lookup("web.apps", None).is_some()
    })
    .await;
    let ip = cluster_ip(&svc).to_string();
    assert!(dir.lookup(&ip, None).is_some());
    Api::<EndpointSlice>::namespaced(client(&fake), "apps")
        .delete("idle-scaler-web", &DeleteParams::default())
        .await
        .expect("delete");
    until("the unparked service", || dir.parked_services() == 0).await;
    // Still named for a grace period: a data plane that has not applied the unpark yet may
    // still send its requests here.
    assert!(dir.lookup("web.apps", None).is_some());
    assert!(dir.lookup(&ip, None).is_some());
}

fn pod_lists(fake: &FakeApiServer) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/pods")
        .count()
}

#[tokio::test]
async fn a_callers_namespace_is_one_api_call_per_address_also_when_unknown_or_asked_at_once() {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("shop", "cart", 1);
    fake.set_app_endpoint("shop", "cart", "127.0.0.1:1");
    let dir = Arc::new(directory(&fake));
    let pod: IpAddr = "127.0.0.1".parse().expect("ip");
    let nobody: IpAddr = "10.9.9.9".parse().expect("ip");
    for _ in 0..3 {
        assert_eq!(
            dir.pod_namespace(pod).await.expect("pod").as_deref(),
            Some("shop")
        );
        assert_eq!(dir.pod_namespace(nobody).await.expect("nobody"), None);
    }
    assert_eq!(pod_lists(&fake), 2, "one per address, the negative one too");
    let fresh: IpAddr = "10.9.9.10".parse().expect("ip");
    let asked = futures::future::join_all((0..20).map(|_| {
        let dir = dir.clone();
        async move { dir.pod_namespace(fresh).await.expect("fresh") }
    }))
    .await;
    assert!(asked.iter().all(Option::is_none));
    assert_eq!(pod_lists(&fake), 3, "concurrent misses share one request");
    let r = fake
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/api/v1/pods")
        .expect("a pod list");
    assert_eq!(
        r.query_param("fieldSelector").as_deref(),
        Some("status.podIP%3D10.9.9.10")
    );
}

#[tokio::test]
async fn the_callers_cache_is_bounded_and_forgets_after_its_ttl() {
    let fake = FakeApiServer::start().await;
    let mut settings = DirectorySettings::new(BASE);
    settings.pod_cache_size = 2;
    settings.pod_cache_ttl = Duration::from_secs(3600);
    let dir = KubeParkingDirectory::start(client(&fake), settings);
    let ips: Vec<IpAddr> = (1..=3)
        .map(|i| format!("10.9.0.{i}").parse().expect("ip"))
        .collect();
    for ip in &ips {
        dir.pod_namespace(*ip).await.expect("ask");
    }
    assert_eq!(pod_lists(&fake), 3);
    // The first was forgotten to make room for the third; the others are remembered.
    for ip in [ips[2], ips[1], ips[0]] {
        dir.pod_namespace(ip).await.expect("ask");
    }
    assert_eq!(pod_lists(&fake), 4, "only the forgotten one asked again");

    let mut settings = DirectorySettings::new(BASE);
    settings.pod_cache_ttl = Duration::ZERO;
    let dir = KubeParkingDirectory::start(client(&fake), settings);
    fake.clear_requests();
    dir.pod_namespace(ips[0]).await.expect("ask");
    dir.pod_namespace(ips[0]).await.expect("ask");
    assert_eq!(pod_lists(&fake), 2, "expired at once");
}

fn info(fake_ip: Option<IpAddr>) -> ParkedServiceInfo {
    ParkedServiceInfo {
        namespace: "apps".into(),
        name: "web".into(),
        cluster_ip: fake_ip,
        target: web(),
        ports: vec![http()],
        callers: Vec::new(),
    }
}

fn http() -> ListenerPort {
    ListenerPort {
        offset: 0,
        name: Some("http".into()),
        port: 80,
        app_protocol: None,
    }
}

/// A slice of Service `web` as someone other than the EndpointSlice controller, or with a
/// target that is not a Pod, or a link-local address, would write it.
fn stray_slice(name: &str, managed_by: &str, kind: &str, ip: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                "endpointslice.kubernetes.io/managed-by": managed_by,
                "kubernetes.io/service-name": "web",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [ip],
            "conditions": { "ready": true },
            "targetRef": { "kind": kind, "namespace": "apps", "name": "x" },
        }],
        "ports": [{ "name": "http", "port": 7777 }],
    }))
    .expect("slice")
}

#[tokio::test]
async fn the_ready_endpoint_is_the_apps_own_pod_and_stray_slices_are_ignored() {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 0);
    fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.set_app_endpoint("apps", "web", "127.0.0.1:4321");
    let controller = "endpointslice-controller.k8s.io";
    for s in [
        stray_slice("hand-written", "someone", "Pod", "10.1.0.1"),
        stray_slice("not-a-pod", controller, "Node", "10.1.0.2"),
        stray_slice("link-local", controller, "Pod", "169.254.169.254"),
        stray_slice("the-waker", controller, "Pod", "127.0.0.2"),
    ] {
        create_slice(&fake, "apps", &s).await;
    }
    let dir = directory(&fake);
    let svc = info(None);
    let got = dir
        .ready_endpoint(&svc, &http(), Duration::from_millis(300))
        .await
        .expect("wait");
    assert_eq!(got, None, "asleep: no endpoint of its own, strays ignored");
    // The app wakes while the listener waits: the watch brings its endpoint.
    let waiting = tokio::spawn(async move { dir.ready_endpoint(&svc, &http(), TIMEOUT).await });
    fake.scale_externally("apps", "web", 1);
    let got = waiting.await.expect("join").expect("wait");
    assert_eq!(got, Some(SocketAddr::from(([127, 0, 0, 1], 4321))));
}

#[tokio::test]
async fn the_ready_endpoint_wait_outlasts_an_api_server_that_is_briefly_away() {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 1);
    fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.set_app_endpoint("apps", "web", "127.0.0.1:4321");
    let dir = directory(&fake);
    fake.inject(
        Fault::status(503)
            .on_path("/namespaces/apps/endpointslices")
            .times(2),
    );
    let got = dir
        .ready_endpoint(&info(None), &http(), TIMEOUT)
        .await
        .expect("no error while the deadline lasts");
    assert_eq!(got, Some(SocketAddr::from(([127, 0, 0, 1], 4321))));
    // A refusal is not an outage: it ends the wait at once.
    fake.inject(
        Fault::status(403)
            .on_path("/namespaces/apps/endpointslices")
            .times(1),
    );
    let refused = dir.ready_endpoint(&info(None), &http(), TIMEOUT).await;
    assert!(
        matches!(refused, Err(idle_scaler_core::Error::Forbidden { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn many_requests_held_for_one_app_share_one_watch() {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 0);
    fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.set_app_endpoint("apps", "web", "127.0.0.1:4321");
    let dir = Arc::new(directory(&fake));
    let held: Vec<_> = (0..200)
        .map(|_| {
            let dir = dir.clone();
            tokio::spawn(async move { dir.ready_endpoint(&info(None), &http(), TIMEOUT).await })
        })
        .collect();
    // Every request is waiting once the first list has been answered and no endpoint found.
    let lists = || {
        fake.requests()
            .iter()
            .filter(|r| {
                r.method == "GET"
                    && r.path.ends_with("/namespaces/apps/endpointslices")
                    && !r.query.as_deref().unwrap_or_default().contains("watch")
            })
            .count()
    };
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while lists() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never listed");
        tokio::task::yield_now().await;
    }
    fake.scale_externally("apps", "web", 1);
    for h in held {
        let got = h.await.expect("join").expect("wait");
        assert_eq!(got, Some(SocketAddr::from(([127, 0, 0, 1], 4321))));
    }
    assert_eq!(lists(), 1, "one list for 200 held requests");
    let watches = fake
        .requests()
        .iter()
        .filter(|r| {
            r.query
                .as_deref()
                .unwrap_or_default()
                .contains("watch=true")
        })
        .filter(|r| r.path.ends_with("/namespaces/apps/endpointslices"))
        .count();
    assert!(watches <= 1, "{watches} watches for 200 held requests");
}
