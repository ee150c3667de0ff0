//! Simulated pods and the EndpointSlice controller: a Deployment with an app endpoint
//! (a real local server a test names) gets, once ready, a Pod with that address and, for
//! every Service selecting its pod labels, a controller-managed slice pointing at it; at 0
//! replicas the Pod goes and the slices keep no endpoints.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::resources::{ENDPOINT_SLICES, PODS, Resource, SERVICES};
use super::state::Objects;

/// The managed-by value of the slices the real EndpointSlice controller writes.
pub(super) const CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// Whether every key of a Service's `spec.selector` is among the pod labels (an empty or
/// absent selector selects nothing: the controller leaves such Services alone).
fn selects(service: &Value, pod_labels: &Value) -> bool {
    service["spec"]["selector"]
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| pod_labels.get(k) == Some(v)))
}

/// Same content, server-set metadata aside.
fn same(current: &Value, desired: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            for k in ["uid", "resourceVersion", "creationTimestamp"] {
                m.remove(k);
            }
        }
        v
    };
    strip(current) == strip(desired)
}

impl Objects {
    /// Where the pods of `ns/deploy` serve; its endpoints follow at once if it is ready.
    pub(super) fn set_app_endpoint(&mut self, ns: &str, deploy: &str, addr: SocketAddr) {
        self.app_endpoints
            .insert((ns.to_owned(), deploy.to_owned()), addr);
        self.sync_app(ns, deploy);
    }

    pub(super) fn sync_namespace(&mut self, ns: &str) {
        let apps: Vec<String> = self
            .app_endpoints
            .keys()
            .filter(|(n, _)| n == ns)
            .map(|(_, d)| d.clone())
            .collect();
        for deploy in apps {
            self.sync_app(ns, &deploy);
        }
    }

    /// Brings the Pod and the slices of `ns/deploy` in line with its readiness.
    pub(super) fn sync_app(&mut self, ns: &str, deploy: &str) {
        let Some(addr) = self
            .app_endpoints
            .get(&(ns.to_owned(), deploy.to_owned()))
            .copied()
        else {
            return;
        };
        let d = self.get(ns, deploy).ok().cloned();
        let labels = d.as_ref().map_or(Value::Null, |d| {
            d["spec"]["template"]["metadata"]["labels"].clone()
        });
        let ready = d
            .as_ref()
            .is_some_and(|d| d["status"]["readyReplicas"].as_i64().unwrap_or(0) > 0);
        let pod_name = format!("{deploy}-0");
        let pod = if ready {
            let pod = json!({
                "metadata": { "name": pod_name, "namespace": ns, "labels": labels },
                "spec": { "containers": [{ "name": "app", "image": "registry.invalid/app:1" }] },
                "status": {
                    "phase": "Running",
                    "podIP": addr.ip().to_string(),
                    "podIPs": [{ "ip": addr.ip().to_string() }],
                    "conditions": [{ "type": "Ready", "status": "True" }],
                },
            });
            Some(self.put(PODS, ns, &pod_name, pod))
        } else {
            // NotFound is fine: the pod is already gone.
            let _ = self.delete_obj(PODS, ns, &pod_name, &Value::Null);
            None
        };
        let services: Vec<Value> = self
            .list_obj(SERVICES, Some(ns))
            .into_iter()
            .cloned()
            .collect();
        for svc in services {
            let svc_name = svc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let slice_name = format!("{svc_name}-{deploy}");
            if d.is_none() || !selects(&svc, &labels) {
                let _ = self.delete_obj(ENDPOINT_SLICES, ns, &slice_name, &Value::Null);
                continue;
            }
            let endpoints = pod.as_ref().map_or_else(Vec::new, |pod| {
                vec![json!({
                    "addresses": [addr.ip().to_string()],
                    "conditions": { "ready": true, "serving": true, "terminating": false },
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": ns,
                        "name": pod_name,
                        "uid": pod["metadata"]["uid"],
                    },
                })]
            });
            let ports: Vec<Value> = svc["spec"]["ports"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|p| {
                    let mut port = json!({ "port": addr.port(), "protocol": p["protocol"].as_str().unwrap_or("TCP") });
                    for k in ["name", "appProtocol"] {
                        if let Some(v) = p[k].as_str() {
                            port[k] = json!(v);
                        }
                    }
                    port
                })
                .collect();
            let slice = json!({
                "metadata": {
                    "name": slice_name,
                    "namespace": ns,
                    "labels": {
                        "endpointslice.kubernetes.io/managed-by": CONTROLLER,
                        "kubernetes.io/service-name": svc_name,
                    },
                    "ownerReferences": [{
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": svc_name,
                        "uid": svc["metadata"]["uid"],
                        "controller": true,
                        "blockOwnerDeletion": true,
                    }],
                },
                "addressType": if addr.is_ipv4() { "IPv4" } else { "IPv6" },
                "endpoints": endpoints,
                "ports": ports,
            });
            self.put(ENDPOINT_SLICES, ns, &slice_name, slice);
        }
    }

    /// Deletes the objects of `ns` whose `ownerReferences` name `owner_uid`.
    pub(super) fn delete_owned(&mut self, ns: &str, owner_uid: &str) {
        let owned: Vec<(Resource, String)> = [ENDPOINT_SLICES, PODS]
            .into_iter()
            .flat_map(|res| {
                self.list_obj(res, Some(ns))
                    .into_iter()
                    .filter(|v| {
                        v["metadata"]["ownerReferences"]
                            .as_array()
                            .is_some_and(|o| o.iter().any(|r| r["uid"] == owner_uid))
                    })
                    .map(move |v| {
                        (
                            res,
                            v["metadata"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for (res, name) in owned {
            let _ = self.delete_obj(res, ns, &name, &Value::Null);
        }
    }

    /// Creates or replaces an object as a controller would (no precondition), writing only
    /// when it changes; returns the stored object.
    fn put(&mut self, res: Resource, ns: &str, name: &str, mut desired: Value) -> Value {
        desired["apiVersion"] = json!(res.api_version());
        desired["kind"] = json!(res.kind);
        let result = match self.get_obj(res, ns, name) {
            Ok(current) if same(current, &desired) => return current.clone(),
            Ok(_) => self.replace_obj(res, ns, name, desired),
            Err(_) => self.create_obj(res, ns, desired),
        };
        result.unwrap_or_else(|e| {
            panic!(
                "fake API server: writing {} {ns}/{name}: {}",
                res.plural, e.body
            )
        })
    }
}

impl super::FakeApiServer {
    /// Where the pods of Deployment `ns/deploy` serve (`"127.0.0.1:PORT"`, a real local
    /// server of the test): while it is ready, a Pod `<deploy>-0` has that IP and every
    /// Service selecting its pod labels has a slice `<service>-<deploy>`, managed by the
    /// EndpointSlice controller, whose endpoint (`targetRef` that Pod) is this address with
    /// each Service port on this port.
    ///
    /// # Panics
    /// If `addr` is not a socket address.
    pub fn set_app_endpoint(&self, namespace: &str, deploy: &str, addr: &str) {
        let addr: SocketAddr = addr
            .parse()
            .unwrap_or_else(|e| panic!("app endpoint {addr:?} is not a socket address: {e}"));
        self.shared
            .lock()
            .objects
            .set_app_endpoint(namespace, deploy, addr);
    }

    /// Creates a Service selecting `app=<app>` with TCP ports `(name, port)`; returns it.
    ///
    /// # Panics
    /// If it exists already.
    pub fn create_service(
        &self,
        namespace: &str,
        name: &str,
        app: &str,
        ports: &[(&str, i32)],
    ) -> Value {
        let ports: Vec<Value> = ports
            .iter()
            .map(|(port_name, port)| json!({ "name": port_name, "port": port, "targetPort": port, "protocol": "TCP" }))
            .collect();
        let service = json!({
            "metadata": { "name": name },
            "spec": { "selector": { "app": app }, "ports": ports },
        });
        self.shared
            .lock()
            .objects
            .create_obj(SERVICES, namespace, service)
            .unwrap_or_else(|e| {
                panic!(
                    "fake API server: creating service {namespace}/{name}: {}",
                    e.body
                )
            })
    }

    /// The EndpointSlices of a namespace, in name order.
    pub fn endpoint_slices(&self, namespace: &str) -> Vec<Value> {
        let st = self.shared.lock();
        st.objects
            .list_obj(ENDPOINT_SLICES, Some(namespace))
            .into_iter()
            .cloned()
            .collect()
    }
}
