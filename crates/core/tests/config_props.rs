//! Property tests of configuration loading: any value of any variable never panics, and
//! either loads or gives an error that names that variable (docs/configuration.md: every
//! invalid value is a startup error naming the key). `provider_id` parsing has its own
//! property tests next to the parser (`target.rs`).
// figment::Jail fixes the closure's error type to figment::Error, which is large.
#![allow(clippy::result_large_err)]

use figment::Jail;
use idle_scaler_core::config::{SETTINGS, Setting};
use idle_scaler_core::{Config, ConfigError};
use proptest::prelude::*;

/// The Prometheus source's variables (its crate depends on this one, so they are named here).
const PROMETHEUS_VARIABLES: [&str; 5] = [
    "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
    "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_QUERY",
    "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAMESPACE_LABEL",
    "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAME_LABEL",
    "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_TIMEOUT_SECONDS",
];

/// Every variable the configuration reads: the job's table, then the Prometheus source's.
fn variables() -> Vec<String> {
    SETTINGS
        .iter()
        .map(Setting::env)
        .chain(PROMETHEUS_VARIABLES.map(str::to_owned))
        .collect()
}

/// Values a person or a templating mistake could put there: numbers of every size and sign,
/// booleans in every spelling, figment's own syntax (arrays, tables, quoted strings), lists,
/// URLs, and arbitrary printable text.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-5i64..400).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        prop::sample::select(vec![
            "",
            " ",
            "true",
            "false",
            "TRUE",
            "yes",
            "no",
            "on",
            "off",
            "1",
            "0",
            "-0",
            "1e3",
            "0x10",
            "NaN",
            "inf",
            "[]",
            "[1, 2]",
            "{}",
            "{a = 1}",
            "\"quoted\"",
            "'x'",
            ",",
            ",,",
            "a,,b",
            "kube-system,apps",
            "none",
            "prometheus",
            "keep_awake",
            "sleep",
            "http://127.0.0.1:9090",
            "http://",
            "ftp://x",
            "{namespaces}",
            "{names}{window}",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,40}",
        "\\PC{0,40}",
    ]
}

/// The input that made figment panic: a quoted value with non-ASCII text before a backslash.
#[test]
fn a_quoted_non_ascii_value_with_a_backslash_is_an_error_not_a_panic() {
    let mut outcome = None;
    Jail::expect_with(|jail| {
        jail.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAME_LABEL", "\"é\\n\"");
        outcome = Some(Config::load(None));
        Ok(())
    });
    let e = outcome.expect("ran").expect_err("refused");
    assert!(
        e.to_string()
            .contains("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAME_LABEL"),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_value_of_any_variable_loads_or_names_the_variable(
        variable in prop::sample::select(variables()),
        value in value(),
    ) {
        // Jail: a private environment and working directory, restored afterwards.
        let mut outcome = None;
        Jail::expect_with(|jail| {
            jail.set_env(&variable, &value);
            outcome = Some(Config::load(None));
            Ok(())
        });
        match outcome.expect("ran") {
            Ok(_) => {}
            Err(e @ ConfigError::Invalid { .. }) => {
                prop_assert!(
                    e.to_string().contains(&variable),
                    "{variable}={value:?} gave an error not naming it: {e}"
                );
            }
            Err(e) => {
                prop_assert!(
                    e.to_string().contains(&variable)
                        || e.to_string().to_lowercase().contains(
                            &variable["DEPLOY_SCALE_TO_ZERO_".len()..].to_lowercase()
                        ),
                    "{variable}={value:?} gave an error naming neither variable nor key: {e}"
                );
            }
        }
    }

    #[test]
    fn all_variables_at_once_never_panic(values in prop::collection::vec(value(), variables().len())) {
        Jail::expect_with(|jail| {
            for (variable, value) in variables().iter().zip(&values) {
                jail.set_env(variable, value);
            }
            let _ = Config::load(None);
            Ok(())
        });
    }
}
