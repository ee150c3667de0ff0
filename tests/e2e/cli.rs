//! Command-line behaviour: bad input, secrets, the demo.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{Daemon, command, database_url, http, run};

fn assert_one_line_error(out: &crate::support::Output, needle: &str) {
    assert_ne!(
        out.code,
        Some(0),
        "expected failure:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.code.is_some(), "killed by a signal:\n{}", out.stderr);
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("backtrace"),
        "{}",
        out.stderr
    );
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains(needle),
        "first line {first:?} should name {needle:?}; stderr:\n{}",
        out.stderr
    );
}

#[test]
fn unknown_flag_is_a_short_error() {
    let cases = [
        (&["tick", "--frobnicate"][..], "--frobnicate"),
        (&["snooze"], "snooze"),
        (&["wake"], "<ID>"),
    ];
    for (args, needle) in cases {
        let out = run(command(args));
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert_one_line_error(&out, needle);
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
    }
    let help = run(command(&["--help"]));
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("Usage"), "{}", help.stdout);
}

#[test]
fn invalid_environment_values_name_variable_and_value() {
    let cases = [
        (
            "DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES",
            "ten",
            "DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES",
        ),
        (
            "DEPLOY_SCALE_TO_ZERO_CONCURRENCY",
            "100",
            "DEPLOY_SCALE_TO_ZERO_CONCURRENCY",
        ),
        (
            "DEPLOY_SCALE_TO_ZERO_ENABLED",
            "perhaps",
            "DEPLOY_SCALE_TO_ZERO_ENABLED",
        ),
        (
            "IDLE_SCALER_LISTEN_ADDR",
            "nine-thousand",
            "IDLE_SCALER_LISTEN_ADDR",
        ),
        ("IDLE_SCALER_LOG_FORMAT", "xml", "IDLE_SCALER_LOG_FORMAT"),
        (
            "IDLE_SCALER_PROBE_LISTEN_ADDR",
            "healthz",
            "IDLE_SCALER_PROBE_LISTEN_ADDR",
        ),
        // The drain deadline must come before the 25 s grace ends.
        (
            "IDLE_SCALER_HTTP_DRAIN_SECONDS",
            "25",
            "IDLE_SCALER_HTTP_DRAIN_SECONDS",
        ),
        // Its eight ports would pass 65535.
        (
            "IDLE_SCALER_PARKING_LISTEN_ADDR",
            "0.0.0.0:65530",
            "IDLE_SCALER_PARKING_LISTEN_ADDR",
        ),
        (
            "IDLE_SCALER_WAKER_SERVICE",
            "waker",
            "IDLE_SCALER_WAKER_SERVICE",
        ),
        (
            "IDLE_SCALER_WAKER_ADDRESSES",
            "10.0.0.7",
            "IDLE_SCALER_WAKER_ADDRESSES",
        ),
        ("IDLE_SCALER_ROUTE_INDEX", "yes", "IDLE_SCALER_ROUTE_INDEX"),
    ];
    for (var, value, needle) in cases {
        let mut cmd = command(&["config"]);
        cmd.env(var, value);
        let out = run(cmd);
        assert_eq!(out.code, Some(1), "{var}={value}: {}", out.stderr);
        assert_one_line_error(&out, needle);
        assert!(out.stderr.contains(value), "{}", out.stderr);
    }
}

#[test]
fn unreachable_database_names_host_and_port_not_the_password() {
    let mut cmd = command(&["status"]);
    cmd.env(
        "DATABASE_URL",
        "postgres://app:hunter2secret@127.0.0.1:1/platform",
    );
    let started = std::time::Instant::now();
    let out = run(cmd);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_one_line_error(&out, "127.0.0.1");
    assert!(out.stderr.contains('1'), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2secret") && !out.stdout.contains("hunter2secret"));
}

#[test]
fn missing_database_url_is_named() {
    let out = run(command(&["status"]));
    assert_one_line_error(&out, "DATABASE_URL");
}

#[test]
fn malformed_id_is_rejected_before_any_connection() {
    let mut cmd = command(&["wake", "not-a-uuid"]);
    cmd.env("DATABASE_URL", "postgres://app@127.0.0.1:1/platform");
    let out = run(cmd);
    assert_one_line_error(&out, "not-a-uuid");
}

#[test]
fn config_redacts_secrets() {
    let mut cmd = command(&["config"]);
    cmd.env(
        "DATABASE_URL",
        "postgres://app:hunter2secret@db.internal:5432/platform",
    )
    .env("IDLE_SCALER_WAKE_TOKEN", "tok-very-secret-0123456789")
    .env("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", "2");
    let out = run(cmd);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !all.contains("hunter2secret") && !all.contains("tok-very-secret"),
        "{all}"
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(
        v["database_url"],
        "postgres://app:<redacted>@db.internal:5432/platform"
    );
    assert_eq!(v["job"]["idle_minutes"], 5);
    assert!(out.stderr.contains("below the floor"), "{}", out.stderr);
}

#[test]
fn the_listen_backlog_follows_the_connection_cap_unless_set() {
    let config = |vars: &[(&str, &str)]| {
        let mut cmd = command(&["config"]);
        cmd.envs(vars.iter().copied());
        let out = run(cmd);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        serde_json::from_str::<serde_json::Value>(&out.stdout).expect("JSON")
    };
    let v = config(&[]);
    assert_eq!(v["http_listen_backlog"], 512);
    assert_eq!(v["http_drain_seconds"], 20);
    assert_eq!(v["probe_listen_addr"], "0.0.0.0:9091");
    let v = config(&[("IDLE_SCALER_HTTP_MAX_CONNECTIONS", "1000")]);
    assert_eq!(v["http_listen_backlog"], 1000);
    let v = config(&[
        ("IDLE_SCALER_HTTP_MAX_CONNECTIONS", "1000"),
        ("IDLE_SCALER_HTTP_LISTEN_BACKLOG", "64"),
        ("IDLE_SCALER_PROBE_LISTEN_ADDR", "off"),
    ]);
    assert_eq!(v["http_listen_backlog"], 64);
    assert_eq!(v["probe_listen_addr"], "off");

    // Past the kernel's cap: said at startup, not silently cut.
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("Linux")
        .trim()
        .parse()
        .expect("a number");
    if somaxconn >= 65_535 {
        return; // no backlog the setting allows is past it
    }
    let mut cmd = command(&["config"]);
    cmd.env(
        "IDLE_SCALER_HTTP_LISTEN_BACKLOG",
        (somaxconn + 1).to_string(),
    );
    let out = run(cmd);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("net.core.somaxconn"), "{}", out.stderr);
}

#[test]
fn config_shows_where_parked_slices_point() {
    let config = |vars: &[(&str, &str)]| {
        let mut cmd = command(&["config"]);
        cmd.envs(vars.iter().copied());
        let out = run(cmd);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        serde_json::from_str::<serde_json::Value>(&out.stdout).expect("JSON")
    };
    // In the shipped Deployment: the Service `idle-scaler` of the pod's own namespace.
    let v = config(&[("POD_NAMESPACE", "platform-idle-scaler")]);
    assert_eq!(v["parking_listen_addr"], "0.0.0.0:8081");
    assert_eq!(
        v["waker_addresses"],
        "service platform-idle-scaler/idle-scaler"
    );
    let v = config(&[
        ("IDLE_SCALER_PARKING_LISTEN_ADDR", "off"),
        (
            "IDLE_SCALER_WAKER_ADDRESSES",
            "10.0.0.7:9000,[fd00::7]:9000",
        ),
    ]);
    assert_eq!(v["parking_listen_addr"], "off");
    assert_eq!(v["waker_addresses"], "static 10.0.0.7:9000,[fd00::7]:9000");
    assert_eq!(config(&[])["waker_addresses"], "unset");
    assert_eq!(config(&[])["route_index"], "on");
    assert_eq!(
        config(&[("IDLE_SCALER_ROUTE_INDEX", "off")])["route_index"],
        "off"
    );
}

#[test]
fn config_shows_prometheus_credential_files_and_the_tenant_but_no_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-prom-very-secret").expect("write");
    let mut cmd = command(&["config"]);
    cmd.env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "prometheus")
        .env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
            "https://mimir.example/prometheus",
        )
        .env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_PRESET", "istio")
        .env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BEARER_TOKEN_FILE",
            &token_file,
        )
        .env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_HEADERS",
            "X-Scope-OrgID=team-a,X-Api-Key=key-very-secret",
        );
    let out = run(cmd);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !all.contains("tok-prom-very-secret") && !all.contains("key-very-secret"),
        "{all}"
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let job = &v["job"];
    assert_eq!(
        job["prometheus_bearer_token_file"],
        token_file.display().to_string()
    );
    assert_eq!(job["prometheus_headers"]["X-Scope-OrgID"], "team-a");
    assert_eq!(job["prometheus_headers"]["X-Api-Key"], "<redacted>");
    assert_eq!(job["prometheus_preset"], "istio");
    assert_eq!(job["prometheus_name_label"], "destination_workload");

    // Both kinds of credentials: a one-line startup error naming the variable.
    let mut both = command(&["config"]);
    both.env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "prometheus")
        .env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL", "http://prom:9090")
        .env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BEARER_TOKEN_FILE",
            &token_file,
        )
        .env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BASIC_AUTH_USERNAME", "u")
        .env(
            "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BASIC_AUTH_PASSWORD_FILE",
            &token_file,
        );
    let out = run(both);
    assert_one_line_error(&out, "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_BEARER_TOKEN_FILE");
    assert!(
        !out.stderr.contains("tok-prom-very-secret"),
        "{}",
        out.stderr
    );
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn secrets_never_reach_the_logs(_: PgPoolOptions, opts: PgConnectOptions) {
    const PASSWORD: &str = "pw-Zq81-never-log-me";
    const TOKEN: &str = "tok-Zq81-never-log-me";
    let fake = idle_scaler_testkit::fake_kube::FakeApiServer::start().await;
    let (_dir, kc) = crate::support::kubeconfig(&fake.url());
    let mut cmd = command(&["run"]);
    cmd.env("DATABASE_URL", database_url(&opts, Some(PASSWORD)))
        .env("KUBECONFIG", &kc)
        .env("IDLE_SCALER_WAKE_TOKEN", TOKEN)
        .env("DEPLOY_SCALE_TO_ZERO_ENABLED", "true")
        .env("RUST_LOG", "trace");
    let mut daemon = Daemon::start(cmd).await;
    let id = uuid::Uuid::new_v4();
    http(
        daemon.addr,
        "POST",
        &format!("/v1/deployments/{id}/wake"),
        Some("wrong"),
    )
    .await;
    http(
        daemon.addr,
        "POST",
        &format!("/v1/deployments/{id}/wake"),
        Some(TOKEN),
    )
    .await;
    http(daemon.addr, "GET", "/readyz", None).await;
    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
    let logs = daemon.output();
    assert!(logs.lines().count() > 5, "expected trace logs:\n{logs}");
    assert!(!logs.contains(PASSWORD), "password leaked:\n{logs}");
    assert!(!logs.contains(TOKEN), "token leaked:\n{logs}");
}

#[cfg(feature = "demo")]
#[test]
fn demo_runs_to_completion_with_nothing_installed() {
    let mut cmd = command(&["demo"]);
    cmd.env("IDLE_SCALER_LISTEN_ADDR", "127.0.0.1:0");
    cmd.env("IDLE_SCALER_WAKER_LISTEN_ADDR", "127.0.0.1:0");
    let started = std::time::Instant::now();
    let out = run(cmd);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(out.stdout.contains("HTTP 200"), "{}", out.stdout);
    // Wake on request: the visitor's request through the waker is answered once ready.
    assert!(
        out.stdout.contains("HTTP/1.1 307 Temporary Redirect")
            && out.stdout.contains("location: /shop?item=1")
            && out.stdout.contains("replicas demo/idle-03: 0 -> 1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("instant_deploy_scaled_to_zero_total{outcome=\"scaled_down\"} 17"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("app put to sleep"), "{}", out.stderr);
}

/// `cargo test -p idle-scaler --no-default-features`: the lean binary names the way to the demo.
#[cfg(not(feature = "demo"))]
#[test]
fn demo_without_the_feature_says_how_to_get_it() {
    let out = run(command(&["demo"]));
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("built without the demo feature")
            && out
                .stderr
                .contains("cargo install --path bins/idle-scaler --features demo"),
        "{}",
        out.stderr
    );
}

#[test]
fn startup_refuses_surprising_values_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("scaler.toml");
    std::fs::write(&broken, "enabled = true\nconcurrency = = 4\n").expect("write");
    /// Environment, arguments, what the first line names, what else stderr says.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str, &'a str);
    let cases: [Case; 6] = [
        (
            &[("IDLE_SCALER_WAKE_TOKEN", "tok-0123456789abcdef\n")],
            &["config"],
            "IDLE_SCALER_WAKE_TOKEN",
            "whitespace",
        ),
        (
            &[("IDLE_SCALER_WAKE_TOKEN", " tok-0123456789abcdef")],
            &["config"],
            "IDLE_SCALER_WAKE_TOKEN",
            "whitespace",
        ),
        (
            &[("DATABASE_URL", "mysql://app:hunter2secret@db/platform")],
            &["config"],
            "DATABASE_URL",
            "postgresql://",
        ),
        (
            &[("DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES", "4294967295")],
            &["config"],
            "DEPLOY_SCALE_TO_ZERO_IDLE_MINUTES",
            "525600",
        ),
        (
            &[("DEPLOY_SCALE_TO_ZERO_PROTECTED_NAMESPACES", ",")],
            &["config"],
            "DEPLOY_SCALE_TO_ZERO_PROTECTED_NAMESPACES",
            "none",
        ),
        (
            &[],
            &["--config", "/tmp", "config"],
            "/tmp",
            "is a directory",
        ),
    ];
    for (env, args, first, also) in cases {
        let mut cmd = command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run(cmd);
        assert_eq!(out.code, Some(1), "{env:?} {args:?}: {}", out.stderr);
        assert_one_line_error(&out, first);
        assert!(out.stderr.contains(also), "{}", out.stderr);
        assert!(!out.stderr.contains("hunter2secret"), "{}", out.stderr);
        assert!(
            !out.stderr.contains("tok-0123456789abcdef"),
            "{}",
            out.stderr
        );
    }

    let out = run(command(&["--config", broken.to_str().unwrap(), "config"]));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    for needle in ["scaler.toml", "line 2", "concurrency"] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }

    let mut none = command(&["config"]);
    none.env("DEPLOY_SCALE_TO_ZERO_PROTECTED_NAMESPACES", "none");
    let out = run(none);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["job"]["protected_namespaces"], serde_json::json!([]));
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn status_prints_apps_asleep_and_replicas_saved(_: PgPoolOptions, opts: PgConnectOptions) {
    use idle_scaler_core::SleepState;
    use idle_scaler_testkit::host::{HostOps, NewDeployment};

    let (store, _fake) = crate::support::setup(&opts).await;
    let old = chrono::Utc::now() - chrono::Duration::hours(3);
    for (name, state, replicas) in [
        ("web", SleepState::Asleep, Some(3)),
        ("api", SleepState::Asleep, None),
        ("mid", SleepState::Sleeping, Some(5)),
        ("up", SleepState::Awake, None),
    ] {
        store
            .insert(NewDeployment::k8s("apps", name, old).sleep_state(state, old, replicas))
            .await
            .expect("insert");
    }
    let status = |json: bool| {
        let mut cmd = command(if json {
            &["status", "--json"]
        } else {
            &["status"]
        });
        cmd.env("DATABASE_URL", database_url(&opts, None))
            .env("DEPLOY_SCALE_TO_ZERO_DEFAULT_WAKE_REPLICAS", "2");
        cmd
    };

    // Two asleep: 3 recorded plus the default 2 for the one without a count; `sleeping`
    // and `awake` rows are not saved replicas.
    let out = crate::support::run_async(status(false)).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "totals: 2 apps asleep, 5 replicas saved (an app without a recorded count restores 2)"
        ),
        "{}",
        out.stdout
    );
    let out = crate::support::run_async(status(true)).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(
        v["totals"],
        serde_json::json!({ "apps_asleep": 2, "replicas_saved": 5 })
    );
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_kube_connect_error_names_each_cause_once(_: PgPoolOptions, opts: PgConnectOptions) {
    use idle_scaler_core::SleepState;
    use idle_scaler_testkit::host::{HostOps, NewDeployment};
    let (store, _) = crate::support::setup(&opts).await;
    let old = chrono::Utc::now() - chrono::Duration::hours(3);
    let id = store
        .insert(NewDeployment::k8s("apps", "web", old).sleep_state(
            SleepState::Asleep,
            old,
            Some(2),
        ))
        .await
        .expect("insert");
    // A loopback port nobody listens on: the connect is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (_dir, kc) = crate::support::kubeconfig(&format!("http://127.0.0.1:{port}"));
    let cmd =
        crate::support::job_command(&["wake", &id.to_string()], &database_url(&opts, None), &kc);
    let out = crate::support::run_async(cmd).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    // The log lines before it show the same chain; the report is the `error:` line.
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        line.starts_with(&format!(
            "error: waking {id}: unavailable: get scale apps/web: "
        )),
        "{}",
        out.stderr
    );
    for cause in [
        "get scale apps/web",
        "client error (Connect)",
        "Connection refused",
    ] {
        assert_eq!(line.matches(cause).count(), 1, "{cause:?} once in {line:?}");
    }
}
