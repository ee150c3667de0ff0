use serde_json::json;

use super::*;

fn reason(e: &ApiError) -> (u16, &str) {
    (e.code, e.body["reason"].as_str().unwrap_or_default())
}

#[test]
fn writes_check_uid_and_version_and_name_the_resource_in_errors() {
    let mut o = Objects::default();
    let slice =
        json!({ "metadata": { "generateName": "web-" }, "addressType": "IPv4", "endpoints": [] });
    let created = o.create_obj(ENDPOINT_SLICES, "apps", slice).unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");

    let mut other_uid = created.clone();
    other_uid["metadata"]["uid"] = json!("someone-else");
    let e = o
        .replace_obj(ENDPOINT_SLICES, "apps", &name, other_uid)
        .unwrap_err();
    assert_eq!(reason(&e), (409, "Conflict"));
    assert!(
        e.body["message"]
            .as_str()
            .unwrap()
            .contains("UID in object meta")
    );

    let e = o
        .delete_obj(
            ENDPOINT_SLICES,
            "apps",
            &name,
            &json!({ "preconditions": { "resourceVersion": "1" } }),
        )
        .unwrap();
    assert_eq!(
        e["status"], "Success",
        "the version is current: 1 is the first write"
    );
    let e = o
        .delete_obj(ENDPOINT_SLICES, "apps", &name, &json!(null))
        .unwrap_err();
    assert_eq!(reason(&e), (404, "NotFound"));
    assert_eq!(
        e.body["message"],
        format!("endpointslices.discovery.k8s.io \"{name}\" not found")
    );

    let bad = json!({ "metadata": { "name": "x" }, "addressType": "IPv5" });
    let e = o.create_obj(ENDPOINT_SLICES, "apps", bad).unwrap_err();
    assert_eq!(reason(&e), (422, "Invalid"));
    let empty = json!({ "metadata": { "name": "x" }, "addressType": "IPv4", "endpoints": [{ "addresses": [] }] });
    let e = o.create_obj(ENDPOINT_SLICES, "apps", empty).unwrap_err();
    assert_eq!(
        e.body["details"]["causes"][0]["field"],
        "endpoints[0].addresses"
    );
}

#[test]
fn services_get_a_cluster_ip_unless_external_name() {
    let mut o = Objects::default();
    let svc = o
        .create_obj(
            SERVICES,
            "apps",
            json!({ "metadata": { "name": "web" }, "spec": {} }),
        )
        .unwrap();
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.96.")
    );
    let ext = json!({ "metadata": { "name": "ext" }, "spec": { "type": "ExternalName", "externalName": "example.com" } });
    let ext = o.create_obj(SERVICES, "apps", ext).unwrap();
    assert!(ext["spec"]["clusterIP"].is_null());
    assert!(
        o.namespace("apps").is_ok(),
        "a namespace with objects exists"
    );
}

#[test]
fn an_app_s_slices_follow_its_readiness_and_services() {
    let mut o = Objects::default();
    o.upsert("apps", "web", 1);
    let selector = |app: &str| json!({ "metadata": { "name": app }, "spec": { "selector": { "app": app }, "ports": [{ "name": "http", "port": 80 }] } });
    o.create_obj(SERVICES, "apps", selector("web")).unwrap();
    o.create_obj(
        SERVICES,
        "apps",
        json!({ "metadata": { "name": "bare" }, "spec": {} }),
    )
    .unwrap();
    assert!(
        o.list_obj(ENDPOINT_SLICES, None).is_empty(),
        "no endpoint named yet"
    );

    o.set_app_endpoint("apps", "web", "127.0.0.1:8080".parse().unwrap());
    let slices = o.list_obj(ENDPOINT_SLICES, None);
    assert_eq!(slices.len(), 1, "only the selecting Service: {slices:?}");
    assert_eq!(slices[0]["endpoints"][0]["addresses"][0], "127.0.0.1");
    assert_eq!(
        slices[0]["ports"][0],
        json!({ "name": "http", "port": 8080, "protocol": "TCP" })
    );
    let rv = slices[0]["metadata"]["resourceVersion"].clone();
    o.sync_app("apps", "web");
    assert_eq!(
        o.list_obj(ENDPOINT_SLICES, None)[0]["metadata"]["resourceVersion"],
        rv,
        "no-op"
    );

    o.scale_externally("apps", "web", 0);
    assert_eq!(o.list_obj(ENDPOINT_SLICES, None)[0]["endpoints"], json!([]));
    assert!(o.list_obj(PODS, None).is_empty());
    o.delete("apps", "web").unwrap();
    assert!(
        o.list_obj(ENDPOINT_SLICES, None).is_empty(),
        "a deleted app leaves no slice"
    );
}
