//! Server-side printing: the `meta.k8s.io/v1` Table `kubectl get` asks for.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::resources::{ENDPOINT_SLICES, GATEWAYS, HTTP_ROUTES, INGRESSES, Resource, SERVICES};
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

fn columns(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|c| col(c, "string", if *c == "Name" { "name" } else { "" }, 0))
        .collect()
}

/// Ingresses and the Gateway API's kinds, with the columns of the apiserver (Ingress) and
/// of the CRDs' `additionalPrinterColumns`.
fn routing_table(res: Resource, items: &[&Value]) -> Option<(&'static [&'static str], Vec<Value>)> {
    let list = |v: &Value, f: &dyn Fn(&Value) -> Option<String>| {
        let all: Vec<String> = v
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(f)
            .collect();
        if all.is_empty() {
            "<none>".to_owned()
        } else {
            all.join(",")
        }
    };
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let rows = |cells: &dyn Fn(&Value) -> Vec<Value>| {
        items
            .iter()
            .map(|v| {
                let mut all = vec![v["metadata"]["name"].clone()];
                all.extend(cells(v));
                all.push(age(v).into());
                row(all, v)
            })
            .collect()
    };
    Some(if res == INGRESSES {
        let cells = |i: &Value| {
            let spec = &i["spec"];
            let ports = if spec["tls"].as_array().is_some_and(|t| !t.is_empty()) {
                "80, 443"
            } else {
                "80"
            };
            vec![
                spec["ingressClassName"].as_str().unwrap_or("<none>").into(),
                list(&spec["rules"], &|r| {
                    Some(r["host"].as_str().unwrap_or("*").to_owned())
                })
                .into(),
                list(&i["status"]["loadBalancer"]["ingress"], &|l| {
                    text(&l["ip"]).or_else(|| text(&l["hostname"]))
                })
                .into(),
                ports.into(),
            ]
        };
        (
            &["Name", "Class", "Hosts", "Address", "Ports", "Age"][..],
            rows(&cells),
        )
    } else if res == HTTP_ROUTES {
        let cells = |r: &Value| vec![list(&r["spec"]["hostnames"], &text).into()];
        (&["Name", "Hostnames", "Age"][..], rows(&cells))
    } else if res == GATEWAYS {
        let cells = |g: &Value| {
            let programmed = g["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Programmed"))
                .map_or_else(
                    || "Unknown".to_owned(),
                    |c| c["status"].as_str().unwrap_or("Unknown").to_owned(),
                );
            vec![
                g["spec"]["gatewayClassName"].clone(),
                list(&g["status"]["addresses"], &|a| text(&a["value"])).into(),
                programmed.into(),
            ]
        };
        (
            &["Name", "Class", "Address", "Programmed", "Age"][..],
            rows(&cells),
        )
    } else if res.is_gateway_api() {
        (&["Name", "Age"][..], rows(&|_| Vec::new()))
    } else {
        return None;
    })
}

/// The generic store's objects with a few of the apiserver's columns.
pub(super) fn object_table(res: Resource, items: &[&Value], list_rv: &str) -> Value {
    if let Some((names, rows)) = routing_table(res, items) {
        return table(columns(names), rows, list_rv);
    }
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
    table(self::columns(&columns), rows, list_rv)
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
