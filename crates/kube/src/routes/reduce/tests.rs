use serde_json::{Value, json};

use super::*;

fn route(spec: Value, accepted_by: &[Value]) -> HttpRoute {
    let parents: Vec<Value> = accepted_by
        .iter()
        .map(|p| {
            json!({
                "parentRef": p,
                "controllerName": "example.com/gateway",
                "conditions": [{ "type": "Accepted", "status": "True" }],
            })
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {
            "name": "shop", "namespace": "apps",
            "creationTimestamp": "2026-01-02T03:04:05Z",
        },
        "spec": spec,
        "status": { "parents": parents },
    }))
    .expect("an HTTPRoute")
}

fn gateway(listeners: Value) -> Gateway {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": { "name": "public", "namespace": "infra" },
        "spec": { "gatewayClassName": "x", "listeners": listeners },
    }))
    .expect("a Gateway")
}

fn gateways() -> Gateways {
    let g = gateway(json!([
        { "name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.com" },
        { "name": "any", "port": 8080, "protocol": "HTTP" },
        { "name": "tcp", "port": 9000, "protocol": "TCP" },
    ]));
    [(("infra".to_owned(), "public".to_owned()), listeners(&g))].into()
}

fn reduce_with(r: &HttpRoute, gateways: &Gateways, grants: &Grants) -> (Option<Route>, Notes) {
    let mut notes = Notes::default();
    let ctx = Context {
        gateways: Some(gateways),
        grants,
    };
    (http_route(r, &ctx, &mut notes).route, notes)
}

fn parent(section: Option<&str>) -> Value {
    match section {
        Some(s) => json!({ "name": "public", "namespace": "infra", "sectionName": s }),
        None => json!({ "name": "public", "namespace": "infra" }),
    }
}

fn to_web() -> Value {
    json!([{ "backendRefs": [{ "name": "web", "port": 8080 }] }])
}

#[test]
fn only_tcp_listeners_are_dropped_from_a_gateway() {
    let names: Vec<String> = gateways().into_values().flatten().map(|l| l.name).collect();
    assert_eq!(names, ["http", "any"]);
}

#[test]
fn a_route_without_an_accepted_parent_is_not_indexed() {
    let mut r = route(json!({ "rules": to_web() }), &[parent(Some("http"))]);
    r.status.as_mut().expect("status").parents[0].conditions[0].status = "False".into();
    assert_eq!(reduce_with(&r, &gateways(), &Grants::new()).0, None);
}

#[test]
fn a_route_without_hostnames_takes_its_listeners_and_defaults_apply() {
    let r = route(json!({ "rules": to_web() }), &[parent(Some("http"))]);
    let got = reduce_with(&r, &gateways(), &Grants::new())
        .0
        .expect("indexed");
    assert_eq!(got.created, 1_767_323_045);
    assert_eq!(
        (got.namespace.as_str(), got.name.as_str()),
        ("apps", "shop")
    );
    assert_eq!(
        got.rules,
        [RouteRule {
            hostnames: vec!["*.example.com".into()],
            path: PathMatch::Prefix("/".into()),
            rewrites: false,
            default_backend: false,
            backends: vec![RouteBackend {
                namespace: "apps".into(),
                service: "web".into(),
                port: Some(8080),
                port_name: None,
            }],
        }]
    );
    // Every listener of the Gateway, one of them for any host.
    let r = route(json!({ "rules": to_web() }), &[parent(None)]);
    let got = reduce_with(&r, &gateways(), &Grants::new())
        .0
        .expect("indexed");
    assert!(got.rules[0].hostnames.is_empty(), "any host");
}

#[test]
fn route_and_listener_hostnames_intersect_and_disjoint_ones_do_not_attach() {
    let spec = json!({
        "hostnames": ["Shop.Example.com", "shop.other.org"],
        "rules": to_web(),
    });
    let r = route(spec, &[parent(Some("http"))]);
    let got = reduce_with(&r, &gateways(), &Grants::new())
        .0
        .expect("indexed");
    assert_eq!(got.rules[0].hostnames, ["shop.example.com"]);
    let r = route(
        json!({ "hostnames": ["shop.other.org"], "rules": to_web() }),
        &[parent(Some("http"))],
    );
    assert_eq!(reduce_with(&r, &gateways(), &Grants::new()).0, None);
    // A Gateway not known: the route attaches nowhere.
    assert_eq!(reduce_with(&r, &Gateways::new(), &Grants::new()).0, None);
}

#[test]
fn matches_become_rules_and_regex_paths_are_skipped_and_counted() {
    let spec = json!({ "hostnames": ["a.example.com"], "rules": [{
        "matches": [
            { "path": { "type": "Exact", "value": "/login" } },
            { "path": { "type": "RegularExpression", "value": "/x.*" } },
            { "headers": [{ "name": "x-canary", "value": "1" }] },
        ],
        "filters": [{ "type": "URLRewrite", "urlRewrite": { "hostname": "b.example.com" } }],
        "backendRefs": [
            { "name": "blue", "port": 80, "weight": 90 },
            { "name": "green", "port": 80, "weight": 10 },
            { "name": "off", "port": 80, "weight": 0 },
            { "kind": "Bucket", "group": "storage.example.com", "name": "b" },
        ],
    }]});
    let r = route(spec, &[parent(Some("http"))]);
    let (got, notes) = reduce_with(&r, &gateways(), &Grants::new());
    let rules = got.expect("indexed").rules;
    assert_eq!(notes.regex_paths, 1);
    let paths: Vec<&PathMatch> = rules.iter().map(|r| &r.path).collect();
    assert_eq!(
        paths,
        [
            &PathMatch::Exact("/login".into()),
            &PathMatch::Prefix("/".into())
        ]
    );
    // A hostname rewrite leaves the path: matched by path still.
    assert!(rules.iter().all(|r| !r.rewrites));
    let services: Vec<&str> = rules[0]
        .backends
        .iter()
        .map(|b| b.service.as_str())
        .collect();
    assert_eq!(
        services,
        ["blue", "green"],
        "weight 0 and other kinds left out"
    );
}

#[test]
fn a_path_rewrite_in_the_rule_or_a_backend_marks_the_rule() {
    for filters_at in ["rule", "backend"] {
        let filter = json!([{ "type": "URLRewrite", "urlRewrite": {
            "path": { "type": "ReplacePrefixMatch", "replacePrefixMatch": "/" } } }]);
        let mut rule = json!({ "backendRefs": [{ "name": "web", "port": 80 }] });
        if filters_at == "rule" {
            rule["filters"] = filter;
        } else {
            rule["backendRefs"][0]["filters"] = filter;
        }
        let spec = json!({ "hostnames": ["a.example.com"], "rules": [rule] });
        let r = route(spec, &[parent(Some("http"))]);
        let got = reduce_with(&r, &gateways(), &Grants::new())
            .0
            .expect("indexed");
        assert!(got.rules[0].rewrites, "{filters_at}");
    }
}

fn grant(from_kind: &str, from_ns: &str, to_name: Option<&str>) -> ReferenceGrant {
    let mut to = json!({ "group": "", "kind": "Service" });
    if let Some(n) = to_name {
        to["name"] = json!(n);
    }
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": { "name": "g", "namespace": "shared" },
        "spec": {
            "from": [{ "group": "gateway.networking.k8s.io", "kind": from_kind, "namespace": from_ns }],
            "to": [to],
        },
    }))
    .expect("a ReferenceGrant")
}

#[test]
fn a_cross_namespace_backend_needs_a_reference_grant() {
    let spec = json!({ "hostnames": ["a.example.com"], "rules": [{ "backendRefs": [
        { "name": "api", "namespace": "shared", "port": 80 },
        { "name": "web", "port": 80 },
    ]}]});
    let r = route(spec, &[parent(Some("http"))]);
    let services = |grants: &Grants| -> (Vec<String>, usize) {
        let (got, notes) = reduce_with(&r, &gateways(), grants);
        let names = got.expect("indexed").rules[0]
            .backends
            .iter()
            .map(|b| format!("{}/{}", b.namespace, b.service))
            .collect();
        (names, notes.denied_backends)
    };
    assert_eq!(services(&Grants::new()), (vec!["apps/web".to_owned()], 1));
    let key = ("shared".to_owned(), "g".to_owned());
    for (g, allows) in [
        (grant("HTTPRoute", "apps", None), true),
        (grant("HTTPRoute", "apps", Some("api")), true),
        (grant("HTTPRoute", "apps", Some("other")), false),
        (grant("HTTPRoute", "elsewhere", None), false),
        (grant("GRPCRoute", "apps", None), false),
    ] {
        let grants: Grants = [(key.clone(), grants(&g))].into();
        let (names, denied) = services(&grants);
        assert_eq!(names.contains(&"shared/api".to_owned()), allows, "{g:?}");
        assert_eq!(denied, usize::from(!allows));
    }
}

/// A rule as the Ingress test compares it: hostnames, path, default backend, Service, port
/// (by number, or by name).
type RuleView = (
    Vec<String>,
    PathMatch,
    bool,
    String,
    (Option<i32>, Option<String>),
);

#[test]
fn ingress_rules_paths_ports_and_default_backend() {
    let i: Ingress = serde_json::from_value(json!({
        "metadata": { "name": "shop", "namespace": "apps", "creationTimestamp": "2026-01-02T03:04:05Z" },
        "spec": {
            "defaultBackend": { "service": { "name": "fallback", "port": { "number": 80 } } },
            "rules": [
                { "host": "*.Foo.com", "http": { "paths": [
                    { "path": "/a", "pathType": "Exact", "backend": { "service": { "name": "a", "port": { "number": 8080 } } } },
                    { "path": "/b", "pathType": "ImplementationSpecific", "backend": { "service": { "name": "b", "port": { "name": "app" } } } },
                    { "path": "/c", "pathType": "Prefix", "backend": { "resource": { "kind": "Bucket", "name": "c" } } },
                ]}},
                { "http": { "paths": [
                    { "pathType": "ImplementationSpecific", "backend": { "service": { "name": "any", "port": { "number": 80 } } } },
                ]}},
            ],
        },
    }))
    .expect("an Ingress");
    let got = ingress(&i).route.expect("indexed");
    let view: Vec<RuleView> = got
        .rules
        .into_iter()
        .map(|r| {
            let b = r.backends[0].clone();
            let port = (b.port, b.port_name);
            (r.hostnames, r.path, r.default_backend, b.service, port)
        })
        .collect();
    let wild = vec!["*.foo.com".to_owned()];
    assert_eq!(
        view,
        [
            (
                wild.clone(),
                PathMatch::Exact("/a".into()),
                false,
                "a".into(),
                (Some(8080), None)
            ),
            (
                wild,
                PathMatch::Prefix("/b".into()),
                false,
                "b".into(),
                (None, Some("app".into()))
            ),
            (
                vec![],
                PathMatch::Prefix("/".into()),
                false,
                "any".into(),
                (Some(80), None)
            ),
            (
                vec![],
                PathMatch::Prefix("/".into()),
                true,
                "fallback".into(),
                (Some(80), None)
            ),
        ]
    );
}
