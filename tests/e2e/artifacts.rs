//! The deploy/ artifacts agree with the code: metric names and RBAC (parking's included).

use std::collections::BTreeSet;
use std::path::Path;

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `instant_deploy_*` name in `text`, with histogram suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("instant_deploy_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
            .unwrap_or(&name);
        names.insert(base.to_owned());
    }
    names
}

#[test]
fn dashboard_and_alerts_use_exactly_the_exported_metric_names() {
    let exported: BTreeSet<String> = idle_scaler_core::metrics::NAMES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let dashboard = deploy("grafana-dashboard.json");
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("dashboard is JSON");
    let used = metric_names(&dashboard);
    assert!(
        used.is_subset(&exported),
        "unknown names: {:?}",
        used.difference(&exported)
    );
    assert_eq!(used, exported, "every exported metric has a panel");
    let alerts = metric_names(&deploy("base/prometheusrule.yaml"));
    assert!(!alerts.is_empty());
    assert!(
        alerts.is_subset(&exported),
        "unknown names: {:?}",
        alerts.difference(&exported)
    );
}

/// The ClusterRole's rules as (apiGroups, resources, verbs), each as written in flow form.
fn rules(rbac: &str) -> Vec<[String; 3]> {
    let fields: Vec<(&str, &str)> = rbac
        .lines()
        .map(|l| l.trim_start().trim_start_matches("- "))
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            ["apiGroups", "resources", "verbs"]
                .into_iter()
                .find_map(|key| Some((key, l.strip_prefix(key)?.strip_prefix(": ")?)))
        })
        .collect();
    fields
        .chunks(3)
        .map(|rule| {
            let keys: Vec<&str> = rule.iter().map(|(k, _)| *k).collect();
            assert_eq!(keys, ["apiGroups", "resources", "verbs"], "{rule:?}");
            rule.iter()
                .map(|(_, v)| (*v).to_owned())
                .collect::<Vec<_>>()
                .try_into()
                .expect("3")
        })
        .collect()
}

#[test]
fn rbac_grants_the_scale_subresource_the_wakers_watch_parking_and_the_route_index_only() {
    let rbac = deploy("base/rbac.yaml");
    let expected = [
        // Sleep and wake: the scale subresource only.
        [
            r#"["apps"]"#,
            r#"["deployments/scale"]"#,
            r#"["get", "update", "patch"]"#,
        ],
        // The waker's readiness wait reads Deployments and never writes them.
        [
            r#"["apps"]"#,
            r#"["deployments"]"#,
            r#"["get", "list", "watch"]"#,
        ],
        // Parking reads Services, writes its own EndpointSlices (the admission policy confines
        // which) and lists Pods for the caller check.
        [r#"[""]"#, r#"["services"]"#, r#"["get", "list", "watch"]"#],
        [
            r#"["discovery.k8s.io"]"#,
            r#"["endpointslices"]"#,
            r#"["get", "list", "watch", "create", "update", "patch", "delete"]"#,
        ],
        [r#"[""]"#, r#"["pods"]"#, r#"["list"]"#],
        // The route index reads public hostnames' routes and never writes them.
        [
            r#"["networking.k8s.io"]"#,
            r#"["ingresses"]"#,
            r#"["list", "watch"]"#,
        ],
        [
            r#"["gateway.networking.k8s.io"]"#,
            r#"["httproutes", "gateways", "referencegrants"]"#,
            r#"["list", "watch"]"#,
        ],
    ]
    .map(|rule| rule.map(str::to_owned));
    assert_eq!(rules(&rbac), expected, "{rbac}");
    let wildcards: Vec<&str> = rbac
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('*'))
        .collect();
    assert!(wildcards.is_empty(), "no wildcards: {wildcards:?}");
}

/// The README's embedding section is the compiled example, from its `use` lines to the end.
#[test]
fn the_readme_embedding_program_is_the_compiled_example() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let example = std::fs::read_to_string(format!("{root}/bins/idle-scaler/examples/embed.rs"))
        .expect("embed.rs");
    let program = &example[example.find("\nuse ").expect("use lines") + 1..];
    let section = &readme[readme.find("## Embedding the library").expect("section")..];
    let block = section
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a rust block in the section");
    assert_eq!(block, program, "README and examples/embed.rs differ");
}
