//! With the route index: a port a route names (by number, or an `Ingress` by name) is parked
//! whatever its name says, in the Service's port order, at most eight.

use std::collections::HashMap;

use idle_scaler_core::{RouteBackend, RouteIndex};
use k8s_openapi::api::core::v1::Service;

use super::{NS, port, shop, v4, with_spec};
use crate::parking::{ParkPlan, Skip, plan_routed};

/// Route ports per `namespace/service`: numbers, and names.
#[derive(Default)]
struct Routes(HashMap<String, Vec<i32>>, HashMap<String, Vec<String>>);

impl Routes {
    fn to(mut self, service: &str, ports: &[i32]) -> Self {
        self.0.insert(format!("{NS}/{service}"), ports.to_vec());
        self
    }

    fn by_name(mut self, service: &str, names: &[&str]) -> Self {
        let names = names.iter().map(|n| (*n).to_owned()).collect();
        self.1.insert(format!("{NS}/{service}"), names);
        self
    }
}

impl RouteIndex for Routes {
    fn resolve(&self, _host: &str, _path: &str) -> Vec<RouteBackend> {
        Vec::new()
    }

    fn route_ports(&self, namespace: &str, service: &str) -> Vec<i32> {
        self.0
            .get(&format!("{namespace}/{service}"))
            .cloned()
            .unwrap_or_default()
    }

    fn route_port_names(&self, namespace: &str, service: &str) -> Vec<String> {
        self.1
            .get(&format!("{namespace}/{service}"))
            .cloned()
            .unwrap_or_default()
    }
}

fn routed_plan(services: &[Service], routes: &Routes) -> ParkPlan {
    plan_routed(&shop(), services, &[], &v4(), &[], Some(routes))
}

/// The parked ports' (number, offset).
fn parked_ports(plan: &ParkPlan) -> Vec<(i32, u16)> {
    assert_eq!(plan.parked.len(), 1, "{plan:?}");
    plan.parked[0]
        .ports
        .iter()
        .map(|p| (p.port, p.offset))
        .collect()
}

/// `shop` with a TCP port `metrics` 9090, an `https` port 8443 and `http` 80.
fn mixed() -> Service {
    with_spec(|s| {
        s.ports = Some(vec![
            port(Some("metrics"), 9090, None),
            port(Some("tls"), 8443, Some("https")),
            port(Some("http"), 80, None),
        ]);
    })
}

#[test]
fn a_routed_port_is_parked_though_its_name_does_not_say_http() {
    let only_tcp = with_spec(|s| s.ports = Some(vec![port(Some("app"), 3000, None)]));
    // Without the index: nothing says HTTP.
    let unrouted = routed_plan(std::slice::from_ref(&only_tcp), &Routes::default());
    assert_eq!(unrouted.skipped[0].reason, Skip::NoHttpPort);
    let plan = routed_plan(&[only_tcp], &Routes::default().to("shop", &[3000]));
    assert_eq!(parked_ports(&plan), vec![(3000, 0)]);
    assert_eq!(plan.parked[0].slices.len(), 1, "{plan:?}");
}

#[test]
fn routed_ports_keep_the_services_order_among_the_http_ones() {
    let plan = routed_plan(&[mixed()], &Routes::default().to("shop", &[8443, 9090]));
    assert_eq!(parked_ports(&plan), vec![(9090, 0), (8443, 1), (80, 2)]);
    // A route to another Service's port number parks nothing here.
    let plan = routed_plan(&[mixed()], &Routes::default().to("cart", &[9090]));
    assert_eq!(parked_ports(&plan), vec![(80, 0)]);
}

#[test]
fn a_port_an_ingress_names_by_name_is_parked_like_one_by_number() {
    // Neither `app` nor `metrics` says HTTP.
    let two = with_spec(|s| {
        s.ports = Some(vec![
            port(Some("metrics"), 9090, None),
            port(Some("app"), 3000, None),
        ]);
    });
    let unrouted = routed_plan(std::slice::from_ref(&two), &Routes::default());
    assert_eq!(unrouted.skipped[0].reason, Skip::NoHttpPort);
    let plan = routed_plan(
        std::slice::from_ref(&two),
        &Routes::default().by_name("shop", &["app"]),
    );
    assert_eq!(
        parked_ports(&plan),
        vec![(3000, 0)],
        "metrics stays unparked"
    );
    assert_eq!(plan.parked[0].ports[0].name.as_deref(), Some("app"));
    // A name and a number together, in the Service's order; a name on another Service
    // parks nothing here.
    let routes = Routes::default()
        .to("shop", &[9090])
        .by_name("shop", &["app"])
        .by_name("cart", &["metrics"]);
    let plan = routed_plan(&[two], &routes);
    assert_eq!(parked_ports(&plan), vec![(9090, 0), (3000, 1)]);
    let plan = routed_plan(&[mixed()], &Routes::default().by_name("cart", &["metrics"]));
    assert_eq!(parked_ports(&plan), vec![(80, 0)]);
}

#[test]
fn a_routed_udp_port_is_not_parked() {
    let udp = with_spec(|s| {
        let mut dns = port(Some("dns"), 53, None);
        dns.protocol = Some("UDP".into());
        s.ports = Some(vec![dns]);
    });
    let plan = routed_plan(
        std::slice::from_ref(&udp),
        &Routes::default().to("shop", &[53]),
    );
    assert_eq!(plan.skipped[0].reason, Skip::NoHttpPort);
    let plan = routed_plan(&[udp], &Routes::default().by_name("shop", &["dns"]));
    assert_eq!(plan.skipped[0].reason, Skip::NoHttpPort);
}

#[test]
fn routed_ports_count_towards_the_eight() {
    let ports: Vec<_> = (0..10)
        .map(|i| port(Some(&format!("p{i}")), 7000 + i, None))
        .collect();
    let many = with_spec(|s| s.ports = Some(ports));
    let all: Vec<i32> = (0..10).map(|i| 7000 + i).collect();
    let plan = routed_plan(&[many], &Routes::default().to("shop", &all));
    let parked = parked_ports(&plan);
    assert_eq!(parked.len(), 8);
    assert_eq!(parked[7], (7007, 7));
    assert_eq!(plan.parked[0].over_limit, vec!["p8", "p9"]);
}

#[test]
fn without_the_index_the_plan_is_the_plain_one() {
    let services = [mixed()];
    let plain = super::plan(&shop(), &services, &[], &v4(), &[]);
    let routed = plan_routed(&shop(), &services, &[], &v4(), &[], None);
    assert_eq!(plain, routed);
    assert_eq!(parked_ports(&plain), vec![(80, 0)]);
}
