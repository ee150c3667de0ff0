//! A failing exec credential plugin's output and environment reach no log line, no HTTP
//! answer and no command output: kube's own error carries both, the adapter's names only the
//! plugin's program and exit status.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use idle_scaler_core::SleepState;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Daemon, database_url, http, job_command, run_async, setup};

const PRINTED: &str = "printed-Zq81-never-show-me";
const ENV_VALUE: &str = "env-Zq81-never-show-me";
const TOKEN: &str = "tok-0123456789abcdef-wake";

/// A kubeconfig for `server` whose user's exec plugin prints a credential with a token to
/// stdout and to stderr, then exits 1.
fn failing_plugin(dir: &Path, server: &str) -> std::path::PathBuf {
    let plugin = dir.join("plugin.sh");
    let credential = format!(
        r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{PRINTED}"}}}}"#
    );
    let script =
        format!("#!/bin/sh\necho '{credential}'\necho \"$SECRET_ENV {PRINTED}\" >&2\nexit 1\n");
    std::fs::write(&plugin, script).expect("write the plugin");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&plugin, mode).expect("make the plugin executable");
    let kubeconfig = dir.join("kubeconfig");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
         users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n\
         \x20     command: {}\n      env:\n      - name: SECRET_ENV\n        value: {ENV_VALUE}\n\
         \x20     interactiveMode: Never\n\
         contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
        plugin.display()
    );
    std::fs::write(&kubeconfig, yaml).expect("write the kubeconfig");
    kubeconfig
}

fn assert_clean(what: &str, text: &str) {
    for secret in [PRINTED, ENV_VALUE] {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_failing_exec_plugin_leaks_nothing(_: PgPoolOptions, opts: PgConnectOptions) {
    let (store, fake) = setup(&opts).await;
    fake.create_deployment("apps", "web", 0);
    let three_hours_ago = Utc::now() - chrono::Duration::hours(3);
    let asleep = NewDeployment::k8s("apps", "web", three_hours_ago).sleep_state(
        SleepState::Asleep,
        Utc::now(),
        Some(2),
    );
    let id = store.insert(asleep).await.expect("insert");
    fake.create_deployment("apps", "idle", 1);
    store
        .insert(NewDeployment::k8s("apps", "idle", three_hours_ago))
        .await
        .expect("insert");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kc = failing_plugin(dir.path(), &fake.url());
    let db = database_url(&opts, None);

    for format in ["text", "json"] {
        let mut tick = job_command(&["tick"], &db, &kc);
        tick.env("RUST_LOG", "trace")
            .env("IDLE_SCALER_LOG_FORMAT", format);
        let out = run_async(tick).await;
        let all = format!("{}\n{}", out.stdout, out.stderr);
        assert!(all.contains("plugin.sh"), "the plugin is named:\n{all}");
        assert_clean(&format!("tick ({format} logs)"), &all);
    }
    let mut wake = job_command(&["wake", &id.to_string()], &db, &kc);
    wake.env("RUST_LOG", "trace");
    let out = run_async(wake).await;
    assert_ne!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_clean("wake", &format!("{}\n{}", out.stdout, out.stderr));

    let mut cmd = job_command(&["run"], &db, &kc);
    cmd.env("IDLE_SCALER_WAKE_TOKEN", TOKEN)
        .env("RUST_LOG", "trace");
    let mut daemon = Daemon::start(cmd).await;
    let path = format!("/v1/deployments/{id}/wake");
    let (code, body) = http(daemon.addr, "POST", &path, Some(TOKEN)).await;
    assert_ne!(code, 200, "{body}");
    assert_clean("the wake endpoint", &body);

    let line = daemon
        .wait_for_log("serving the waker", Duration::from_secs(10))
        .await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    let waker: SocketAddr = v["addr"].as_str().expect("addr").parse().expect("address");
    let mut visitor = TcpStream::connect(waker).await.expect("connect");
    visitor
        .write_all(
            "GET /shop HTTP/1.1\r\nHost: web.example.com\r\nX-Namespace: apps\r\n\
             X-Service-Name: web\r\nX-Original-URI: /shop\r\nConnection: close\r\n\r\n"
                .as_bytes(),
        )
        .await
        .expect("write");
    let mut answer = String::new();
    visitor.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    assert_clean("the waker", &answer);

    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
    let logs = daemon.output();
    assert!(logs.contains("plugin.sh"), "the plugin is named:\n{logs}");
    assert_clean("the daemon's logs", &logs);
}
