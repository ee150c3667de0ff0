use super::*;
use figment::Jail;

#[test]
fn the_waker_cluster_is_a_cluster_name_or_empty() {
    Jail::expect_with(|j| {
        assert_eq!(WakerConfig::load(None).expect("defaults").cluster(), None);
        j.set_env("DEPLOY_SCALE_TO_ZERO_WAKER_CLUSTER", "east");
        let c = WakerConfig::load(None).expect("east");
        assert_eq!(c.cluster().map(|c| c.to_string()).as_deref(), Some("east"));
        j.set_env("DEPLOY_SCALE_TO_ZERO_WAKER_CLUSTER", "East");
        let e = WakerConfig::load(None)
            .expect_err("not a label")
            .to_string();
        assert!(e.contains("DEPLOY_SCALE_TO_ZERO_WAKER_CLUSTER"), "{e}");
        assert!(e.contains("\"East\""), "{e}");
        Ok(())
    });
}

#[test]
fn defaults_and_environment() {
    Jail::expect_with(|j| {
        let c = WakerConfig::load(None).expect("defaults");
        assert_eq!(c, WakerConfig::default());
        assert!(c.ignore_user_agents().contains(&"uptimerobot".to_owned()));
        j.set_env("DEPLOY_SCALE_TO_ZERO_WAKER_TIMEOUT_SECONDS", "5");
        j.set_env("DEPLOY_SCALE_TO_ZERO_WAKER_TARGET_HEADER", "X-App");
        j.set_env(
            "DEPLOY_SCALE_TO_ZERO_WAKER_IGNORE_USER_AGENTS",
            " Foo ,, bar",
        );
        let c = WakerConfig::load(None).expect("env");
        assert_eq!(c.timeout(), Duration::from_secs(5));
        assert_eq!(c.waker_target_header, "X-App");
        assert_eq!(c.ignore_user_agents(), ["foo", "bar"]);
        assert_eq!(c.waker_max_wakes_per_minute, 30, "the default");
        j.set_env("DEPLOY_SCALE_TO_ZERO_WAKER_MAX_WAKES_PER_MINUTE", "100000");
        let c = WakerConfig::load(None).expect("env");
        assert_eq!(c.waker_max_wakes_per_minute, 100_000);
        Ok(())
    });
}

#[test]
fn invalid_values_name_the_variable() {
    for (var, value) in [
        ("DEPLOY_SCALE_TO_ZERO_WAKER_TIMEOUT_SECONDS", "0"),
        ("DEPLOY_SCALE_TO_ZERO_WAKER_TIMEOUT_SECONDS", "601"),
        ("DEPLOY_SCALE_TO_ZERO_WAKER_TARGET_HEADER", "bad header"),
        ("DEPLOY_SCALE_TO_ZERO_WAKER_MAX_WAKES_PER_MINUTE", "0"),
        ("DEPLOY_SCALE_TO_ZERO_WAKER_MAX_WAKES_PER_MINUTE", "100001"),
    ] {
        Jail::expect_with(|j| {
            j.set_env(var, value);
            let e = WakerConfig::load(None).expect_err(value).to_string();
            assert!(e.contains(var), "{e}");
            Ok(())
        });
    }
}

#[test]
fn parking_listener_keys_have_their_defaults_and_read_the_environment() {
    Jail::expect_with(|j| {
        let c = WakerConfig::load(None).expect("defaults");
        assert_eq!(c.page_after(), Duration::from_millis(1500));
        assert_eq!(c.cluster_domain, "cluster.local");
        assert!(c.gateway_namespaces().is_empty());
        assert!(c.trusted_cidrs().is_empty());
        j.set_env("DEPLOY_SCALE_TO_ZERO_WAKER_PAGE_AFTER_MS", "0");
        j.set_env("DEPLOY_SCALE_TO_ZERO_CLUSTER_DOMAIN", "Corp.Example.");
        j.set_env(
            "DEPLOY_SCALE_TO_ZERO_WAKER_GATEWAY_NAMESPACES",
            "envoy-gateway-system, ,istio-ingress",
        );
        j.set_env(
            "DEPLOY_SCALE_TO_ZERO_WAKER_TRUSTED_CIDRS",
            "10.0.0.0/8, fd00::/8",
        );
        let c = WakerConfig::load(None).expect("env");
        assert_eq!(c.page_after(), Duration::ZERO);
        assert_eq!(c.cluster_domain, "corp.example");
        assert_eq!(
            c.gateway_namespaces(),
            ["envoy-gateway-system", "istio-ingress"]
        );
        let cidrs: Vec<String> = c.trusted_cidrs().iter().map(|c| c.to_string()).collect();
        assert_eq!(cidrs, ["10.0.0.0/8", "fd00::/8"]);
        assert!(KEYS.contains(&"waker_trusted_cidrs") && KEYS.contains(&"cluster_domain"));
        Ok(())
    });
}

#[test]
fn invalid_parking_listener_values_name_the_variable_and_the_value() {
    for (var, value) in [
        ("DEPLOY_SCALE_TO_ZERO_WAKER_PAGE_AFTER_MS", "60001"),
        ("DEPLOY_SCALE_TO_ZERO_WAKER_PAGE_AFTER_MS", "-1"),
        (
            "DEPLOY_SCALE_TO_ZERO_WAKER_TRUSTED_CIDRS",
            "10.0.0.0/8,10.0.0.300/32",
        ),
        ("DEPLOY_SCALE_TO_ZERO_WAKER_TRUSTED_CIDRS", "10.0.0.1"),
        ("DEPLOY_SCALE_TO_ZERO_CLUSTER_DOMAIN", "cluster_local"),
    ] {
        Jail::expect_with(|j| {
            j.set_env(var, value);
            let e = WakerConfig::load(None).expect_err(value).to_string();
            assert!(e.contains(var), "{e}");
            assert!(e.contains(value), "{e}");
            Ok(())
        });
    }
}
