//! Request-level scenarios: a `tower_test` mock stands in for the API server, so each test
//! sees exactly what the adapter sends (method, path, query, content type, body) and
//! answers it by hand (controller-rs `fixtures.rs` pattern).

use std::time::Duration;

use http::{Request, Response};
use idle_scaler_core::{Error as CoreError, Scale, Scaler, ScalerFactory, Target};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use super::*;

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn target() -> Target {
    Target {
        cluster: None,
        namespace: "apps".into(),
        name: "web".into(),
    }
}

fn scaler(timeout: Duration) -> (KubeScaler, ApiHandle) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (
        KubeScaler::new(kube::Client::new(svc, "default"), timeout),
        handle,
    )
}

fn scale_json(replicas: Option<i32>, rv: Option<&str>) -> Value {
    let mut spec = json!({});
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    let mut metadata = json!({ "name": "web", "namespace": "apps" });
    if let Some(rv) = rv {
        metadata["resourceVersion"] = json!(rv);
    }
    json!({ "kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": metadata, "spec": spec,
        "status": { "replicas": replicas.unwrap_or(0), "selector": "app=web" } })
}

fn response(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .expect("a valid response")
}

/// What one call looked like on the wire.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    body: Value,
}

/// Answers the next request with `reply` and returns what it was.
async fn serve_one(handle: &mut ApiHandle, reply: Response<Body>) -> Seen {
    let (req, send) = handle
        .next_request()
        .await
        .expect("the adapter sent a request");
    let (parts, body) = req.into_parts();
    let bytes = body.collect_bytes().await.expect("a readable body");
    let query = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    send.send_response(reply);
    Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        content_type: parts
            .headers
            .get("content-type")
            .map(|v| v.to_str().expect("ascii").to_owned()),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        },
    }
}

const SCALE_PATH: &str = "/apis/apps/v1/namespaces/apps/deployments/web/scale";

#[tokio::test]
async fn get_scale_reads_replicas_and_resource_version_from_the_subresource() {
    let (s, mut h) = scaler(Duration::from_secs(5));
    let server = tokio::spawn(async move {
        serve_one(&mut h, response(200, &scale_json(Some(3), Some("42")))).await
    });
    let scale = s.get_scale(&target()).await.expect("scale");
    assert_eq!(
        scale,
        Scale {
            replicas: 3,
            resource_version: "42".into()
        }
    );
    let seen = server.await.expect("server task");
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", SCALE_PATH)
    );
    assert_eq!(seen.body, Value::Null);
}

#[tokio::test]
async fn get_scale_reads_an_omitted_replicas_as_zero() {
    let (s, mut h) = scaler(Duration::from_secs(5));
    let server = tokio::spawn(async move {
        serve_one(&mut h, response(200, &scale_json(None, Some("7")))).await
    });
    assert_eq!(s.get_scale(&target()).await.expect("scale").replicas, 0);
    server.await.expect("server task");
}

#[tokio::test]
async fn get_scale_without_resource_version_is_refused_not_guessed() {
    let (s, mut h) = scaler(Duration::from_secs(5));
    let server =
        tokio::spawn(
            async move { serve_one(&mut h, response(200, &scale_json(Some(2), None))).await },
        );
    let err = s
        .get_scale(&target())
        .await
        .expect_err("no precondition possible");
    assert!(matches!(err, CoreError::Invalid { .. }), "{err:?}");
    server.await.expect("server task");
}

#[tokio::test]
async fn sleep_is_a_merge_patch_of_the_scale_with_the_resource_version_as_precondition() {
    let (s, mut h) = scaler(Duration::from_secs(5));
    let server = tokio::spawn(async move {
        serve_one(&mut h, response(200, &scale_json(None, Some("43")))).await
    });
    s.set_replicas(&target(), 0, Some("42"))
        .await
        .expect("scaled");
    let seen = server.await.expect("server task");
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("PATCH", SCALE_PATH)
    );
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        seen.query,
        vec![("fieldManager".to_owned(), "idle-scaler".to_owned())]
    );
    assert_eq!(
        seen.body,
        json!({ "metadata": { "resourceVersion": "42" }, "spec": { "replicas": 0 } })
    );
}

#[tokio::test]
async fn wake_writes_the_replicas_without_precondition() {
    let (s, mut h) = scaler(Duration::from_secs(5));
    let server = tokio::spawn(async move {
        serve_one(&mut h, response(200, &scale_json(Some(2), Some("44")))).await
    });
    s.set_replicas(&target(), 2, None).await.expect("scaled");
    let seen = server.await.expect("server task");
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("PATCH", SCALE_PATH)
    );
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        seen.query,
        vec![("fieldManager".to_owned(), "idle-scaler".to_owned())]
    );
    assert_eq!(seen.body, json!({ "spec": { "replicas": 2 } }));
}

#[tokio::test]
async fn a_stale_precondition_is_a_conflict() {
    let (s, mut h) = scaler(Duration::from_secs(5));
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified",
        "reason": "Conflict", "details": { "name": "web", "group": "apps", "kind": "deployments" }, "code": 409,
    });
    let server = tokio::spawn(async move { serve_one(&mut h, response(409, &status)).await });
    let err = s
        .set_replicas(&target(), 0, Some("41"))
        .await
        .expect_err("conflict");
    // The message is this adapter's context; the API's answer is the cause, named once.
    assert!(
        matches!(err, CoreError::Conflict { ref message, .. } if message == "patch scale apps/web"),
        "{err:?}"
    );
    let rendered = idle_scaler_core::error_chain(&err);
    assert_eq!(
        rendered.matches("has been modified").count(),
        1,
        "{rendered}"
    );
    server.await.expect("server task");
}

#[tokio::test]
async fn a_status_without_code_maps_by_its_reason() {
    let (s, mut h) = scaler(Duration::from_secs(5));
    let status =
        json!({ "kind": "Status", "status": "Failure", "reason": "NotFound", "message": "gone" });
    let server = tokio::spawn(async move { serve_one(&mut h, response(404, &status)).await });
    let err = s.get_scale(&target()).await.expect_err("not found");
    assert!(matches!(err, CoreError::NotFound { .. }), "{err:?}");
    server.await.expect("server task");
}

#[tokio::test(start_paused = true)]
async fn a_request_without_answer_times_out_as_unavailable() {
    let (s, mut h) = scaler(Duration::from_millis(250));
    // Take the request and hold its responder without answering, like a hung apiserver.
    let server = tokio::spawn(async move {
        let pending = h.next_request().await;
        std::future::pending::<()>().await;
        drop(pending);
    });
    let started = tokio::time::Instant::now();
    let err = s
        .set_replicas(&target(), 0, Some("1"))
        .await
        .expect_err("timeout");
    assert!(
        matches!(err, CoreError::Unavailable { ref message, .. } if message.contains("250 ms")),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    server.abort();
}

#[test]
fn status_codes_map_to_domain_outcomes() {
    let cases = [
        (404, "NotFound"),
        (409, "Conflict"),
        (401, "Forbidden"),
        (403, "Forbidden"),
        (422, "Invalid"),
        (400, "Invalid"),
        (429, "Unavailable"),
        (500, "Unavailable"),
        (503, "Unavailable"),
        (504, "Unavailable"),
    ];
    for (code, want) in cases {
        let status = kube::core::Status::failure("x", "").with_code(code);
        let got = map_error(&target(), "test", kube::Error::Api(status.boxed()));
        let got = format!("{got:?}");
        assert!(got.starts_with(want), "{code}: {got}");
    }
}

#[tokio::test]
async fn lazy_source_fails_open_and_retries_until_a_client_is_built() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let source = LazyScalerFactory::new(Box::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if n == 0 {
                // First attempt: the configuration is not there yet.
                Err(Error::Url {
                    url: "not a url".into(),
                    source: "not a url".parse::<http::Uri>().expect_err("invalid"),
                })
            } else {
                KubeScaler::from_url("http://127.0.0.1:1", Duration::from_secs(1))
            }
        })
    }));
    let Err(err) = source.scaler().await else {
        panic!("the first build must fail")
    };
    assert!(matches!(err, CoreError::Unavailable { .. }), "{err:?}");
    assert!(!source.is_built());
    assert!(source.scaler().await.is_ok(), "the second build succeeds");
    assert!(source.scaler().await.is_ok(), "cached");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "built once after the failure, then cached"
    );
}

#[test]
fn from_url_rejects_a_bad_url_with_a_fail_open_error() {
    let err = KubeScaler::from_url("http://[::1", Duration::from_secs(1)).expect_err("bad url");
    assert!(matches!(err, Error::Url { .. }), "{err:?}");
    assert!(matches!(
        CoreError::from(err),
        CoreError::Unavailable { .. }
    ));
}

#[test]
fn an_authentication_error_is_a_fixed_text_wherever_kube_puts_it() {
    use std::os::unix::process::ExitStatusExt;
    const SECRET: &str = "tok-Zq81-secret";
    let failed = || kube::client::AuthError::AuthExecRun {
        cmd: format!("TOKEN=\"{SECRET}\" \"/bin/plugin\""),
        out: Box::new(std::process::Output {
            status: std::process::ExitStatus::from_raw(256),
            stdout: SECRET.as_bytes().to_vec(),
            stderr: SECRET.as_bytes().to_vec(),
        }),
    };
    let built = CoreError::from(Error::client(kube::Error::Auth(failed())));
    let request = map_error(
        &target(),
        "get scale",
        kube::Error::Service(Box::new(failed())),
    );
    for err in [built, request] {
        assert!(matches!(err, CoreError::Unavailable { .. }), "{err:?}");
        let shown = format!("{} {err:?}", idle_scaler_core::error_chain(&err));
        assert!(shown.contains("credentials could not be used"), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
