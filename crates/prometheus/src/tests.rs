//! Unit tests of rendering, URL handling and answer parsing (no network).

use super::*;

fn target(namespace: &str, name: &str) -> Target {
    Target {
        cluster: None,
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("valid time")
}

#[test]
fn render_fills_every_placeholder_for_the_batch() {
    let q = render(
        "x{namespace=~\"{namespaces}\", ingress=~\"{names}\"}[{window}] {names}",
        &[
            target("shop", "web"),
            target("apps", "api.v2"),
            target("apps", "web"),
        ],
        chrono::Duration::minutes(30),
    );
    assert_eq!(
        q,
        "x{namespace=~\"apps|shop\", ingress=~\"api[.]v2|web\"}[1800s] api[.]v2|web"
    );
    // Longest first, then in order: `web-api` is tried before `web`.
    let q = render(
        "{names}",
        &[
            target("a", "web"),
            target("a", "web-api"),
            target("a", "api"),
        ],
        chrono::Duration::minutes(1),
    );
    assert_eq!(q, "web-api|api|web");
}

#[test]
fn the_default_template_renders_to_one_query_without_placeholders() {
    let q = render(
        DEFAULT_QUERY,
        &[target("apps", "web")],
        chrono::Duration::minutes(30),
    );
    assert_eq!(placeholders(&q).count(), 0, "{q}");
    assert!(
        q.contains("[1800s:30s]") && q.contains("ingress=~\"web\""),
        "{q}"
    );
}

#[test]
fn endpoint_keeps_a_route_prefix_and_refuses_what_it_cannot_speak() {
    for (url, want) in [
        ("http://prom:9090", "http://prom:9090/api/v1/query"),
        ("http://prom:9090/", "http://prom:9090/api/v1/query"),
        (
            "http://prom/monitoring/",
            "http://prom/monitoring/api/v1/query",
        ),
        ("https://prom:9443/", "https://prom:9443/api/v1/query"),
    ] {
        assert_eq!(query_endpoint(url).expect(url).to_string(), want);
    }
    for (url, why) in [
        ("ftp://prom", "expected http:// or https://"),
        ("prom:9090", "expected http:// or https://"),
        ("http://user@prom", "credentials"),
        ("http://[::1", "invalid"),
    ] {
        let err = query_endpoint(url).expect_err(url).to_string();
        assert!(err.contains(url) && err.contains(why), "{err}");
    }
    // A password is refused like any credentials, and never shown.
    let err = query_endpoint("http://user:pw@prom")
        .expect_err("credentials")
        .to_string();
    assert!(
        err.contains("http://user:<redacted>@prom") && err.contains("credentials"),
        "{err}"
    );
}

#[test]
fn time_is_sent_as_unix_seconds_with_milliseconds() {
    let t = at(1_767_268_800) + chrono::Duration::milliseconds(42);
    assert_eq!(unix_seconds(t), "1767268800.042");
}

fn vector(samples: &str) -> Vec<u8> {
    format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{samples}]}}}}"#)
        .into_bytes()
}

#[test]
fn samples_map_back_to_the_asked_targets_by_the_configured_labels() {
    let body = vector(concat!(
        r#"{"metric":{"namespace":"apps","ingress":"web"},"value":[1767268800,"1767268770"]},"#,
        r#"{"metric":{"namespace":"apps","ingress":"quiet"},"value":[1767268800,"0"]},"#,
        // The regexes select a cross product: shop/quiet was not asked about.
        r#"{"metric":{"namespace":"shop","ingress":"quiet"},"value":[1767268800,"1767268790"]},"#,
        r#"{"metric":{"namespace":"apps","ingress":"nan"},"value":[1767268800,"NaN"]},"#,
        r#"{"metric":{"namespace":"apps","ingress":"count"},"value":[1767268800,"12"]},"#,
        r#"{"metric":{"ingress":"web"},"value":[1767268800,"1767268799"]}"#
    ));
    let samples = parse_answer(StatusCode::OK, &body).expect("vector");
    let asked = [
        target("apps", "web"),
        target("apps", "quiet"),
        target("apps", "nan"),
        target("apps", "count"),
        target("apps", "absent"),
    ];
    let seen = map_samples(samples, &asked, "namespace", "ingress");
    assert_eq!(
        seen,
        HashMap::from([
            (target("apps", "web"), Traffic::LastSeen(at(1_767_268_770))),
            (target("apps", "quiet"), Traffic::Quiet),
        ])
    );
}

#[test]
fn several_samples_for_one_target_keep_the_latest_traffic() {
    let body = vector(concat!(
        r#"{"metric":{"ns":"apps","svc":"web","pod":"a"},"value":[1,"1767268700.5"]},"#,
        r#"{"metric":{"ns":"apps","svc":"web","pod":"b"},"value":[1,"1767268750"]},"#,
        r#"{"metric":{"ns":"apps","svc":"web","pod":"c"},"value":[1,"0"]}"#
    ));
    let seen = map_samples(
        parse_answer(StatusCode::OK, &body).expect("vector"),
        &[target("apps", "web")],
        "ns",
        "svc",
    );
    assert_eq!(
        seen.get(&target("apps", "web")),
        Some(&Traffic::LastSeen(at(1_767_268_750)))
    );
}

#[test]
fn errors_say_whose_fault_they_are() {
    let rejected = br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#;
    let e = parse_answer(StatusCode::BAD_REQUEST, rejected).expect_err("400");
    assert!(
        matches!(&e, CoreError::Invalid { message: m, .. } if m.contains("bad_data") && m.contains("parse error")),
        "{e}"
    );
    let e = parse_answer(StatusCode::SERVICE_UNAVAILABLE, b"upstream down").expect_err("503");
    assert!(
        matches!(&e, CoreError::Unavailable { message: m, .. } if m.contains("503") && m.contains("upstream down")),
        "{e}"
    );
    let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    let e = parse_answer(StatusCode::OK, matrix).expect_err("matrix");
    assert!(
        matches!(&e, CoreError::Invalid { message: m, .. } if m.contains("instant vector") && m.contains("matrix")),
        "{e}"
    );
    let e = parse_answer(StatusCode::OK, b"<html>login</html>").expect_err("html");
    assert!(
        matches!(&e, CoreError::Unavailable { message: m, .. } if m.contains("<html>login")),
        "{e}"
    );
}

/// The metrics name no cluster: traffic for `apps/web` counts for `apps/web` in every asked
/// cluster (so a named cluster's busy app is seen busy, never "no data").
#[test]
fn an_answer_applies_to_the_asked_targets_of_every_cluster() {
    let body =
        vector(r#"{"metric":{"namespace":"apps","ingress":"web"},"value":[1,"1767268770"]}"#);
    let east = Target {
        cluster: Some(idle_scaler_core::ClusterName::new("east").expect("valid")),
        ..target("apps", "web")
    };
    let seen = map_samples(
        parse_answer(StatusCode::OK, &body).expect("vector"),
        &[target("apps", "web"), east.clone(), target("apps", "api")],
        "namespace",
        "ingress",
    );
    let busy = Traffic::LastSeen(at(1_767_268_770));
    assert_eq!(
        seen,
        HashMap::from([(target("apps", "web"), busy), (east, busy)])
    );
}

/// A quiet series may be a namesake's in another cluster: it makes only the default cluster's
/// app quiet; a named cluster's app is left with no data (kept awake by default), so a busy
/// app there is never slept on its namesake's silence.
#[test]
fn a_quiet_answer_never_speaks_for_a_named_clusters_app() {
    let body = vector(r#"{"metric":{"namespace":"apps","ingress":"web"},"value":[1,"0"]}"#);
    let east = Target {
        cluster: Some(idle_scaler_core::ClusterName::new("east").expect("valid")),
        ..target("apps", "web")
    };
    let seen = map_samples(
        parse_answer(StatusCode::OK, &body).expect("vector"),
        &[target("apps", "web"), east],
        "namespace",
        "ingress",
    );
    assert_eq!(
        seen,
        HashMap::from([(target("apps", "web"), Traffic::Quiet)])
    );
}
