//! Running the binary and talking to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

pub const BIN: &str = env!("CARGO_BIN_EXE_idle-scaler");

/// A `postgres://` URL for the test database `sqlx::test` made, optionally with a password
/// (the servers here trust loopback, so any password works and can be checked for leaks).
pub fn database_url(opts: &PgConnectOptions, password: Option<&str>) -> String {
    let user = opts.get_username();
    let auth = password.map_or_else(|| user.to_owned(), |p| format!("{user}:{p}"));
    format!(
        "postgres://{auth}@{}:{}/{}",
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("postgres")
    )
}

/// A store over the test database and a fresh fake API server.
pub async fn setup(opts: &PgConnectOptions) -> (PgStore, FakeApiServer) {
    let pool = PgPoolOptions::new()
        .connect_with(opts.clone())
        .await
        .expect("connect");
    (PgStore::from_pool(pool), FakeApiServer::start().await)
}

/// Deployment `apps/<name>` at `replicas` on the fake, and its row, idle for three hours.
pub async fn idle_app(store: &PgStore, fake: &FakeApiServer, name: &str, replicas: i32) -> Uuid {
    fake.create_deployment("apps", name, replicas);
    let three_hours_ago = Utc::now() - chrono::Duration::hours(3);
    store
        .insert(NewDeployment::k8s("apps", name, three_hours_ago))
        .await
        .expect("insert")
}

/// `idle-scaler <args>` with the job enabled, against `db` and the cluster of `kubeconfig`.
pub fn job_command(args: &[&str], db: &str, kubeconfig: &std::path::Path) -> Command {
    let mut cmd = command(args);
    cmd.env("DATABASE_URL", db)
        .env("KUBECONFIG", kubeconfig)
        .env("DEPLOY_SCALE_TO_ZERO_ENABLED", "true");
    cmd
}

/// A kubeconfig pointing at `url`, in a temp dir kept alive by the returned guard.
pub fn kubeconfig(url: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kubeconfig");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n"
    );
    std::fs::write(&path, yaml).expect("write kubeconfig");
    (dir, path)
}

/// A base command with a clean environment: nothing from the developer's shell leaks in.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The output of a finished command.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command off the async runtime, so servers on this runtime (the fake API server)
/// keep answering it.
pub async fn run_async(cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || run(cmd))
        .await
        .expect("join")
}

pub fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run idle-scaler");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running daemon whose output is collected line by line.
pub struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub addr: SocketAddr,
}

impl Daemon {
    /// Starts `run` with JSON logs on an ephemeral port and waits until it serves HTTP.
    pub async fn start(mut cmd: Command) -> Self {
        cmd.env("IDLE_SCALER_LISTEN_ADDR", "127.0.0.1:0")
            .env("IDLE_SCALER_WAKER_LISTEN_ADDR", "127.0.0.1:0")
            .env("IDLE_SCALER_PROBE_LISTEN_ADDR", "127.0.0.1:0")
            .env("IDLE_SCALER_LOG_FORMAT", "json");
        // The parking listener's ports are fixed (parked slices name them): only the tests
        // that park choose them, so daemons running at once do not compete for 8081.
        if !cmd
            .get_envs()
            .any(|(k, _)| k == "IDLE_SCALER_PARKING_LISTEN_ADDR")
        {
            cmd.env("IDLE_SCALER_PARKING_LISTEN_ADDR", "off");
        }
        let mut child = cmd.spawn().expect("spawn idle-scaler run");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let mut daemon = Self {
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = daemon
            .wait_for_log("serving /metrics", Duration::from_secs(30))
            .await;
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        daemon.addr = v["addr"]
            .as_str()
            .expect("addr field")
            .parse()
            .expect("socket address");
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a log line containing `needle`.
    pub async fn wait_for_log(&mut self, needle: &str, deadline: Duration) -> String {
        let until = Instant::now() + deadline;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "idle-scaler exited ({status}) before logging {needle:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < until,
                "no log line {needle:?} within {deadline:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address of the listener whose "serving ..." line contains `what`.
    pub async fn listener(&mut self, what: &str) -> SocketAddr {
        let line = self.wait_for_log(what, Duration::from_secs(10)).await;
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        v["addr"]
            .as_str()
            .expect("addr field")
            .parse()
            .expect("socket address")
    }

    /// Sends SIGTERM and waits for the exit code, failing after `deadline`.
    pub async fn terminate(&mut self, deadline: Duration) -> Option<i32> {
        self.send_sigterm();
        self.wait_for_exit(deadline).await
    }

    /// Sends SIGTERM without waiting.
    pub fn send_sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the exit code, failing after `deadline`.
    pub async fn wait_for_exit(&mut self, deadline: Duration) -> Option<i32> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < until,
                "did not exit within {deadline:?} of SIGTERM:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 request; returns status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Polls `check` until it returns Some, failing after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
