use super::*;

fn web() -> Target {
    Target {
        cluster: None,
        namespace: "apps".into(),
        name: "web".into(),
    }
}

#[test]
fn resource_version_semantics() {
    let c = SimCluster::new();
    assert!(matches!(c.scale(&web()), Err(Error::NotFound { .. })));
    assert!(c.apply(&web(), 3));
    let s = c.scale(&web()).expect("exists");
    assert_eq!(s.replicas, 3);
    // A no-op keeps the version; the old version still works as a precondition.
    assert!(!c.set_scale(&web(), 3, None).expect("no-op"));
    assert_eq!(c.scale(&web()).expect("exists"), s);
    assert!(
        c.set_scale(&web(), 0, Some(&s.resource_version))
            .expect("cas")
    );
    // Now stale.
    assert!(matches!(
        c.set_scale(&web(), 2, Some(&s.resource_version)),
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        c.set_scale(&web(), -1, None),
        Err(Error::Invalid { .. })
    ));
    let before = c.scale(&web()).expect("exists");
    assert!(c.redeploy(&web()));
    let after = c.scale(&web()).expect("exists");
    assert_eq!(after.replicas, before.replicas);
    assert_ne!(after.resource_version, before.resource_version);
    assert!(c.delete(&web()));
    assert!(matches!(
        c.set_scale(&web(), 1, None),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_forbidden_deployment_answers_403_to_reads_and_writes() {
    let c = SimCluster::new();
    assert!(c.apply(&web(), 2));
    c.forbid(&web());
    assert!(c.is_forbidden(&web()));
    assert!(matches!(c.scale(&web()), Err(Error::Forbidden { .. })));
    assert!(matches!(
        c.set_scale(&web(), 0, None),
        Err(Error::Forbidden { .. })
    ));
    // Nothing changed behind the 403; the host still sees it.
    assert_eq!(c.get(&web()).map(|d| d.replicas), Some(2));
}
