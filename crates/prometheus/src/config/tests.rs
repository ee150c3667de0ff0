//! The `prometheus_*` keys: loading them next to the job's, and each rule's error.
// figment::Jail fixes the closure's error type to figment::Error, which is large.
#![allow(clippy::result_large_err)]

use std::path::Path;

use figment::Jail;
use figment::providers::Format;
use idle_scaler_core::config::ConfigWarning;
use idle_scaler_core::{ActivitySourceKind, UnknownActivity};

use super::*;
use crate::presets::{DEFAULT_QUERY, ISTIO_QUERY, TRAEFIK_QUERY};

type Loaded = (Config, PrometheusConfig, Vec<ConfigWarning>);

/// What the binary does: the job's keys (naming ours as known), then ours from the same sources.
fn load_from(file: Option<&Path>) -> Result<Loaded, ConfigError> {
    let (job, warnings) = Config::extract_with(Config::figment(file), KEYS)?;
    let prometheus = PrometheusConfig::extract(Config::figment(file), &job)?;
    Ok((job, prometheus, warnings))
}

fn load() -> Result<Loaded, ConfigError> {
    load_from(None)
}

#[test]
fn defaults() {
    Jail::expect_with(|_| {
        let (_, c, w) = load().unwrap();
        assert_eq!(c, PrometheusConfig::default());
        assert_eq!(c.prometheus_query, DEFAULT_QUERY);
        assert_eq!(
            (
                c.prometheus_namespace_label.as_str(),
                c.prometheus_name_label.as_str()
            ),
            ("namespace", "ingress")
        );
        assert_eq!(c.timeout(), Duration::from_secs(5));
        assert!(w.is_empty(), "{w:?}");
        Ok(())
    });
}

#[test]
fn a_url_with_a_password_is_refused_without_showing_it() {
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "prometheus");
        j.set_env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
            "http://u:secret@prom",
        );
        let err = load().unwrap_err().to_string();
        assert!(
            err.contains("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL")
                && err.contains("http://u:<redacted>@prom")
                && err.contains("no credentials")
                && !err.contains("secret"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn the_url_rule_is_the_sources_own() {
    for (url, ok) in [
        ("http://prom:9090/prefix", true),
        ("http://[::1]:9090", true),
        ("http://prom:9090 x", false),
        ("http:///x", false),
        ("http://u:p@prom", false),
        ("https://prom.example:443", true),
        ("ftp://prom", false),
    ] {
        let config = PrometheusConfig {
            prometheus_url: url.into(),
            ..PrometheusConfig::default()
        };
        let read = Reader::new(&config, figment::Figment::new());
        assert_eq!(config.check_url_and_query(&read).is_ok(), ok, "{url}");
        assert_eq!(query_endpoint(url).is_ok(), ok, "{url}");
    }
}

#[test]
fn prometheus_settings_from_env() {
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "Prometheus");
        j.set_env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_UNKNOWN", "sleep");
        j.set_env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
            "http://prometheus.monitoring:9090/prom",
        );
        j.set_env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_QUERY",
            "max by (exported_namespace, service) (my_requests{service=~\"{names}\"}[{window}])",
        );
        j.set_env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAMESPACE_LABEL",
            "exported_namespace",
        );
        j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAME_LABEL", "service");
        j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_TIMEOUT_SECONDS", "12");
        let (job, c, w) = load().unwrap();
        assert_eq!(job.activity_source, ActivitySourceKind::Prometheus);
        assert_eq!(job.activity_unknown, UnknownActivity::Sleep);
        assert_eq!(c.prometheus_url, "http://prometheus.monitoring:9090/prom");
        assert!(c.prometheus_query.starts_with("max by (exported_namespace"));
        assert_eq!(c.prometheus_namespace_label, "exported_namespace");
        assert_eq!(c.prometheus_name_label, "service");
        assert_eq!(c.prometheus_timeout_seconds, 12);
        assert!(w.is_empty(), "no unknown-key warning: {w:?}");
        Ok(())
    });
}

#[test]
fn a_multi_line_template_from_toml() {
    Jail::expect_with(|j| {
        j.create_file(
            "scaler.toml",
            "activity_source = \"prometheus\"\nprometheus_url = \"http://127.0.0.1:9090\"\n\
             prometheus_query = '''\nsum by (namespace, ingress) (\n  rate(x{ingress=~\"{names}\"}[{window}])\n)\n'''\n",
        )?;
        let (c, w) = load_from(Some(Path::new("scaler.toml")))
            .map(|(_, c, w)| (c, w))
            .unwrap();
        assert!(
            c.prometheus_query.starts_with("sum by"),
            "{:?}",
            c.prometheus_query
        );
        assert!(w.is_empty(), "{w:?}");
        Ok(())
    });
}

#[test]
fn invalid_activity_settings_name_variable_value_and_what_is_allowed() {
    let prometheus = ("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "prometheus");
    let url = ("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL", "http://prom:9090");
    // (other variables set, the variable, its value, a part of what is allowed)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);
    // `activity_source` and `activity_unknown` are the job's keys, tested in the core crate.
    let cases: [Case; 12] = [
        (
            &[prometheus],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
            "",
            "https:// URL",
        ),
        (
            &[prometheus],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
            "ftp://prom",
            "https:// URL",
        ),
        (
            &[prometheus],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
            "prom:9090",
            "https:// URL",
        ),
        (
            &[prometheus],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
            "http://u@prom",
            "no credentials",
        ),
        (
            &[prometheus],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
            "http:///x",
            "with a host",
        ),
        (
            &[prometheus, url],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_QUERY",
            "up{job=~\"{namespace}\"}",
            "{namespaces}, {names} and {window}",
        ),
        (
            &[prometheus, url],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_QUERY",
            "{bogus}",
            "PromQL template",
        ),
        (
            &[],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_PRESET",
            "nginx",
            "ingress-nginx (the default), istio or traefik",
        ),
        (
            &[prometheus, url],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_CA_FILE",
            "/etc/ca.pem",
            "verifies an https:// Prometheus",
        ),
        (
            &[prometheus, url],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BASIC_AUTH_USERNAME",
            "scraper",
            "needs both a username and a password file",
        ),
        (
            &[],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_NAME_LABEL",
            "0ingress",
            "label name",
        ),
        (
            &[],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_TIMEOUT_SECONDS",
            "61",
            "1 to 60",
        ),
    ];
    for (env, var, given, allowed) in cases {
        Jail::expect_with(|j| {
            for (k, v) in env {
                j.set_env(k, v);
            }
            j.set_env(var, given);
            let err = load().unwrap_err().to_string();
            assert!(
                // Strings are quoted in the message, so look for the part without quotes.
                err.contains(var)
                    && err.contains(given.trim().split('"').next().unwrap_or_default())
                    && err.contains(allowed),
                "{var}={given:?}: {err}"
            );
            Ok(())
        });
    }
}

#[test]
fn prometheus_url_and_query_are_not_checked_without_the_source() {
    Jail::expect_with(|j| {
        j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL", "https://prom");
        j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_QUERY", "{bogus}");
        assert!(load().is_ok());
        Ok(())
    });
}

#[test]
fn placeholders_are_bare_identifiers_in_braces_only() {
    let found: Vec<_> = placeholders(DEFAULT_QUERY).collect();
    assert!(
        found.iter().all(|p| QUERY_PLACEHOLDERS.contains(p)),
        "{found:?}"
    );
    for p in QUERY_PLACEHOLDERS {
        assert!(found.contains(&p), "the default uses {{{p}}}");
    }
    assert_eq!(
        placeholders("a{b=\"c\"} {} {x_1} {y").collect::<Vec<_>>(),
        ["x_1"]
    );
}

#[test]
fn the_source_reads_the_same_host_section_and_prefix_as_the_job() {
    Jail::expect_with(|j| {
        j.create_file(
            "host.toml",
            "[idle_scaler]\nenabled = true\nactivity_source = \"prometheus\"\n\
             prometheus_url = \"http://prom:9090\"\nprometheus_name_label = \"9bad\"\n",
        )?;
        let host = figment::Figment::new().merge(figment::providers::Toml::file("host.toml"));
        let job =
            Config::from_section(&host, "idle_scaler", "MYHOST_SCALER_", KEYS).expect("job config");
        assert_eq!(job.activity_source, ActivitySourceKind::Prometheus);
        let err = PrometheusConfig::from_section(&host, "idle_scaler", "MYHOST_SCALER_", &job)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid MYHOST_SCALER_PROMETHEUS_NAME_LABEL"),
            "{err}"
        );
        assert!(
            err.contains("from key idle_scaler.prometheus_name_label in "),
            "{err}"
        );
        j.set_env("MYHOST_SCALER_PROMETHEUS_NAME_LABEL", "host");
        let prometheus =
            PrometheusConfig::from_section(&host, "idle_scaler", "MYHOST_SCALER_", &job)
                .expect("env overrides the file");
        assert_eq!(prometheus.prometheus_url, "http://prom:9090");
        assert_eq!(prometheus.prometheus_name_label, "host");
        Ok(())
    });
}

#[test]
fn a_preset_sets_the_query_and_labels_that_are_not_set_themselves() {
    for (preset, query, namespace, name) in [
        (
            "istio",
            ISTIO_QUERY,
            "destination_workload_namespace",
            "destination_workload",
        ),
        ("Traefik", TRAEFIK_QUERY, "namespace", "service_name"),
        ("ingress-nginx", DEFAULT_QUERY, "namespace", "ingress"),
    ] {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "prometheus");
            j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL", "http://prom:9090");
            j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_PRESET", preset);
            let (_, c, w) = load().unwrap();
            assert_eq!(c.prometheus_query, query, "{preset}");
            assert_eq!(c.prometheus_namespace_label, namespace, "{preset}");
            assert_eq!(c.prometheus_name_label, name, "{preset}");
            assert!(w.is_empty(), "{w:?}");
            Ok(())
        });
    }
    Jail::expect_with(|j| {
        j.create_file(
            "scaler.toml",
            "prometheus_preset = \"istio\"\nprometheus_name_label = \"destination_app\"\n",
        )?;
        let (_, c, _) = load_from(Some(Path::new("scaler.toml"))).unwrap();
        assert_eq!(c.prometheus_preset, Preset::Istio);
        assert_eq!(c.prometheus_query, ISTIO_QUERY);
        assert_eq!(
            c.prometheus_namespace_label,
            "destination_workload_namespace"
        );
        assert_eq!(c.prometheus_name_label, "destination_app", "a set key wins");
        Ok(())
    });
}

fn with_prometheus(j: &mut Jail, url: &str) {
    j.set_env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "prometheus");
    j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL", url);
}

#[test]
fn credentials_and_headers_from_env_and_from_a_toml_table() {
    Jail::expect_with(|j| {
        with_prometheus(j, "https://mimir.example/prometheus");
        j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_CA_FILE", "/etc/ca/ca.pem");
        j.set_env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BEARER_TOKEN_FILE",
            "/run/token",
        );
        j.set_env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_HEADERS",
            "X-Scope-OrgID=team-a, X-Api-Key = k3y==",
        );
        let (_, c, w) = load().unwrap();
        assert!(w.is_empty(), "every new key is known: {w:?}");
        assert_eq!(c.prometheus_ca_file, "/etc/ca/ca.pem");
        assert_eq!(c.prometheus_bearer_token_file, "/run/token");
        assert_eq!(
            c.prometheus_headers.0,
            [("X-Api-Key", "k3y=="), ("X-Scope-OrgID", "team-a")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into()
        );
        Ok(())
    });
    Jail::expect_with(|j| {
        j.create_file(
            "scaler.toml",
            "activity_source = \"prometheus\"\nprometheus_url = \"https://prom\"\n\
             prometheus_basic_auth_username = \"scraper\"\n\
             prometheus_basic_auth_password_file = \"/run/password\"\n\
             [prometheus_headers]\n\"X-Scope-OrgID\" = \"a|b\"\n",
        )?;
        let (_, c, w) = load_from(Some(Path::new("scaler.toml"))).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.prometheus_basic_auth_username, "scraper");
        assert_eq!(c.prometheus_basic_auth_password_file, "/run/password");
        assert_eq!(c.prometheus_headers.0.get("X-Scope-OrgID").unwrap(), "a|b");
        Ok(())
    });
}

#[test]
fn one_kind_of_credentials_and_no_second_authorization() {
    for (extra, key, allowed) in [
        (
            &[
                ("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BEARER_TOKEN_FILE", "/t"),
                ("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BASIC_AUTH_USERNAME", "u"),
                (
                    "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BASIC_AUTH_PASSWORD_FILE",
                    "/p",
                ),
            ][..],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BEARER_TOKEN_FILE",
            "one kind of credentials",
        ),
        (
            &[(
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BASIC_AUTH_PASSWORD_FILE",
                "/p",
            )][..],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BASIC_AUTH_PASSWORD_FILE",
            "both a username and a password file",
        ),
        (
            &[
                ("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BEARER_TOKEN_FILE", "/t"),
                (
                    "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_HEADERS",
                    "authorization=Bearer s3cret",
                ),
            ][..],
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_HEADERS",
            "no Authorization header",
        ),
    ] {
        Jail::expect_with(|j| {
            with_prometheus(j, "http://prom:9090");
            for (k, v) in extra {
                j.set_env(k, v);
            }
            let err = load().unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(allowed), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
            Ok(())
        });
    }
}

#[test]
fn a_bad_header_is_named_without_its_value() {
    for (given, shown) in [
        (
            "Authorization: Bearer s3cret",
            "\"Authorization\" followed by ':'",
        ),
        (
            "Authorization: Bearer s3cret==",
            "\"Authorization\" followed by ':'",
        ),
        ("X Team=s3cret", "\"X\" followed by ' '"),
        ("X-Scope-OrgID=", "\"X-Scope-OrgID\" = <redacted> (empty"),
        ("X-Token=s3cret\u{7f}", "\"X-Token\" = <redacted>"),
        ("Host=s3cret", "\"Host\", which the client sets itself"),
        ("X-A=s3cret,x-a=s3cret", "\"x-a\" given twice"),
    ] {
        Jail::expect_with(|j| {
            j.set_env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_HEADERS", given);
            let err = load().unwrap_err().to_string();
            assert!(
                err.contains("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_HEADERS")
                    && err.contains(shown)
                    && err.contains("Name=value pairs"),
                "{given:?}: {err}"
            );
            assert!(!err.contains("s3cret"), "{given:?}: {err}");
            Ok(())
        });
    }
}

#[test]
fn redacted_and_debug_hide_header_values_but_the_tenant() {
    let config = PrometheusConfig {
        prometheus_url: "https://u:pw@prom".into(),
        prometheus_bearer_token_file: "/run/token".into(),
        prometheus_headers: Headers(
            [
                ("X-Scope-OrgID", "team-a"),
                ("Thanos-Tenant", "team-b"),
                ("X-Api-Key", "s3cret"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        ),
        ..PrometheusConfig::default()
    };
    let shown = config.redacted();
    assert_eq!(shown.prometheus_headers.0["Thanos-Tenant"], "team-b");
    assert_eq!(shown.prometheus_url, "https://u:<redacted>@prom");
    assert_eq!(shown.prometheus_headers.0["X-Api-Key"], "<redacted>");
    assert_eq!(shown.prometheus_headers.0["X-Scope-OrgID"], "team-a");
    assert_eq!(
        shown.prometheus_bearer_token_file, "/run/token",
        "a path is no secret"
    );
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("s3cret") && debug.contains("team-a"),
        "{debug}"
    );
}

#[test]
fn every_key_is_in_the_readme_table_with_its_variable() {
    let readme = include_str!("../../../../README.md");
    for key in KEYS {
        let env = format!("`DEPLOY_SCALE_TO_ZERO_{}`", key.to_uppercase());
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with(&format!("| `{key}` | {env} |"))),
            "README's configuration table lacks {key} ({env})"
        );
    }
}
