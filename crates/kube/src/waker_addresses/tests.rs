//! The static list's rules, the waker Service's name, and which endpoints of its slices are
//! waker addresses.

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};

use super::watched::ready_addresses;
use super::*;

#[test]
fn a_static_list_parses_ipv4_and_bracketed_ipv6() {
    let got = parse_addresses(
        "10.0.0.7:8081, [fd00::7]:8081,10.0.0.8:8081",
        LocalAddresses::Refuse,
    )
    .expect("valid");
    assert_eq!(
        got.to_string(),
        "10.0.0.7:8081,10.0.0.8:8081,[fd00::7]:8081"
    );
}

#[test]
fn a_parse_error_names_the_value_and_the_entry() {
    let e = parse_addresses("10.0.0.7:8081,fd00::7:8081", LocalAddresses::Refuse).unwrap_err();
    assert_eq!(e.value, "10.0.0.7:8081,fd00::7:8081");
    assert_eq!(e.source, AddressError::Syntax("fd00::7:8081".into()));
    let text = e.to_string();
    assert!(text.contains("\"10.0.0.7:8081,fd00::7:8081\""), "{text}");
    assert!(text.contains("fd00::7:8081\" is not"), "{text}");
}

#[test]
fn an_empty_value_is_refused() {
    let e = parse_addresses(" , ", LocalAddresses::Refuse).unwrap_err();
    assert_eq!(e.source, AddressError::Empty);
}

#[test]
fn loopback_and_link_local_are_refused_unless_a_test_rig_allows_them() {
    for value in [
        "127.0.0.1:8081",
        "10.0.0.1:8081,169.254.3.4:8081",
        "[::1]:8081",
        "[fe80::1]:8081",
        "[::ffff:127.0.0.1]:8081",
    ] {
        let e = parse_addresses(value, LocalAddresses::Refuse).unwrap_err();
        assert!(matches!(e.source, AddressError::Local(_)), "{value}: {e}");
        assert!(e.to_string().contains(value), "{e}");
        parse_addresses(value, LocalAddresses::Allow).expect(value);
    }
}

#[tokio::test]
async fn a_fixed_feed_holds_the_addresses_and_announces_no_change() {
    let mut feed = fixed_addresses("10.0.0.7:8081", LocalAddresses::Refuse).expect("valid");
    assert_eq!(
        feed.borrow().as_ref().map(ToString::to_string).as_deref(),
        Some("10.0.0.7:8081")
    );
    assert!(feed.changed().await.is_err(), "no sender: no change");
}

#[test]
fn the_waker_service_is_namespace_slash_name() {
    let got: WakerService = "idle-scaler/idle-scaler".parse().expect("valid");
    assert_eq!(got.namespace, "idle-scaler");
    assert_eq!(got.name, "idle-scaler");
    assert_eq!(got.to_string(), "idle-scaler/idle-scaler");
    for bad in [
        "",
        "idle-scaler",
        "/x",
        "x/",
        "a/b/c",
        "A/b",
        "a/-b",
        "a b/c",
    ] {
        let e = bad.parse::<WakerService>().unwrap_err();
        assert_eq!(e.0, bad);
    }
}

fn endpoint(ip: &str, ready: Option<bool>) -> Endpoint {
    Endpoint {
        addresses: vec![ip.into()],
        conditions: Some(EndpointConditions {
            ready,
            ..EndpointConditions::default()
        }),
        ..Endpoint::default()
    }
}

fn slice(ports: &[(&str, i32)], endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        address_type: "IPv4".into(),
        endpoints,
        ports: Some(
            ports
                .iter()
                .map(|(name, port)| EndpointPort {
                    name: Some((*name).into()),
                    port: Some(*port),
                    ..EndpointPort::default()
                })
                .collect(),
        ),
        ..EndpointSlice::default()
    }
}

#[test]
fn only_ready_endpoints_on_the_parking_port_are_waker_addresses() {
    let slices = [
        slice(
            &[("metrics", 9090), ("parking", 8081)],
            vec![
                endpoint("10.0.0.9", Some(true)),
                endpoint("10.0.0.2", Some(true)),
                endpoint("10.0.0.3", Some(false)),
                endpoint("10.0.0.4", None),
            ],
        ),
        // The same pod in a second slice: counted once.
        slice(&[("parking", 8081)], vec![endpoint("10.0.0.2", Some(true))]),
        // No `parking` port: not a parking listener.
        slice(&[("http", 8080)], vec![endpoint("10.0.0.5", Some(true))]),
    ];
    let (kept, dropped) = ready_addresses(&slices, LocalAddresses::Refuse);
    let kept: Vec<String> = kept.iter().map(ToString::to_string).collect();
    assert_eq!(kept, ["10.0.0.2:8081", "10.0.0.9:8081"]);
    assert!(dropped.is_empty());
}

#[test]
fn loopback_endpoints_are_dropped_unless_allowed() {
    let slices = [slice(
        &[("parking", 8081)],
        vec![
            endpoint("127.0.0.1", Some(true)),
            endpoint("10.0.0.2", Some(true)),
        ],
    )];
    let (kept, dropped) = ready_addresses(&slices, LocalAddresses::Refuse);
    assert_eq!(kept.len(), 1);
    assert_eq!(dropped[0].to_string(), "127.0.0.1:8081");
    let (kept, dropped) = ready_addresses(&slices, LocalAddresses::Allow);
    assert_eq!(kept.len(), 2);
    assert!(dropped.is_empty());
}
