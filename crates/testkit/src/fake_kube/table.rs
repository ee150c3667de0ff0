//! Server-side printing: the `meta.k8s.io/v1` Table `kubectl get` asks for.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::state::{replicas_of, selector_string};

/// kubectl's `HumanDuration`, enough for the AGE column.
fn human_age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..120 => format!("{secs}s"),
        120..600 if secs % 60 != 0 => format!("{}m{}s", secs / 60, secs % 60),
        120..10800 => format!("{}m", secs / 60),
        10800..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// The `meta.k8s.io/v1` Table kubectl asks for on `get` (server-side printing), with the
/// apiserver's Deployment columns.
pub(super) fn deployment_table(items: &[&Value], list_rv: &str) -> Value {
    let col = |name: &str, ty: &str, format: &str, priority: i32| json!({ "name": name, "type": ty, "format": format, "description": "", "priority": priority });
    let now = Utc::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|d| {
            let m = &d["metadata"];
            let age = m["creationTimestamp"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map_or_else(
                    || "<unknown>".to_owned(),
                    |t| human_age((now - t.with_timezone(&Utc)).num_seconds()),
                );
            let status = &d["status"];
            let n = |k: &str| status[k].as_i64().unwrap_or(0);
            let containers = d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let join = |k: &str| {
                containers
                    .iter()
                    .filter_map(|c| c[k].as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            json!({
                "cells": [
                    m["name"],
                    format!("{}/{}", n("readyReplicas"), replicas_of(d)),
                    n("updatedReplicas"),
                    n("availableReplicas"),
                    age,
                    join("name"),
                    join("image"),
                    selector_string(d),
                ],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": m,
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": list_rv },
        "columnDefinitions": [
            col("Name", "string", "name", 0),
            col("Ready", "string", "", 0),
            col("Up-to-date", "integer", "", 0),
            col("Available", "integer", "", 0),
            col("Age", "string", "", 0),
            col("Containers", "string", "", 1),
            col("Images", "string", "", 1),
            col("Selector", "string", "", 1),
        ],
        "rows": rows,
    })
}

#[cfg(test)]
mod tests;
