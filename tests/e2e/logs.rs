//! What the daemon and the commands log: parseable, one line per event, no credential.

use std::time::Duration;

use chrono::Utc;
use idle_scaler_testkit::fake_kube::Fault;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{
    Daemon, database_url, eventually, idle_app, job_command, kubeconfig, run_async, setup,
};

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn json_lines_carry_each_field_once(_: PgPoolOptions, opts: PgConnectOptions) {
    let (store, fake) = setup(&opts).await;
    let id = idle_app(&store, &fake, "web", 2).await;
    let (_dir, kc) = kubeconfig(&fake.url());
    let mut cmd = job_command(&["run"], &database_url(&opts, None), &kc);
    cmd.env("RUST_LOG", "info");
    let mut daemon = Daemon::start(cmd).await;
    daemon
        .wait_for_log("app put to sleep", Duration::from_secs(20))
        .await;
    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
    let logs = daemon.output();
    let slept = logs
        .lines()
        .find(|l| l.contains("app put to sleep"))
        .expect("the sleep line");
    let v: serde_json::Value = serde_json::from_str(slept).expect("JSON");
    assert_eq!(v["target"], "apps/web", "{slept}");
    assert_eq!(v["deployment_id"], id.to_string(), "{slept}");
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        // serde_json keeps the last of duplicate keys; count them in the text instead.
        for key in v.as_object().expect("object").keys() {
            assert_eq!(
                line.matches(&format!("\"{key}\":")).count(),
                1,
                "{key} twice: {line}"
            );
        }
    }
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn text_lines_cannot_be_forged_and_kube_failures_are_logged_once(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    const KUBE_PASSWORD: &str = "kpass-Zq81-never-log-me";
    let (store, fake) = setup(&opts).await;
    let three_hours_ago = Utc::now() - chrono::Duration::hours(3);
    store
        .insert(NewDeployment::new(
            "k8s:apps/bad name\n2026-01-01T00:00:00Z ERROR FORGED by a provider id",
            three_hours_ago,
        ))
        .await
        .expect("insert");
    idle_app(&store, &fake, "web", 1).await;
    fake.inject(Fault::drop_connection().times(1000));
    // Credentials in the server URL: they must appear in no line, at any level.
    let url = fake
        .url()
        .replace("http://", &format!("http://kuser:{KUBE_PASSWORD}@"));
    let (_dir, kc) = kubeconfig(&url);
    let mut cmd = job_command(&["tick"], &database_url(&opts, None), &kc);
    cmd.env("RUST_LOG", "trace");
    let out = run_async(cmd).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("malformed"),
        "the malformed target is reported:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "a forged line:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains(KUBE_PASSWORD), "{}", out.stderr);
    // The job's WARN says what failed; kube does not add its own bare ERROR line.
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("apps/web")),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("failed with error")),
        "{}",
        out.stderr
    );
    eventually(
        Duration::from_secs(1),
        "requests reached the fake",
        || async { (!fake.requests().is_empty()).then_some(()) },
    )
    .await;
}
