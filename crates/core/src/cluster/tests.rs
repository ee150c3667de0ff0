use super::*;

fn name(s: &str) -> ClusterName {
    ClusterName::new(s).expect("valid")
}

#[test]
fn served_sets_are_sorted_and_filter_ids_as_sql_does() {
    let served = ServedClusters::new(true, [name("west"), name("east"), name("east")]);
    assert_eq!(served.schemes(), ["k8s", "k8s@east", "k8s@west"]);
    assert_eq!(served.to_string(), "default,east,west");
    assert!(served.serves_id("k8s@east:apps/web"));
    assert!(served.serves_id("k8s:apps/web"));
    assert!(!served.serves_id("k8s@north:apps/web"));
    assert!(!served.serves_id("k8s"));
    assert!(!served.serves_id("fly:k8s:x"));

    let east = ServedClusters::new(false, [name("east")]);
    assert!(!east.serves_id("k8s:apps/web"));
    assert!(
        !east.admits_id("k8s:apps/web"),
        "the default cluster's row is not east's"
    );
    assert!(
        east.admits_id("fly:app"),
        "foreign rows are settled by anyone"
    );
    assert!(east.admits_id("k8s"), "no cluster's id");
    assert!(!east.admits_id("k8s@north:apps/web"));
    assert_eq!(ServedClusters::default().schemes(), ["k8s"]);
}

#[test]
fn fair_share_gives_each_cluster_its_turn_and_keeps_key_order() {
    // (provider_id, key): east has a backlog older than the default cluster's rows.
    let items = vec![
        ("k8s@east:a/x", 1),
        ("k8s@east:a/y", 2),
        ("k8s@east:a/z", 3),
        ("k8s:a/x", 10),
        ("k8s:a/y", 11),
        ("k8s@west:a/x", 20),
    ];
    let share = |limit| fair_share(items.clone(), limit, |i| i.0, |i| i.1);
    assert_eq!(share(1), [("k8s@east:a/x", 1)]);
    assert_eq!(share(2), [("k8s@east:a/x", 1), ("k8s:a/x", 10)]);
    assert_eq!(
        share(3),
        [("k8s@east:a/x", 1), ("k8s:a/x", 10), ("k8s@west:a/x", 20)]
    );
    assert_eq!(
        share(4),
        [
            ("k8s@east:a/x", 1),
            ("k8s@east:a/y", 2),
            ("k8s:a/x", 10),
            ("k8s@west:a/x", 20)
        ]
    );
    assert_eq!(share(100).len(), 6);
    assert!(share(0).is_empty());
    // One cluster: the first `limit` by key.
    let one = vec![("k8s:a/c", 3), ("k8s:a/a", 1), ("k8s:a/b", 2)];
    assert_eq!(
        fair_share(one, 2, |i| i.0, |i| i.1),
        [("k8s:a/a", 1), ("k8s:a/b", 2)]
    );
}
