//! Parking over real HTTP: the slices the plan asks for and nothing else, written with the
//! right preconditions, a slice idle-scaler did not write left alone, skips and failures
//! counted, errors mapped.

use idle_scaler_core::Error;
use idle_scaler_core::parking::Parker;
use idle_scaler_testkit::fake_kube::Fault;
use serde_json::{Value, json};

use super::parking::*;
use super::*;

/// `apps/web` asleep with a Service `web` (http 80, grpc 9000), a Service `web-metrics` with
/// no HTTP port, and another app `blog` with its own Service.
fn apps(fake: &FakeApiServer) -> Value {
    fake.create_deployment("apps", "web", 0);
    fake.create_deployment("apps", "blog", 1);
    let web = fake.create_service("apps", "web", "web", &[("http", 80), ("grpc-api", 9000)]);
    fake.create_service("apps", "web-metrics", "web", &[("metrics", 9090)]);
    fake.create_service("apps", "blog", "blog", &[("http", 80)]);
    web
}

/// [`apps`] with `apps/web` parked once at the default waker address.
async fn web_parked() -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    apps(&fake);
    parker(&fake)
        .park(&target("apps", "web"))
        .await
        .expect("park");
    fake
}

fn writes(fake: &FakeApiServer) -> Vec<idle_scaler_testkit::fake_kube::RecordedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect()
}

#[tokio::test]
async fn park_creates_exactly_the_planned_slice() {
    let fake = FakeApiServer::start().await;
    let web = apps(&fake);
    let before = slice_names(&fake, "apps");

    let report = parker(&fake)
        .park(&target("apps", "web"))
        .await
        .expect("park");

    assert_eq!(report.count("parked"), 1, "{report:?}");
    assert_eq!(report.count("no_http_port"), 1, "{report:?}");
    assert_eq!(report.count("not_selected"), 1, "{report:?}");
    assert_eq!(report.results.len(), 3, "{report:?}");
    let mut after = slice_names(&fake, "apps");
    after.retain(|n| !before.contains(n));
    assert_eq!(after, ["idle-scaler-web"]);

    let slice = slice(&fake, "apps", "idle-scaler-web").expect("parked slice");
    assert_eq!(
        slice["metadata"]["labels"],
        json!({
            "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "idle-scaler",
            "idle-scaler.dev/deployment": "web",
        })
    );
    let owners = slice["metadata"]["ownerReferences"]
        .as_array()
        .expect("owner");
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["kind"], "Service");
    assert_eq!(owners[0]["name"], "web");
    assert_eq!(owners[0]["uid"], web["metadata"]["uid"]);
    assert!(
        owners[0]["blockOwnerDeletion"].is_null(),
        "no blockOwnerDeletion: {owners:?}"
    );
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"],
        json!([
            { "name": "http", "port": 8081, "protocol": "TCP" },
            { "name": "grpc-api", "port": 8082, "protocol": "TCP" },
        ])
    );
    assert_eq!(
        slice["endpoints"],
        json!([{ "addresses": ["10.0.0.7"], "conditions": { "ready": true } }])
    );

    let posts = writes(&fake);
    assert_eq!(posts.len(), 1, "one write: {posts:?}");
    assert_eq!(posts[0].method, "POST");
    assert_eq!(
        posts[0].path,
        "/apis/discovery.k8s.io/v1/namespaces/apps/endpointslices"
    );
    assert_eq!(
        posts[0].query_param("fieldManager").as_deref(),
        Some("idle-scaler")
    );
}

#[tokio::test]
async fn parking_again_writes_nothing() {
    let fake = FakeApiServer::start().await;
    apps(&fake);
    let parker = parker(&fake);
    parker.park(&target("apps", "web")).await.expect("park");
    let rv = slice(&fake, "apps", "idle-scaler-web").expect("slice")["metadata"]["resourceVersion"]
        .clone();
    fake.clear_requests();

    let report = parker
        .park(&target("apps", "web"))
        .await
        .expect("park again");

    assert_eq!(report.count("unchanged"), 1, "{report:?}");
    assert_eq!(report.count("parked"), 0, "{report:?}");
    assert!(writes(&fake).is_empty(), "{:?}", writes(&fake));
    assert_eq!(
        slice(&fake, "apps", "idle-scaler-web").expect("slice")["metadata"]["resourceVersion"],
        rv
    );
    // Three reads, all of the app's namespace: never a list of the cluster.
    let reads = fake.requests();
    assert_eq!(reads.len(), 3, "{reads:?}");
    assert!(
        reads.iter().all(|r| r.path.contains("/namespaces/apps/")),
        "{reads:?}"
    );
}

#[tokio::test]
async fn a_hand_written_slice_of_the_same_name_is_never_changed() {
    let fake = FakeApiServer::start().await;
    apps(&fake);
    let mine = create_slice(
        &fake,
        "apps",
        json!({
            "metadata": {
                "name": "idle-scaler-web",
                "labels": { "kubernetes.io/service-name": "web", "team": "shop" },
            },
            "addressType": "IPv4",
            "endpoints": [{ "addresses": ["10.9.9.9"] }],
            "ports": [{ "name": "http", "port": 80 }],
        }),
    )
    .await;
    fake.clear_requests();
    let parker = parker(&fake);

    let report = parker.park(&target("apps", "web")).await.expect("park");
    assert_eq!(report.count("conflict"), 1, "{report:?}");
    assert_eq!(report.count("parked"), 0, "{report:?}");
    let report = parker
        .unpark_now(&target("apps", "web"))
        .await
        .expect("unpark");
    assert_eq!(report.count("unparked"), 0, "{report:?}");

    assert_eq!(slice(&fake, "apps", "idle-scaler-web"), Some(mine));
    let writes = writes(&fake);
    assert!(
        writes.iter().all(|r| r.method == "POST"),
        "only the create that found it: {writes:?}"
    );
}

#[tokio::test]
async fn an_update_carries_the_resource_version_it_read() {
    let fake = web_parked().await;
    let rv = slice(&fake, "apps", "idle-scaler-web").expect("slice")["metadata"]["resourceVersion"]
        .clone();
    fake.clear_requests();

    let moved = parker_with(&fake, feed("10.0.0.8:9000"));
    let report = moved.park(&target("apps", "web")).await.expect("park");

    assert_eq!(report.count("parked"), 1, "{report:?}");
    let puts = writes(&fake);
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0].method, "PUT");
    assert_eq!(puts[0].json()["metadata"]["resourceVersion"], rv);
    let slice = slice(&fake, "apps", "idle-scaler-web").expect("slice");
    assert_eq!(addresses_of(&slice), ["10.0.0.8"]);
    assert_eq!(slice["ports"][1]["port"], 9001);
}

#[tokio::test]
async fn a_stale_resource_version_is_read_again_then_written_with_the_new_one() {
    let fake = web_parked().await;
    fake.clear_requests();
    // Someone wrote the slice between our read and our write: the API says 409 once.
    fake.inject(
        Fault::status(409)
            .on_method("PUT")
            .on_path("endpointslices"),
    );

    let report = parker_with(&fake, feed("10.0.0.8:8081"))
        .park(&target("apps", "web"))
        .await
        .expect("park");

    assert_eq!(report.count("parked"), 1, "{report:?}");
    let methods: Vec<String> = writes(&fake).iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["PUT", "PUT"]);
    let fresh_read = fake
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path.ends_with("/endpointslices/idle-scaler-web"));
    assert!(fresh_read, "read again before the second write");
    for put in writes(&fake) {
        assert!(
            put.json()["metadata"]["resourceVersion"].is_string(),
            "never a blind write: {put:?}"
        );
    }
    assert_eq!(
        addresses_of(&slice(&fake, "apps", "idle-scaler-web").expect("slice")),
        ["10.0.0.8"]
    );
}

#[tokio::test]
async fn a_resource_version_stale_twice_is_failed_not_forced() {
    let fake = web_parked().await;
    fake.inject(
        Fault::status(409)
            .on_method("PUT")
            .on_path("endpointslices")
            .times(2),
    );

    let report = parker_with(&fake, feed("10.0.0.8:8081"))
        .park(&target("apps", "web"))
        .await
        .expect("park");

    assert_eq!(report.count("failed"), 1, "{report:?}");
    assert_eq!(
        addresses_of(&slice(&fake, "apps", "idle-scaler-web").expect("slice")),
        ["10.0.0.7"],
        "left as it was"
    );
}

#[tokio::test]
async fn a_family_the_waker_left_is_deleted_with_its_uid() {
    let fake = FakeApiServer::start().await;
    apps(&fake);
    let report = parker_with(&fake, feed("10.0.0.7:8081,[fd00::7]:8081"))
        .park(&target("apps", "web"))
        .await
        .expect("park");
    assert_eq!(report.count("parked"), 2, "{report:?}");
    let v6 = slice(&fake, "apps", "idle-scaler-web-v6").expect("v6 slice");
    assert_eq!(v6["addressType"], "IPv6");
    fake.clear_requests();

    let report = parker(&fake)
        .park(&target("apps", "web"))
        .await
        .expect("park v4 only");

    assert_eq!(report.count("unchanged"), 1, "{report:?}");
    assert_eq!(report.count("unparked"), 1, "{report:?}");
    assert!(slice(&fake, "apps", "idle-scaler-web-v6").is_none());
    assert!(slice(&fake, "apps", "idle-scaler-web").is_some());
    let deletes = writes(&fake);
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].method, "DELETE");
    assert_eq!(
        deletes[0].json()["preconditions"]["uid"],
        v6["metadata"]["uid"]
    );
}

#[tokio::test]
async fn a_write_refused_for_one_service_is_counted_and_the_others_go_on() {
    let fake = FakeApiServer::start().await;
    apps(&fake);
    fake.create_service("apps", "web-admin", "web", &[("web", 8080)]);
    fake.inject(
        Fault::status(500)
            .on_method("POST")
            .on_path("endpointslices"),
    );

    let report = parker(&fake)
        .park(&target("apps", "web"))
        .await
        .expect("park");

    assert_eq!(report.count("failed"), 1, "{report:?}");
    assert_eq!(report.count("parked"), 1, "{report:?}");
    let parked: Vec<String> = slice_names(&fake, "apps")
        .into_iter()
        .filter(|n| n.starts_with("idle-scaler-"))
        .collect();
    assert_eq!(parked.len(), 1, "{parked:?}");
}

#[tokio::test]
async fn a_protected_namespace_is_counted_and_never_written() {
    let fake = FakeApiServer::start().await;
    apps(&fake);
    let parker = parker(&fake).protected_namespaces(["apps"]);

    let report = parker.park(&target("apps", "web")).await.expect("park");

    assert_eq!(report.count("protected_namespace"), 2, "{report:?}");
    assert_eq!(report.count("parked"), 0, "{report:?}");
    assert!(writes(&fake).is_empty());
}

#[tokio::test]
async fn a_missing_deployment_is_not_found() {
    let fake = FakeApiServer::start().await;
    apps(&fake);
    let err = parker(&fake)
        .park(&target("apps", "gone"))
        .await
        .expect_err("404");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(writes(&fake).is_empty());
}

#[tokio::test]
async fn an_unreachable_api_is_unavailable() {
    let fake = FakeApiServer::start().await;
    let url = fake.url();
    fake.shutdown().await;
    let factory = std::sync::Arc::new(idle_scaler_kube::LazyScalerFactory::from_url(
        url,
        Duration::from_secs(2),
    ));
    let parker = idle_scaler_kube::KubeParker::new(factory, feed(WAKER));
    let web = target("apps", "web");
    let err = parker.park(&web).await.expect_err("no API");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let err = parker.unpark(&web).await.expect_err("no API");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let err = parker.parked().await.expect_err("no API");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn without_a_waker_address_nothing_is_parked() {
    let fake = FakeApiServer::start().await;
    apps(&fake);
    let (_tx, rx) = tokio::sync::watch::channel(None);
    let err = parker_with(&fake, rx)
        .park(&target("apps", "web"))
        .await
        .expect_err("no address");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(fake.requests().is_empty(), "no request at all");
}

#[tokio::test]
async fn another_cluster_is_not_parked() {
    let fake = FakeApiServer::start().await;
    apps(&fake);
    let mut other = target("apps", "web");
    other.cluster = Some(idle_scaler_core::ClusterName::new("eu").expect("cluster name"));
    let err = parker(&fake).park(&other).await.expect_err("other cluster");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(fake.requests().is_empty());
}
