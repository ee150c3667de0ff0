//! Loading from the environment, a file and a host figment; every rule's error.
// figment::Jail fixes the closure's error type to figment::Error, which is large.
#![allow(clippy::result_large_err)]

use super::*;
use figment::Jail;
use figment::providers::Toml;

fn load() -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    Config::extract(Config::figment(None))
}

#[test]
fn defaults() {
    Jail::expect_with(|_| {
        let (c, w) = load().unwrap();
        assert_eq!(c, Config::default());
        assert!(!c.enabled);
        assert_eq!(c.idle_minutes, 30);
        assert_eq!(c.interval_seconds, 120);
        assert_eq!(c.max_per_tick, 50);
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.default_wake_replicas, 1);
        assert_eq!(
            c.protected_namespaces,
            ["kube-system", "kube-public", "kube-node-lease"]
        );
        assert!(w.is_empty(), "{w:?}");
        Ok(())
    });
}

#[test]
fn valid_overrides_from_env() {
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_ENABLED", "true");
        j.set_env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", "45");
        j.set_env("DEPLOY_SCALE_TO_ZERO_INTERVAL_SECONDS", "30");
        j.set_env("DEPLOY_SCALE_TO_ZERO_MAX_PER_TICK", "7");
        j.set_env("DEPLOY_SCALE_TO_ZERO_CONCURRENCY", "64");
        j.set_env("DEPLOY_SCALE_TO_ZERO_DRY_RUN", "yes");
        j.set_env("DEPLOY_SCALE_TO_ZERO_DEFAULT_WAKE_REPLICAS", "3");
        j.set_env("DEPLOY_SCALE_TO_ZERO_PROTECTED_NAMESPACES", "ops, billing");
        let (c, w) = load().unwrap();
        assert!(c.enabled && c.dry_run);
        assert_eq!(c.idle_minutes, 45);
        assert_eq!(c.interval_seconds, 30);
        assert_eq!(c.max_per_tick, 7);
        assert_eq!(c.concurrency, 64);
        assert_eq!(c.default_wake_replicas, 3);
        assert_eq!(c.protected_namespaces, ["ops", "billing"]);
        assert!(w.is_empty());
        Ok(())
    });
}

#[test]
fn toml_file_then_env_wins() {
    Jail::expect_with(|j| {
        j.create_file(
            "scaler.toml",
            "idle_minutes = 60\nconcurrency = 8\nprotected_namespaces = [\"a\", \"b\"]\n",
        )?;
        j.set_env("DEPLOY_SCALE_TO_ZERO_CONCURRENCY", "2");
        let (c, _) = Config::extract(Config::figment(Some(Path::new("scaler.toml")))).unwrap();
        assert_eq!(c.idle_minutes, 60);
        assert_eq!(c.concurrency, 2);
        assert_eq!(c.protected_namespaces, ["a", "b"]);
        Ok(())
    });
}

#[test]
fn idle_minutes_below_floor_is_raised_with_a_warning() {
    for given in ["0", "1", "4"] {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", given);
            let (c, w) = load().unwrap();
            assert_eq!(c.idle_minutes, 5);
            assert_eq!(w.len(), 1);
            assert!(
                w[0].0.contains("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES"),
                "{w:?}"
            );
            Ok(())
        });
    }
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", "5");
        let (c, w) = load().unwrap();
        assert_eq!((c.idle_minutes, w.len()), (5, 0));
        Ok(())
    });
}

#[test]
fn idle_minutes_not_an_integer_names_the_variable_and_value() {
    for given in ["abc", "1.5", "-3", "30m", "99999999999"] {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", given);
            let err = load().unwrap_err().to_string();
            assert!(err.contains("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES"), "{err}");
            assert!(err.contains(given), "{err}");
            Ok(())
        });
    }
}

#[test]
fn bool_forms() {
    let cases = [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("yes", true),
        ("on", true),
        ("false", false),
        ("False", false),
        ("0", false),
        ("no", false),
        ("off", false),
    ];
    for (given, expected) in cases {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_ENABLED", given);
            assert_eq!(load().unwrap().0.enabled, expected, "{given}");
            Ok(())
        });
    }
    for given in ["maybe", "2", "tru"] {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_ENABLED", given);
            let err = load().unwrap_err().to_string();
            assert!(
                err.contains("DEPLOY_SCALE_TO_ZERO_ENABLED") && err.contains(given),
                "{err}"
            );
            Ok(())
        });
    }
}

#[test]
fn out_of_range_values_name_key_value_and_range() {
    let cases = [
        ("DEPLOY_SCALE_TO_ZERO_INTERVAL_SECONDS", "9", "10 to 86400"),
        ("DEPLOY_SCALE_TO_ZERO_MAX_PER_TICK", "0", "1 to 100000"),
        ("DEPLOY_SCALE_TO_ZERO_CONCURRENCY", "0", "1 to 64"),
        ("DEPLOY_SCALE_TO_ZERO_CONCURRENCY", "65", "1 to 64"),
        (
            "DEPLOY_SCALE_TO_ZERO_DEFAULT_WAKE_REPLICAS",
            "0",
            "1 to 10000",
        ),
        (
            "DEPLOY_SCALE_TO_ZERO_MAX_CONSECUTIVE_FAILURES",
            "0",
            "1 to 10000",
        ),
        (
            "DEPLOY_SCALE_TO_ZERO_PROTECTED_NAMESPACES",
            "Kube_System",
            "namespaces",
        ),
    ];
    for (var, given, allowed) in cases {
        Jail::expect_with(|j| {
            j.set_env(var, given);
            let err = load().unwrap_err().to_string();
            assert!(
                err.contains(var) && err.contains(given) && err.contains(allowed),
                "{err}"
            );
            Ok(())
        });
    }
}

#[test]
fn unknown_keys_warn() {
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_ENABLE", "true");
        let (c, w) = load().unwrap();
        assert!(!c.enabled);
        assert!(
            w.iter()
                .any(|w| w.0.contains("DEPLOY_SCALE_TO_ZERO_ENABLE")),
            "{w:?}"
        );
        Ok(())
    });
}

#[test]
fn activity_source_defaults_to_none_and_keep_awake() {
    Jail::expect_with(|_| {
        let (c, _) = load().unwrap();
        assert_eq!(c.activity_source, ActivitySourceKind::None);
        assert_eq!(c.activity_unknown, UnknownActivity::KeepAwake);
        Ok(())
    });
}

#[test]
fn invalid_activity_settings_name_variable_value_and_what_is_allowed() {
    // (the variable, its value, a part of what is allowed); the Prometheus source's own keys
    // are tested in its crate.
    let cases = [
        (
            "DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE",
            "datadog",
            "none or prometheus",
        ),
        (
            "DEPLOY_SCALE_TO_ZERO_ACTIVITY_UNKNOWN",
            "ignore",
            "keep_awake or sleep",
        ),
    ];
    for (var, given, allowed) in cases {
        Jail::expect_with(|j| {
            j.set_env(var, given);
            let err = load().unwrap_err().to_string();
            assert!(
                err.contains(var) && err.contains(given) && err.contains(allowed),
                "{var}={given:?}: {err}"
            );
            Ok(())
        });
    }
}

#[test]
fn keys_a_host_names_are_not_unknown() {
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_ADAPTER_URL", "http://x");
        let (_, w) = Config::extract_with(Config::figment(None), &["adapter_url"]).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let (_, w) = load().unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        Ok(())
    });
}

#[test]
fn a_reader_reports_a_callers_rule_like_the_jobs() {
    let read = Reader::new(
        &Config::default(),
        Figment::new().merge(("extra_label", "0x")),
    );
    assert_eq!(read.string("extra_label").unwrap(), "0x");
    assert_eq!(
        read.invalid("extra_label", "a label").to_string(),
        "invalid DEPLOY_SCALE_TO_ZERO_EXTRA_LABEL (extra_label) = \"0x\" from key extra_label of \
         (&str, &str): expected a label"
    );
    let n: u8 = read.int("concurrency", 1, 64, "1 to 64").unwrap();
    assert_eq!(n, 4);
}

#[test]
fn a_host_figment_can_supply_values() {
    let fig = Figment::new()
        .merge(("enabled", true))
        .merge(("idle_minutes", 10));
    let c = Config::from_provider(fig).unwrap();
    assert!(c.enabled);
    assert_eq!(c.idle_minutes, 10);
    assert_eq!(c.max_per_tick, 50);
}

#[test]
fn empty_protected_namespaces_is_an_error_unless_none() {
    Jail::expect_with(|j| {
        for empty in ["", " ", ",", " , "] {
            j.set_env("DEPLOY_SCALE_TO_ZERO_PROTECTED_NAMESPACES", empty);
            let e = load().unwrap_err().to_string();
            assert!(
                e.contains("DEPLOY_SCALE_TO_ZERO_PROTECTED_NAMESPACES") && e.contains("none"),
                "{empty:?}: {e}"
            );
        }
        for none in ["none", " NONE "] {
            j.set_env("DEPLOY_SCALE_TO_ZERO_PROTECTED_NAMESPACES", none);
            let (c, _) = load().unwrap();
            assert!(c.protected_namespaces.is_empty(), "{none:?}");
        }
        Ok(())
    });
    Jail::expect_with(|j| {
        j.create_file("scaler.toml", "protected_namespaces = []\n")?;
        let e = Config::extract(Config::figment(Some(Path::new("scaler.toml"))))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("protected_namespaces") && e.contains("none"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn errors_name_the_variable_or_the_file_and_key_a_value_came_from() {
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_CONCURRENCY", "500");
        let err = load().unwrap_err().to_string();
        assert!(
            err.contains("from environment variable DEPLOY_SCALE_TO_ZERO_CONCURRENCY"),
            "{err}"
        );
        j.clear_env();
        j.create_file("scaler.toml", "concurrency = 500")?;
        let err = Config::extract(Config::figment(Some(Path::new("scaler.toml"))))
            .unwrap_err()
            .to_string();
        assert!(err.contains("from key concurrency in "), "{err}");
        assert!(err.contains("scaler.toml"), "{err}");
        Ok(())
    });
}

#[test]
fn idle_minutes_beyond_a_year_is_an_error_naming_the_maximum() {
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", "4294967295");
        let e = load().unwrap_err().to_string();
        assert!(
            e.contains("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES") && e.contains("525600"),
            "{e}"
        );
        j.set_env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", "525600");
        assert_eq!(load().unwrap().0.idle_minutes, IDLE_MINUTES_MAX);
        Ok(())
    });
}

#[test]
fn toml_syntax_error_is_one_line_naming_file_line_and_key() {
    Jail::expect_with(|j| {
        j.create_file(
            "scaler.toml",
            "enabled = true\nidle_minutes = 30\nconcurrency = = 4\n",
        )?;
        let e = Config::extract(Config::figment(Some(Path::new("scaler.toml"))))
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("scaler.toml"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("concurrency"), "{e}");
        Ok(())
    });
}

#[test]
fn a_host_section_and_env_prefix_feed_the_job_and_name_the_hosts_sources() {
    Jail::expect_with(|j| {
        j.create_file(
            "host.toml",
            "[database]\nurl = \"x\"\n[idle_scaler]\nenabled = true\nidle_minutes = 45\n",
        )?;
        // The host's figment: its own file, its own keys beside the job's section.
        let host = Figment::new().merge(Toml::file("host.toml"));
        j.set_env("MYHOST_SCALER_MAX_PER_TICK", "9");
        j.set_env("DEPLOY_SCALE_TO_ZERO_MAX_PER_TICK", "1"); // not the host's prefix: ignored
        let (c, w) = Config::extract_section(&host, "idle_scaler", "MYHOST_SCALER_", &[]).unwrap();
        assert!(c.enabled);
        assert_eq!((c.idle_minutes, c.max_per_tick), (45, 9));
        assert!(w.is_empty(), "{w:?}");

        j.set_env("MYHOST_SCALER_CONCURRENCY", "0");
        let err = Config::extract_section(&host, "idle_scaler", "MYHOST_SCALER_", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid MYHOST_SCALER_CONCURRENCY (concurrency) = 0 from environment variable MYHOST_SCALER_CONCURRENCY"),
            "{err}"
        );
        j.clear_env();
        j.create_file("host.toml", "[idle_scaler]\nidle_minutes = \"soon\"\n")?;
        let host = Figment::new().merge(Toml::file("host.toml"));
        let err = Config::extract_section(&host, "idle_scaler", "MYHOST_SCALER_", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("from key idle_scaler.idle_minutes in "),
            "{err}"
        );
        assert!(err.contains("host.toml"), "{err}");
        Ok(())
    });
}
