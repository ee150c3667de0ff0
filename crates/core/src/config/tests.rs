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
fn parking_defaults_to_off_and_takes_endpointslices_in_any_case() {
    Jail::expect_with(|j| {
        assert_eq!(load().unwrap().0.parking, Parking::Off);
        j.set_env("DEPLOY_SCALE_TO_ZERO_PARKING", "EndpointSlices");
        assert_eq!(load().unwrap().0.parking, Parking::EndpointSlices);
        Ok(())
    });
}

#[test]
fn an_invalid_parking_names_variable_key_value_and_what_is_allowed() {
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_PARKING", "endpoints");
        let err = load().unwrap_err().to_string();
        for part in [
            "DEPLOY_SCALE_TO_ZERO_PARKING",
            "(parking)",
            "\"endpoints\"",
            "off or endpointslices",
        ] {
            assert!(err.contains(part), "no {part} in {err}");
        }
        Ok(())
    });
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

// The table: both paths hold the same rules, the defaults pass them, the README lists them.

/// Values `rule` refuses: just outside each bound, and text of the wrong kind.
fn refused(rule: Rule) -> Vec<String> {
    let texts = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect();
    match rule {
        Rule::Int { min, max } => vec![(min - 1).to_string(), (max + 1).to_string(), "ten".into()],
        Rule::Floored { max, .. } => vec!["-1".into(), (max + 1).to_string(), "ten".into()],
        Rule::Bool => texts(&["maybe", "2"]),
        Rule::OneOf(_) => texts(&["datadog", "none,sleep"]),
        Rule::Namespaces => texts(&["Kube_System", "ops,-bad", "", ","]),
        Rule::Clusters => texts(&["East=/k.yaml", "east=", "east=#", "default=/k.yaml"]),
        Rule::TimeZone => texts(&["Mars/Olympus", "+02:00", ""]),
    }
}

/// Values `rule` takes: each bound, each word.
fn accepted(rule: Rule) -> Vec<String> {
    let texts = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect();
    match rule {
        Rule::Int { min, max } | Rule::Floored { floor: min, max } => {
            vec![min.to_string(), max.to_string()]
        }
        Rule::Bool => texts(&["true", "false"]),
        Rule::OneOf(words) => texts(words),
        Rule::Namespaces => texts(&["ops, billing", "a"]),
        Rule::Clusters => texts(&["east=/k.yaml#ctx", "west=#w"]),
        Rule::TimeZone => texts(&["UTC", "Europe/Berlin"]),
    }
}

/// `text` as a field of a `Config` built in code holds it (JSON, the form serde reads).
fn as_built(rule: Rule, text: &str) -> serde_json::Value {
    use serde_json::json;
    match rule {
        Rule::Int { .. } | Rule::Floored { .. } => text
            .parse::<i64>()
            .map_or_else(|_| json!(text), |n| json!(n)),
        Rule::Bool => text
            .parse::<bool>()
            .map_or_else(|_| json!(text), |b| json!(b)),
        Rule::OneOf(_) | Rule::TimeZone => json!(text),
        Rule::Namespaces => json!(text.split(',').map(str::trim).collect::<Vec<_>>()),
        Rule::Clusters => {
            let mut clusters = serde_json::Map::new();
            for entry in text.split(',') {
                let (name, how) = entry.split_once('=').expect("an entry");
                let (file, context) = how.split_once('#').unwrap_or((how, ""));
                let mut cluster = serde_json::Map::new();
                for (field, v) in [("kubeconfig", file), ("context", context)] {
                    if !v.is_empty() {
                        cluster.insert(field.into(), json!(v));
                    }
                }
                clusters.insert(name.into(), cluster.into());
            }
            clusters.into()
        }
    }
}

/// A `Config` built in code with `key` set to `value`, or None when its type cannot hold it.
fn built_with(key: &str, value: serde_json::Value) -> Option<Config> {
    let mut config = serde_json::to_value(Config::default()).expect("serializes");
    config[key] = value;
    serde_json::from_value(config).ok()
}

fn load_with_env(
    setting: &Setting,
    text: &str,
) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let mut outcome = None;
    Jail::expect_with(|j| {
        j.set_env(setting.env(), text);
        outcome = Some(load());
        Ok(())
    });
    outcome.expect("ran")
}

/// The key, variable and allowed text of an `Invalid` error.
fn named(e: &ConfigError) -> (&'static str, &str, &'static str) {
    match e {
        ConfigError::Invalid {
            key, env, allowed, ..
        } => (key, env, allowed),
        ConfigError::Source(s) => panic!("not a rule's error: {s}"),
    }
}

#[test]
fn the_environment_and_validate_refuse_the_same_values_in_the_same_words() {
    let mut validated = std::collections::BTreeSet::new();
    for setting in &SETTINGS {
        let env = setting.env();
        for bad in refused(setting.rule) {
            let from_env = load_with_env(setting, &bad).expect_err(&format!("{env}={bad:?}"));
            assert_eq!(
                named(&from_env),
                (setting.key, env.as_str(), setting.allowed),
                "{env}={bad:?}: {from_env}"
            );
            // A type that cannot hold the value leaves validate nothing to refuse.
            let Some(config) = built_with(setting.key, as_built(setting.rule, &bad)) else {
                continue;
            };
            let built = config
                .validate()
                .expect_err(&format!("{} = {bad:?}", setting.key));
            // A table of clusters is refused in the words for a table, as from a file.
            let allowed = if setting.rule == Rule::Clusters {
                super::clusters::ALLOWED_TABLE
            } else {
                setting.allowed
            };
            assert_eq!(
                named(&built),
                (setting.key, env.as_str(), allowed),
                "{built}"
            );
            assert!(
                built
                    .to_string()
                    .contains("from the configuration built in code")
            );
            validated.insert(setting.key);
        }
        for good in accepted(setting.rule) {
            let from_env = load_with_env(setting, &good).map(drop);
            let built = built_with(setting.key, as_built(setting.rule, &good))
                .unwrap_or_else(|| panic!("{} = {good:?} is typed", setting.key))
                .validate();
            // Alone, `default_cluster = false` serves no cluster: a rule between two keys.
            let conflict = setting.key == "default_cluster" && good == "false";
            match (from_env, built) {
                (Ok(()), Ok(())) if !conflict => {}
                (Err(a), Err(b)) if conflict => {
                    assert_eq!(named(&a), named(&b));
                    assert_eq!(named(&a).2, super::clusters::ALLOWED_DEFAULT);
                }
                (a, b) => panic!("{env}={good:?}: from the environment {a:?}, built {b:?}"),
            }
        }
        if let Rule::Floored { floor, .. } = setting.rule {
            let below = (floor - 1).to_string();
            let (config, warnings) = load_with_env(setting, &below).expect("raised");
            assert_eq!((i64::from(config.idle_minutes), warnings.len()), (floor, 1));
            let built = built_with(setting.key, as_built(setting.rule, &below)).expect("typed");
            let e = built.validate().expect_err("refused in code");
            assert_eq!(named(&e).2, setting.allowed);
        }
    }
    // Every rule the field types leave open reaches validate.
    for setting in SETTINGS
        .iter()
        .filter(|s| !matches!(s.rule, Rule::Bool | Rule::OneOf(_)))
    {
        assert!(validated.contains(setting.key), "{}", setting.key);
    }
}

#[test]
fn the_table_holds_every_field_and_its_words_state_the_bounds() {
    let fields = serde_json::to_value(Config::default()).expect("serializes");
    let mut fields: Vec<&String> = fields.as_object().expect("an object").keys().collect();
    let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
    fields.sort();
    keys.sort_unstable();
    assert_eq!(fields, keys);
    for s in &SETTINGS {
        if let Rule::Int { min, max } | Rule::Floored { floor: min, max } = s.rule {
            assert!(
                s.allowed.contains(&format!("from {min} to {max}")),
                "{}: {}",
                s.key,
                s.allowed
            );
        }
    }
}

#[test]
fn each_default_written_in_the_environment_loads_as_the_default() {
    Jail::expect_with(|j| {
        for s in &SETTINGS {
            j.set_env(s.env(), s.default);
        }
        let (c, w) = load().unwrap();
        assert_eq!(c, Config::default());
        assert!(w.is_empty(), "{w:?}");
        Ok(())
    });
}

#[test]
fn the_readme_has_a_row_for_every_key_with_its_variable_default_and_bounds() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    for s in &SETTINGS {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", s.key)))
            .unwrap_or_else(|| panic!("README.md has no row for {}", s.key));
        let cells: Vec<&str> = row.split(" | ").collect();
        assert_eq!(cells[1], format!("`{}`", s.env()), "{row}");
        assert_eq!(cells[2].replace('`', ""), s.default, "{row}");
        let rule = cells[3..].join(" | ");
        let words: Vec<String> = match s.rule {
            Rule::Int { min, max } => vec![format!("{min} to {max}")],
            Rule::Floored { floor, max } => vec![max.to_string(), format!("below {floor}")],
            Rule::OneOf(words) => words.iter().map(|w| format!("`{w}`")).collect(),
            Rule::Bool | Rule::Namespaces | Rule::Clusters | Rule::TimeZone => Vec::new(),
        };
        for word in words {
            assert!(rule.contains(&word), "{}: no {word:?} in {rule}", s.key);
        }
    }
}

#[test]
fn the_adaptive_policy_keys_default_to_todays_behaviour_and_name_a_bad_zone() {
    figment::Jail::expect_with(|jail| {
        let c = load().unwrap().0;
        assert_eq!(c.policy, crate::SleepPolicy::Fixed);
        assert_eq!((c.prewarm_minutes, c.max_keep_minutes), (5, 120));
        assert_eq!(c.time_zone(), chrono_tz::Tz::UTC);
        jail.set_env("DEPLOY_SCALE_TO_ZERO_POLICY", "Adaptive");
        jail.set_env("DEPLOY_SCALE_TO_ZERO_TIMEZONE", "europe/berlin");
        let c = load().unwrap().0;
        assert_eq!(c.policy, crate::SleepPolicy::Adaptive);
        assert_eq!(c.timezone, "Europe/Berlin");
        jail.set_env("DEPLOY_SCALE_TO_ZERO_TIMEZONE", "Mars/Olympus");
        let e = load().unwrap_err().to_string();
        assert!(
            e.contains("DEPLOY_SCALE_TO_ZERO_TIMEZONE") && e.contains("Mars/Olympus"),
            "{e}"
        );
        Ok(())
    });
}
