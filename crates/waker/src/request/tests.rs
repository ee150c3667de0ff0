use super::*;

#[test]
fn a_control_character_is_refused_and_other_hosts_become_the_root() {
    for evil in [
        "/\t/evil.example",
        "/\r\n/evil.example",
        "/\n/evil.example",
        "/\u{7f}/evil.example",
        "/\0",
        "/\u{1b}x",
        "/\u{85}/evil.example",
    ] {
        assert_eq!(same_host(evil), None, "{evil:?}");
    }
    for (given, location) in [
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("", "/"),
        ("/shop?q=a b", "/shop?q=a b"),
        ("/%09/x", "/%09/x"),
    ] {
        assert_eq!(same_host(given).as_deref(), Some(location), "{given:?}");
    }
}

#[test]
fn the_target_header_wins_over_ingress_nginx_headers() {
    let mut headers = HeaderMap::new();
    headers.insert("x-namespace", "other".parse().expect("value"));
    headers.insert("x-service-name", "victim".parse().expect("value"));
    let target = target_of(&headers, "x-idle-scaler-target", None).expect("nginx's");
    assert_eq!(
        (target.namespace.as_str(), target.name.as_str()),
        ("other", "victim")
    );
    headers.insert("x-idle-scaler-target", "apps/web".parse().expect("value"));
    let target = target_of(&headers, "x-idle-scaler-target", None).expect("the proxy's");
    assert_eq!(
        (target.namespace.as_str(), target.name.as_str()),
        ("apps", "web")
    );
}

#[test]
fn only_502_and_503_are_passed_through() {
    let code = |v: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("x-code", v.parse().expect("value"));
        proxied_error(&headers).map(|s| s.as_u16())
    };
    assert_eq!(code("502"), Some(502));
    assert_eq!(code(" 503 "), Some(503));
    assert_eq!(code("504"), None);
    assert_eq!(code("404"), None);
    assert_eq!(code("x"), None);
    assert_eq!(proxied_error(&HeaderMap::new()), None);
}
