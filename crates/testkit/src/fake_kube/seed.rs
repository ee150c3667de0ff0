//! What tests do to the generic store without HTTP: put objects (status included, as the
//! controller owning them would), read them, accept HTTPRoutes, and install or remove the
//! Gateway API's CRDs.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::errors::{ApiError, bad_request, status};
use super::resources::{ALL, HTTP_ROUTES, Part, of_kind};
use super::state::Objects;

/// The `controllerName` [`super::FakeApiServer::accept_http_route`] writes.
pub const FAKE_GATEWAY_CONTROLLER: &str = "idle-scaler.test/fake-gateway-controller";

impl Objects {
    /// Creates or replaces the object its `kind`, `metadata.namespace` (default `default`)
    /// and `metadata.name` name, `status` included, without preconditions.
    pub(super) fn put_whole(&mut self, mut v: Value) -> Result<Value, ApiError> {
        let kind = v["kind"].as_str().unwrap_or_default();
        let res = of_kind(kind, v["apiVersion"].as_str()).ok_or_else(|| {
            bad_request(format!(
                "the fake serves no kind {kind:?} in apiVersion {}",
                v["apiVersion"]
            ))
        })?;
        if res.is_gateway_api() && self.without_gateway_api {
            return Err(status(
                404,
                "NotFound",
                format!("{kind}: the Gateway API is not installed (install_gateway_api)"),
                json!({ "kind": res.plural, "group": res.group }),
            ));
        }
        let ns = v["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(meta) = v["metadata"].as_object_mut() {
            // No preconditions: the test's write always lands.
            meta.remove("resourceVersion");
            meta.remove("uid");
        }
        if self.get_obj(res, &ns, &name).is_ok() {
            self.replace_part(res, &ns, &name, v, Part::Whole)
        } else {
            self.create_part(res, &ns, v, Part::Whole)
        }
    }

    /// What deleting the CRDs does: the group leaves discovery, its objects go (watchers
    /// see them deleted).
    pub(super) fn uninstall_gateway_api(&mut self) {
        for res in ALL
            .into_iter()
            .filter(|r| r.is_gateway_api() && r.version == r.storage_version)
        {
            let gone: Vec<(String, String)> = self
                .list_obj(res, None)
                .into_iter()
                .map(|v| {
                    let m = &v["metadata"];
                    let s = |f: &str| m[f].as_str().unwrap_or_default().to_owned();
                    (s("namespace"), s("name"))
                })
                .collect();
            for (ns, name) in gone {
                let _ = self.delete_obj(res, &ns, &name, &Value::Null);
            }
        }
        self.without_gateway_api = true;
    }

    /// A gateway controller's verdict: every `parentRef` Accepted and ResolvedRefs, in a
    /// status write of its own.
    pub(super) fn accept_route(&mut self, ns: &str, name: &str) -> Result<Value, ApiError> {
        let route = self.get_obj(HTTP_ROUTES, ns, name)?;
        let generation = route["metadata"]["generation"].clone();
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let condition = |kind: &str| {
            json!({
                "type": kind,
                "status": "True",
                "reason": kind,
                "message": "",
                "observedGeneration": generation,
                "lastTransitionTime": now,
            })
        };
        let parents: Vec<Value> = route["spec"]["parentRefs"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|parent| {
                json!({
                    "parentRef": parent,
                    "controllerName": FAKE_GATEWAY_CONTROLLER,
                    "conditions": [condition("Accepted"), condition("ResolvedRefs")],
                })
            })
            .collect();
        let status = json!({ "status": { "parents": parents } });
        self.replace_part(HTTP_ROUTES, ns, name, status, Part::Status)
    }

    fn kind_of(kind: &str) -> super::resources::Resource {
        of_kind(kind, None).unwrap_or_else(|| panic!("the fake serves no kind {kind:?}"))
    }
}

impl super::FakeApiServer {
    /// Serves the Gateway API again (group `gateway.networking.k8s.io`, `v1` and, for
    /// ReferenceGrants, `v1beta1`), as installing its CRDs does. Installed by default.
    pub fn install_gateway_api(&self) {
        self.shared.lock().objects.without_gateway_api = false;
    }

    /// As deleting the Gateway API's CRDs does: the group leaves discovery, its paths
    /// answer 404 and its objects are deleted (watchers see DELETED).
    pub fn uninstall_gateway_api(&self) {
        self.shared.lock().objects.uninstall_gateway_api();
    }

    /// Creates or replaces any object the generic store serves (`kind` and `apiVersion`
    /// pick the resource; `metadata.namespace`, default `default`), `status` included and
    /// without preconditions, as the controller owning it writes. Watchers see the write.
    /// Returns the stored object.
    ///
    /// # Panics
    /// On a kind the fake does not serve, a Gateway API kind while it is uninstalled, or
    /// an object the API would refuse (the test is wrong then).
    pub fn put_object(&self, object: Value) -> Value {
        self.shared
            .lock()
            .objects
            .put_whole(object)
            .unwrap_or_else(|e| panic!("fake API server: putting an object: {}", e.body))
    }

    /// [`Self::put_object`] for many objects under one lock (100,000 HTTPRoutes in a few
    /// seconds); returns how many were written.
    ///
    /// # Panics
    /// As [`Self::put_object`].
    pub fn put_objects(&self, objects: impl IntoIterator<Item = Value>) -> usize {
        let mut st = self.shared.lock();
        objects
            .into_iter()
            .map(|o| {
                st.objects
                    .put_whole(o)
                    .unwrap_or_else(|e| panic!("fake API server: putting an object: {}", e.body))
            })
            .count()
    }

    /// The stored object of `kind` (`"HTTPRoute"`, `"Ingress"`, ...), if it exists.
    ///
    /// # Panics
    /// On a kind the fake does not serve.
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = Objects::kind_of(kind);
        let st = self.shared.lock();
        st.objects.get_obj(res, namespace, name).ok().cloned()
    }

    /// The stored objects of `kind` in `namespace` (all with `None`), by namespace and name.
    ///
    /// # Panics
    /// On a kind the fake does not serve.
    pub fn objects(&self, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let res = Objects::kind_of(kind);
        let st = self.shared.lock();
        st.objects
            .list_obj(res, namespace)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Deletes an object of `kind`; false when it did not exist.
    ///
    /// # Panics
    /// On a kind the fake does not serve.
    pub fn delete_object(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let res = Objects::kind_of(kind);
        let mut st = self.shared.lock();
        st.objects
            .delete_obj(res, namespace, name, &Value::Null)
            .is_ok()
    }

    /// Sets the HTTPRoute's `status.parents`: each `spec.parentRefs` entry Accepted and
    /// ResolvedRefs (`True`, this generation) by [`FAKE_GATEWAY_CONTROLLER`], as a gateway
    /// controller does. Returns the new `resourceVersion`, `None` when the route is absent.
    pub fn accept_http_route(&self, namespace: &str, name: &str) -> Option<String> {
        let mut st = self.shared.lock();
        let route = st.objects.accept_route(namespace, name).ok()?;
        route["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_owned)
    }
}
