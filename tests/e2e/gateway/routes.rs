//! The test's Gateway API objects on the fake, as a platform has them: a Gateway in
//! `gateways` and an HTTPRoute of the app's namespace the Gateway accepted
//! (`status.parents[].conditions` `Accepted=True`, written by the gateway's controller).

use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::programs::http::{self, Call};
use serde_json::{Value, json};

const GROUP: &str = "/apis/gateway.networking.k8s.io/v1";

/// Creates Gateway `gateways/public` and HTTPRoute `apps/shop` for `host` to Service
/// `apps/web` port 80, and accepts it.
pub async fn install(fake: &FakeApiServer, host: &str) {
    let gateway = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": { "name": "public", "namespace": "gateways" },
        "spec": {
            "gatewayClassName": "nginx",
            "listeners": [{ "name": "http", "port": 80, "protocol": "HTTP",
                            "allowedRoutes": { "namespaces": { "from": "All" } } }],
        },
    });
    let ns = "apps";
    write(
        fake,
        "POST",
        &format!("{GROUP}/namespaces/gateways/gateways"),
        &gateway,
    )
    .await;
    let mut http_route = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": { "name": "shop", "namespace": ns },
        "spec": {
            "parentRefs": [{ "name": "public", "namespace": "gateways" }],
            "hostnames": [host],
            "rules": [{
                "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
                "backendRefs": [{ "name": "web", "port": 80 }],
            }],
        },
    });
    let created = write(
        fake,
        "POST",
        &format!("{GROUP}/namespaces/{ns}/httproutes"),
        &http_route,
    )
    .await;
    http_route["metadata"] = created["metadata"].clone();
    http_route["status"] = json!({ "parents": [{
        "parentRef": { "name": "public", "namespace": "gateways" },
        "controllerName": "example.test/nginx-gateway",
        "conditions": [{
            "type": "Accepted", "status": "True", "reason": "Accepted",
            "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z",
            "message": "accepted by the test's nginx",
        }],
    }]});
    write(
        fake,
        "PUT",
        &format!("{GROUP}/namespaces/{ns}/httproutes/shop/status"),
        &http_route,
    )
    .await;
}

/// One write to the fake over its HTTP API, as kubectl or a controller would.
async fn write(fake: &FakeApiServer, method: &str, path: &str, object: &Value) -> Value {
    let body = object.to_string();
    let call = Call {
        method,
        path,
        headers: &[("Content-Type", "application/json")],
        body: &body,
    };
    let answer = http::send(None, fake.addr(), call)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert!(
        answer.status == 200 || answer.status == 201,
        "{method} {path}: {answer:?}"
    );
    serde_json::from_str(&answer.body).expect("the fake answers JSON")
}
