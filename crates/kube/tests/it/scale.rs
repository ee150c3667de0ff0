//! The happy paths and the resourceVersion precondition, end to end over HTTP.

use idle_scaler_core::{Error, Scaler};

use super::*;

#[tokio::test]
async fn sleep_reads_then_writes_with_the_read_version() {
    let (fake, scaler) = setup(3, TIMEOUT).await;
    let scale = scaler.get_scale(&web()).await.expect("scale");
    assert_eq!(scale.replicas, 3);
    assert_eq!(
        Some(&scale.resource_version),
        fake.resource_version("apps", "web").as_ref()
    );

    scaler
        .set_replicas(&web(), 0, Some(&scale.resource_version))
        .await
        .expect("slept");
    assert_eq!(fake.replicas("apps", "web"), Some(0));
    assert_ne!(
        fake.resource_version("apps", "web"),
        Some(scale.resource_version.clone())
    );

    let reqs = fake.requests();
    let methods: Vec<_> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    let path = "/apis/apps/v1/namespaces/apps/deployments/web/scale";
    assert_eq!(
        methods,
        [("GET", path), ("PATCH", path)],
        "only the scale subresource"
    );
    let patch = &reqs[1];
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        patch.query_param("fieldManager").as_deref(),
        Some("idle-scaler")
    );
    assert_eq!(
        patch.json()["metadata"]["resourceVersion"],
        scale.resource_version.as_str()
    );

    // After the sleep the scale reads back as 0 (the API omits spec.replicas then).
    assert_eq!(scaler.get_scale(&web()).await.expect("scale").replicas, 0);
}

#[tokio::test]
async fn a_change_between_read_and_write_is_a_conflict_and_nothing_is_written() {
    let (fake, scaler) = setup(3, TIMEOUT).await;
    let scale = scaler.get_scale(&web()).await.expect("scale");
    // A person scales up in between (the HPA, a deploy).
    fake.scale_externally("apps", "web", 5);
    let err = scaler
        .set_replicas(&web(), 0, Some(&scale.resource_version))
        .await
        .expect_err("stale");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(fake.replicas("apps", "web"), Some(5));
}

#[tokio::test]
async fn a_redeploy_between_read_and_write_is_a_conflict() {
    let (fake, scaler) = setup(2, TIMEOUT).await;
    let scale = scaler.get_scale(&web()).await.expect("scale");
    fake.redeploy("apps", "web");
    let err = scaler
        .set_replicas(&web(), 0, Some(&scale.resource_version))
        .await
        .expect_err("stale");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(fake.replicas("apps", "web"), Some(2));
}

#[tokio::test]
async fn wake_writes_unconditionally_and_a_repeat_is_a_no_op() {
    let (fake, scaler) = setup(0, TIMEOUT).await;
    fake.scale_externally("apps", "web", 0);
    scaler.set_replicas(&web(), 2, None).await.expect("woken");
    assert_eq!(fake.replicas("apps", "web"), Some(2));
    let rv = fake.resource_version("apps", "web");
    scaler.set_replicas(&web(), 2, None).await.expect("repeat");
    assert_eq!(
        fake.resource_version("apps", "web"),
        rv,
        "a no-op write keeps the version"
    );
    assert_eq!(
        fake.requests().last().expect("a request").json(),
        serde_json::json!({"spec": {"replicas": 2}})
    );
}
