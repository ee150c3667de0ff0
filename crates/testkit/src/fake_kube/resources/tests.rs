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

fn route(name: &str, host: &str) -> serde_json::Value {
    json!({
        "metadata": { "name": name, "labels": { "tier": "front" } },
        "spec": {
            "parentRefs": [{ "name": "gw", "namespace": "infra" }],
            "hostnames": [host],
            "rules": [{ "backendRefs": [{ "name": name, "port": 80 }] }],
        },
        "status": { "parents": [] },
    })
}

#[test]
fn status_moves_only_through_the_status_subresource_and_spec_moves_the_generation() {
    let mut o = Objects::default();
    let created = o
        .create_obj(HTTP_ROUTES, "apps", route("web", "web.example.com"))
        .unwrap();
    assert!(
        created["status"].is_null(),
        "create drops status: {created}"
    );
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["apiVersion"], "gateway.networking.k8s.io/v1");

    let accepted = json!({ "status": { "parents": [{ "controllerName": "c" }] } });
    let after_status = o
        .replace_part(HTTP_ROUTES, "apps", "web", accepted, Part::Status)
        .unwrap();
    assert_eq!(after_status["status"]["parents"][0]["controllerName"], "c");
    assert_eq!(
        after_status["spec"], created["spec"],
        "a status write keeps spec"
    );
    assert_eq!(after_status["metadata"]["generation"], 1);
    assert_ne!(
        after_status["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    let mut edited = route("web", "www.example.com");
    edited["status"] = json!({ "parents": [] });
    let replaced = o.replace_obj(HTTP_ROUTES, "apps", "web", edited).unwrap();
    assert_eq!(
        replaced["status"], after_status["status"],
        "an object write keeps status"
    );
    assert_eq!(replaced["spec"]["hostnames"][0], "www.example.com");
    assert_eq!(replaced["metadata"]["generation"], 2);

    let mut relabelled = replaced.clone();
    relabelled["metadata"]["labels"]["tier"] = json!("back");
    let relabelled = o
        .replace_obj(HTTP_ROUTES, "apps", "web", relabelled)
        .unwrap();
    assert_eq!(
        relabelled["metadata"]["generation"], 2,
        "labels are not spec"
    );
    let again = o
        .replace_obj(HTTP_ROUTES, "apps", "web", relabelled.clone())
        .unwrap();
    assert_eq!(
        again["metadata"]["resourceVersion"], relabelled["metadata"]["resourceVersion"],
        "a no-op keeps the version"
    );
}

#[test]
fn a_resource_served_in_two_versions_is_one_set_of_objects() {
    let mut o = Objects::default();
    let grant = json!({ "metadata": { "name": "from-infra" }, "spec": { "from": [], "to": [] } });
    let created = o
        .create_obj(kinds::REFERENCE_GRANTS_V1BETA1, "apps", grant)
        .unwrap();
    assert_eq!(created["apiVersion"], "gateway.networking.k8s.io/v1");
    assert!(
        o.get_obj(kinds::REFERENCE_GRANTS, "apps", "from-infra")
            .is_ok()
    );
    assert_eq!(o.list_obj(kinds::REFERENCE_GRANTS_V1BETA1, None).len(), 1);
    assert_eq!(
        find("gateway.networking.k8s.io", "v1beta1", "referencegrants")
            .map(Resource::api_version)
            .as_deref(),
        Some("gateway.networking.k8s.io/v1beta1")
    );
    assert_eq!(
        find("gateway.networking.k8s.io", "v1beta1", "httproutes"),
        None
    );
}

#[test]
fn lists_hold_one_resource_and_one_namespace_exactly() {
    let mut o = Objects::default();
    for (ns, name) in [("a", "x"), ("ab", "y"), ("b", "z")] {
        o.create_obj(HTTP_ROUTES, ns, route(name, "h.example"))
            .unwrap();
        let ing = json!({ "metadata": { "name": name }, "spec": { "rules": [] } });
        o.create_obj(INGRESSES, ns, ing).unwrap();
    }
    let names = |items: Vec<&serde_json::Value>| -> Vec<String> {
        items
            .iter()
            .map(|v| v["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(o.list_obj(HTTP_ROUTES, Some("a"))), ["x"]);
    assert_eq!(names(o.list_obj(INGRESSES, None)), ["x", "y", "z"]);
    assert!(o.list_obj(GATEWAYS, None).is_empty());
    assert!(o.list_obj(HTTP_ROUTES, Some("c")).is_empty());
}

#[test]
fn tests_put_whole_objects_accept_routes_and_uninstall_the_gateway_api() {
    let mut o = Objects::default();
    let mut r = route("web", "web.example.com");
    r["kind"] = json!("HTTPRoute");
    r["metadata"]["namespace"] = json!("apps");
    r["status"] = json!({ "parents": [{ "controllerName": "seeded" }] });
    let put = o.put_whole(r.clone()).unwrap();
    assert_eq!(put["status"]["parents"][0]["controllerName"], "seeded");
    r["spec"]["hostnames"] = json!(["other.example.com"]);
    let put = o.put_whole(r).unwrap();
    assert_eq!(put["metadata"]["generation"], 2);

    let accepted = o.accept_route("apps", "web").unwrap();
    let parent = &accepted["status"]["parents"][0];
    assert_eq!(parent["parentRef"]["name"], "gw");
    assert_eq!(parent["conditions"][0]["type"], "Accepted");
    assert_eq!(parent["conditions"][0]["status"], "True");
    assert_eq!(parent["conditions"][0]["observedGeneration"], 2);

    let e = o
        .put_whole(json!({ "kind": "Widget", "metadata": { "name": "w" } }))
        .unwrap_err();
    assert_eq!(reason(&e), (400, "BadRequest"));

    o.uninstall_gateway_api();
    assert!(
        o.list_obj(HTTP_ROUTES, None).is_empty(),
        "the CRD took its objects"
    );
    let gw = json!({ "kind": "Gateway", "metadata": { "name": "gw" }, "spec": {} });
    assert_eq!(reason(&o.put_whole(gw).unwrap_err()).0, 404);
}
