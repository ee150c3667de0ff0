use super::*;
use idle_scaler_core::Target;
use idle_scaler_testkit::memory::MemoryDirectory;

fn service(callers: &[&str]) -> ParkedServiceInfo {
    ParkedServiceInfo {
        namespace: "apps".to_owned(),
        name: "web".to_owned(),
        cluster_ip: None,
        target: Target::new("apps", "web"),
        ports: Vec::new(),
        callers: callers.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[tokio::test]
async fn pods_of_the_apps_namespace_admitted_namespaces_and_gateways_may_call_no_one_else() {
    let directory = MemoryDirectory::default();
    directory.set_pod(ip("10.0.0.1"), "apps");
    directory.set_pod(ip("10.0.0.2"), "other");
    directory.set_pod(ip("10.0.0.3"), "gateways");
    directory.set_pod(ip("10.0.0.4"), "friends");
    let config = WakerConfig {
        waker_gateway_namespaces: "gateways".to_owned(),
        waker_trusted_cidrs: "192.168.0.0/16, fd00::/8".to_owned(),
        ..WakerConfig::default()
    };
    let trust = Trust::new(&config);
    let check = async |addr: &str, callers: &[&str]| {
        let caller = Caller::resolve(ip(addr), &trust, &directory).await;
        (caller.may_call(&service(callers)), caller.trusted)
    };
    assert_eq!(check("10.0.0.1", &[]).await, (true, false), "own namespace");
    assert_eq!(
        check("10.0.0.2", &[]).await,
        (false, false),
        "another namespace"
    );
    assert_eq!(check("10.0.0.2", &["other"]).await, (true, false), "listed");
    assert_eq!(check("10.0.0.2", &["*"]).await, (true, false), "any");
    assert_eq!(
        check("10.0.0.4", &["other"]).await,
        (false, false),
        "not listed"
    );
    assert_eq!(check("10.0.0.3", &[]).await, (true, true), "gateway");
    assert_eq!(
        check("192.168.4.5", &[]).await,
        (true, true),
        "trusted CIDR"
    );
    assert_eq!(
        check("::ffff:192.168.4.5", &[]).await,
        (true, true),
        "mapped IPv4"
    );
    assert_eq!(
        check("fd00::9", &[]).await,
        (true, true),
        "trusted IPv6 CIDR"
    );
    assert_eq!(check("10.9.9.9", &["*"]).await, (false, false), "no pod");
}
