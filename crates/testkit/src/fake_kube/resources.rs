//! Services, EndpointSlices, Pods, Ingresses and the Gateway API's kinds: one generic store
//! with the apiserver's semantics for create, get, list, replace (a stale `resourceVersion`
//! is 409), the `status` subresource, delete with `uid` and `resourceVersion`
//! preconditions, and the validation the fake needs (422 `Invalid`).

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::errors::{
    ApiError, already_exists_in, bad_request, conflict_in, invalid, not_found_in, status,
};
use super::state::Objects;

mod kinds; // which resources, in which group and version

pub(super) use kinds::{
    ALL, ENDPOINT_SLICES, GATEWAY_GROUP, GATEWAYS, HTTP_ROUTES, INGRESSES, PODS, Resource,
    SERVICES, find, of_kind,
};

impl Resource {
    fn not_found(self, name: &str) -> ApiError {
        not_found_in(self.plural, self.group, name)
    }

    fn conflict(self, name: &str, why: &str) -> ApiError {
        conflict_in(self.plural, self.group, name, why)
    }

    fn invalid(self, name: &str, field: &str, detail: &str) -> ApiError {
        invalid(self.kind, self.group, name, field, detail)
    }
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// A write to the object: with a status subresource, `status` stays as it was.
    Object,
    /// A write to `.../status`: only `status` changes.
    Status,
    /// A test's direct write (a controller owning both): everything.
    Whole,
}

/// The object without what does not move `metadata.generation`.
fn spec_of(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        for field in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(field);
        }
    }
    v
}

const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

fn key(res: Resource, ns: &str, name: &str) -> (&'static str, String, String) {
    (res.plural, ns.to_owned(), name.to_owned())
}

fn rv_of(v: &Value) -> Option<&str> {
    v["metadata"]["resourceVersion"]
        .as_str()
        .filter(|r| !r.is_empty())
}

/// The fields the apiserver requires of a new or replaced object.
fn validate(res: Resource, name: &str, v: &Value) -> Result<(), ApiError> {
    if res == ENDPOINT_SLICES {
        match v["addressType"].as_str() {
            None => return Err(res.invalid(name, "addressType", "Required value")),
            Some("IPv4" | "IPv6" | "FQDN") => {}
            Some(other) => {
                return Err(res.invalid(
                    name,
                    "addressType",
                    &format!("Unsupported value: {other:?}: supported values: \"FQDN\", \"IPv4\", \"IPv6\""),
                ));
            }
        }
        let endpoints = v["endpoints"].as_array().map_or(&[][..], Vec::as_slice);
        for (i, e) in endpoints.iter().enumerate() {
            if e["addresses"].as_array().is_none_or(Vec::is_empty) {
                let field = format!("endpoints[{i}].addresses");
                return Err(res.invalid(
                    name,
                    &field,
                    "Required value: must contain at least 1 address",
                ));
            }
        }
    }
    Ok(())
}

impl Objects {
    pub(super) fn next_uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uids)
    }

    /// A `v1` Namespace: the built-in ones and every namespace an object was created in.
    pub fn namespace(&self, name: &str) -> Result<Value, ApiError> {
        const BUILT_IN: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];
        if !BUILT_IN.contains(&name) && !self.namespaces.contains(name) {
            return Err(status(
                404,
                "NotFound",
                format!("namespaces \"{name}\" not found"),
                json!({ "name": name, "kind": "namespaces" }),
            ));
        }
        Ok(json!({
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": { "name": name, "labels": { "kubernetes.io/metadata.name": name } },
            "spec": { "finalizers": ["kubernetes"] },
            "status": { "phase": "Active" },
        }))
    }

    /// `POST`: validates, fills server-set metadata (a `generateName` gets a suffix), stores;
    /// with a status subresource the body's `status` is dropped, as the apiserver does.
    pub fn create_obj(&mut self, res: Resource, ns: &str, v: Value) -> Result<Value, ApiError> {
        self.create_part(res, ns, v, Part::Object)
    }

    pub(super) fn create_part(
        &mut self,
        res: Resource,
        ns: &str,
        mut v: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        if !v.is_object() {
            return Err(bad_request(format!(
                "the body of the request must be a {}",
                res.kind
            )));
        }
        if let Some(kind) = v["kind"].as_str()
            && kind != res.kind
        {
            return Err(bad_request(format!(
                "the kind {kind:?} does not match {}",
                res.kind
            )));
        }
        if v["metadata"]["namespace"].as_str().is_some_and(|n| n != ns) {
            return Err(bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let uid = self.next_uid();
        let name = match (
            v["metadata"]["name"].as_str(),
            v["metadata"]["generateName"].as_str(),
        ) {
            (Some(n), _) if !n.is_empty() => n.to_owned(),
            (_, Some(prefix)) => format!("{prefix}{}", &uid[uid.len() - 5..]),
            _ => {
                return Err(res.invalid(
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
        };
        if self.others.contains_key(&key(res, ns, &name)) {
            return Err(already_exists_in(res.plural, res.group, &name));
        }
        validate(res, &name, &v)?;
        if res == SERVICES {
            let spec = &mut v["spec"];
            if spec["type"].is_null() {
                spec["type"] = json!("ClusterIP");
            }
            if spec["clusterIP"].is_null() && spec["type"] != "ExternalName" {
                let ip = format!("10.96.{}.{}", (self.uids >> 8) & 0xff, self.uids & 0xff);
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            }
        }
        if res.status_subresource {
            if part != Part::Whole
                && let Some(m) = v.as_object_mut()
            {
                m.remove("status");
            }
            v["metadata"]["generation"] = json!(1);
        }
        let rv = self.next_revision();
        v["apiVersion"] = json!(res.storage_api_version());
        v["kind"] = json!(res.kind);
        let meta = &mut v["metadata"];
        meta["name"] = json!(name);
        meta["namespace"] = json!(ns);
        meta["uid"] = json!(uid);
        meta["resourceVersion"] = json!(rv);
        meta["creationTimestamp"] = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));
        self.namespaces.insert(ns.to_owned());
        self.others.insert(key(res, ns, &name), v.clone());
        self.emit_as(res.plural, "ADDED", &v);
        self.after_write(res, ns);
        Ok(v)
    }

    pub fn get_obj(&self, res: Resource, ns: &str, name: &str) -> Result<&Value, ApiError> {
        self.others
            .get(&key(res, ns, name))
            .ok_or_else(|| res.not_found(name))
    }

    /// Objects of one resource in one namespace (or all with `None`), in namespace and name
    /// order; a range of the map, so other resources' objects cost nothing.
    pub fn list_obj(&self, res: Resource, ns: Option<&str>) -> Vec<&Value> {
        let from = (res.plural, ns.unwrap_or_default().to_owned(), String::new());
        self.others
            .range(from..)
            .take_while(|((r, n, _), _)| *r == res.plural && ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
            .collect()
    }

    /// `PUT`: the body's `resourceVersion`, when set, must be the current one (409
    /// otherwise); a write that changes nothing keeps the `resourceVersion`.
    pub fn replace_obj(
        &mut self,
        res: Resource,
        ns: &str,
        name: &str,
        v: Value,
    ) -> Result<Value, ApiError> {
        self.replace_part(res, ns, name, v, Part::Object)
    }

    /// A `PUT` of `part` of the object (see [`Part`]), with the preconditions of a `PUT`.
    pub(super) fn replace_part(
        &mut self,
        res: Resource,
        ns: &str,
        name: &str,
        mut v: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let current = self.get_obj(res, ns, name)?.clone();
        if !v.is_object() {
            return Err(bad_request(format!(
                "the body of the request must be a {}",
                res.kind
            )));
        }
        if v["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                v["metadata"]["name"].as_str().unwrap_or_default()
            )));
        }
        if rv_of(&v).is_some_and(|rv| Some(rv) != rv_of(&current)) {
            return Err(res.conflict(name, MODIFIED));
        }
        let (want, have) = (
            v["metadata"]["uid"].as_str(),
            current["metadata"]["uid"].as_str(),
        );
        if let (Some(want), Some(have)) = (want, have)
            && want != have
        {
            let why = format!(
                "Precondition failed: UID in precondition: {want}, UID in object meta: {have}"
            );
            return Err(res.conflict(name, &why));
        }
        match part {
            Part::Status => {
                let status = v["status"].take();
                v = current.clone();
                v["status"] = status;
            }
            Part::Object if res.status_subresource => v["status"] = current["status"].clone(),
            Part::Object | Part::Whole => {}
        }
        if v["status"].is_null()
            && let Some(m) = v.as_object_mut()
        {
            m.remove("status");
        }
        validate(res, name, &v)?;
        v["apiVersion"] = json!(res.storage_api_version());
        v["kind"] = json!(res.kind);
        if res.status_subresource {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            let moved = i64::from(spec_of(&v) != spec_of(&current));
            v["metadata"]["generation"] = json!(generation + moved);
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
        ] {
            v["metadata"][field] = current["metadata"][field].clone();
        }
        if v == current {
            return Ok(current);
        }
        v["metadata"]["resourceVersion"] = json!(self.next_revision());
        self.others.insert(key(res, ns, name), v.clone());
        self.emit_as(res.plural, "MODIFIED", &v);
        self.after_write(res, ns);
        Ok(v)
    }

    /// `DELETE` with the `preconditions` of a `DeleteOptions` body (`uid`,
    /// `resourceVersion`): a mismatch is 409 and deletes nothing.
    pub fn delete_obj(
        &mut self,
        res: Resource,
        ns: &str,
        name: &str,
        options: &Value,
    ) -> Result<Value, ApiError> {
        let current = self.get_obj(res, ns, name)?;
        let pre = &options["preconditions"];
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let (Some(want), have) = (
                pre[field].as_str(),
                current["metadata"][field].as_str().unwrap_or_default(),
            ) && want != have
            {
                return Err(res.conflict(
                    name,
                    &format!("Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"),
                ));
            }
        }
        let mut gone = self.others.remove(&key(res, ns, name)).unwrap_or_default();
        gone["metadata"]["resourceVersion"] = json!(self.next_revision());
        self.emit_as(res.plural, "DELETED", &gone);
        // The garbage collector: what the object owned goes with it.
        if let Some(uid) = gone["metadata"]["uid"].as_str() {
            self.delete_owned(ns, uid);
        }
        self.after_write(res, ns);
        Ok(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": { "name": name, "group": res.group, "kind": res.plural, "uid": gone["metadata"]["uid"] },
        }))
    }

    /// A Service change re-derives the controller's slices of the namespace's apps.
    fn after_write(&mut self, res: Resource, ns: &str) {
        if res == SERVICES {
            self.sync_namespace(ns);
        }
    }
}

#[cfg(test)]
mod tests;
