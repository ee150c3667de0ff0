use std::net::IpAddr;

use super::*;

const REFUSE: LocalAddresses = LocalAddresses::Refuse;

/// The whole error chain, as the binary prints it.
fn error(result: anyhow::Result<impl fmt::Debug>) -> String {
    format!("{:#}", result.expect_err("an error"))
}

#[test]
fn the_parking_listener_defaults_to_8081_and_can_be_turned_off() {
    assert_eq!(
        listen_addr(None).expect("default"),
        Some(SocketAddr::from(([0, 0, 0, 0], 8081)))
    );
    assert_eq!(listen_addr(Some("off")).expect("off"), None);
    assert_eq!(
        listen_addr(Some(" [::1]:9000 ")).expect("IPv6"),
        Some("[::1]:9000".parse().expect("addr"))
    );
    // The last base whose eight ports fit.
    assert_eq!(
        listen_addr(Some("127.0.0.1:65528")).expect("fits"),
        Some(SocketAddr::from(([127, 0, 0, 1], 65528)))
    );
}

#[test]
fn a_parking_port_whose_eight_ports_pass_65535_is_an_error_naming_the_value() {
    for value in ["0.0.0.0:65529", "0.0.0.0:65535"] {
        let e = error(listen_addr(Some(value)));
        assert!(
            e.contains(&format!("IDLE_SCALER_PARKING_LISTEN_ADDR = {value:?}"))
                && e.contains("from 1 to 65528"),
            "{e}"
        );
    }
    let e = error(listen_addr(Some("0.0.0.0:0")));
    assert!(e.contains("\"0.0.0.0:0\""), "{e}");
    let e = error(listen_addr(Some("8081")));
    assert!(
        e.contains("IDLE_SCALER_PARKING_LISTEN_ADDR = \"8081\"") && e.contains("host:port"),
        "{e}"
    );
}

#[test]
fn the_waker_service_defaults_to_idle_scaler_in_the_pods_namespace() {
    assert_eq!(
        waker_address_source(None, None, Some("platform-idle-scaler"), REFUSE).expect("default"),
        WakerAddressSource::Service(WakerService {
            namespace: "platform-idle-scaler".into(),
            name: "idle-scaler".into(),
        })
    );
    // Outside a pod, with neither variable: nothing to point slices at, said by the caller.
    assert_eq!(
        waker_address_source(None, None, None, REFUSE).expect("unset"),
        WakerAddressSource::Unset
    );
    let e = error(waker_address_source(
        None,
        None,
        Some("Not_A_Namespace"),
        REFUSE,
    ));
    assert!(e.contains("POD_NAMESPACE = \"Not_A_Namespace\""), "{e}");
}

#[test]
fn a_waker_service_is_namespace_slash_name() {
    let source =
        waker_address_source(None, Some("ops/waker-2"), Some("ignored"), REFUSE).expect("ok");
    assert_eq!(
        source,
        WakerAddressSource::Service(WakerService {
            namespace: "ops".into(),
            name: "waker-2".into(),
        })
    );
    assert_eq!(source.to_string(), "service ops/waker-2");
    for bad in [
        "waker",
        "ops/",
        "/waker",
        "ops/waker/extra",
        "Ops/waker",
        "ops/-waker",
        "ops/waker_2",
        &format!("ops/{}", "w".repeat(64)),
    ] {
        let e = error(waker_address_source(None, Some(bad), None, REFUSE));
        assert!(
            e.contains(&format!("IDLE_SCALER_WAKER_SERVICE = {bad:?}"))
                && e.contains("<namespace>/<name>"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn static_waker_addresses_are_parsed_per_family() {
    let source = waker_address_source(
        Some("10.0.0.7:8081, 10.0.0.8:8081,[fd00::7]:8081"),
        None,
        Some("ns"),
        REFUSE,
    )
    .expect("static");
    let WakerAddressSource::Static(addresses) = &source else {
        panic!("static expected: {source:?}");
    };
    let v4 = addresses.v4().expect("IPv4");
    assert_eq!(v4.port, 8081);
    assert_eq!(
        v4.ips,
        ["10.0.0.7", "10.0.0.8"].map(|ip| ip.parse::<IpAddr>().expect("ip"))
    );
    assert_eq!(addresses.v6().expect("IPv6").port, 8081);
    assert_eq!(
        source.to_string(),
        "static 10.0.0.7:8081,10.0.0.8:8081,[fd00::7]:8081"
    );
}

#[test]
fn malformed_waker_addresses_are_an_error_naming_the_value_and_the_entry() {
    for (value, entry) in [
        ("10.0.0.7", "\"10.0.0.7\""),
        ("10.0.0.7:8081,fd00::7:8081", "\"fd00::7:8081\""),
        ("10.0.0.7:65530", "\"10.0.0.7:65530\""),
        ("10.0.0.7:8081,10.0.0.8:9000", "\"10.0.0.8:9000\""),
        ("0.0.0.0:8081", "\"0.0.0.0:8081\""),
        (" , ", "no waker address"),
    ] {
        let e = error(waker_address_source(Some(value), None, None, REFUSE));
        assert!(
            e.contains(&format!("IDLE_SCALER_WAKER_ADDRESSES = {value:?}")) && e.contains(entry),
            "{value}: {e}"
        );
    }
}

#[test]
fn both_waker_variables_at_once_are_an_error() {
    let e = error(waker_address_source(
        Some("10.0.0.7:8081"),
        Some("ops/waker"),
        Some("ns"),
        REFUSE,
    ));
    assert!(
        e.contains("IDLE_SCALER_WAKER_ADDRESSES") && e.contains("IDLE_SCALER_WAKER_SERVICE"),
        "{e}"
    );
}

#[test]
fn loopback_waker_addresses_need_the_test_rig_switch() {
    let e = error(waker_address_source(
        Some("127.0.0.1:8081"),
        None,
        None,
        REFUSE,
    ));
    assert!(
        e.contains("IDLE_SCALER_WAKER_ADDRESSES = \"127.0.0.1:8081\""),
        "{e}"
    );
    let local = local_addresses(Some("true")).expect("switch");
    assert_eq!(local, LocalAddresses::Allow);
    let source = waker_address_source(Some("127.0.0.1:8081"), None, None, local).expect("rig");
    assert_eq!(source.to_string(), "static 127.0.0.1:8081");
    assert_eq!(local_addresses(None).expect("unset"), REFUSE);
    let e = error(local_addresses(Some("yes")));
    assert!(
        e.contains("IDLE_SCALER_ALLOW_LOOPBACK_ADDRESSES = \"yes\""),
        "{e}"
    );
}

#[test]
fn the_route_index_is_on_unless_turned_off_and_anything_else_is_an_error() {
    assert!(route_index(None).expect("default"));
    assert!(route_index(Some(" on ")).expect("on"));
    assert!(!route_index(Some("off")).expect("off"));
    for bad in ["true", "false", "Off", "disabled"] {
        let message = error(route_index(Some(bad)));
        assert!(
            message.contains("IDLE_SCALER_ROUTE_INDEX") && message.contains(&format!("{bad:?}")),
            "{message}"
        );
    }
}
