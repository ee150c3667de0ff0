use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use idle_scaler_core::{ListenerPort, Target};
use k8s_openapi::api::core::v1::{Pod, PodStatus, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::endpoints::{Forbidden, pick};
use super::index::{ParkedIndex, UNPARKED_GRACE};
use super::pods::namespace_of;

const BASE: u16 = 8081;

fn service(ns: &str, name: &str, ip: &str, callers: Option<&str>) -> Service {
    let mut annotations = BTreeMap::new();
    if let Some(c) = callers {
        annotations.insert("idle-scaler.dev/callers".to_owned(), c.to_owned());
    }
    serde_json::from_value(json!({
        "metadata": { "namespace": ns, "name": name, "annotations": annotations },
        "spec": {
            "clusterIP": ip,
            "ports": [
                { "name": "http", "port": 80, "appProtocol": "http" },
                { "name": "grpc", "port": 9000, "appProtocol": "kubernetes.io/h2c" },
                { "name": "metrics", "port": 9090 },
            ],
        },
    }))
    .expect("service")
}

fn parked_slice(ns: &str, svc: &str, deploy: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {
            "namespace": ns,
            "name": format!("idle-scaler-{svc}"),
            "labels": {
                "endpointslice.kubernetes.io/managed-by": "idle-scaler",
                "kubernetes.io/service-name": svc,
                "idle-scaler.dev/deployment": deploy,
            },
        },
        "addressType": "IPv4",
        "endpoints": [{ "addresses": ["10.0.0.9"], "conditions": { "ready": true } }],
        "ports": [
            { "name": "http", "port": BASE },
            { "name": "grpc", "port": BASE + 1 },
        ],
    }))
    .expect("slice")
}

fn index() -> ParkedIndex {
    let mut index = ParkedIndex::new(None, "cluster.local", BASE);
    index.set_slices(&[parked_slice("apps", "web", "web-deploy")]);
    index.set_services([
        &service("apps", "web", "10.96.0.10", Some("shop, tools")),
        &service("apps", "other", "10.96.0.11", None),
    ]);
    index
}

#[test]
fn every_cluster_name_of_a_parked_service_finds_it() {
    let index = index();
    for host in [
        "web.apps",
        "web.apps.svc",
        "web.apps.svc.cluster.local",
        "web.apps.svc.cluster.local.",
        "10.96.0.10",
    ] {
        let found = index.lookup(host, None).unwrap_or_else(|| panic!("{host}"));
        assert_eq!(found.name, "web");
        assert_eq!(
            found.target,
            Target {
                cluster: None,
                namespace: "apps".into(),
                name: "web-deploy".into()
            }
        );
        assert_eq!(found.callers, ["shop", "tools"]);
    }
    assert_eq!(index.len(), 1, "only the parked Service is kept");
}

#[test]
fn a_bare_name_needs_the_callers_namespace_and_other_names_find_nothing() {
    let index = index();
    assert!(index.lookup("web", None).is_none());
    assert!(
        index.lookup("web", Some("shop")).is_none(),
        "not shop's web"
    );
    assert!(index.lookup("web", Some("apps")).is_some());
    for host in [
        "other.apps",
        "10.96.0.11",
        "web.shop",
        "web.apps.svc.other.domain",
        "web.apps.example.com",
        "10.96.0.99",
    ] {
        assert!(index.lookup(host, Some("apps")).is_none(), "{host}");
    }
}

#[test]
fn listener_offsets_come_from_the_slices_ports_matched_by_name() {
    let found = index().lookup("web.apps", None).expect("parked");
    assert_eq!(
        found.ports,
        [
            ListenerPort {
                offset: 0,
                name: Some("http".into()),
                port: 80,
                app_protocol: Some("http".into())
            },
            ListenerPort {
                offset: 1,
                name: Some("grpc".into()),
                port: 9000,
                app_protocol: Some("kubernetes.io/h2c".into())
            },
        ],
        "metrics is not parked"
    );
}

#[test]
fn the_index_follows_slices_and_services() {
    let mut index = index();
    let missing = index.upsert_slice(&parked_slice("apps", "other", "other-deploy"));
    // The list kept only parked Services: `other` must be read now.
    assert_eq!(missing, Some(("apps".to_owned(), "other".to_owned())));
    assert!(
        index.lookup("other.apps", None).is_none(),
        "not before it is read"
    );
    assert_eq!(
        index.missing_services(),
        [("apps".to_owned(), "other".to_owned())]
    );
    index.upsert_service(&service("apps", "other", "10.96.0.11", None));
    assert!(index.lookup("10.96.0.11", None).is_some());
    index.remove_slice(&parked_slice("apps", "web", "web-deploy"));
    assert!(index.lookup("web.apps", None).is_none());
    assert!(index.lookup("10.96.0.10", None).is_none());
    index.remove_service("apps", "other");
    assert!(index.lookup("other.apps", None).is_none());
    assert_eq!(index.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_unparked_service_is_still_named_for_a_grace_period_then_forgotten() {
    let mut index = index();
    index.remove_slice(&parked_slice("apps", "web", "web-deploy"));
    assert!(index.lookup("web.apps", None).is_none(), "no longer parked");
    for host in ["web.apps", "web.apps.svc.cluster.local", "10.96.0.10"] {
        let info = index.lookup_unparked(host, None).expect(host);
        assert_eq!(info.target.name, "web-deploy");
    }
    assert!(index.lookup_unparked("web", Some("apps")).is_some());
    assert!(index.lookup_unparked("web", Some("other")).is_none());
    tokio::time::advance(UNPARKED_GRACE).await;
    assert!(
        index.lookup_unparked("web.apps", None).is_none(),
        "forgotten"
    );
    // Parked again: it is parked, not remembered.
    index.upsert_slice(&parked_slice("apps", "web", "web-deploy"));
    index.upsert_service(&service("apps", "web", "10.96.0.10", None));
    assert!(index.lookup("web.apps", None).is_some());
}

fn port() -> ListenerPort {
    ListenerPort {
        offset: 0,
        name: Some("http".into()),
        port: 80,
        app_protocol: None,
    }
}

fn app_slice(
    managed_by: &str,
    kind: &str,
    target_ns: &str,
    ip: &str,
    ready: bool,
) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {
            "namespace": "apps",
            "name": "web-abc",
            "labels": {
                "endpointslice.kubernetes.io/managed-by": managed_by,
                "kubernetes.io/service-name": "web",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [ip],
            "conditions": { "ready": ready },
            "targetRef": { "kind": kind, "namespace": target_ns, "name": "web-0" },
        }],
        "ports": [{ "name": "metrics", "port": 9090 }, { "name": "http", "port": 8080 }],
    }))
    .expect("slice")
}

#[test]
fn only_ready_pod_endpoints_of_controller_slices_of_the_namespace_are_picked() {
    let ctl = "endpointslice-controller.k8s.io";
    let forbidden = Forbidden {
        own: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 0, 5))],
        allow_loopback: false,
    };
    let good = app_slice(ctl, "Pod", "apps", "10.1.0.7", true);
    assert_eq!(
        pick([&good], "apps", &port(), &forbidden),
        Some(SocketAddr::from(([10, 1, 0, 7], 8080))),
        "the same-named port"
    );
    for (why, s) in [
        (
            "hand-written",
            app_slice("someone", "Pod", "apps", "10.1.0.7", true),
        ),
        (
            "not a pod",
            app_slice(ctl, "Node", "apps", "10.1.0.7", true),
        ),
        (
            "another namespace's pod",
            app_slice(ctl, "Pod", "bank", "10.1.0.7", true),
        ),
        (
            "not ready",
            app_slice(ctl, "Pod", "apps", "10.1.0.7", false),
        ),
        (
            "link-local",
            app_slice(ctl, "Pod", "apps", "169.254.169.254", true),
        ),
        (
            "the waker itself",
            app_slice(ctl, "Pod", "apps", "10.1.0.5", true),
        ),
        ("loopback", app_slice(ctl, "Pod", "apps", "127.0.0.1", true)),
    ] {
        assert_eq!(pick([&s], "apps", &port(), &forbidden), None, "{why}");
    }
    let rig = Forbidden {
        allow_loopback: true,
        ..forbidden
    };
    let local = app_slice(ctl, "Pod", "apps", "127.0.0.1", true);
    assert!(
        pick([&local], "apps", &port(), &rig).is_some(),
        "a test rig"
    );
    let unnamed = ListenerPort {
        name: Some("web".into()),
        ..port()
    };
    assert_eq!(pick([&good], "apps", &unnamed, &rig), None, "no such port");
}

fn pod(ns: &str, phase: &str) -> Pod {
    Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            namespace: Some(ns.into()),
            ..Default::default()
        },
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn an_address_belongs_to_the_one_namespace_of_its_live_pods() {
    assert_eq!(namespace_of(&[]), None);
    assert_eq!(
        namespace_of(&[pod("shop", "Running")]).as_deref(),
        Some("shop")
    );
    assert_eq!(
        namespace_of(&[pod("old", "Succeeded"), pod("shop", "Running")]).as_deref(),
        Some("shop"),
        "a finished pod left its address"
    );
    assert_eq!(
        namespace_of(&[pod("a", "Running"), pod("b", "Running")]),
        None,
        "host-network pods of several namespaces"
    );
}
