use super::*;

#[test]
fn scale_writes_follow_the_apiserver() {
    let mut o = Objects::default();
    let rv1 = o.upsert("apps", "web", 2);
    let s = o.scale("apps", "web").unwrap();
    assert_eq!(s["spec"]["replicas"], 2);
    assert_eq!(s["metadata"]["resourceVersion"], rv1.as_str());

    // No-op keeps the version; a stale version is a conflict even for a no-op.
    o.write_scale("apps", "web", &json!({"spec": {"replicas": 2}}))
        .unwrap();
    assert_eq!(o.resource_version("apps", "web").unwrap(), rv1);
    let e = o
        .write_scale(
            "apps",
            "web",
            &json!({"metadata": {"resourceVersion": "999"}, "spec": {"replicas": 2}}),
        )
        .unwrap_err();
    assert_eq!((e.code, e.body["reason"].as_str()), (409, Some("Conflict")));

    let s = o
        .write_scale(
            "apps",
            "web",
            &json!({"metadata": {"resourceVersion": rv1}, "spec": {"replicas": 0}}),
        )
        .unwrap();
    assert_eq!(
        s["spec"],
        json!({}),
        "replicas 0 is omitted like the Go omitempty"
    );
    assert_ne!(o.resource_version("apps", "web").unwrap(), rv1);

    let e = o
        .write_scale("apps", "web", &json!({"spec": {"replicas": -1}}))
        .unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(e.body["details"]["kind"], "Scale");
    let e = o
        .write_scale("apps", "nope", &json!({"spec": {"replicas": 1}}))
        .unwrap_err();
    assert_eq!(e.body["message"], "deployments.apps \"nope\" not found");
}
