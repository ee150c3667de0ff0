//! The fake's objects and their API semantics: Deployments as JSON, the `autoscaling/v1`
//! Scale view of them and `resourceVersion` preconditions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::errors::{ApiError, already_exists, bad_request, conflict, invalid, not_found};

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn replicas_of(d: &Value) -> i64 {
    d["spec"]["replicas"].as_i64().unwrap_or(0)
}

/// `matchLabels` as the label selector string a Scale's status carries.
pub(super) fn selector_string(d: &Value) -> String {
    d["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The fake pretends the Deployment controller converges at once, so `status` follows
/// `spec` in the same write (one `resourceVersion`), zero counts omitted as the API does.
/// With `ready` false the pods exist but are not ready yet (a start delay is simulated).
fn sync_status(d: &mut Value, ready: bool) {
    let n = replicas_of(d);
    let mut status = json!({ "observedGeneration": d["metadata"]["generation"].clone() });
    if n > 0 {
        status["replicas"] = json!(n);
        status["updatedReplicas"] = json!(n);
        if ready {
            status["readyReplicas"] = json!(n);
            status["availableReplicas"] = json!(n);
        }
    }
    d["status"] = status;
}

/// A watch event as the fake broadcasts it: resource (plural), namespace, name, type, object.
pub(super) type Event = (&'static str, String, String, &'static str, Value);

/// A spec write whose pods start (or stop) outside the write: namespace, name, the
/// generation written (a later spec write makes a pending readiness moot) and whether
/// replicas went above 0.
pub(super) type PendingReady = (String, String, i64, bool);

/// The fake cluster's objects.
#[derive(Debug, Default)]
pub(super) struct Objects {
    deployments: BTreeMap<(String, String), Value>,
    /// Services, EndpointSlices and Pods by resource (plural), namespace and name.
    pub(super) others: BTreeMap<(&'static str, String, String), Value>,
    /// Where each Deployment's simulated pod serves (`set_app_endpoint`).
    pub(super) app_endpoints: BTreeMap<(String, String), std::net::SocketAddr>,
    /// Namespaces that ever held an object (beyond the built-in ones): kubectl asks for
    /// the namespace after a 404 to tell "no such object" from "no such namespace".
    pub(super) namespaces: BTreeSet<String>,
    /// Like etcd's revision: one counter for the whole store, bumped by every effective write.
    pub(super) revision: u64,
    pub(super) uids: u64,
    /// The Gateway API's CRDs are not installed: its group is absent from discovery and
    /// its paths are 404 (`FakeApiServer::uninstall_gateway_api`).
    pub(super) without_gateway_api: bool,
    /// Where watch events go (none before the server starts).
    pub events: Option<tokio::sync::broadcast::Sender<Event>>,
    /// How long new pods take to become ready after a scale-up (zero: at once).
    pub ready_delay: std::time::Duration,
    /// Readiness the server must set after `ready_delay`.
    pub pending_ready: Vec<PendingReady>,
}

impl Objects {
    pub(super) fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// The list `resourceVersion`.
    pub fn revision(&self) -> String {
        self.revision.to_string()
    }

    pub(super) fn emit_as(&self, resource: &'static str, kind: &'static str, v: &Value) {
        // Cloning the object for nobody would cost a test writing 100,000 of them.
        if let Some(tx) = self.events.as_ref().filter(|tx| tx.receiver_count() > 0) {
            let ns = v["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = v["metadata"]["name"].as_str().unwrap_or_default();
            // No receiver is fine: nobody watches.
            let _ = tx.send((resource, ns.to_owned(), name.to_owned(), kind, v.clone()));
        }
    }

    /// Every Deployment change also moves its simulated pod and endpoints.
    fn emit(&mut self, kind: &'static str, d: &Value) {
        self.emit_as("deployments", kind, d);
        let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        self.sync_app(ns, name);
    }

    /// Whether the Deployment is still at `generation` with replicas above 0.
    pub fn is_current(&self, ns: &str, name: &str, generation: i64) -> bool {
        self.deployments.get(&Self::key(ns, name)).is_some_and(|d| {
            d["metadata"]["generation"].as_i64() == Some(generation) && replicas_of(d) > 0
        })
    }

    /// The pods of generation `generation` became ready: a status write of its own
    /// (new `resourceVersion`, same generation), unless the spec moved on meanwhile.
    /// True when they are ready now.
    pub fn mark_ready(&mut self, ns: &str, name: &str, generation: i64) -> bool {
        let rv = self.revision + 1;
        let Some(d) = self.deployments.get_mut(&Self::key(ns, name)) else {
            return false;
        };
        if d["metadata"]["generation"].as_i64() != Some(generation) || replicas_of(d) == 0 {
            return false;
        }
        if d["status"]["readyReplicas"].as_i64().unwrap_or(0) > 0 {
            return true;
        }
        self.revision = rv;
        d["metadata"]["resourceVersion"] = json!(rv.to_string());
        sync_status(d, true);
        let d = d.clone();
        self.emit("MODIFIED", &d);
        true
    }

    fn key(ns: &str, name: &str) -> (String, String) {
        (ns.to_owned(), name.to_owned())
    }

    /// A Deployment in the shape `kubectl create deployment` produces.
    pub fn template(ns: &str, name: &str, replicas: i32) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": name, "namespace": ns, "labels": { "app": name } },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app": name } },
                "template": {
                    "metadata": { "labels": { "app": name } },
                    "spec": { "containers": [{ "name": "app", "image": "registry.invalid/app:1" }] },
                },
            },
        })
    }

    /// `POST .../deployments`: validates, fills server-set metadata, stores.
    pub fn create(&mut self, ns: &str, mut d: Value) -> Result<Value, ApiError> {
        if !d.is_object() {
            return Err(bad_request(
                "the body of the request must be a Deployment object",
            ));
        }
        if let Some(kind) = d["kind"].as_str()
            && kind != "Deployment"
        {
            return Err(bad_request(format!(
                "the kind {kind:?} does not match Deployment"
            )));
        }
        let Some(name) = d["metadata"]["name"].as_str().map(str::to_owned) else {
            return Err(invalid(
                "Deployment",
                "apps",
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        };
        match d["metadata"]["namespace"].as_str() {
            Some(body_ns) if body_ns != ns => {
                return Err(bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
        if self.deployments.contains_key(&Self::key(ns, &name)) {
            return Err(already_exists(&name));
        }
        if !d["spec"]["selector"].is_object() {
            return Err(invalid(
                "Deployment",
                "apps",
                &name,
                "spec.selector",
                "Required value",
            ));
        }
        if d["spec"]["replicas"].is_null() {
            d["spec"]["replicas"] = json!(1);
        }
        if replicas_of(&d) < 0 {
            return Err(invalid(
                "Deployment",
                "apps",
                &name,
                "spec.replicas",
                &format!(
                    "Invalid value: {}: must be greater than or equal to 0",
                    replicas_of(&d)
                ),
            ));
        }
        let uid = self.next_uid();
        let rv = self.next_revision();
        d["apiVersion"] = json!("apps/v1");
        d["kind"] = json!("Deployment");
        let meta = &mut d["metadata"];
        meta["namespace"] = json!(ns);
        meta["uid"] = json!(uid);
        meta["resourceVersion"] = json!(rv);
        meta["generation"] = json!(1);
        meta["creationTimestamp"] = json!(timestamp(Utc::now()));
        sync_status(&mut d, true);
        self.namespaces.insert(ns.to_owned());
        self.deployments.insert(Self::key(ns, &name), d.clone());
        self.emit("ADDED", &d);
        Ok(d)
    }

    pub fn get(&self, ns: &str, name: &str) -> Result<&Value, ApiError> {
        self.deployments
            .get(&Self::key(ns, name))
            .ok_or_else(|| not_found(name))
    }

    /// Deployments of one namespace, or of all with `None`, in name order.
    pub fn list(&self, ns: Option<&str>) -> Vec<&Value> {
        self.deployments
            .iter()
            .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, d)| d)
            .collect()
    }

    /// `DELETE`: gone at once (no finalizers, no cascading).
    pub fn delete(&mut self, ns: &str, name: &str) -> Result<Value, ApiError> {
        let d = self
            .deployments
            .remove(&Self::key(ns, name))
            .ok_or_else(|| not_found(name))?;
        // A delete is a write: the store's revision moves on.
        let rv = self.next_revision();
        let mut gone = d.clone();
        gone["metadata"]["resourceVersion"] = json!(rv);
        self.emit("DELETED", &gone);
        Ok(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": { "name": name, "group": "apps", "kind": "deployments", "uid": d["metadata"]["uid"] },
        }))
    }

    /// The `autoscaling/v1` Scale of a Deployment.
    pub fn scale(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        let d = self.get(ns, name)?;
        let m = &d["metadata"];
        let mut spec = json!({});
        // `spec.replicas` is omitempty in the Go type: a Deployment at 0 has `spec: {}`.
        if replicas_of(d) != 0 {
            spec["replicas"] = json!(replicas_of(d));
        }
        Ok(json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": m["name"],
                "namespace": m["namespace"],
                "uid": m["uid"],
                "resourceVersion": m["resourceVersion"],
                "creationTimestamp": m["creationTimestamp"],
            },
            "spec": spec,
            "status": {
                "replicas": d["status"]["replicas"].as_i64().unwrap_or(0),
                "selector": selector_string(d),
            },
        }))
    }

    /// `PUT .../scale` (and every patch once applied): the new Scale's `resourceVersion`, when
    /// set, is a precondition; a write that changes nothing keeps the `resourceVersion`.
    pub fn write_scale(&mut self, ns: &str, name: &str, new: &Value) -> Result<Value, ApiError> {
        let current = self.get(ns, name)?;
        if let Some(kind) = new["kind"].as_str()
            && kind != "Scale"
        {
            return Err(bad_request(format!(
                "the kind {kind:?} of the body is not Scale"
            )));
        }
        if let Some(body_name) = new["metadata"]["name"].as_str()
            && body_name != name
        {
            return Err(bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let replicas = match &new["spec"]["replicas"] {
            Value::Null => 0,
            v => v
                .as_i64()
                .filter(|r| i32::try_from(*r).is_ok())
                .ok_or_else(|| {
                    bad_request(format!("unable to decode spec.replicas {v}: not an int32"))
                })?,
        };
        if replicas < 0 {
            return Err(invalid(
                "Scale",
                "autoscaling",
                name,
                "spec.replicas",
                &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            ));
        }
        match new["metadata"]["resourceVersion"].as_str() {
            Some(rv)
                if !rv.is_empty()
                    && Some(rv) != current["metadata"]["resourceVersion"].as_str() =>
            {
                return Err(conflict(name));
            }
            _ => {}
        }
        if replicas == replicas_of(current) {
            return self.scale(ns, name);
        }
        self.set_replicas_unchecked(ns, name, replicas);
        self.scale(ns, name)
    }

    /// An effective spec write: new `resourceVersion`, next `generation`, status converged.
    fn set_replicas_unchecked(&mut self, ns: &str, name: &str, replicas: i64) -> Option<String> {
        let rv = self.next_revision();
        let delayed = !self.ready_delay.is_zero() && replicas > 0;
        let d = self.deployments.get_mut(&Self::key(ns, name))?;
        d["spec"]["replicas"] = json!(replicas);
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        d["metadata"]["generation"] = json!(generation);
        d["metadata"]["resourceVersion"] = json!(rv.clone());
        sync_status(d, !delayed);
        let d = d.clone();
        self.emit("MODIFIED", &d);
        self.pending_ready
            .push((ns.to_owned(), name.to_owned(), generation, replicas > 0));
        Some(rv)
    }

    /// Creates, or sets the replicas of an existing Deployment (a person's `kubectl scale`).
    pub fn upsert(&mut self, ns: &str, name: &str, replicas: i32) -> String {
        if self.deployments.contains_key(&Self::key(ns, name)) {
            self.scale_externally(ns, name, replicas)
                .unwrap_or_default()
        } else {
            let d = self
                .create(ns, Self::template(ns, name, replicas))
                .unwrap_or_else(|e| {
                    panic!("fake API server: creating {ns}/{name} failed: {}", e.body)
                });
            d["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    }

    /// Sets replicas without precondition; a no-op keeps the `resourceVersion`.
    pub fn scale_externally(&mut self, ns: &str, name: &str, replicas: i32) -> Option<String> {
        let d = self.deployments.get(&Self::key(ns, name))?;
        if replicas_of(d) == i64::from(replicas) {
            return d["metadata"]["resourceVersion"].as_str().map(str::to_owned);
        }
        self.set_replicas_unchecked(ns, name, i64::from(replicas))
    }

    /// A redeploy: the pod template changes (an annotation), replicas stay.
    pub fn redeploy(&mut self, ns: &str, name: &str) -> Option<String> {
        let rv = self.next_revision();
        let d = self.deployments.get_mut(&Self::key(ns, name))?;
        d["spec"]["template"]["metadata"]["annotations"]["idle-scaler.test/restartedAt"] =
            json!(timestamp(Utc::now()));
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        d["metadata"]["generation"] = json!(generation);
        d["metadata"]["resourceVersion"] = json!(rv.clone());
        sync_status(d, true);
        let d = d.clone();
        self.emit("MODIFIED", &d);
        Some(rv)
    }

    pub fn replicas(&self, ns: &str, name: &str) -> Option<i32> {
        self.deployments
            .get(&Self::key(ns, name))
            .and_then(|d| i32::try_from(replicas_of(d)).ok())
    }

    pub fn resource_version(&self, ns: &str, name: &str) -> Option<String> {
        self.deployments
            .get(&Self::key(ns, name))
            .and_then(|d| d["metadata"]["resourceVersion"].as_str().map(str::to_owned))
    }
}

#[cfg(test)]
mod tests;
