use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

use super::{Change, reflect};

fn slice_json(name: &str, rv: &str) -> Value {
    json!({
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": { "name": name, "namespace": "apps", "resourceVersion": rv },
        "addressType": "IPv4", "endpoints": [],
    })
}

fn list(rv: &str, items: &[Value]) -> Response<Body> {
    let body = json!({
        "kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
        "metadata": { "resourceVersion": rv }, "items": items,
    });
    Response::new(Body::from(body.to_string().into_bytes()))
}

fn lines(events: &[Value]) -> Response<Body> {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    Response::new(Body::from(body.into_bytes()))
}

/// The next request's query, answered with `reply`.
async fn answer(
    h: &mut mock::Handle<Request<Body>, Response<Body>>,
    reply: Response<Body>,
) -> String {
    let (req, send) = h.next_request().await.expect("a request");
    send.send_response(reply);
    req.uri().query().unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_watch_resumes_from_the_last_version_and_lists_again_on_410() {
    let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
    let api: Api<EndpointSlice> = Api::all(kube::Client::new(svc, "default"));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let task = tokio::spawn(reflect(
        api,
        Some("a=b".into()),
        Duration::from_secs(5),
        "endpointslices",
        move |c: Change<EndpointSlice>| {
            let name = |s: &EndpointSlice| s.metadata.name.clone().unwrap_or_default();
            let line = match c {
                Change::Listed(items) => {
                    format!(
                        "listed {}",
                        items.iter().map(name).collect::<Vec<_>>().join(",")
                    )
                }
                Change::Applied(s) => format!("applied {}", name(&s)),
                Change::Deleted(s) => format!("deleted {}", name(&s)),
            };
            record.lock().expect("lock").push(line);
        },
    ));
    let q = answer(&mut h, list("10", &[slice_json("a", "9")])).await;
    assert!(
        !q.contains("watch=true") && q.contains("labelSelector=a%3Db"),
        "{q}"
    );
    // A watch that ends after one event: the next one resumes from that event's version.
    let added = json!({ "type": "ADDED", "object": slice_json("b", "11") });
    let q = answer(&mut h, lines(&[added])).await;
    assert!(
        q.contains("watch=true") && q.contains("resourceVersion=10"),
        "{q}"
    );
    let gone = json!({ "type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "too old resource version", "reason": "Expired", "code": 410 } });
    let q = answer(&mut h, lines(&[gone])).await;
    assert!(
        q.contains("watch=true") && q.contains("resourceVersion=11"),
        "{q}"
    );
    // 410: a fresh list, then a watch from its version.
    let q = answer(&mut h, list("20", &[slice_json("b", "11")])).await;
    assert!(!q.contains("watch=true"), "{q}");
    let (req, _pending) = h.next_request().await.expect("the next watch");
    let q = req.uri().query().unwrap_or("").to_owned();
    assert!(
        q.contains("watch=true") && q.contains("resourceVersion=20"),
        "{q}"
    );
    task.abort();
    assert_eq!(
        *seen.lock().expect("lock"),
        ["listed a", "applied b", "listed b"]
    );
}
