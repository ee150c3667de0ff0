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
