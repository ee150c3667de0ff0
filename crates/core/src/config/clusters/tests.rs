#![allow(clippy::result_large_err)] // figment::Jail's closure error type

use figment::Jail;

use super::*;

fn load() -> Result<Config, ConfigError> {
    Config::extract(Config::figment(None)).map(|(c, _)| c)
}

fn name(s: &str) -> ClusterName {
    ClusterName::new(s).expect("valid")
}

#[test]
fn by_default_only_the_default_cluster_is_served() {
    Jail::expect_with(|_| {
        let c = load().expect("loads");
        assert!(c.default_cluster);
        assert!(c.clusters.is_empty());
        assert_eq!(c.served_clusters(), ServedClusters::default_only());
        Ok(())
    });
}

#[test]
fn clusters_from_the_environment() {
    Jail::expect_with(|j| {
        j.set_env(
            "DEPLOY_SCALE_TO_ZERO_CLUSTERS",
            "east=/etc/kube/east.yaml#east-admin, west=#west-ctx,north=/k/north.yaml",
        );
        j.set_env("DEPLOY_SCALE_TO_ZERO_DEFAULT_CLUSTER", "false");
        let c = load().expect("loads");
        assert!(!c.default_cluster);
        assert_eq!(
            c.clusters[&name("east")],
            ClusterConfig {
                kubeconfig: Some("/etc/kube/east.yaml".into()),
                context: Some("east-admin".into()),
            }
        );
        assert_eq!(c.clusters[&name("west")].kubeconfig, None);
        assert_eq!(
            c.clusters[&name("west")].context.as_deref(),
            Some("west-ctx")
        );
        assert_eq!(c.clusters[&name("north")].context, None);
        assert_eq!(
            c.served_clusters().schemes(),
            ["k8s@east", "k8s@north", "k8s@west"]
        );
        Ok(())
    });
}

#[test]
fn clusters_from_a_toml_file() {
    Jail::expect_with(|j| {
        j.create_file(
            "c.toml",
            "[clusters.east]\nkubeconfig = \"/etc/kube/east.yaml\"\ncontext = \"east-admin\"\n\
             [clusters.west]\ncontext = \"west\"\n",
        )?;
        let (c, warnings) =
            Config::extract(Config::figment(Some("c.toml".as_ref()))).expect("loads");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(c.default_cluster);
        assert_eq!(
            c.served_clusters().schemes(),
            ["k8s", "k8s@east", "k8s@west"]
        );
        assert_eq!(c.clusters[&name("west")].context.as_deref(), Some("west"));
        Ok(())
    });
}

#[test]
fn errors_name_the_bad_entry() {
    let cases = [
        (
            "East=/k.yaml",
            "entry \"East=/k.yaml\": malformed provider id: cluster name is not a DNS-1123 label",
        ),
        ("east", "entry \"east\": no = after the cluster name"),
        (
            "east=",
            "entry \"east=\": neither a kubeconfig file nor a context",
        ),
        ("east=#", "neither a kubeconfig file nor a context"),
        ("default=/k.yaml", "reserved"),
        (
            "east=/a.yaml,east=#b",
            "entry \"east=#b\": the cluster is named twice",
        ),
        ("east=/a.yaml,,west=#w", "entry \"\""),
    ];
    for (given, why) in cases {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_CLUSTERS", given);
            let e = load().expect_err(given).to_string();
            assert!(e.contains("DEPLOY_SCALE_TO_ZERO_CLUSTERS"), "{e}");
            assert!(e.contains(why), "{given}: {e}");
            Ok(())
        });
    }
}

#[test]
fn toml_errors_name_the_cluster_and_key() {
    let cases = [
        (
            "[clusters.east]\nkubconfig = \"/k.yaml\"\n",
            "clusters.east.kubconfig is no setting",
        ),
        (
            "[clusters.east]\n",
            "[clusters.east] has neither kubeconfig nor context",
        ),
        (
            "[clusters.Bad]\ncontext = \"x\"\n",
            "[clusters.Bad]: malformed provider id",
        ),
        (
            "[clusters.east]\ncontext = 3\n",
            "clusters.east.context is not a non-empty string",
        ),
        ("clusters = 3\n", "expected a table of clusters"),
    ];
    for (toml, why) in cases {
        Jail::expect_with(|j| {
            j.create_file("c.toml", toml)?;
            let e = Config::extract(Config::figment(Some("c.toml".as_ref())))
                .expect_err(toml)
                .to_string();
            assert!(e.contains(why), "{toml}: {e}");
            assert!(e.contains("c.toml"), "names the file: {e}");
            Ok(())
        });
    }
}

#[test]
fn a_configuration_serialized_before_clusters_still_reads_as_the_default_cluster() {
    let mut old = serde_json::to_value(Config::default()).expect("serialize");
    let map = old.as_object_mut().expect("an object");
    map.remove("clusters");
    map.remove("default_cluster");
    let read: Config = serde_json::from_value(old).expect("deserialize");
    assert_eq!(read, Config::default());
}

#[test]
fn serving_no_cluster_is_an_error() {
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_DEFAULT_CLUSTER", "false");
        let e = load().expect_err("no cluster").to_string();
        assert!(e.contains("DEPLOY_SCALE_TO_ZERO_DEFAULT_CLUSTER"), "{e}");
        assert!(e.contains("at least one cluster"), "{e}");
        Ok(())
    });
    let built = Config {
        default_cluster: false,
        ..Config::default()
    };
    assert!(built.validate().is_err());
    let mut no_way = Config::default();
    no_way
        .clusters
        .insert(name("east"), ClusterConfig::default());
    let e = no_way
        .validate()
        .expect_err("no kubeconfig, no context")
        .to_string();
    assert!(e.contains("east"), "{e}");
}
