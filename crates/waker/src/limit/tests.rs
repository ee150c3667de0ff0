use super::*;

fn target(namespace: &str, name: &str) -> Target {
    Target::parse(&format!("k8s:{namespace}/{name}")).expect("target")
}

#[test]
fn at_most_the_limit_in_any_minute_per_namespace() {
    let t0 = Utc::now();
    let at = |s: i64| t0 + TimeDelta::seconds(s);
    let limit = WakeLimit::new(3);
    for i in 0..3 {
        assert!(
            limit.try_start(&target("apps", &format!("a{i}")), at(i * 10)),
            "{i}"
        );
    }
    assert!(
        !limit.try_start(&target("apps", "a3"), at(30)),
        "the fourth in a minute"
    );
    assert!(
        limit.try_start(&target("other", "a"), at(30)),
        "another namespace has its own"
    );
    // 60 s after the first, one slot is free again, and only one.
    assert!(limit.try_start(&target("apps", "a4"), at(60)));
    assert!(!limit.try_start(&target("apps", "a5"), at(61)));
    assert!(limit.try_start(&target("apps", "a6"), at(120)));
    let namespaces = limit.started.lock().expect("lock").len();
    assert_eq!(
        namespaces, 1,
        "namespaces without a recent wake are forgotten"
    );
}
