//! The API's paths: which request reads or writes which object, and how the answer is
//! encoded (JSON, a `Table` for kubectl, a `Status` on error).

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use super::errors::{self, ApiError};
use super::resources::{self, Resource};
use super::server::Body;
use super::{RecordedRequest, Shared, discovery, object_routes, patch, table, watch};

pub(super) fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *res.status_mut() = code;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

pub(super) fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.body,
    )
}

pub(super) fn ok(result: Result<Value, ApiError>) -> Response<Body> {
    match result {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

pub(super) fn path_not_found() -> Response<Body> {
    error_response(&errors::status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        serde_json::json!({}),
    ))
}

pub(super) fn method_not_allowed(method: &Method) -> Response<Body> {
    error_response(&errors::status(
        405,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({method})"),
        serde_json::json!({}),
    ))
}

pub(super) fn wants_table(req: &RecordedRequest) -> bool {
    req.accept
        .as_deref()
        .is_some_and(|a| a.contains("as=Table"))
}

pub(super) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| errors::bad_request(format!("the body of the request is not valid JSON: {e}")))
}

pub(super) fn route(
    shared: &Shared,
    method: &Method,
    req: &RecordedRequest,
    body: &[u8],
) -> Response<Body> {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let get = method == Method::GET;
    match segments.as_slice() {
        ["version"] if get => json_response(StatusCode::OK, &discovery::version()),
        ["api"] if get => json_response(StatusCode::OK, &discovery::core_versions(&shared.address)),
        ["api", "v1"] if get => json_response(StatusCode::OK, &discovery::core_v1()),
        ["api", "v1", "namespaces", ns] if get => ok(shared.lock().objects.namespace(ns)),
        ["apis"] if get => {
            let installed = !shared.lock().objects.without_gateway_api;
            json_response(StatusCode::OK, &discovery::groups(installed))
        }
        ["apis", group] if get => {
            let installed = !shared.lock().objects.without_gateway_api;
            discovery::group_doc(group, installed)
                .map_or_else(path_not_found, |g| json_response(StatusCode::OK, &g))
        }
        ["apis", "apps", "v1", "deployments"] if get => list(shared, None, req),
        ["apis", "apps", "v1", "namespaces", ns, "deployments"] => match *method {
            Method::GET if watch::is_watch(req) => watch_deployments(shared, ns, req),
            Method::GET => list(shared, Some(ns), req),
            Method::POST => {
                let result = parse_json(body).and_then(|d| shared.lock().objects.create(ns, d));
                match result {
                    Ok(d) => json_response(StatusCode::CREATED, &d),
                    Err(e) => error_response(&e),
                }
            }
            _ => method_not_allowed(method),
        },
        ["apis", "apps", "v1", "namespaces", ns, "deployments", name] => match *method {
            Method::GET => {
                let st = shared.lock();
                match st.objects.get(ns, name) {
                    Ok(d) if wants_table(req) => json_response(
                        StatusCode::OK,
                        &table::deployment_table(&[d], &st.objects.revision()),
                    ),
                    Ok(d) => json_response(StatusCode::OK, d),
                    Err(e) => error_response(&e),
                }
            }
            Method::DELETE => ok(shared.lock().objects.delete(ns, name)),
            _ => method_not_allowed(method),
        },
        [
            "apis",
            "apps",
            "v1",
            "namespaces",
            ns,
            "deployments",
            name,
            "scale",
        ] => match *method {
            Method::GET => ok(shared.lock().objects.scale(ns, name)),
            Method::PUT => {
                ok(parse_json(body).and_then(|s| shared.lock().objects.write_scale(ns, name, &s)))
            }
            Method::PATCH => ok(patch_scale(
                shared,
                ns,
                name,
                req.content_type.as_deref(),
                body,
            )),
            _ => method_not_allowed(method),
        },
        ["api", "v1", plural] => {
            let res = served(shared, "", "v1", plural);
            object_routes::route(shared, method, res, None, None, req, body)
        }
        ["api", "v1", "namespaces", ns, plural] => {
            let res = served(shared, "", "v1", plural);
            object_routes::route(shared, method, res, Some(ns), None, req, body)
        }
        ["api", "v1", "namespaces", ns, plural, name] => {
            let res = served(shared, "", "v1", plural);
            object_routes::route(shared, method, res, Some(ns), Some(name), req, body)
        }
        ["apis", group, version] if get => {
            let installed = !shared.lock().objects.without_gateway_api;
            discovery::resource_list(group, version, installed)
                .map_or_else(path_not_found, |l| json_response(StatusCode::OK, &l))
        }
        ["apis", group, version, plural] => {
            let res = served(shared, group, version, plural);
            object_routes::route(shared, method, res, None, None, req, body)
        }
        ["apis", group, version, "namespaces", ns, plural] => {
            let res = served(shared, group, version, plural);
            object_routes::route(shared, method, res, Some(ns), None, req, body)
        }
        ["apis", group, version, "namespaces", ns, plural, name] => {
            let res = served(shared, group, version, plural);
            object_routes::route(shared, method, res, Some(ns), Some(name), req, body)
        }
        [
            "apis",
            group,
            version,
            "namespaces",
            ns,
            plural,
            name,
            "status",
        ] => {
            let res = served(shared, group, version, plural).filter(|r| r.status_subresource);
            object_routes::status_route(shared, method, res, ns, name, req, body)
        }
        _ => path_not_found(),
    }
}

/// The generic resource at this path, unless its CRDs are not installed (404 then, as
/// on an apiserver without them).
fn served(shared: &Shared, group: &str, version: &str, plural: &str) -> Option<Resource> {
    resources::find(group, version, plural)
        .filter(|r| !r.is_gateway_api() || !shared.lock().objects.without_gateway_api)
}

/// A `{kind}List` answer, written straight from the stored objects (100,000 of them are
/// not cloned first); items carry no kind/apiVersion, like the apiserver's. `next`: the
/// `continue` token of the next page.
pub(super) fn list_response(
    kind: &str,
    api_version: &str,
    rv: &str,
    next: Option<&str>,
    items: &[&Value],
) -> Response<Body> {
    let mut meta = serde_json::json!({ "resourceVersion": rv });
    if let Some(token) = next {
        meta["continue"] = token.into();
    }
    let head = serde_json::json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": meta,
    })
    .to_string();
    let mut out = Vec::with_capacity(head.len() + items.len() * 512);
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        let fields = item.as_object().into_iter().flatten();
        let kept = fields.filter(|(k, _)| *k != "kind" && *k != "apiVersion");
        for (j, (k, v)) in kept.enumerate() {
            if j > 0 {
                out.push(b',');
            }
            // Writing JSON into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, k);
            out.push(b':');
            let _ = serde_json::to_writer(&mut out, v);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    let mut res = Response::new(Full::new(Bytes::from(out)).boxed_unsync());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn watch_deployments(shared: &Shared, ns: &str, req: &RecordedRequest) -> Response<Body> {
    let name = match watch::name_selector(req) {
        Ok(n) => n,
        Err(msg) => return error_response(&errors::bad_request(msg)),
    };
    let target = watch::Target {
        resource: "deployments",
        kind: "Deployment",
        api_version: "apps/v1".to_owned(),
        namespace: Some(ns.to_owned()),
    };
    let selected = move |d: &Value| name.as_deref().is_none_or(|n| d["metadata"]["name"] == n);
    watch::watch(shared, target, req, selected, |o| o.list(Some(ns)))
}

fn list(shared: &Shared, ns: Option<&str>, req: &RecordedRequest) -> Response<Body> {
    let name = match watch::name_selector(req) {
        Ok(n) => n,
        Err(msg) => return error_response(&errors::bad_request(msg)),
    };
    let st = shared.lock();
    let mut items = st.objects.list(ns);
    items.retain(|d| name.as_deref().is_none_or(|n| d["metadata"]["name"] == n));
    let rv = st.objects.revision();
    if wants_table(req) {
        return json_response(StatusCode::OK, &table::deployment_table(&items, &rv));
    }
    list_response("DeploymentList", "apps/v1", &rv, None, &items)
}

/// A patch is applied to the current Scale under the lock, then written like a PUT, so a
/// `resourceVersion` inside the patch is a precondition as on the real apiserver.
fn patch_scale(
    shared: &Shared,
    ns: &str,
    name: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut st = shared.lock();
    let mut scale = st.objects.scale(ns, name)?;
    let details = serde_json::json!({ "name": name, "group": "autoscaling", "kind": "Scale" });
    apply_patch(&mut scale, content_type, body, details)?;
    st.objects.write_scale(ns, name, &scale)
}

/// Applies a patch body in the format its content type names (strategic merge patch as a
/// merge patch: lists are replaced whole); `details` go into a 422.
pub(super) fn apply_patch(
    target: &mut Value,
    content_type: Option<&str>,
    body: &[u8],
    details: Value,
) -> Result<(), ApiError> {
    let media = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let patch = parse_json(body)?;
    match media {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            patch::merge(target, &patch);
            Ok(())
        }
        "application/json-patch+json" => patch::json_patch(target, &patch)
            .map_err(|msg| errors::status(422, "Invalid", msg, details)),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => Err(errors::status(
            415,
            "UnsupportedMediaType",
            "server-side apply is not implemented by the fake API server",
            Value::Null,
        )),
        other => Err(errors::status(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({other:?}) - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
            ),
            Value::Null,
        )),
    }
}
