//! The plan's rules, one Service shape at a time, and the slices it writes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

mod routes; // ports a route names

const NS: &str = "apps";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn deployment(name: &str, pod_labels: &[(&str, &str)]) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(pod_labels)),
                    ..ObjectMeta::default()
                }),
                spec: None,
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

fn port(name: Option<&str>, number: i32, app_protocol: Option<&str>) -> ServicePort {
    ServicePort {
        name: name.map(Into::into),
        port: number,
        app_protocol: app_protocol.map(Into::into),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// A ClusterIP Service selecting `app: shop` with one `http` port.
fn service(name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels(&[("app", "shop")])),
            cluster_ip: Some("10.96.0.10".into()),
            ports: Some(vec![port(Some("http"), 80, None)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn shop() -> Deployment {
    deployment("shop", &[("app", "shop"), ("tier", "web")])
}

fn v4() -> WakerAddresses {
    "10.0.0.5:8081,10.0.0.6:8081".parse().unwrap()
}

fn plan_of(services: &[Service]) -> ParkPlan {
    plan(&shop(), services, &[], &v4(), &[])
}

/// The one Service's skip reason, or None when parked.
fn reason(service: Service) -> Option<Skip> {
    let plan = plan_of(&[service]);
    assert_eq!(plan.parked.len() + plan.skipped.len(), 1, "{plan:?}");
    plan.skipped.first().map(|s| s.reason)
}

fn with_spec(edit: impl FnOnce(&mut ServiceSpec)) -> Service {
    let mut svc = service("shop");
    edit(svc.spec.as_mut().unwrap());
    svc
}

#[test]
fn a_plain_http_service_is_parked() {
    assert_eq!(reason(service("shop")), None);
}

#[test]
fn a_service_without_a_selector_is_skipped() {
    assert_eq!(
        reason(with_spec(|s| s.selector = None)),
        Some(Skip::NoSelector)
    );
    assert_eq!(
        reason(with_spec(|s| s.selector = Some(BTreeMap::new()))),
        Some(Skip::NoSelector)
    );
    let mut no_spec = service("shop");
    no_spec.spec = None;
    assert_eq!(reason(no_spec), Some(Skip::NoSelector));
}

#[test]
fn a_selector_is_a_subset_match_of_the_pod_template_labels() {
    let subset = with_spec(|s| s.selector = Some(labels(&[("tier", "web"), ("app", "shop")])));
    assert_eq!(reason(subset), None);
    let other = with_spec(|s| s.selector = Some(labels(&[("app", "cart")])));
    assert_eq!(reason(other), Some(Skip::NotSelected));
    let wider = with_spec(|s| s.selector = Some(labels(&[("app", "shop"), ("track", "canary")])));
    assert_eq!(reason(wider), Some(Skip::NotSelected));
}

#[test]
fn a_service_that_also_selects_another_deployment_is_shared() {
    let canary = deployment("shop-canary", &[("app", "shop"), ("track", "canary")]);
    let unrelated = deployment("cart", &[("app", "cart")]);
    let plan = super::plan(
        &shop(),
        &[service("shop")],
        &[unrelated.clone(), canary],
        &v4(),
        &[],
    );
    assert_eq!(
        plan.skipped,
        vec![Skipped {
            name: "shop".into(),
            reason: Skip::Shared
        }]
    );
    // The Deployment itself in the list, another namespace's twin: not others.
    let mut elsewhere = deployment("shop-b", &[("app", "shop")]);
    elsewhere.metadata.namespace = Some("other".into());
    let plan = super::plan(
        &shop(),
        &[service("shop")],
        &[shop(), elsewhere, unrelated],
        &v4(),
        &[],
    );
    assert_eq!(plan.parked.len(), 1, "{plan:?}");
}

#[test]
fn external_name_headless_and_local_services_are_skipped() {
    let external = with_spec(|s| s.type_ = Some("ExternalName".into()));
    assert_eq!(reason(external), Some(Skip::ExternalName));
    let headless = with_spec(|s| s.cluster_ip = Some("None".into()));
    assert_eq!(reason(headless), Some(Skip::Headless));
    let internal = with_spec(|s| s.internal_traffic_policy = Some("Local".into()));
    assert_eq!(reason(internal), Some(Skip::LocalTrafficPolicy));
    let external = with_spec(|s| {
        s.type_ = Some("LoadBalancer".into());
        s.external_traffic_policy = Some("Local".into());
    });
    assert_eq!(reason(external), Some(Skip::LocalTrafficPolicy));
    let cluster = with_spec(|s| s.internal_traffic_policy = Some("Cluster".into()));
    assert_eq!(reason(cluster), None);
}

#[test]
fn the_park_annotation_false_opts_out() {
    let annotated = |value: &str| {
        let mut svc = service("shop");
        svc.metadata.annotations = Some(labels(&[(PARK_ANNOTATION, value)]));
        svc
    };
    assert_eq!(reason(annotated("false")), Some(Skip::OptedOut));
    assert_eq!(reason(annotated("true")), None);
}

#[test]
fn a_protected_namespace_parks_nothing() {
    let protected = vec!["kube-system".to_owned(), NS.to_owned()];
    let plan = super::plan(&shop(), &[service("shop")], &[], &v4(), &protected);
    assert_eq!(
        plan.skipped,
        vec![Skipped {
            name: "shop".into(),
            reason: Skip::Protected
        }]
    );
}

#[test]
fn services_of_other_namespaces_are_ignored() {
    let mut elsewhere = service("shop");
    elsewhere.metadata.namespace = Some("other".into());
    assert_eq!(plan_of(&[elsewhere]), ParkPlan::default());
}

#[test]
fn http_ports_by_app_protocol_or_name() {
    let http = [
        port(None, 80, Some("http")),
        port(Some("api"), 81, Some("kubernetes.io/h2c")),
        port(Some("socket"), 82, Some("kubernetes.io/ws")),
        port(Some("http"), 83, None),
        port(Some("http-admin"), 84, None),
        port(Some("h2c-api"), 85, None),
        port(Some("grpc"), 86, None),
        port(Some("web"), 87, None),
    ];
    for p in &http {
        assert!(is_http(p), "{p:?}");
    }
    let mut udp = port(Some("http"), 80, None);
    udp.protocol = Some("UDP".into());
    let other = [
        port(Some("https"), 443, None),
        port(Some("metrics"), 9090, None),
        port(Some("webhook"), 9443, None),
        port(Some("http"), 80, Some("https")),
        port(None, 80, None),
        udp,
    ];
    for p in &other {
        assert!(!is_http(p), "{p:?}");
    }
    let none = with_spec(|s| s.ports = Some(other.to_vec()));
    assert_eq!(reason(none), Some(Skip::NoHttpPort));
}

#[test]
fn the_ith_http_port_maps_to_the_parking_port_plus_i() {
    let svc = with_spec(|s| {
        s.ports = Some(vec![
            port(Some("metrics"), 9090, None),
            port(Some("http"), 80, None),
            port(Some("grpc"), 9000, Some("kubernetes.io/h2c")),
        ])
    });
    let plan = plan_of(&[svc]);
    let parked = &plan.parked[0];
    assert_eq!(
        parked.ports,
        vec![
            ParkedPort {
                name: Some("http".into()),
                app_protocol: None,
                port: 80,
                offset: 0
            },
            ParkedPort {
                name: Some("grpc".into()),
                app_protocol: Some("kubernetes.io/h2c".into()),
                port: 9000,
                offset: 1,
            },
        ]
    );
    let slice_ports = parked.slices[0].ports.clone().unwrap();
    let got: Vec<_> = slice_ports
        .iter()
        .map(|p| (p.name.as_deref(), p.app_protocol.as_deref(), p.port))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("http"), None, Some(8081)),
            (Some("grpc"), Some("kubernetes.io/h2c"), Some(8082))
        ]
    );
}

#[test]
fn beyond_eight_http_ports_the_first_eight_are_parked_and_the_rest_named() {
    let ports = (0..10)
        .map(|i| port(Some(&format!("http-{i}")), 8000 + i, None))
        .collect();
    let plan = plan_of(&[with_spec(|s| s.ports = Some(ports))]);
    let parked = &plan.parked[0];
    assert_eq!(parked.ports.len(), 8);
    assert_eq!(parked.ports[7].offset, 7);
    assert_eq!(parked.ports[7].port, 8007);
    assert_eq!(
        parked.over_limit,
        vec!["http-8".to_owned(), "http-9".to_owned()]
    );
    let last = parked.slices[0]
        .ports
        .as_ref()
        .unwrap()
        .last()
        .unwrap()
        .port;
    assert_eq!(last, Some(8088));
}

#[test]
fn the_slice_carries_name_namespace_owner_labels_and_ready_waker_endpoints() {
    let plan = plan_of(&[service("shop")]);
    assert_eq!(plan.parked[0].slices.len(), 1);
    let slice = &plan.parked[0].slices[0];
    assert_eq!(slice.metadata.name.as_deref(), Some("idle-scaler-shop"));
    assert_eq!(slice.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(slice.address_type, "IPv4");
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.api_version.as_str(), owner.kind.as_str()),
        ("v1", "Service")
    );
    assert_eq!(
        (owner.name.as_str(), owner.uid.as_str()),
        ("shop", "uid-shop")
    );
    assert_eq!(owner.block_owner_deletion, None);
    let want = labels(&[
        (SERVICE_NAME_LABEL, "shop"),
        (MANAGED_BY_LABEL, "idle-scaler"),
        (DEPLOYMENT_LABEL, "shop"),
    ]);
    assert_eq!(slice.metadata.labels.as_ref(), Some(&want));
    let endpoints: Vec<_> = slice
        .endpoints
        .iter()
        .map(|e| (e.addresses.clone(), e.conditions.as_ref().unwrap().ready))
        .collect();
    assert_eq!(
        endpoints,
        vec![
            (vec!["10.0.0.5".to_owned()], Some(true)),
            (vec!["10.0.0.6".to_owned()], Some(true))
        ]
    );
    assert!(is_ours(slice));
}

#[test]
fn dual_stack_waker_addresses_make_one_slice_per_family() {
    let waker: WakerAddresses = "[fd00::5]:9081,10.0.0.5:8081,[fd00::6]:9081"
        .parse()
        .unwrap();
    let plan = super::plan(&shop(), &[service("shop")], &[], &waker, &[]);
    let slices = &plan.parked[0].slices;
    let summary: Vec<_> = slices
        .iter()
        .map(|s| {
            let addresses: Vec<_> = s
                .endpoints
                .iter()
                .flat_map(|e| e.addresses.clone())
                .collect();
            (
                s.metadata.name.clone().unwrap(),
                s.address_type.clone(),
                addresses,
                s.ports.as_ref().unwrap()[0].port,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "idle-scaler-shop".into(),
                "IPv4".into(),
                vec!["10.0.0.5".into()],
                Some(8081)
            ),
            (
                "idle-scaler-shop-v6".into(),
                "IPv6".into(),
                vec!["fd00::5".into(), "fd00::6".into()],
                Some(9081),
            ),
        ]
    );
    let v6_only: WakerAddresses = "[fd00::5]:8081".parse().unwrap();
    let plan = super::plan(&shop(), &[service("shop")], &[], &v6_only, &[]);
    let names: Vec<_> = plan.parked[0]
        .slices
        .iter()
        .map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(names, vec![Some("idle-scaler-shop-v6".to_owned())]);
}

#[test]
fn long_service_names_are_truncated_with_a_stable_hash() {
    let fits = "a".repeat(51); // "idle-scaler-" + 51 = 63
    assert_eq!(
        slice_name(&fits, AddressFamily::V4),
        format!("idle-scaler-{fits}")
    );
    let long = "a".repeat(63);
    let v4 = slice_name(&long, AddressFamily::V4);
    let v6 = slice_name(&long, AddressFamily::V6);
    assert_eq!((v4.len(), v6.len()), (63, 63));
    assert!(
        v4.starts_with("idle-scaler-aaaa") && v6.ends_with("-v6"),
        "{v4} {v6}"
    );
    assert_eq!(v4, slice_name(&long, AddressFamily::V4), "deterministic");
    // Two names alike in the kept prefix stay apart; a hyphen never lands before the hash.
    let other = format!("{}b", "a".repeat(62));
    assert_ne!(slice_name(&other, AddressFamily::V4), v4);
    let hyphen = format!("{}-{}", "a".repeat(41), "b".repeat(21));
    let name = slice_name(&hyphen, AddressFamily::V4);
    assert!(!name.contains("--") && name.len() <= 63, "{name}");
    // Pinned (FNV-1a 32 of the full name): a later run finds the slice by it, so it never changes.
    assert_eq!(v4, format!("idle-scaler-{}-{}", "a".repeat(42), "2469b9e6"));
}

#[test]
fn a_long_deployment_name_fits_the_label_value_limit() {
    assert_eq!(deployment_label("shop"), "shop");
    let long = format!("{}.example", "d".repeat(100));
    let value = deployment_label(&long);
    assert_eq!(value.len(), 63);
    assert_eq!(value, deployment_label(&long), "deterministic");
    assert_ne!(value, deployment_label(&format!("{long}2")));
    let plan = super::plan(
        &deployment(&long, &[("app", "shop")]),
        &[service("shop")],
        &[],
        &v4(),
        &[],
    );
    let labels = plan.parked[0].slices[0].metadata.labels.clone().unwrap();
    assert_eq!(labels.get(DEPLOYMENT_LABEL), Some(&value));
}

#[test]
fn waker_addresses_parse_and_refuse_with_the_bad_entry_named() {
    let parsed: WakerAddresses = " 10.0.0.5:8081 , [fd00::1]:8081,10.0.0.5:8081"
        .parse()
        .unwrap();
    assert_eq!(
        parsed.to_string(),
        "10.0.0.5:8081,[fd00::1]:8081",
        "trimmed, deduplicated"
    );
    let err = |s: &str| s.parse::<WakerAddresses>().unwrap_err();
    assert_eq!(err(""), AddressError::Empty);
    assert_eq!(err(" , "), AddressError::Empty);
    assert_eq!(
        err("10.0.0.5:8081,10.0.0.6"),
        AddressError::Syntax("10.0.0.6".into())
    );
    assert_eq!(
        err("fd00::1:8081"),
        AddressError::Syntax("fd00::1:8081".into())
    );
    assert_eq!(err("waker:8081"), AddressError::Syntax("waker:8081".into()));
    assert_eq!(
        err("0.0.0.0:8081"),
        AddressError::Unusable("0.0.0.0:8081".into())
    );
    assert_eq!(
        err("10.0.0.5:0"),
        AddressError::Unusable("10.0.0.5:0".into())
    );
    assert_eq!(
        err("[ff02::1]:8081"),
        AddressError::Unusable("[ff02::1]:8081".into())
    );
    assert_eq!(
        err("10.0.0.5:65530"),
        AddressError::PortRange("10.0.0.5:65530".into())
    );
    assert_eq!(
        err("10.0.0.5:8081,[fd00::1]:9000,10.0.0.6:8082"),
        AddressError::MixedPorts {
            first: "10.0.0.5:8081".into(),
            second: "10.0.0.6:8082".into()
        }
    );
    assert!(err("10.0.0.6").to_string().contains("\"10.0.0.6\""));
    assert!(
        "10.0.0.5:65528".parse::<WakerAddresses>().is_ok(),
        "65528 + 7 = 65535"
    );
}

#[test]
fn is_ours_needs_the_managed_by_label() {
    let slice = |pairs: &[(&str, &str)]| EndpointSlice {
        metadata: ObjectMeta {
            name: Some("idle-scaler-shop".into()),
            labels: Some(labels(pairs)),
            ..ObjectMeta::default()
        },
        ..EndpointSlice::default()
    };
    assert!(is_ours(&slice(&[(MANAGED_BY_LABEL, "idle-scaler")])));
    assert!(!is_ours(&slice(&[(
        MANAGED_BY_LABEL,
        "endpointslice-controller.k8s.io"
    )])));
    assert!(!is_ours(&slice(&[(SERVICE_NAME_LABEL, "shop")])));
    assert!(!is_ours(&EndpointSlice::default()));
}

#[test]
fn skip_labels_are_distinct_snake_case() {
    let all = [
        Skip::NoSelector,
        Skip::NotSelected,
        Skip::Shared,
        Skip::Protected,
        Skip::ExternalName,
        Skip::Headless,
        Skip::LocalTrafficPolicy,
        Skip::OptedOut,
        Skip::NoHttpPort,
    ];
    let labels: std::collections::BTreeSet<_> = all.iter().map(|s| s.as_str()).collect();
    assert_eq!(labels.len(), all.len());
    assert!(
        labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    );
    assert_eq!(Skip::NoHttpPort.as_str(), "no_http_port");
    assert_eq!(Skip::Shared.as_str(), "shared");
}
