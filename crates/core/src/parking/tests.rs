use super::*;

fn info(callers: &[&str]) -> ParkedServiceInfo {
    ParkedServiceInfo {
        namespace: "shop".into(),
        name: "web".into(),
        cluster_ip: None,
        target: Target::parse("k8s:shop/web").unwrap(),
        ports: vec![ListenerPort {
            offset: 1,
            name: Some("http".into()),
            port: 80,
            app_protocol: None,
        }],
        callers: callers.iter().map(|c| (*c).to_owned()).collect(),
    }
}

#[test]
fn a_service_admits_its_own_namespace_and_the_listed_callers_only() {
    assert!(info(&[]).admits("shop"));
    assert!(!info(&[]).admits("other"));
    assert!(info(&["other"]).admits("other"));
    assert!(!info(&["other"]).admits("third"));
    assert!(info(&["*"]).admits("third"));
}

#[test]
fn a_port_is_found_by_its_listener_offset() {
    assert_eq!(info(&[]).port_at(1).map(|p| p.port), Some(80));
    assert!(info(&[]).port_at(0).is_none());
}

#[test]
fn reports_count_and_merge() {
    let mut a = ParkReport::default();
    a.add("parked");
    a.add("parked");
    let mut b = ParkReport::default();
    b.add("parked");
    b.add("conflict");
    a.merge(&b);
    assert_eq!(a.count("parked"), 3);
    assert_eq!(a.count("conflict"), 1);
    assert_eq!(a.count("failed"), 0);
}
