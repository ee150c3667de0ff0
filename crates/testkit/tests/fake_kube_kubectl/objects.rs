//! kubectl against the generic store's objects: EndpointSlices written and read, and the
//! routing kinds (Ingresses, the Gateway API's) found through discovery and printed.

use idle_scaler_testkit::fake_kube::FakeApiServer;
use serde_json::json;

use super::{Kubectl, table, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_and_writes_endpoint_slices_on_the_fake() {
    let fake = FakeApiServer::start().await;
    fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.create_deployment("apps", "web", 1);
    fake.set_app_endpoint("apps", "web", "127.0.0.1:9");
    let k = Kubectl::new(&fake.url());
    let manifest = k.dir.path().join("slice.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: idle-scaler-web
  namespace: apps
  labels:
    endpointslice.kubernetes.io/managed-by: idle-scaler
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
- addresses: [10.0.0.9]
ports:
- name: http
  port: 8081
",
    )
    .expect("writing the manifest");
    let path = manifest.to_str().expect("a UTF-8 path");

    // The fake serves no OpenAPI document for client-side validation.
    let create = ["create", "--validate=false", "-f", path];
    let out = k.run(&create).await;
    assert!(
        out.status.success(),
        "kubectl create failed: {}",
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout).trim(),
        "endpointslice.discovery.k8s.io/idle-scaler-web created"
    );
    let out = k.run(&create).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains(r#"endpointslices.discovery.k8s.io "idle-scaler-web" already exists"#),
        "stderr: {}",
        text(&out.stderr)
    );

    // By label: ours, the controller's, and both.
    let by_label = |selector: &str| {
        let args = ["get", "endpointslices", "-l", selector, "-o", "name"];
        let run = k.start(&args);
        async move {
            let out = run.await.expect("kubectl task");
            assert!(
                out.status.success(),
                "kubectl get -l failed: {}",
                text(&out.stderr)
            );
            text(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        by_label("endpointslice.kubernetes.io/managed-by=idle-scaler").await,
        ["endpointslice.discovery.k8s.io/idle-scaler-web"]
    );
    assert_eq!(
        by_label("endpointslice.kubernetes.io/managed-by!=idle-scaler").await,
        ["endpointslice.discovery.k8s.io/web-web"]
    );
    assert_eq!(by_label("kubernetes.io/service-name=web").await.len(), 2);

    // The printed table, and the object as JSON.
    let out = k.run(&["get", "endpointslice", "idle-scaler-web"]).await;
    assert!(
        out.status.success(),
        "kubectl get failed: {}",
        text(&out.stderr)
    );
    let rows = table(&out.stdout);
    assert_eq!(
        rows[0],
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        "{rows:?}"
    );
    assert_eq!(
        rows[1][..4],
        ["idle-scaler-web", "IPv4", "8081", "10.0.0.9"],
        "{rows:?}"
    );
    let out = k
        .run(&["get", "endpointslice", "web-web", "-o", "json"])
        .await;
    let controller: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(controller["endpoints"][0]["targetRef"]["kind"], "Pod");
    assert_eq!(controller["endpoints"][0]["addresses"][0], "127.0.0.1");
    let out = k.run(&["get", "services,pods", "-o", "name"]).await;
    assert_eq!(
        text(&out.stdout).trim(),
        "service/web\npod/web-0",
        "{}",
        text(&out.stderr)
    );

    let out = k.run(&["delete", "endpointslice", "idle-scaler-web"]).await;
    assert!(
        out.status.success(),
        "kubectl delete failed: {}",
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout).trim(),
        r#"endpointslice.discovery.k8s.io "idle-scaler-web" deleted"#
    );
    assert_eq!(
        fake.endpoint_slices("apps").len(),
        1,
        "only the controller's is left"
    );
    let out = k.run(&["get", "endpointslice", "idle-scaler-web"]).await;
    assert_eq!(
        text(&out.stderr).trim(),
        r#"Error from server (NotFound): endpointslices.discovery.k8s.io "idle-scaler-web" not found"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_routes_and_ingresses_on_the_fake() {
    let fake = FakeApiServer::start().await;
    fake.put_object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": { "name": "web", "namespace": "apps" },
        "spec": {
            "parentRefs": [{ "name": "gw", "namespace": "infra" }],
            "hostnames": ["web.example.com", "www.example.com"],
            "rules": [{ "backendRefs": [{ "name": "web", "port": 80 }] }],
        },
    }));
    fake.put_object(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": { "name": "web", "namespace": "apps" },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{ "host": "web.example.com" }],
        },
    }));
    let k = Kubectl::new(&fake.url());
    let out = k.run(&["get", "httproutes,ingresses", "-o", "name"]).await;
    assert!(
        out.status.success(),
        "kubectl get failed: {}",
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout).trim(),
        "httproute.gateway.networking.k8s.io/web\ningress.networking.k8s.io/web"
    );
    let out = k.run(&["get", "httproutes"]).await;
    let rows = table(&out.stdout);
    assert_eq!(
        rows[0],
        ["NAME", "HOSTNAMES", "AGE"],
        "{}",
        text(&out.stderr)
    );
    assert_eq!(rows[1][..2], ["web", "web.example.com,www.example.com"]);
    let out = k.run(&["get", "ing"]).await;
    let rows = table(&out.stdout);
    assert_eq!(
        rows[0],
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    );
    assert_eq!(rows[1][..3], ["web", "nginx", "web.example.com"]);

    fake.uninstall_gateway_api();
    // A fresh discovery cache, as a kubectl that never saw the CRDs.
    let k = Kubectl::new(&fake.url());
    let out = k.run(&["get", "httproutes"]).await;
    assert!(!out.status.success(), "no CRDs, no routes");
    assert!(
        text(&out.stderr).contains("the server doesn't have a resource type \"httproutes\""),
        "stderr: {}",
        text(&out.stderr)
    );
}
