//! HAProxy as a data plane that knows nothing of parking: the app's server plus the binary's
//! fallback listener as a `backup` server (the shape of Envoy Gateway's fallback backend),
//! HAProxy naming the app in the target header. A client that follows the waker's 307 is
//! answered by the app once HAProxy's health check sees it up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use idle_scaler_core::SleepState;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::programs::{
    self, CURL, HAPROXY, Process, free_port, http, until_listening,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::apps::{AppProcess, Kind};
use crate::support::{Daemon, database_url, eventually, job_command, kubeconfig, run_async, setup};

const DEADLINE: Duration = Duration::from_secs(30);

/// HAProxy in the foreground with a directory of its own; killed on drop.
struct Haproxy {
    _process: Process,
    dir: PathBuf,
    port: u16,
    stats: u16,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Haproxy {
    /// One frontend to `apps/web`: the app's server, health-checked, and the waker's
    /// fallback listener as the backup server used while the app is down.
    async fn start(app: SocketAddr, waker: SocketAddr) -> Self {
        let (port, stats) = (free_port(), free_port());
        let dir = tempfile::tempdir().expect("dir").keep();
        let conf = format!(
            r"global
  maxconn 256
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend web
  bind 127.0.0.1:{port}
  default_backend apps_web
backend apps_web
  # What a fallback backend must say: which app this request was for.
  http-request set-header X-Idle-Scaler-Target apps/web
  # The waker redirects as soon as the pods are ready, and every redirect that comes back
  # before HAProxy sees the app up lands on the waker again, which redirects at once: a down
  # server is checked every 10 ms so the client's redirect budget (curl's 50) outlasts that.
  server app {app} check inter 1s downinter 10ms fall 1 rise 1
  server waker {waker} backup
frontend stats
  bind 127.0.0.1:{stats}
  stats enable
  stats uri /stats
"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, conf).expect("haproxy.cfg");
        let mut command = Command::new(HAPROXY);
        command
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let haproxy = Self {
            _process: Process::spawn(command),
            dir,
            port,
            stats,
        };
        let at = SocketAddr::from(([127, 0, 0, 1], port));
        until_listening(at, "haproxy", DEADLINE).await;
        haproxy
    }

    /// The app server's state as HAProxy's health check sees it (`UP`, `DOWN`, ...).
    async fn app_state(&self) -> String {
        let csv = http::call(self.stats, "GET", "/stats;csv", &[], "")
            .await
            .body;
        csv.lines()
            .find(|l| l.starts_with("apps_web,app,"))
            .and_then(|l| l.split(',').nth(17))
            .unwrap_or_default()
            .to_owned()
    }
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn haproxy_sends_a_slept_apps_visitor_to_the_fallback_backup_and_curl_following_the_307_reaches_the_app(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    if !programs::available("haproxy e2e", &[HAPROXY, CURL]) {
        return;
    }
    let (store, fake) = setup(&opts).await;
    fake.create_deployment("apps", "web", 0);
    let asleep = NewDeployment::k8s("apps", "web", Utc::now() - chrono::Duration::hours(3))
        .sleep_state(SleepState::Asleep, Utc::now(), Some(1));
    store.insert(asleep).await.expect("insert");
    fake.set_ready_delay(Duration::from_millis(800));
    let app = AppProcess::start(&fake, ("apps", "web"), Kind::Page);
    let kc = kubeconfig(&fake.url());
    let mut daemon = Daemon::start(job_command(&["run"], &database_url(&opts, None), &kc.1)).await;
    let waker = daemon.listener("serving the waker").await;
    let haproxy = Haproxy::start(app.addr, waker).await;
    eventually(DEADLINE, "HAProxy to see the slept app down", || async {
        haproxy.app_state().await.starts_with("DOWN").then_some(())
    })
    .await;

    let mut curl = Command::new(CURL);
    curl.args(["-sS", "-L", "--max-redirs", "50", "--max-time", "30"])
        .args(["-d", "order=42", "-w", "\n%{http_code} %{num_redirects}"])
        .arg(format!("http://127.0.0.1:{}/submit?x=1", haproxy.port));
    let out = run_async(curl).await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let (body, summary) = out.stdout.rsplit_once('\n').expect("curl's summary line");
    let (status, redirects) = summary.split_once(' ').expect("code and redirects");
    assert_eq!(status, "200", "{}\n{}", out.stdout, daemon.output());
    // The waker answered first (the 307 curl followed), then the app, with method and body.
    let redirects: u32 = redirects.parse().expect("a count");
    eprintln!("curl followed {redirects} redirects");
    assert!(redirects >= 1, "{summary}");
    assert!(body.contains("app saw POST /submit?x=1 order=42"), "{body}");
    assert_eq!(app.hits("POST", "/submit?x=1"), 1, "the app answered once");
    assert_eq!(fake.replicas("apps", "web"), Some(1));
    let scale_writes = fake
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.path.ends_with("/deployments/web/scale"))
        .count();
    assert_eq!(scale_writes, 1, "one wake");
    assert!(haproxy.app_state().await.starts_with("UP"));
}
