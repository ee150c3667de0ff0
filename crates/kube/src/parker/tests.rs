//! The parker's pure rules: what counts as the same slice, which endpoints make a Service
//! ready for unparking, how parked slices group into apps, and how a slice is re-pointed.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::repoint::group_by_app;
use super::slices::same;
use super::unpark::{CONTROLLER, all_ready, has_own_ready_endpoint, own_selector, services_of};
use crate::parking::{
    AddressFamily, DEPLOYMENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL,
    WakerAddresses, repointed,
};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ours(ns: &str, name: &str, service: &str, deployment: &str) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(labels(&[
                (MANAGED_BY_LABEL, MANAGED_BY),
                (SERVICE_NAME_LABEL, service),
                (DEPLOYMENT_LABEL, deployment),
            ])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: vec![Endpoint {
            addresses: vec!["10.0.0.1".into()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                ..EndpointConditions::default()
            }),
            ..Endpoint::default()
        }],
        ports: Some(vec![
            EndpointPort {
                name: Some("http".into()),
                port: Some(8081),
                protocol: Some("TCP".into()),
                app_protocol: None,
            },
            EndpointPort {
                name: Some("grpc".into()),
                port: Some(8082),
                protocol: Some("TCP".into()),
                app_protocol: Some("kubernetes.io/h2c".into()),
            },
        ]),
    }
}

fn controller_slice(
    service: &str,
    ready: Option<bool>,
    target: Option<ObjectReference>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service}-abcde")),
            namespace: Some("apps".into()),
            labels: Some(labels(&[
                (MANAGED_BY_LABEL, CONTROLLER),
                (SERVICE_NAME_LABEL, service),
            ])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: vec![Endpoint {
            addresses: vec!["10.1.0.5".into()],
            conditions: Some(EndpointConditions {
                ready,
                ..EndpointConditions::default()
            }),
            target_ref: target,
            ..Endpoint::default()
        }],
        ports: None,
    }
}

fn pod(namespace: Option<&str>) -> Option<ObjectReference> {
    Some(ObjectReference {
        kind: Some("Pod".into()),
        namespace: namespace.map(Into::into),
        name: Some("web-0".into()),
        ..ObjectReference::default()
    })
}

#[test]
fn server_metadata_and_extra_labels_do_not_make_a_slice_differ() {
    let planned = ours("apps", "idle-scaler-web", "web", "web");
    let mut current = planned.clone();
    current.metadata.uid = Some("u1".into());
    current.metadata.resource_version = Some("7".into());
    current
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .insert("team".into(), "shop".into());
    assert!(same(&current, &planned));

    let mut moved = current.clone();
    moved.endpoints[0].addresses = vec!["10.0.0.2".into()];
    assert!(!same(&moved, &planned), "another waker address");
    let mut port = current.clone();
    port.ports.as_mut().expect("ports")[1].port = Some(9000);
    assert!(!same(&port, &planned), "another port");
    let mut relabelled = current.clone();
    relabelled
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .insert(DEPLOYMENT_LABEL.into(), "other".into());
    assert!(!same(&relabelled, &planned), "another app's");
}

#[test]
fn a_service_is_ready_only_with_a_ready_endpoint_of_a_pod_of_its_namespace() {
    let ns = "apps";
    assert!(has_own_ready_endpoint(
        &controller_slice("web", Some(true), pod(Some(ns))),
        ns
    ));
    assert!(
        has_own_ready_endpoint(&controller_slice("web", Some(true), pod(None)), ns),
        "a targetRef without namespace is the slice's own"
    );
    for (why, slice) in [
        (
            "not ready",
            controller_slice("web", Some(false), pod(Some(ns))),
        ),
        (
            "readiness unknown",
            controller_slice("web", None, pod(Some(ns))),
        ),
        ("no targetRef", controller_slice("web", Some(true), None)),
        (
            "another namespace's pod",
            controller_slice("web", Some(true), pod(Some("other"))),
        ),
        (
            "not a pod",
            controller_slice(
                "web",
                Some(true),
                Some(ObjectReference {
                    kind: Some("Node".into()),
                    ..ObjectReference::default()
                }),
            ),
        ),
    ] {
        assert!(!has_own_ready_endpoint(&slice, ns), "{why}");
    }
    let mut hand_written = controller_slice("web", Some(true), pod(Some(ns)));
    hand_written
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .insert(MANAGED_BY_LABEL.into(), "someone".into());
    assert!(
        !has_own_ready_endpoint(&hand_written, ns),
        "not the controller's"
    );
}

#[test]
fn every_parked_service_must_be_ready() {
    let parked = [
        ours("apps", "idle-scaler-web", "web", "web"),
        ours("apps", "idle-scaler-web-v6", "web", "web"),
        ours("apps", "idle-scaler-api", "api", "web"),
    ];
    let services = services_of(&parked);
    assert_eq!(
        services,
        BTreeSet::from(["api".to_owned(), "web".to_owned()])
    );
    assert_eq!(
        own_selector(&services),
        "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io,kubernetes.io/service-name in (api,web)"
    );
    let web = controller_slice("web", Some(true), pod(Some("apps")));
    let api_starting = controller_slice("api", Some(false), pod(Some("apps")));
    let api = controller_slice("api", Some(true), pod(Some("apps")));
    assert!(!all_ready(&services, [&web], "apps"));
    assert!(!all_ready(&services, [&web, &api_starting], "apps"));
    assert!(all_ready(&services, [&web, &api_starting, &api], "apps"));
}

#[test]
fn parked_slices_group_by_namespace_and_full_deployment_name() {
    let long = "a-deployment-whose-name-is-far-longer-than-a-label-value-may-be-at-all";
    let mut hashed = ours(
        "shop",
        "idle-scaler-cart",
        "cart",
        &crate::parking::deployment_label(long),
    );
    hashed.metadata.annotations = Some(labels(&[(DEPLOYMENT_LABEL, long)]));
    let slices = [
        ours("apps", "idle-scaler-web", "web", "web"),
        ours("apps", "idle-scaler-web-v6", "web", "web"),
        ours("apps", "idle-scaler-api", "api", "web"),
        ours("apps", "idle-scaler-blog", "blog", "blog"),
        hashed,
    ];
    let apps = group_by_app(&slices);
    let got: Vec<(&str, &str, usize)> = apps
        .iter()
        .map(|((ns, d), services)| (ns.as_str(), d.as_str(), services.len()))
        .collect();
    assert_eq!(
        got,
        [("apps", "blog", 1), ("apps", "web", 2), ("shop", long, 1)]
    );
}

#[test]
fn a_repointed_slice_keeps_its_identity_and_moves_ports_and_endpoints() {
    let mut slice = ours("apps", "idle-scaler-web", "web", "web");
    slice.metadata.uid = Some("u1".into());
    slice.metadata.resource_version = Some("9".into());
    let waker: WakerAddresses = "10.0.0.8:9000,10.0.0.9:9000,[fd00::1]:7000"
        .parse()
        .expect("valid");

    let v4 = repointed(&slice, AddressFamily::V4, waker.v4().expect("v4"));
    assert_eq!(v4.metadata.name.as_deref(), Some("idle-scaler-web"));
    assert_eq!(v4.metadata.labels, slice.metadata.labels);
    assert_eq!(v4.metadata.uid, None, "server-set metadata is not carried");
    let ports: Vec<(Option<&str>, Option<i32>)> = v4
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.port))
        .collect();
    assert_eq!(
        ports,
        [(Some("http"), Some(9000)), (Some("grpc"), Some(9001))]
    );
    let addrs: Vec<&str> = v4
        .endpoints
        .iter()
        .map(|e| e.addresses[0].as_str())
        .collect();
    assert_eq!(addrs, ["10.0.0.8", "10.0.0.9"]);

    let v6 = repointed(&slice, AddressFamily::V6, waker.v6().expect("v6"));
    assert_eq!(v6.metadata.name.as_deref(), Some("idle-scaler-web-v6"));
    assert_eq!(v6.address_type, "IPv6");
    assert_eq!(v6.ports.as_ref().expect("ports")[1].port, Some(7001));
    assert_eq!(
        v6.ports.as_ref().expect("ports")[1].app_protocol.as_deref(),
        Some("kubernetes.io/h2c")
    );
}
