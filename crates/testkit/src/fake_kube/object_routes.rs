//! Requests for the generic store's objects: list and watch (one namespace or all,
//! `labelSelector`, `fieldSelector`), create, get, replace, patch, delete, and the `status`
//! subresource (get, replace, patch).

use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::errors::{self, ApiError};
use super::resources::{Part, Resource};
use super::routes::{
    apply_patch, error_response, json_response, list_response, method_not_allowed, ok, parse_json,
    path_not_found, wants_table,
};
use super::selector::{Fields, Labels};
use super::server::Body;
use super::{RecordedRequest, Shared, table, watch};

/// The request's label and field selectors as one filter.
fn selectors(req: &RecordedRequest) -> Result<impl Fn(&Value) -> bool + use<>, ApiError> {
    let param = |name| watch::decode(&req.query_param(name).unwrap_or_default());
    let labels = Labels::parse(&param("labelSelector")).map_err(errors::bad_request)?;
    let fields = Fields::parse(&param("fieldSelector")).map_err(errors::bad_request)?;
    Ok(move |v: &Value| labels.matches(v) && fields.matches(v))
}

pub(super) fn route(
    shared: &Shared,
    method: &Method,
    res: Option<Resource>,
    ns: Option<&str>,
    name: Option<&str>,
    req: &RecordedRequest,
    body: &[u8],
) -> Response<Body> {
    let Some(res) = res else {
        return path_not_found();
    };
    match (method.clone(), ns, name) {
        (Method::GET, _, None) => match selectors(req) {
            Err(e) => error_response(&e),
            Ok(selected) if watch::is_watch(req) => {
                let target = watch::Target {
                    resource: res.plural,
                    kind: res.kind,
                    api_version: res.api_version(),
                    namespace: ns.map(str::to_owned),
                };
                watch::watch(shared, target, req, selected, |o| o.list_obj(res, ns))
            }
            Ok(selected) => list(shared, res, ns, req, selected),
        },
        (Method::POST, Some(ns), None) => {
            match parse_json(body).and_then(|v| shared.lock().objects.create_obj(res, ns, v)) {
                Ok(v) => json_response(StatusCode::CREATED, &present(res, v)),
                Err(e) => error_response(&e),
            }
        }
        (Method::GET, Some(ns), Some(name)) => {
            let st = shared.lock();
            match st.objects.get_obj(res, ns, name) {
                Ok(v) if wants_table(req) => json_response(
                    StatusCode::OK,
                    &table::object_table(res, &[v], &st.objects.revision()),
                ),
                Ok(v) => json_response(StatusCode::OK, &present(res, v.clone())),
                Err(e) => error_response(&e),
            }
        }
        (Method::PUT, Some(ns), Some(name)) => answer(
            res,
            parse_json(body).and_then(|v| shared.lock().objects.replace_obj(res, ns, name, v)),
        ),
        (Method::PATCH, Some(ns), Some(name)) => {
            answer(res, patch(shared, res, ns, name, req, body, Part::Object))
        }
        (Method::DELETE, Some(ns), Some(name)) => {
            let options = if body.is_empty() {
                Ok(Value::Null)
            } else {
                parse_json(body)
            };
            ok(options.and_then(|o| shared.lock().objects.delete_obj(res, ns, name, &o)))
        }
        _ => method_not_allowed(method),
    }
}

/// `.../{name}/status` of a resource with a status subresource (`None`: 404).
pub(super) fn status_route(
    shared: &Shared,
    method: &Method,
    res: Option<Resource>,
    ns: &str,
    name: &str,
    req: &RecordedRequest,
    body: &[u8],
) -> Response<Body> {
    let Some(res) = res else {
        return path_not_found();
    };
    match *method {
        Method::GET => answer(res, shared.lock().objects.get_obj(res, ns, name).cloned()),
        Method::PUT => answer(
            res,
            parse_json(body).and_then(|v| {
                let mut st = shared.lock();
                st.objects.replace_part(res, ns, name, v, Part::Status)
            }),
        ),
        Method::PATCH => answer(res, patch(shared, res, ns, name, req, body, Part::Status)),
        _ => method_not_allowed(method),
    }
}

/// The object in the version the request named (a resource served in two versions is
/// stored in one).
fn present(res: Resource, mut v: Value) -> Value {
    v["apiVersion"] = json!(res.api_version());
    v
}

fn answer(res: Resource, result: Result<Value, ApiError>) -> Response<Body> {
    ok(result.map(|v| present(res, v)))
}

/// Applied to the current object under the lock, then written like a PUT (of `part`): a
/// `resourceVersion` in the patch is a precondition.
fn patch(
    shared: &Shared,
    res: Resource,
    ns: &str,
    name: &str,
    req: &RecordedRequest,
    body: &[u8],
    part: Part,
) -> Result<Value, ApiError> {
    let mut st = shared.lock();
    let mut v = st.objects.get_obj(res, ns, name)?.clone();
    let details = json!({ "name": name, "group": res.group, "kind": res.plural });
    apply_patch(&mut v, req.content_type.as_deref(), body, details)?;
    st.objects.replace_part(res, ns, name, v, part)
}

fn list(
    shared: &Shared,
    res: Resource,
    ns: Option<&str>,
    req: &RecordedRequest,
    selected: impl Fn(&Value) -> bool,
) -> Response<Body> {
    let st = shared.lock();
    // Pages as the apiserver serves them (`limit`, then `continue`): the token names the
    // next page's first object as `namespace/name` (objects are kept in that order).
    let from = req.query_param("continue").map(|t| {
        let t = watch::decode(&t);
        let (ns, name) = t.split_once('/').unwrap_or_default();
        (ns.to_owned(), name.to_owned())
    });
    let mut items: Vec<&Value> = st
        .objects
        .list_obj(res, ns)
        .into_iter()
        .filter(|v| {
            from.as_ref()
                .is_none_or(|(n, m)| key(v) >= (n.as_str(), m.as_str()))
                && selected(v)
        })
        .collect();
    let limit = req
        .query_param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let next = limit.filter(|l| items.len() > *l).map(|l| {
        let (ns, name) = key(items[l]);
        items.truncate(l);
        format!("{ns}/{name}")
    });
    let rv = st.objects.revision();
    if wants_table(req) {
        return json_response(StatusCode::OK, &table::object_table(res, &items, &rv));
    }
    let kind = format!("{}List", res.kind);
    list_response(&kind, &res.api_version(), &rv, next.as_deref(), &items)
}

/// An object's place in list order: (namespace, name).
fn key(v: &Value) -> (&str, &str) {
    let m = &v["metadata"];
    let f = |k: &str| m[k].as_str().unwrap_or_default();
    (f("namespace"), f("name"))
}
