use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn names(h: &HeaderMap) -> Vec<String> {
    let mut v: Vec<String> = h.keys().map(|k| k.to_string()).collect();
    v.sort();
    v
}

#[test]
fn hop_by_hop_headers_go_and_end_to_end_ones_stay() {
    let mut h = map(&[
        ("host", "web.apps"),
        ("connection", "keep-alive, X-Secret-Hop"),
        ("x-secret-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "gzip, trailers"),
        ("transfer-encoding", "chunked"),
        ("proxy-authorization", "Basic x"),
        ("proxy-connection", "keep-alive"),
        ("upgrade", "websocket"),
        ("trailer", "x-checksum"),
        ("x-app", "kept"),
    ]);
    strip_hop_by_hop(&mut h, None);
    assert_eq!(names(&h), ["host", "te", "trailer", "x-app"]);
    assert_eq!(h["te"], "trailers");

    let mut h = map(&[("te", "gzip"), ("connection", "close")]);
    strip_hop_by_hop(&mut h, None);
    assert!(h.is_empty(), "{h:?}");
}

#[test]
fn a_websocket_upgrade_is_carried_and_h2c_is_not() {
    let ws = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
    let protocol = carried_upgrade(&ws).expect("carried");
    let mut h = ws.clone();
    strip_hop_by_hop(&mut h, Some(&protocol));
    assert_eq!(h["connection"], "upgrade");
    assert_eq!(h["upgrade"], "websocket");

    let h2c = map(&[
        ("connection", "Upgrade, HTTP2-Settings"),
        ("upgrade", "h2c"),
    ]);
    assert_eq!(carried_upgrade(&h2c), None);
    let mut h = h2c.clone();
    h.insert(
        "http2-settings",
        HeaderValue::from_static("AAMAAABkAAQCAAAAAAIAAAAA"),
    );
    strip_hop_by_hop(&mut h, None);
    assert!(h.is_empty(), "{h:?}");
    assert_eq!(
        carried_upgrade(&map(&[("upgrade", "websocket")])),
        None,
        "not asked in Connection"
    );
}

fn caller(trusted: bool) -> Caller {
    Caller {
        ip: "10.0.0.9".parse().expect("ip"),
        namespace: None,
        trusted,
    }
}

#[test]
fn forwarded_headers_are_kept_from_gateways_and_replaced_from_anyone_else() {
    let claimed = [
        ("x-forwarded-for", "203.0.113.1"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.example"),
        ("forwarded", "for=203.0.113.1"),
    ];
    let host = HeaderValue::from_static("web.apps");

    let mut h = map(&claimed);
    set_forwarded(&mut h, &caller(true), Some(&host));
    assert_eq!(h["x-forwarded-for"], "203.0.113.1, 10.0.0.9");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert_eq!(h["forwarded"], "for=203.0.113.1");

    let mut h = map(&claimed);
    set_forwarded(&mut h, &caller(false), Some(&host));
    assert_eq!(h["x-forwarded-for"], "10.0.0.9");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "web.apps");
    assert!(!h.contains_key("forwarded"));

    let mut h = HeaderMap::new();
    set_forwarded(&mut h, &caller(true), Some(&host));
    assert_eq!(h["x-forwarded-for"], "10.0.0.9");
    assert_eq!(h["x-forwarded-host"], "web.apps");
}

#[test]
fn a_callers_address_reads_as_display_writes_it() {
    for ip in [
        "0.0.0.0",
        "10.0.0.9",
        "1.20.100.199",
        "255.255.255.255",
        "fd00::1",
        "::ffff:10.0.0.1",
    ] {
        let ip: IpAddr = ip.parse().expect("ip");
        assert_eq!(ip_text(ip), ip.to_string());
    }
}
