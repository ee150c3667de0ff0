//! The fake's Services, EndpointSlices and Pods through the real kube client: the typed
//! objects decode, preconditions and selectors behave as on a real apiserver, and a ready
//! app's controller-managed slice leads to a real local HTTP server.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use idle_scaler_testkit::fake_kube::FakeApiServer;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const SERVICE_NAME: &str = "kubernetes.io/service-name";
const DEADLINE: Duration = Duration::from_secs(10);

fn client(fake: &FakeApiServer) -> kube::Client {
    let config = kube::Config::new(fake.url().parse().expect("the fake's URL"));
    kube::Client::try_from(config).expect("a kube client")
}

fn slice(name: &str, service: &str, managed_by: &str, ip: &str) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.to_owned(), managed_by.to_owned()),
                (SERVICE_NAME.to_owned(), service.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_owned(),
        endpoints: vec![Endpoint {
            addresses: vec![ip.to_owned()],
            ..Endpoint::default()
        }],
        ports: Some(vec![EndpointPort {
            name: Some("http".to_owned()),
            port: Some(8081),
            ..EndpointPort::default()
        }]),
    }
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn names(slices: &[EndpointSlice]) -> Vec<String> {
    slices
        .iter()
        .map(|s| s.metadata.name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn endpoint_slice_writes_honour_resource_version_and_uid_preconditions() {
    let fake = FakeApiServer::start().await;
    let api: Api<EndpointSlice> = Api::namespaced(client(&fake), "apps");
    let pp = PostParams::default();

    let created = api
        .create(
            &pp,
            &slice("idle-scaler-web", "web", "idle-scaler", "10.0.0.9"),
        )
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().expect("a uid");
    let rv1 = created
        .metadata
        .resource_version
        .clone()
        .expect("a resourceVersion");
    assert_eq!(api.get("idle-scaler-web").await.expect("get"), created);
    let again = api
        .create(&pp, &slice("idle-scaler-web", "web", "x", "10.0.0.9"))
        .await;
    assert_eq!(api_error(again), (409, "AlreadyExists".to_owned()));

    // An update from the version read goes through and moves the version on...
    let mut changed = created.clone();
    changed.endpoints[0].addresses = vec!["10.0.0.10".to_owned()];
    let updated = api
        .replace("idle-scaler-web", &pp, &changed)
        .await
        .expect("update");
    let rv2 = updated
        .metadata
        .resource_version
        .clone()
        .expect("a resourceVersion");
    assert_ne!(rv1, rv2);
    // ...and a second one from the same, now stale, version is refused and changes nothing.
    changed.endpoints[0].addresses = vec!["10.0.0.11".to_owned()];
    let stale = api.replace("idle-scaler-web", &pp, &changed).await;
    assert_eq!(api_error(stale), (409, "Conflict".to_owned()));
    let now = api.get("idle-scaler-web").await.expect("get");
    assert_eq!(now.endpoints[0].addresses, ["10.0.0.10"]);

    // A merge patch carrying a stale version is refused too; a current one applies.
    let patch = |rv: &str, ip: &str| {
        Patch::Merge(serde_json::json!({
            "metadata": { "resourceVersion": rv },
            "endpoints": [{ "addresses": [ip] }],
        }))
    };
    let pp2 = PatchParams::default();
    let stale = api
        .patch("idle-scaler-web", &pp2, &patch(&rv1, "10.0.0.12"))
        .await;
    assert_eq!(api_error(stale), (409, "Conflict".to_owned()));
    let patched = api
        .patch("idle-scaler-web", &pp2, &patch(&rv2, "10.0.0.10"))
        .await
        .expect("patch");
    assert_eq!(
        patched, updated,
        "a patch that changes nothing keeps the version"
    );
    let patched = api
        .patch("idle-scaler-web", &pp2, &patch(&rv2, "10.0.0.13"))
        .await
        .expect("patch");
    assert_eq!(patched.endpoints[0].addresses, ["10.0.0.13"]);
    let rv2 = patched
        .metadata
        .resource_version
        .clone()
        .expect("a resourceVersion");

    // Delete preconditions: a wrong uid or a stale version deletes nothing.
    let with = |uid: &str, rv: Option<&str>| DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: rv.map(str::to_owned),
        }),
        ..DeleteParams::default()
    };
    let wrong_uid = api
        .delete(
            "idle-scaler-web",
            &with("00000000-0000-4000-8000-ffffffffffff", None),
        )
        .await;
    assert_eq!(api_error(wrong_uid), (409, "Conflict".to_owned()));
    let stale_rv = api.delete("idle-scaler-web", &with(&uid, Some(&rv1))).await;
    assert_eq!(api_error(stale_rv), (409, "Conflict".to_owned()));
    assert!(api.get_opt("idle-scaler-web").await.expect("get").is_some());
    api.delete("idle-scaler-web", &with(&uid, Some(&rv2)))
        .await
        .expect("a delete with matching preconditions");
    let gone = api.get("idle-scaler-web").await;
    assert_eq!(api_error(gone), (404, "NotFound".to_owned()));
    let gone = api
        .delete("idle-scaler-web", &DeleteParams::default())
        .await;
    assert_eq!(api_error(gone), (404, "NotFound".to_owned()));

    // A slice without its required addressType is 422 Invalid (raw: the typed one has it).
    let req = http::Request::post("/apis/discovery.k8s.io/v1/namespaces/apps/endpointslices")
        .header("content-type", "application/json")
        .body(br#"{"metadata":{"name":"bad"},"endpoints":[]}"#.to_vec())
        .expect("a request");
    let invalid = client(&fake).request::<serde_json::Value>(req).await;
    assert_eq!(api_error(invalid), (422, "Invalid".to_owned()));
}

#[tokio::test]
async fn slice_lists_and_watches_follow_label_selectors_across_namespaces() {
    let fake = FakeApiServer::start().await;
    let c = client(&fake);
    let (apps, other): (Api<EndpointSlice>, Api<EndpointSlice>) = (
        Api::namespaced(c.clone(), "apps"),
        Api::namespaced(c.clone(), "other"),
    );
    let all: Api<EndpointSlice> = Api::all(c);
    let ours = format!("{MANAGED_BY}=idle-scaler");
    let mut events = apps
        .watch(&WatchParams::default().labels(&ours), "0")
        .await
        .expect("watch")
        .boxed();

    let pp = PostParams::default();
    apps.create(
        &pp,
        &slice("idle-scaler-web", "web", "idle-scaler", "10.0.0.9"),
    )
    .await
    .expect("create");
    apps.create(
        &pp,
        &slice(
            "web-abcde",
            "web",
            "endpointslice-controller.k8s.io",
            "10.1.0.1",
        ),
    )
    .await
    .expect("create");
    apps.create(
        &pp,
        &slice(
            "api-abcde",
            "api",
            "endpointslice-controller.k8s.io",
            "10.1.0.2",
        ),
    )
    .await
    .expect("create");
    other
        .create(
            &pp,
            &slice("idle-scaler-web", "web", "idle-scaler", "10.0.0.9"),
        )
        .await
        .expect("create");

    let list = |api: &Api<EndpointSlice>, selector: &str| {
        let (api, lp) = (api.clone(), ListParams::default().labels(selector));
        async move { names(&api.list(&lp).await.expect("list").items) }
    };
    assert_eq!(
        list(&apps, &format!("{SERVICE_NAME}=web")).await,
        ["idle-scaler-web", "web-abcde"]
    );
    assert_eq!(list(&apps, &ours).await, ["idle-scaler-web"]);
    assert_eq!(
        list(&apps, &format!("{MANAGED_BY}!=idle-scaler")).await,
        ["api-abcde", "web-abcde"]
    );
    assert_eq!(
        list(&apps, &format!("{SERVICE_NAME} in (api,db)")).await,
        ["api-abcde"]
    );
    assert_eq!(
        list(&all, &ours).await,
        ["idle-scaler-web", "idle-scaler-web"]
    );
    let namespaces: Vec<_> = all
        .list(&ListParams::default().labels(&ours))
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|s| s.metadata.namespace.unwrap_or_default())
        .collect();
    assert_eq!(namespaces, ["apps", "other"]);

    let mut current = apps.get("idle-scaler-web").await.expect("get");
    current.endpoints[0].addresses = vec!["10.0.0.10".to_owned()];
    apps.replace("idle-scaler-web", &pp, &current)
        .await
        .expect("update");
    apps.delete("web-abcde", &DeleteParams::default())
        .await
        .expect("delete");
    apps.delete("idle-scaler-web", &DeleteParams::default())
        .await
        .expect("delete");

    // Only our namespace's slices with our label: the others' events are filtered out.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(DEADLINE, events.try_next())
            .await
            .expect("a watch event in time")
            .expect("a watch event")
            .expect("the watch is open");
        seen.push(match event {
            WatchEvent::Added(s) => ("ADDED", s.endpoints[0].addresses[0].clone()),
            WatchEvent::Modified(s) => ("MODIFIED", s.endpoints[0].addresses[0].clone()),
            WatchEvent::Deleted(s) => ("DELETED", s.endpoints[0].addresses[0].clone()),
            other => panic!("unexpected event {other:?}"),
        });
    }
    let want = [
        ("ADDED", "10.0.0.9"),
        ("MODIFIED", "10.0.0.10"),
        ("DELETED", "10.0.0.10"),
    ];
    assert_eq!(seen, want.map(|(k, a)| (k, a.to_owned())));
}

#[tokio::test]
async fn services_are_created_listed_and_watched() {
    let fake = FakeApiServer::start().await;
    let c = client(&fake);
    let api: Api<Service> = Api::namespaced(c.clone(), "apps");
    let mut events = Api::<Service>::all(c.clone())
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    let service = Service {
        metadata: ObjectMeta {
            name: Some("web".to_owned()),
            labels: Some(BTreeMap::from([("tier".to_owned(), "front".to_owned())])),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let created = api
        .create(&PostParams::default(), &service)
        .await
        .expect("create");
    let spec = created.spec.clone().expect("a spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(spec.cluster_ip.is_some_and(|ip| ip.starts_with("10.96.")));
    fake.create_service("other", "db", "db", &[("pg", 5432)]);

    assert_eq!(api.get("web").await.expect("get"), created);
    let front = ListParams::default().labels("tier=front");
    let all = Api::<Service>::all(c);
    let listed: Vec<_> = all.list(&front).await.expect("list").items;
    assert_eq!(listed, std::slice::from_ref(&created));
    assert_eq!(
        all.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        2
    );
    let missing = api.get("db").await;
    assert_eq!(api_error(missing), (404, "NotFound".to_owned()));

    let mut added = Vec::new();
    while added.len() < 2 {
        match tokio::time::timeout(DEADLINE, events.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(s)))) => added.push(s.metadata.name.unwrap_or_default()),
            other => panic!("expected ADDED, got {other:?}"),
        }
    }
    assert_eq!(added, ["web", "db"]);
}

/// A one-line HTTP server standing in for the app's process.
async fn app_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0_u8; 1024];
            let _ = stream.read(&mut buf).await;
            let body = "hello from web";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    addr
}

async fn http_get(address: &str, port: i32) -> String {
    let mut stream = TcpStream::connect(format!("{address}:{port}"))
        .await
        .expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

/// Polls the slices of `service` until `done` holds for them, within the deadline.
async fn slices_until(
    api: &Api<EndpointSlice>,
    service: &str,
    done: impl Fn(&[EndpointSlice]) -> bool,
) -> Vec<EndpointSlice> {
    let lp = ListParams::default().labels(&format!("{SERVICE_NAME}={service}"));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let items = api.list(&lp).await.expect("list").items;
        if done(&items) {
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slices never got there: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_ready_app_publishes_a_controller_slice_that_reaches_it() {
    let fake = FakeApiServer::start().await;
    let c = client(&fake);
    let slices: Api<EndpointSlice> = Api::namespaced(c.clone(), "apps");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "apps");
    let app = app_server().await;
    fake.create_deployment("apps", "web", 0);
    fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.create_service("apps", "api", "api", &[("http", 80)]);
    fake.set_app_endpoint("apps", "web", &app.to_string());
    fake.set_ready_delay(Duration::from_millis(200));

    let asleep = slices_until(&slices, "web", |s| s.len() == 1).await;
    assert!(
        asleep[0].endpoints.is_empty(),
        "no endpoint while at 0: {asleep:?}"
    );
    fake.scale_externally("apps", "web", 1);
    // Not before the pods are ready.
    let starting = slices
        .list(&ListParams::default())
        .await
        .expect("list")
        .items;
    assert!(
        starting.iter().all(|s| s.endpoints.is_empty()),
        "{starting:?}"
    );

    let ready = slices_until(&slices, "web", |s| {
        s.iter().any(|s| !s.endpoints.is_empty())
    })
    .await;
    assert_eq!(
        fake.deployment("apps", "web").expect("web")["status"]["readyReplicas"],
        1
    );
    let s = &ready[0];
    let labels = s.metadata.labels.clone().expect("labels");
    assert_eq!(labels[MANAGED_BY], "endpointslice-controller.k8s.io");
    assert_eq!(labels[SERVICE_NAME], "web");
    let endpoint = &s.endpoints[0];
    assert_eq!(
        endpoint.conditions.as_ref().and_then(|c| c.ready),
        Some(true)
    );
    let target = endpoint.target_ref.clone().expect("a targetRef");
    assert_eq!(
        (target.kind.as_deref(), target.namespace.as_deref()),
        (Some("Pod"), Some("apps"))
    );
    let pod = pods
        .get(target.name.as_deref().expect("a pod name"))
        .await
        .expect("the pod");
    assert_eq!(pod.metadata.uid, target.uid);
    let port = s.ports.as_ref().expect("ports")[0].clone();
    assert_eq!(port.name.as_deref(), Some("http"));
    let answer = http_get(&endpoint.addresses[0], port.port.expect("a port")).await;
    assert!(answer.ends_with("hello from web"), "{answer}");

    // The caller check's lookup: pods by IP, in the namespace only.
    let by_ip = ListParams::default().fields(&format!("status.podIP={}", app.ip()));
    assert_eq!(pods.list(&by_ip).await.expect("list").items, [pod]);
    let elsewhere: Api<Pod> = Api::namespaced(c, "other");
    assert!(elsewhere.list(&by_ip).await.expect("list").items.is_empty());
    // A Service that selects other pods gets no slice of this app.
    assert!(slices_until(&slices, "api", |_| true).await.is_empty());

    fake.scale_externally("apps", "web", 0);
    let stopped = slices_until(&slices, "web", |s| s.iter().all(|s| s.endpoints.is_empty())).await;
    assert_eq!(stopped.len(), 1);
    assert!(
        pods.list(&by_ip).await.expect("list").items.is_empty(),
        "the pod is gone at 0"
    );

    // The controller's slice is owned by its Service: deleting the Service deletes it.
    let services: Api<Service> = Api::namespaced(client(&fake), "apps");
    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(slices_until(&slices, "web", |_| true).await.is_empty());
}
