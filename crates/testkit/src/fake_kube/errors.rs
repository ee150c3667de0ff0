//! The apiserver's `Status` failures: the HTTP code with the body and `reason` the real API
//! sends, for every error the fake answers.

use serde_json::{Value, json};

/// An API error: the HTTP code and the `Status` body the real apiserver sends with it.
#[derive(Debug, Clone)]
pub(super) struct ApiError {
    pub code: u16,
    pub body: Value,
}

/// A `Status` failure shaped like the apiserver's (`details` omitted when `Null`).
pub(super) fn status(
    code: u16,
    reason: &str,
    message: impl Into<String>,
    details: Value,
) -> ApiError {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code,
    });
    if !details.is_null() {
        body["details"] = details;
    }
    ApiError { code, body }
}

/// The `reason` the apiserver gives with a code (`k8s.io/apimachinery` `StatusReason`).
pub(super) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// `plural.group` as messages name a resource (`endpointslices.discovery.k8s.io`, `services`).
fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

fn details(plural: &str, group: &str, name: &str) -> Value {
    json!({ "name": name, "group": group, "kind": plural })
}

pub(super) fn not_found(name: &str) -> ApiError {
    not_found_in("deployments", "apps", name)
}

pub(super) fn not_found_in(plural: &str, group: &str, name: &str) -> ApiError {
    status(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", qualified(plural, group)),
        details(plural, group, name),
    )
}

pub(super) fn conflict(name: &str) -> ApiError {
    conflict_in(
        "deployments",
        "apps",
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// 409 `Conflict` for a write or delete whose precondition (`why`) failed.
pub(super) fn conflict_in(plural: &str, group: &str, name: &str, why: &str) -> ApiError {
    status(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            qualified(plural, group)
        ),
        details(plural, group, name),
    )
}

pub(super) fn already_exists(name: &str) -> ApiError {
    already_exists_in("deployments", "apps", name)
}

pub(super) fn already_exists_in(plural: &str, group: &str, name: &str) -> ApiError {
    status(
        409,
        "AlreadyExists",
        format!("{} \"{name}\" already exists", qualified(plural, group)),
        details(plural, group, name),
    )
}

pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
    status(400, "BadRequest", message, Value::Null)
}

/// 422 with one cause, as field validation reports it.
pub(super) fn invalid(kind: &str, group: &str, name: &str, field: &str, detail: &str) -> ApiError {
    let group_suffix = if group.is_empty() {
        String::new()
    } else {
        format!(".{group}")
    };
    status(
        422,
        "Invalid",
        format!("{kind}{group_suffix} \"{name}\" is invalid: {field}: {detail}"),
        json!({
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [{ "reason": "FieldValueInvalid", "message": detail, "field": field }],
        }),
    )
}
