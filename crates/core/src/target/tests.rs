use super::*;
use proptest::prelude::*;

#[test]
fn parses_valid_ids() {
    let cases = [
        ("k8s:apps/web", "apps", "web"),
        ("k8s:a/b", "a", "b"),
        ("k8s:team-1/api.v2", "team-1", "api.v2"),
        ("k8s:0ns/9-x-9", "0ns", "9-x-9"),
    ];
    for (id, ns, name) in cases {
        let t = Target::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!((t.namespace.as_str(), t.name.as_str()), (ns, name), "{id}");
        assert_eq!(t.provider_id(), id);
    }
}

#[test]
fn foreign_ids_are_distinct_from_malformed() {
    for id in [
        "",
        "fly:app",
        "K8S:apps/web",
        "k8s",
        "docker:web",
        "k8s-apps/web",
    ] {
        assert_eq!(Target::parse(id), Err(TargetError::Foreign), "{id:?}");
    }
}

#[test]
fn rejects_malformed_ids() {
    let long_label = "a".repeat(64);
    let long_name = format!("{}.{}", "a".repeat(63), "b".repeat(63)).repeat(3);
    let cases: Vec<String> = vec![
        "k8s:".into(),
        "k8s:apps".into(),
        "k8s:/web".into(),
        "k8s:apps/".into(),
        "k8s:Apps/web".into(),
        "k8s:apps/Web".into(),
        "k8s:-apps/web".into(),
        "k8s:apps-/web".into(),
        "k8s:apps/web-".into(),
        "k8s:a.b/web".into(),
        "k8s:apps/web/extra".into(),
        "k8s:apps/we_b".into(),
        "k8s:apps/web..x".into(),
        "k8s:apps/.web".into(),
        "k8s:ap ps/web".into(),
        format!("k8s:{long_label}/web"),
        format!("k8s:apps/{long_name}"),
        "k8s:äpps/web".into(),
    ];
    for id in cases {
        assert!(
            matches!(Target::parse(&id), Err(TargetError::Malformed(_))),
            "{id:?}"
        );
    }
}

#[test]
fn accepts_longest_valid_parts() {
    let ns = "a".repeat(63);
    let name = format!(
        "{}.{}.{}.{}",
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(63),
        "e".repeat(61)
    );
    assert_eq!(name.len(), 253);
    assert!(Target::parse(&format!("k8s:{ns}/{name}")).is_ok());
}

#[test]
fn parses_named_clusters() {
    let t = Target::parse("k8s@east:apps/web").expect("valid");
    assert_eq!(t.cluster.as_ref().map(ClusterName::as_str), Some("east"));
    assert_eq!((t.namespace.as_str(), t.name.as_str()), ("apps", "web"));
    assert_eq!(t.provider_id(), "k8s@east:apps/web");
    assert_eq!(t.to_string(), "east:apps/web");
    assert_eq!(t.cluster_label(), "east");
    assert_eq!(Target::parse("k8s:apps/web").map(|t| t.cluster), Ok(None));
    assert_eq!(Target::new("apps", "web").cluster_label(), "default");
}

#[test]
fn rejects_malformed_cluster_names_naming_the_problem() {
    let cases = [
        ("k8s@:apps/web", "cluster name is empty"),
        ("k8s@East:apps/web", "cluster name is not a DNS-1123 label"),
        ("k8s@-east:apps/web", "cluster name is not a DNS-1123 label"),
        ("k8s@east-:apps/web", "cluster name is not a DNS-1123 label"),
        (
            "k8s@us.east:apps/web",
            "cluster name is not a DNS-1123 label",
        ),
        (
            "k8s@us_east:apps/web",
            "cluster name is not a DNS-1123 label",
        ),
        ("k8s@default:apps/web", "reserved"),
        ("k8s@east", "expected k8s@<cluster>"),
        ("k8s@east/apps/web", "expected k8s@<cluster>"),
        ("k8s@east:apps", "expected <namespace>/<deployment>"),
        ("k8s@east:/web", "namespace"),
        ("k8s@east:apps/", "deployment name"),
    ];
    for (id, why) in cases {
        match Target::parse(id) {
            Err(TargetError::Malformed(got)) => {
                assert!(got.contains(why), "{id:?}: {got:?} does not say {why:?}");
            }
            other => panic!("{id:?}: {other:?}"),
        }
    }
    let long = format!("k8s@{}:apps/web", "a".repeat(64));
    assert!(matches!(
        Target::parse(&long),
        Err(TargetError::Malformed(_))
    ));
    assert!(Target::parse(&format!("k8s@{}:apps/web", "a".repeat(63))).is_ok());
}

#[test]
fn schemes_are_what_sql_split_part_reads() {
    let east = ClusterName::new("east").expect("valid");
    assert_eq!(scheme(None), "k8s");
    assert_eq!(scheme(Some(&east)), "k8s@east");
    assert_eq!(scheme_of("k8s@east:apps/web"), Some("k8s@east"));
    assert_eq!(scheme_of("k8s:apps/web"), Some("k8s"));
    assert_eq!(scheme_of("k8s"), None);
    assert_eq!(scheme_of("fly:k8s:x"), Some("fly"));
}

/// A DNS-1123 label: what a namespace or a cluster name may be.
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
}

/// Strings that are not DNS-1123 labels, each for a different reason.
fn bad_label() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z][a-z0-9]{0,10}",
        "-[a-z0-9]{0,10}",
        "[a-z0-9]{0,10}-",
        "[a-z0-9]{1,5}[._~+ ][a-z0-9]{1,5}",
        "[a-z]{64,80}",
    ]
}

proptest! {
    #[test]
    fn round_trips(
        cluster in proptest::option::of(label().prop_filter("reserved", |c| c != "default")),
        namespace in label(),
        name in proptest::collection::vec(label(), 1..4)
            .prop_map(|parts| parts.join("."))
            .prop_filter("at most 253", |n| n.len() <= 253),
    ) {
        let target = Target {
            cluster: cluster.map(|c| ClusterName::new(&c).expect("a valid label")),
            namespace,
            name,
        };
        let id = target.provider_id();
        prop_assert_eq!(Target::parse(&id), Ok(target.clone()));
        prop_assert_eq!(scheme_of(&id).map(str::to_owned), Some(scheme(target.cluster.as_ref())));
    }

    #[test]
    fn rejects_bad_cluster_names(cluster in bad_label(), namespace in label()) {
        let id = format!("k8s@{cluster}:{namespace}/web");
        match Target::parse(&id) {
            Err(TargetError::Malformed(why)) => prop_assert!(why.contains("cluster"), "{}: {}", id, why),
            other => prop_assert!(false, "{}: {:?}", id, other),
        }
    }

    #[test]
    fn rejects_empty_parts(cluster in proptest::option::of(label()), namespace in label()) {
        let scheme = match &cluster {
            Some(c) if c != "default" => format!("k8s@{c}"),
            _ => "k8s".to_owned(),
        };
        for id in [
            format!("{scheme}:/web"),
            format!("{scheme}:{namespace}/"),
            format!("{scheme}:"),
            "k8s@:apps/web".to_owned(),
        ] {
            prop_assert!(matches!(Target::parse(&id), Err(TargetError::Malformed(_))), "{}", id);
        }
    }

    #[test]
    fn never_panics(s in "\\PC*") {
        let _ = Target::parse(&s);
    }

    #[test]
    fn never_panics_with_scheme(s in "k8s:[a-z0-9./-]{0,300}") {
        if let Ok(t) = Target::parse(&s) {
            prop_assert_eq!(t.provider_id(), s);
        }
    }

    #[test]
    fn never_panics_with_a_cluster(s in "k8s@[a-z0-9.:/@-]{0,100}") {
        if let Ok(t) = Target::parse(&s) {
            prop_assert_eq!(t.provider_id(), s);
        }
    }
}
