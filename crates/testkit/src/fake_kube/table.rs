//! Server-side printing: the `meta.k8s.io/v1` Table `kubectl get` asks for.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::resources::{ENDPOINT_SLICES, Resource, SERVICES};
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

fn col(name: &str, ty: &str, format: &str, priority: i32) -> Value {
    json!({ "name": name, "type": ty, "format": format, "description": "", "priority": priority })
}

fn age(object: &Value) -> String {
    object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(
            || "<unknown>".to_owned(),
            |t| human_age((Utc::now() - t.with_timezone(&Utc)).num_seconds()),
        )
}

fn row(cells: Vec<Value>, object: &Value) -> Value {
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object["metadata"],
        },
    })
}

fn table(columns: Vec<Value>, rows: Vec<Value>, list_rv: &str) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": list_rv },
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Services, EndpointSlices and Pods with a few of the apiserver's columns.
pub(super) fn object_table(res: Resource, items: &[&Value], list_rv: &str) -> Value {
    let join = |v: &Value, f: &dyn Fn(&Value) -> String| {
        let all: Vec<String> = v
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(f)
            .collect();
        if all.is_empty() {
            "<none>".to_owned()
        } else {
            all.join(",")
        }
    };
    let port = |p: &Value| p["port"].to_string();
    let (columns, rows) = if res == ENDPOINT_SLICES {
        let rows = items.iter().map(|s| {
            let addresses = |e: &Value| {
                join(&e["addresses"], &|a| {
                    a.as_str().unwrap_or_default().to_owned()
                })
            };
            row(
                vec![
                    s["metadata"]["name"].clone(),
                    s["addressType"].clone(),
                    join(&s["ports"], &port).into(),
                    join(&s["endpoints"], &addresses).into(),
                    age(s).into(),
                ],
                s,
            )
        });
        (
            ["Name", "AddressType", "Ports", "Endpoints", "Age"],
            rows.collect(),
        )
    } else if res == SERVICES {
        let rows = items.iter().map(|s| {
            let spec = &s["spec"];
            row(
                vec![
                    s["metadata"]["name"].clone(),
                    spec["type"].clone(),
                    spec["clusterIP"].clone(),
                    join(&spec["ports"], &port).into(),
                    age(s).into(),
                ],
                s,
            )
        });
        (
            ["Name", "Type", "Cluster-IP", "Port(s)", "Age"],
            rows.collect(),
        )
    } else {
        let rows = items.iter().map(|p| {
            let status = &p["status"];
            row(
                vec![
                    p["metadata"]["name"].clone(),
                    status["phase"].clone(),
                    status["podIP"].clone(),
                    json!(""),
                    age(p).into(),
                ],
                p,
            )
        });
        (["Name", "Status", "IP", "Node", "Age"], rows.collect())
    };
    let columns = columns
        .iter()
        .map(|c| col(c, "string", if *c == "Name" { "name" } else { "" }, 0))
        .collect();
    table(columns, rows, list_rv)
}

/// The `meta.k8s.io/v1` Table kubectl asks for on `get` (server-side printing), with the
/// apiserver's Deployment columns.
pub(super) fn deployment_table(items: &[&Value], list_rv: &str) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|d| {
            let m = &d["metadata"];
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
            row(
                vec![
                    m["name"].clone(),
                    format!("{}/{}", n("readyReplicas"), replicas_of(d)).into(),
                    n("updatedReplicas").into(),
                    n("availableReplicas").into(),
                    age(d).into(),
                    join("name").into(),
                    join("image").into(),
                    selector_string(d).into(),
                ],
                d,
            )
        })
        .collect();
    let columns = vec![
        col("Name", "string", "name", 0),
        col("Ready", "string", "", 0),
        col("Up-to-date", "integer", "", 0),
        col("Available", "integer", "", 0),
        col("Age", "string", "", 0),
        col("Containers", "string", "", 1),
        col("Images", "string", "", 1),
        col("Selector", "string", "", 1),
    ];
    table(columns, rows, list_rv)
}

#[cfg(test)]
mod tests;
