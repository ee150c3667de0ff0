//! The patch formats the scale subresource accepts: JSON merge patch (RFC 7386) and JSON
//! patch (RFC 6902). Strategic merge patch is applied as a merge patch: on a `Scale` (no
//! lists, no patch directives) the two agree.

use serde_json::Value;

/// RFC 7386: objects merge recursively, `null` removes a key, anything else replaces.
pub(super) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(map) = target else { return };
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// RFC 6902 with the operations clients send to a scale: `add`, `replace`, `remove`,
/// `test` (`move` and `copy` are refused). Errors are the apiserver's 422 message.
pub(super) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let kind = op["op"].as_str().ok_or("operation without \"op\"")?;
        let path = op["path"].as_str().ok_or("operation without \"path\"")?;
        let tokens = pointer_tokens(path)?;
        match kind {
            "add" | "replace" => {
                let value = op
                    .get("value")
                    .ok_or("operation without \"value\"")?
                    .clone();
                let (last, parent) = split_parent(target, &tokens, path)?;
                let map = parent
                    .as_object_mut()
                    .ok_or_else(|| format!("{path}: parent is not an object"))?;
                if kind == "replace" && !map.contains_key(last) {
                    return Err(format!(
                        "replace operation does not apply: doc is missing key: {path}"
                    ));
                }
                map.insert(last.to_owned(), value);
            }
            "remove" => {
                let (last, parent) = split_parent(target, &tokens, path)?;
                let removed = parent.as_object_mut().and_then(|m| m.remove(last));
                if removed.is_none() {
                    return Err(format!(
                        "remove operation does not apply: doc is missing key: {path}"
                    ));
                }
            }
            "test" => {
                let expected = op.get("value").ok_or("operation without \"value\"")?;
                if target.pointer(path) != Some(expected) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("unsupported JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

fn pointer_tokens(path: &str) -> Result<Vec<String>, String> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn split_parent<'a, 'v>(
    target: &'v mut Value,
    tokens: &'a [String],
    path: &str,
) -> Result<(&'a str, &'v mut Value), String> {
    let (last, parents) = tokens
        .split_last()
        .ok_or_else(|| format!("invalid path {path:?}"))?;
    let mut node = target;
    for t in parents {
        node = node
            .get_mut(t.as_str())
            .ok_or_else(|| format!("doc is missing path: {path}"))?;
    }
    Ok((last.as_str(), node))
}

#[cfg(test)]
mod tests;
