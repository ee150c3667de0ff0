use super::*;
use serde_json::json;

#[test]
fn merge_replaces_removes_and_recurses() {
    let mut doc =
        json!({"metadata": {"name": "web", "resourceVersion": "3"}, "spec": {"replicas": 2}});
    merge(
        &mut doc,
        &json!({"metadata": {"resourceVersion": null}, "spec": {"replicas": 0}}),
    );
    assert_eq!(
        doc,
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 0}})
    );
}

#[test]
fn json_patch_ops() {
    let mut doc = json!({"spec": {"replicas": 2}, "metadata": {"resourceVersion": "7"}});
    json_patch(
        &mut doc,
        &json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
            {"op": "replace", "path": "/spec/replicas", "value": 0},
        ]),
    )
    .unwrap();
    assert_eq!(doc["spec"]["replicas"], 0);
    assert!(
        json_patch(
            &mut doc,
            &json!([{"op": "test", "path": "/spec/replicas", "value": 5}])
        )
        .is_err()
    );
    assert!(
        json_patch(
            &mut doc,
            &json!([{"op": "replace", "path": "/spec/nope", "value": 5}])
        )
        .is_err()
    );
    json_patch(
        &mut doc,
        &json!([{"op": "remove", "path": "/metadata/resourceVersion"}]),
    )
    .unwrap();
    assert_eq!(doc, json!({"spec": {"replicas": 0}, "metadata": {}}));
}
