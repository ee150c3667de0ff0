use super::*;
use idle_scaler_core::Target;

fn web() -> ParkedServiceInfo {
    ParkedServiceInfo {
        namespace: "apps".to_owned(),
        name: "web".to_owned(),
        cluster_ip: Some("10.96.0.7".parse().expect("ip")),
        target: Target::new("apps", "web"),
        ports: vec![ListenerPort {
            offset: 0,
            name: Some("http".to_owned()),
            port: 80,
            app_protocol: None,
        }],
        callers: Vec::new(),
    }
}

#[test]
fn every_host_form_of_a_parked_service_names_it_and_nothing_else_does() {
    let d = MemoryDirectory::new("corp.example");
    d.park(web());
    for host in [
        "web.apps",
        "web.apps.svc",
        "web.apps.svc.corp.example",
        "web.apps.svc.corp.example.",
        "10.96.0.7",
    ] {
        assert_eq!(
            d.lookup(host, None).map(|s| s.name.clone()).as_deref(),
            Some("web"),
            "{host}"
        );
    }
    assert!(
        d.lookup("web", Some("apps")).is_some(),
        "bare name in the caller's namespace"
    );
    for (host, caller) in [
        ("web", None),
        ("web", Some("other")),
        ("web.apps.svc.cluster.local", None),
        ("web.other", None),
        ("web.apps.example.com", None),
        ("10.96.0.8", None),
        ("", Some("apps")),
    ] {
        assert!(d.lookup(host, caller).is_none(), "{host} from {caller:?}");
    }
    d.unpark("apps", "web");
    assert!(d.lookup("web.apps", None).is_none());
}

#[tokio::test]
async fn ready_endpoint_waits_for_the_app_and_times_out_without_it() {
    let d = MemoryDirectory::default();
    d.park(web());
    let svc = web();
    let port = &svc.ports[0];
    assert_eq!(
        d.ready_endpoint(&svc, port, Duration::from_millis(20))
            .await
            .expect("ok"),
        None
    );
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let (found, ()) = tokio::join!(
        d.ready_endpoint(&svc, port, Duration::from_secs(10)),
        async {
            tokio::task::yield_now().await;
            assert_eq!(d.waiting(), 1);
            d.set_endpoint("apps", "web", Some("http"), addr);
        }
    );
    assert_eq!(found.expect("ok"), Some(addr));
    assert_eq!(d.waiting(), 0);
    d.set_pod("127.0.0.2".parse().expect("ip"), "apps");
    assert_eq!(
        d.pod_namespace("127.0.0.2".parse().expect("ip"))
            .await
            .expect("ok")
            .as_deref(),
        Some("apps")
    );
    assert_eq!(
        d.pod_namespace("127.0.0.3".parse().expect("ip"))
            .await
            .expect("ok"),
        None
    );
    assert_eq!(d.pod_lookups(), 2);
}
