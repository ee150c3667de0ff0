use serde_json::json;

use super::{Fields, Labels};

fn obj(labels: serde_json::Value) -> serde_json::Value {
    json!({ "metadata": { "labels": labels }, "status": { "podIP": "10.0.0.7" } })
}

#[test]
fn label_selectors_match_as_kubernetes_does() {
    let web = obj(json!({ "kubernetes.io/service-name": "web", "tier": "a" }));
    let api = obj(json!({ "kubernetes.io/service-name": "api" }));
    let cases = [
        ("kubernetes.io/service-name=web", true, false),
        ("kubernetes.io/service-name==web", true, false),
        ("kubernetes.io/service-name!=web", false, true),
        ("kubernetes.io/service-name in (web, other)", true, false),
        ("kubernetes.io/service-name notin (web)", false, true),
        ("tier", true, false),
        ("!tier", false, true),
        ("kubernetes.io/service-name in (web,api),!tier", false, true),
        ("", true, true),
    ];
    for (selector, on_web, on_api) in cases {
        let s = Labels::parse(selector).expect(selector);
        assert_eq!(
            (s.matches(&web), s.matches(&api)),
            (on_web, on_api),
            "{selector}"
        );
    }
    assert!(Labels::parse("tier in web").is_err());
}

#[test]
fn field_selectors_read_any_field() {
    let pod = obj(json!({}));
    assert!(
        Fields::parse("status.podIP=10.0.0.7")
            .unwrap()
            .matches(&pod)
    );
    assert!(
        !Fields::parse("status.podIP=10.0.0.8")
            .unwrap()
            .matches(&pod)
    );
    assert!(
        Fields::parse("status.podIP!=10.0.0.8,metadata.name=")
            .unwrap()
            .matches(&pod)
    );
    assert!(Fields::parse("status.podIP").is_err());
}
