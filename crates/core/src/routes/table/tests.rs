use super::*;

fn backend(ns: &str, svc: &str, port: Option<i32>) -> RouteBackend {
    RouteBackend {
        namespace: ns.into(),
        service: svc.into(),
        port,
        port_name: None,
    }
}

fn by_name(ns: &str, svc: &str, name: &str) -> RouteBackend {
    RouteBackend {
        port_name: Some(name.into()),
        ..backend(ns, svc, None)
    }
}

fn rule(hosts: &[&str], path: PathMatch, svc: &str) -> RouteRule {
    RouteRule {
        hostnames: hosts.iter().map(|h| (*h).to_owned()).collect(),
        path,
        rewrites: false,
        default_backend: false,
        backends: vec![backend("apps", svc, Some(80))],
    }
}

fn prefix(p: &str) -> PathMatch {
    PathMatch::Prefix(p.into())
}

fn exact(p: &str) -> PathMatch {
    PathMatch::Exact(p.into())
}

fn route(kind: RouteKind, name: &str, created: i64, rules: Vec<RouteRule>) -> Route {
    Route {
        kind,
        namespace: "apps".into(),
        name: name.into(),
        created,
        rules,
    }
}

fn http(name: &str, created: i64, rules: Vec<RouteRule>) -> Route {
    route(RouteKind::HttpRoute, name, created, rules)
}

fn ingress(name: &str, created: i64, rules: Vec<RouteRule>) -> Route {
    route(RouteKind::Ingress, name, created, rules)
}

/// The Service names `resolve` answers.
fn services(t: &RouteTable, host: &str, path: &str) -> Vec<String> {
    t.resolve(host, path)
        .into_iter()
        .map(|b| b.service)
        .collect()
}

#[test]
fn gateway_exact_host_wins_over_wildcards_and_the_longer_wildcard_first() {
    let mut t = RouteTable::new();
    t.upsert(http("any", 1, vec![rule(&[], prefix("/"), "any")]));
    t.upsert(http("wide", 1, vec![rule(&["*.com"], prefix("/"), "wide")]));
    t.upsert(http(
        "wild",
        2,
        vec![rule(&["*.example.com"], prefix("/"), "wild")],
    ));
    t.upsert(http(
        "shop",
        3,
        vec![rule(&["shop.example.com"], prefix("/"), "shop")],
    ));
    assert_eq!(services(&t, "shop.example.com", "/"), ["shop"]);
    assert_eq!(services(&t, "a.b.example.com", "/x"), ["wild"]);
    assert_eq!(services(&t, "b.example.com", "/"), ["wild"]);
    // Never the bare suffix.
    assert_eq!(services(&t, "example.com", "/"), ["wide"]);
    assert_eq!(services(&t, "other.org", "/"), ["any"]);
}

#[test]
fn gateway_path_precedence_exact_then_longest_prefix_on_segments() {
    let mut t = RouteTable::new();
    t.upsert(http(
        "r",
        1,
        vec![
            rule(&["h.test"], prefix("/"), "root"),
            rule(&["h.test"], prefix("/foo"), "foo"),
            rule(&["h.test"], prefix("/foo/bar"), "foobar"),
        ],
    ));
    t.upsert(http(
        "e",
        5,
        vec![rule(&["h.test"], exact("/foo"), "exact")],
    ));
    assert_eq!(services(&t, "h.test", "/foo"), ["exact"]);
    assert_eq!(services(&t, "h.test", "/foo/"), ["foo"]);
    assert_eq!(services(&t, "h.test", "/foo/bar/baz"), ["foobar"]);
    assert_eq!(services(&t, "h.test", "/foobar"), ["root"]);
    assert_eq!(services(&t, "h.test", ""), ["root"]);
}

#[test]
fn ties_go_to_the_oldest_route_then_namespace_and_name() {
    let mut t = RouteTable::new();
    t.upsert(http("b", 10, vec![rule(&["h.test"], prefix("/"), "b")]));
    t.upsert(http("c", 5, vec![rule(&["h.test"], prefix("/"), "c")]));
    assert_eq!(services(&t, "h.test", "/"), ["c"]);
    t.upsert(http("a", 5, vec![rule(&["h.test"], prefix("/"), "a")]));
    assert_eq!(services(&t, "h.test", "/"), ["a"]);
    // A later rule of the same route loses to its first.
    t.upsert(http(
        "a",
        5,
        vec![
            rule(&["h.test"], prefix("/"), "first"),
            rule(&["h.test"], prefix("/"), "second"),
        ],
    ));
    assert_eq!(services(&t, "h.test", "/"), ["first"]);
}

#[test]
fn a_rewriting_rule_matches_any_path_after_the_rules_that_match_it() {
    let mut t = RouteTable::new();
    let mut api = rule(&["h.test"], prefix("/api"), "api");
    api.rewrites = true;
    t.upsert(http(
        "r",
        1,
        vec![api, rule(&["h.test"], prefix("/web"), "web")],
    ));
    // The waker sees `/v1/x` after `/api/v1/x` was rewritten.
    assert_eq!(services(&t, "h.test", "/v1/x"), ["api"]);
    assert_eq!(services(&t, "h.test", "/web/x"), ["web"]);
}

#[test]
fn a_weighted_split_gives_every_backend_and_its_ports_are_counted() {
    let mut t = RouteTable::new();
    let mut split = rule(&["h.test"], prefix("/"), "blue");
    split.backends.push(backend("apps", "green", Some(8080)));
    split.backends.push(backend("apps", "blue", Some(9000)));
    t.upsert(http("r", 1, vec![split]));
    assert_eq!(services(&t, "h.test", "/"), ["blue", "green", "blue"]);
    assert_eq!(t.route_ports("apps", "blue"), [80, 9000]);
    assert_eq!(t.route_ports("apps", "green"), [8080]);
    assert!(t.route_ports("apps", "red").is_empty());
}

#[test]
fn ingress_wildcards_cover_one_label_and_the_longest_path_wins() {
    let mut t = RouteTable::new();
    t.upsert(ingress(
        "i",
        1,
        vec![
            rule(&["*.foo.com"], prefix("/"), "wild"),
            rule(&["bar.foo.com"], prefix("/a"), "a"),
            rule(&["bar.foo.com"], prefix("/a/b"), "ab"),
            rule(&["bar.foo.com"], exact("/a/b"), "ab-exact"),
            rule(&[], prefix("/"), "anyhost"),
        ],
    ));
    assert_eq!(services(&t, "bar.foo.com", "/a/b"), ["ab-exact"]);
    assert_eq!(services(&t, "bar.foo.com", "/a/b/c"), ["ab"]);
    assert_eq!(services(&t, "bar.foo.com", "/a/bc"), ["a"]);
    // The exact host has no rule for `/z`: the wildcard's.
    assert_eq!(services(&t, "bar.foo.com", "/z"), ["wild"]);
    assert_eq!(services(&t, "baz.bar.foo.com", "/"), ["anyhost"]);
    assert_eq!(services(&t, "foo.com", "/"), ["anyhost"]);
}

#[test]
fn the_ingress_default_backend_comes_after_rules_for_any_host() {
    let mut t = RouteTable::new();
    let mut default = rule(&[], prefix("/"), "default");
    default.default_backend = true;
    t.upsert(ingress("d", 1, vec![default]));
    t.upsert(ingress("p", 9, vec![rule(&[], prefix("/p"), "p")]));
    assert_eq!(services(&t, "x.test", "/p"), ["p"]);
    assert_eq!(services(&t, "x.test", "/q"), ["default"]);
}

#[test]
fn an_http_route_wins_over_an_ingress_for_the_same_host() {
    let mut t = RouteTable::new();
    t.upsert(ingress(
        "i",
        1,
        vec![rule(&["h.test"], prefix("/"), "ingress")],
    ));
    t.upsert(http("r", 9, vec![rule(&["*.test"], prefix("/"), "route")]));
    assert_eq!(services(&t, "h.test", "/"), ["route"]);
    t.remove(RouteKind::HttpRoute, "apps", "r");
    assert_eq!(services(&t, "h.test", "/"), ["ingress"]);
}

#[test]
fn replacing_and_removing_a_route_leaves_nothing_of_its_old_rules() {
    let mut t = RouteTable::new();
    t.upsert(http(
        "r",
        1,
        vec![rule(&["old.test", "*.old.test"], prefix("/"), "web")],
    ));
    t.upsert(http("r", 1, vec![rule(&["new.test"], prefix("/"), "web")]));
    assert!(services(&t, "old.test", "/").is_empty());
    assert!(services(&t, "a.old.test", "/").is_empty());
    assert_eq!(services(&t, "new.test", "/"), ["web"]);
    assert_eq!((t.len(), t.rules()), (1, 1));
    assert!(t.remove(RouteKind::HttpRoute, "apps", "r"));
    assert!(!t.remove(RouteKind::HttpRoute, "apps", "r"));
    assert!(services(&t, "new.test", "/").is_empty());
    assert!(t.route_ports("apps", "web").is_empty());
    assert!(t.is_empty() && t.ports.is_empty() && t.strings.is_empty());
    let kt = &t.kinds[0];
    assert!(kt.exact.is_empty() && kt.wildcard.is_empty() && kt.any_host.is_empty());
}

#[test]
fn replace_kind_swaps_one_kind_and_keeps_the_other() {
    let mut t = RouteTable::new();
    t.upsert(http("r1", 1, vec![rule(&["a.test"], prefix("/"), "a")]));
    t.upsert(ingress("i", 1, vec![rule(&["i.test"], prefix("/"), "i")]));
    t.replace_kind(
        RouteKind::HttpRoute,
        [http("r2", 1, vec![rule(&["b.test"], prefix("/"), "b")])],
    );
    assert!(services(&t, "a.test", "/").is_empty());
    assert_eq!(services(&t, "b.test", "/"), ["b"]);
    assert_eq!(services(&t, "i.test", "/"), ["i"]);
    assert_eq!(t.len(), 2);
}

#[test]
fn ports_stay_while_another_rule_names_them() {
    let mut t = RouteTable::new();
    t.upsert(http("r1", 1, vec![rule(&["a.test"], prefix("/"), "web")]));
    t.upsert(http("r2", 1, vec![rule(&["b.test"], prefix("/"), "web")]));
    t.remove(RouteKind::HttpRoute, "apps", "r1");
    assert_eq!(t.route_ports("apps", "web"), [80]);
    t.remove(RouteKind::HttpRoute, "apps", "r2");
    assert!(t.route_ports("apps", "web").is_empty());
}

#[test]
fn a_port_by_name_is_returned_and_counted_apart_from_the_numbers() {
    let mut t = RouteTable::new();
    let mut named = rule(&["a.test"], prefix("/"), "web");
    named.backends = vec![by_name("apps", "web", "api")];
    t.upsert(ingress("i1", 1, vec![named.clone()]));
    let mut mixed = rule(&["b.test"], prefix("/"), "web");
    mixed.backends.push(by_name("apps", "web", "admin"));
    t.upsert(ingress("i2", 1, vec![mixed, named]));
    assert_eq!(t.resolve("a.test", "/"), [by_name("apps", "web", "api")]);
    assert_eq!(t.route_ports("apps", "web"), [80]);
    assert_eq!(t.route_port_names("apps", "web"), ["admin", "api"]);
    assert!(t.route_port_names("apps", "other").is_empty());
    // `api` stays while i2 still names it.
    t.remove(RouteKind::Ingress, "apps", "i1");
    assert_eq!(t.route_port_names("apps", "web"), ["admin", "api"]);
    t.upsert(ingress(
        "i2",
        1,
        vec![rule(&["b.test"], prefix("/"), "web")],
    ));
    assert!(t.route_port_names("apps", "web").is_empty());
    assert_eq!(t.route_ports("apps", "web"), [80]);
    t.remove(RouteKind::Ingress, "apps", "i2");
    assert!(t.is_empty() && t.ports.is_empty() && t.port_names.is_empty());
    assert!(t.strings.is_empty());
}

#[test]
fn a_port_by_number_wins_over_one_by_name() {
    let mut t = RouteTable::new();
    let mut both = rule(&["a.test"], prefix("/"), "web");
    both.backends[0].port_name = Some("api".into());
    t.upsert(ingress("i", 1, vec![both]));
    assert_eq!(t.resolve("a.test", "/"), [backend("apps", "web", Some(80))]);
    assert!(t.route_port_names("apps", "web").is_empty());
}

/// Resident memory of this process, in bytes (`/proc/self/statm`, pages of 4 KiB).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .expect("resident pages")
        * 4096
}

/// What the table alone keeps for 100,000 one-rule routes (the kube bench adds the list
/// and the watch): `cargo test -p idle-scaler-core --lib table_rss -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn table_rss_with_100000_routes() {
    const N: usize = 100_000;
    let before = rss();
    let routes = (0..N).map(|i| Route {
        kind: RouteKind::HttpRoute,
        namespace: format!("team-{}", i % 1000),
        name: format!("app-{i}"),
        created: 1,
        rules: vec![RouteRule {
            hostnames: vec![format!("app-{i}.example.test")],
            path: prefix("/"),
            rewrites: false,
            default_backend: false,
            backends: vec![backend(
                &format!("team-{}", i % 1000),
                &format!("app-{i}"),
                Some(8080),
            )],
        }],
    });
    let mut t = RouteTable::new();
    t.replace_kind(RouteKind::HttpRoute, routes);
    let after = rss();
    assert_eq!(t.len(), N);
    assert_eq!(services(&t, "app-99999.example.test", "/"), ["app-99999"]);
    println!(
        "route table: {N} routes: +{:.1} MiB ({} bytes per route)",
        (after - before) as f64 / 1_048_576.0,
        (after - before) / N as u64
    );
}

#[test]
fn the_name_tie_compares_the_string_namespace_slash_name() {
    let mut t = RouteTable::new();
    let mut a = http("x", 1, vec![rule(&["h.test"], prefix("/"), "a")]);
    a.namespace = "a".into();
    let mut ab = http("y", 1, vec![rule(&["h.test"], prefix("/"), "a-b")]);
    ab.namespace = "a-b".into();
    t.upsert(a);
    t.upsert(ab);
    // "a-b/y" < "a/x": '-' sorts before '/'.
    assert_eq!(services(&t, "h.test", "/"), ["a-b"]);
}

#[test]
fn a_list_applied_page_by_page_removes_only_what_it_did_not_bring() {
    let mut t = RouteTable::new();
    t.upsert(http(
        "old",
        1,
        vec![rule(&["old.test"], prefix("/"), "old")],
    ));
    t.upsert(http(
        "kept",
        1,
        vec![rule(&["kept.test"], prefix("/"), "kept")],
    ));
    t.upsert(ingress("i", 1, vec![rule(&["i.test"], prefix("/"), "i")]));
    t.start_list(RouteKind::HttpRoute);
    t.upsert(http(
        "kept",
        1,
        vec![rule(&["kept.test"], prefix("/"), "kept2")],
    ));
    // Mid-list, the old route still answers.
    assert_eq!(services(&t, "old.test", "/"), ["old"]);
    t.upsert(http(
        "new",
        1,
        vec![rule(&["new.test"], prefix("/"), "new")],
    ));
    t.finish_list(RouteKind::HttpRoute);
    assert!(services(&t, "old.test", "/").is_empty());
    assert_eq!(services(&t, "kept.test", "/"), ["kept2"]);
    assert_eq!(services(&t, "new.test", "/"), ["new"]);
    assert_eq!(services(&t, "i.test", "/"), ["i"], "the other kind stays");
}

#[test]
fn a_services_ports_are_counted_one_by_one_as_routes_come_and_go() {
    let mut t = RouteTable::new();
    t.upsert(http("r1", 1, vec![rule(&["a.test"], prefix("/"), "blue")]));
    let mut r2 = rule(&["b.test"], prefix("/"), "blue");
    r2.backends[0].port = Some(9000);
    t.upsert(http("r2", 1, vec![r2]));
    let mut r3 = rule(&["c.test"], prefix("/"), "blue");
    r3.backends.push(backend("apps", "blue", Some(7000)));
    t.upsert(http("r3", 1, vec![r3]));
    assert_eq!(t.route_ports("apps", "blue"), [80, 7000, 9000]);
    t.remove(RouteKind::HttpRoute, "apps", "r1");
    assert_eq!(
        t.route_ports("apps", "blue"),
        [80, 7000, 9000],
        "r3 names 80"
    );
    t.remove(RouteKind::HttpRoute, "apps", "r3");
    assert_eq!(t.route_ports("apps", "blue"), [9000]);
    t.remove(RouteKind::HttpRoute, "apps", "r2");
    assert!(t.route_ports("apps", "blue").is_empty() && t.ports.is_empty());
}

#[test]
fn the_kept_forms_stay_small() {
    use std::mem::size_of;
    // A hash map entry's value: a map keeps about a third more slots than entries.
    assert_eq!(size_of::<store::Ids>(), 16);
    assert_eq!(size_of::<store::PortCounts<i32>>(), 16);
    // The usual single backend inline without its namespace, and a rule in a 96-byte chunk
    // with its route (the allocator adds 8 bytes and rounds to 16).
    assert_eq!(size_of::<store::Backends>(), 24);
    assert_eq!(size_of::<store::Rule>(), 72);
    assert!(size_of::<store::Stored>() <= 88);
}

#[test]
fn a_backend_in_another_namespace_keeps_its_namespace() {
    let mut t = RouteTable::new();
    let mut r = rule(&["h.test"], prefix("/"), "web");
    r.backends[0].namespace = "shared".into();
    t.upsert(http("r", 1, vec![r]));
    let b = t.resolve("h.test", "/");
    assert_eq!(
        (b[0].namespace.as_str(), b[0].service.as_str()),
        ("shared", "web")
    );
    assert_eq!(t.route_ports("shared", "web"), [80]);
    assert!(t.route_ports("apps", "web").is_empty());
    assert_eq!(services(&t, "h.test", "/"), ["web"]);
    t.remove(RouteKind::HttpRoute, "apps", "r");
    assert!(t.ports.is_empty() && t.strings.is_empty());
}

#[test]
fn a_local_backend_resolves_in_its_routes_namespace() {
    let mut t = RouteTable::new();
    let mut r = rule(&["h.test"], prefix("/"), "web");
    r.backends[0].port = None;
    t.upsert(http("r", 1, vec![r]));
    let b = t.resolve("h.test", "/");
    assert_eq!(
        (b[0].namespace.as_str(), b[0].service.as_str(), b[0].port),
        ("apps", "web", None)
    );
    t.remove(RouteKind::HttpRoute, "apps", "r");
    assert!(
        t.is_empty() && t.strings.is_empty(),
        "nothing interned is left"
    );
}
