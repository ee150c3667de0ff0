//! The deploy/ artifacts agree with the code: metric names and RBAC.

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

#[test]
fn rbac_grants_only_the_scale_subresource() {
    let rbac = deploy("base/rbac.yaml");
    assert!(
        rbac.contains(r#"resources: ["deployments/scale"]"#),
        "{rbac}"
    );
    assert!(
        rbac.contains(r#"verbs: ["get", "update", "patch"]"#),
        "{rbac}"
    );
    assert_eq!(
        rbac.matches("resources:").count(),
        1,
        "one rule only:\n{rbac}"
    );
    assert!(!rbac.contains('*'), "no wildcards:\n{rbac}");
}
