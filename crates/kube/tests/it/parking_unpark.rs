//! Unparking over real HTTP: nothing goes before the app's own endpoints are ready; once they
//! are, idle-scaler's slices go (with their `uid`), the controller's stay; the wait is a watch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use idle_scaler_core::parking::{Parker, Unpark};
use idle_scaler_kube::KubeParker;

use super::parking::*;
use super::*;

/// `apps/web` asleep with a Service `web` whose pods serve at a local address once ready,
/// parked; the parker.
async fn parked_web(fake: &FakeApiServer) -> KubeParker {
    fake.create_deployment("apps", "web", 0);
    fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.set_app_endpoint("apps", "web", "127.0.0.1:18080");
    let parker = parker(fake);
    let report = parker.park(&target("apps", "web")).await.expect("park");
    assert_eq!(report.count("parked"), 1, "{report:?}");
    parker
}

fn deletes(fake: &FakeApiServer) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count()
}

/// The controller's slice of `web`, with a ready endpoint.
fn own_ready(fake: &FakeApiServer) -> bool {
    slice(fake, "apps", "web-web").is_some_and(|s| {
        s["endpoints"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["conditions"]["ready"] == true))
    })
}

#[tokio::test]
async fn unpark_before_the_app_is_ready_deletes_nothing() {
    let fake = FakeApiServer::start().await;
    let parker = parked_web(&fake).await;
    fake.clear_requests();

    let got = parker.unpark(&target("apps", "web")).await.expect("unpark");

    assert_eq!(got, Unpark::NotReady);
    assert!(slice(&fake, "apps", "idle-scaler-web").is_some());
    assert_eq!(deletes(&fake), 0);
    assert_eq!(fake.requests().len(), 2, "two lists: {:?}", fake.requests());
}

#[tokio::test]
async fn unpark_once_ready_deletes_ours_with_its_uid_and_keeps_the_apps_own() {
    let fake = FakeApiServer::start().await;
    let parker = parked_web(&fake).await;
    let ours = slice(&fake, "apps", "idle-scaler-web").expect("parked");
    fake.scale_externally("apps", "web", 1);
    assert!(own_ready(&fake), "the app's own slice is ready");
    fake.clear_requests();

    let got = parker.unpark(&target("apps", "web")).await.expect("unpark");

    let Unpark::Done(report) = got else {
        panic!("ready: {got:?}")
    };
    assert_eq!(report.count("unparked"), 1, "{report:?}");
    assert!(slice(&fake, "apps", "idle-scaler-web").is_none());
    assert!(own_ready(&fake), "the controller's slice stays");
    let delete = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .expect("a delete");
    assert_eq!(
        delete.json()["preconditions"]["uid"],
        ours["metadata"]["uid"]
    );
    assert_eq!(
        fake.requests().len(),
        3,
        "two lists and one delete: {:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn a_ready_endpoint_that_is_not_a_pod_of_the_namespace_does_not_unpark() {
    let fake = FakeApiServer::start().await;
    let parker = parked_web(&fake).await;
    // A hand-written slice claiming the controller's label, pointing at another namespace's pod.
    create_slice(
        &fake,
        "apps",
        serde_json::json!({
            "metadata": {
                "name": "web-forged",
                "labels": {
                    "kubernetes.io/service-name": "web",
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{
                "addresses": ["10.5.5.5"],
                "conditions": { "ready": true },
                "targetRef": { "kind": "Pod", "namespace": "other", "name": "x" },
            }],
        }),
    )
    .await;

    let got = parker.unpark(&target("apps", "web")).await.expect("unpark");

    assert_eq!(got, Unpark::NotReady);
    assert!(slice(&fake, "apps", "idle-scaler-web").is_some());
}

#[tokio::test]
async fn unpark_when_ready_deletes_right_after_the_app_turns_ready() {
    let fake = FakeApiServer::start().await;
    let parker = parked_web(&fake).await;
    let became_ready = Arc::new(AtomicBool::new(false));
    fake.on_ready({
        let became_ready = became_ready.clone();
        Arc::new(move |_, _, ready| became_ready.store(ready, Ordering::SeqCst))
    });
    fake.set_ready_delay(Duration::from_millis(300));
    fake.scale_externally("apps", "web", 1);
    assert!(!own_ready(&fake), "not ready yet");
    fake.clear_requests();

    let started = tokio::time::Instant::now();
    let got = parker
        .unpark_when_ready(&target("apps", "web"), TIMEOUT)
        .await
        .expect("unpark");

    let Unpark::Done(report) = got else {
        panic!("ready in time: {got:?}")
    };
    assert_eq!(report.count("unparked"), 1, "{report:?}");
    assert!(
        became_ready.load(Ordering::SeqCst),
        "after the pods were ready"
    );
    assert!(own_ready(&fake));
    assert!(slice(&fake, "apps", "idle-scaler-web").is_none());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "waited: {took:?}");
    assert!(took < Duration::from_secs(5), "right after: {took:?}");
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.query_param("watch").as_deref() == Some("true")),
        "by watch: {requests:?}"
    );
    // A watch, not a polling loop: a handful of requests, whatever the wait lasted.
    assert!(requests.len() <= 6, "{requests:?}");
}

#[tokio::test]
async fn unpark_when_ready_times_out_without_deleting() {
    let fake = FakeApiServer::start().await;
    let parker = parked_web(&fake).await;
    fake.set_ready_delay(Duration::from_secs(3600));
    fake.scale_externally("apps", "web", 1);
    fake.clear_requests();

    let got = parker
        .unpark_when_ready(&target("apps", "web"), Duration::from_millis(300))
        .await
        .expect("unpark");

    assert_eq!(got, Unpark::NotReady);
    assert!(slice(&fake, "apps", "idle-scaler-web").is_some());
    assert_eq!(deletes(&fake), 0);
}

#[tokio::test]
async fn unpark_now_deletes_whether_or_not_ready() {
    let fake = FakeApiServer::start().await;
    let parker = parked_web(&fake).await;

    let report = parker
        .unpark_now(&target("apps", "web"))
        .await
        .expect("unpark");

    assert_eq!(report.count("unparked"), 1, "{report:?}");
    assert!(slice(&fake, "apps", "idle-scaler-web").is_none());
    // Nothing left: unparking again is a no-op.
    let got = parker.unpark(&target("apps", "web")).await.expect("unpark");
    assert_eq!(got, Unpark::Done(Default::default()));
}

#[tokio::test]
async fn parked_lists_every_app_with_its_services_in_one_request() {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 0);
    fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.create_service("apps", "web-admin", "web", &[("web", 8080)]);
    fake.create_deployment("shop", "cart", 0);
    fake.create_service("shop", "cart", "cart", &[("http", 80)]);
    let parker = parker(&fake);
    parker.park(&target("apps", "web")).await.expect("park web");
    parker
        .park(&target("shop", "cart"))
        .await
        .expect("park cart");
    fake.clear_requests();

    let parked = parker.parked().await.expect("parked");

    let got: Vec<(String, u32)> = parked
        .iter()
        .map(|p| (p.target.to_string(), p.services))
        .collect();
    assert_eq!(
        got,
        [
            (target("apps", "web").to_string(), 2),
            (target("shop", "cart").to_string(), 1)
        ]
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/apis/discovery.k8s.io/v1/endpointslices");
    assert!(
        requests[0]
            .query_param("labelSelector")
            .is_some_and(|s| s.contains("idle-scaler")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn lists_address_answers_whether_a_parked_slice_points_at_an_address() {
    let fake = FakeApiServer::start().await;
    let parker = parked_web(&fake).await;
    let waker: std::net::IpAddr = "10.0.0.7".parse().expect("ip");
    let other: std::net::IpAddr = "10.0.0.8".parse().expect("ip");

    assert!(parker.lists_address(waker).await.expect("listed"));
    assert!(!parker.lists_address(other).await.expect("listed"));

    let report = parker
        .unpark_now(&target("apps", "web"))
        .await
        .expect("unpark now");
    assert_eq!(report.count("unparked"), 1, "{report:?}");
    assert!(!parker.lists_address(waker).await.expect("listed"));
}
