use super::*;

#[test]
fn the_host_loses_its_port_brackets_final_dot_and_case() {
    for (raw, name) in [
        ("web.apps", Some("web.apps")),
        (
            "Web.Apps.SVC.cluster.local:8080",
            Some("web.apps.svc.cluster.local"),
        ),
        (
            "web.apps.svc.cluster.local.",
            Some("web.apps.svc.cluster.local"),
        ),
        ("10.96.0.7:80", Some("10.96.0.7")),
        ("[fd00::7]:80", Some("fd00::7")),
        ("[fd00::7]", Some("fd00::7")),
        ("web", Some("web")),
        ("", None),
        (":80", None),
        ("web:http", None),
        ("[fd00::7]x", None),
        ("web/apps", None),
        ("web apps", None),
    ] {
        assert_eq!(host_name(raw).as_deref(), name, "{raw:?}");
    }
}

#[test]
fn the_host_header_names_the_request_and_no_other_header_does() {
    let req = Request::builder()
        .uri("/")
        .header("Host", "web.apps:80")
        .header("X-Idle-Scaler-Target", "apps/other")
        .header("X-Namespace", "apps")
        .header("X-Service-Name", "other")
        .body(())
        .expect("request");
    assert_eq!(host_of(&req).as_deref(), Some("web.apps"));
    let absolute = Request::builder()
        .uri("http://web.apps/x")
        .body(())
        .expect("request");
    assert_eq!(host_of(&absolute).as_deref(), Some("web.apps"));
    let none = Request::builder()
        .uri("/")
        .header("X-Idle-Scaler-Target", "apps/other")
        .body(())
        .expect("request");
    assert_eq!(host_of(&none), None);
}

mod routed {
    use std::net::IpAddr;

    use idle_scaler_core::{ListenerPort, ParkedServiceInfo, RouteBackend, Target};
    use idle_scaler_testkit::memory::MemoryDirectory;

    use super::super::routed;

    /// `apps/<name>` parked with `ports` (number, offset), named `p<number>`.
    fn parked(name: &str, ports: &[(i32, u16)]) -> ParkedServiceInfo {
        ParkedServiceInfo {
            namespace: "apps".to_owned(),
            name: name.to_owned(),
            cluster_ip: None,
            target: Target::new("apps", name),
            ports: ports
                .iter()
                .map(|&(port, offset)| ListenerPort {
                    offset,
                    name: Some(format!("p{port}")),
                    port,
                    app_protocol: None,
                })
                .collect(),
            callers: Vec::new(),
        }
    }

    fn backend(namespace: &str, service: &str, port: Option<i32>) -> RouteBackend {
        RouteBackend {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            port,
            port_name: None,
        }
    }

    fn by_name(service: &str, name: &str) -> RouteBackend {
        RouteBackend {
            port_name: Some(name.to_owned()),
            ..backend("apps", service, None)
        }
    }

    fn directory() -> MemoryDirectory {
        let directory = MemoryDirectory::new("cluster.local");
        directory.park(parked("blue", &[(8080, 0), (9090, 1)]));
        directory.park(parked("green", &[(80, 0)]));
        directory.set_pod("127.0.0.9".parse::<IpAddr>().unwrap(), "apps");
        directory
    }

    fn chosen(backends: &[RouteBackend], offset: u16) -> Option<String> {
        routed(&directory(), backends, offset).map(|s| s.name.clone())
    }

    #[test]
    fn the_backend_whose_port_is_parked_at_the_requests_offset_wins() {
        let split = [
            backend("apps", "blue", Some(80)),
            backend("apps", "green", Some(80)),
        ];
        assert_eq!(chosen(&split, 0).as_deref(), Some("green"));
        // At offset 1 only blue has a parked port, and it is not the route's: the first
        // parked backend.
        assert_eq!(chosen(&split, 1).as_deref(), Some("blue"));
        let by_port = [
            backend("apps", "green", Some(80)),
            backend("apps", "blue", Some(9090)),
        ];
        assert_eq!(chosen(&by_port, 1).as_deref(), Some("blue"));
    }

    #[test]
    fn a_port_named_by_name_matches_the_parked_port_of_that_name() {
        let split = [by_name("green", "p80"), by_name("blue", "p9090")];
        assert_eq!(chosen(&split, 1).as_deref(), Some("blue"));
        assert_eq!(chosen(&split, 0).as_deref(), Some("green"));
        // No parked port of that name at the offset: the first parked backend.
        let split = [by_name("green", "other"), by_name("blue", "p8080")];
        assert_eq!(chosen(&split, 1).as_deref(), Some("green"));
    }

    #[test]
    fn unparked_backends_never_wake_and_a_portless_one_takes_the_first_parked() {
        let unparked_first = [
            backend("apps", "gone", Some(80)),
            backend("shop", "green", Some(80)),
            backend("apps", "blue", None),
        ];
        assert_eq!(chosen(&unparked_first, 0).as_deref(), Some("blue"));
        assert_eq!(chosen(&[backend("apps", "gone", Some(80))], 0), None);
        assert_eq!(chosen(&[], 0), None);
    }
}
