//! nginx with a prefix directory of its own: a master and one worker, the test's `http`
//! block, and reloads the test can wait for. Each configuration carries its generation on a
//! control port, so after `nginx -s reload` the test knows when the new one is the one
//! answering (a reload is asynchronous: the old worker keeps serving until the new starts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::http::{Call, send};
use super::{NGINX, Process, free_port, until_listening};

/// How long nginx may take to start or to apply a reload.
const DEADLINE: Duration = Duration::from_secs(20);

/// A running nginx; dropping it kills it and removes its directory.
#[derive(Debug)]
pub struct Nginx {
    _process: Process,
    dir: PathBuf,
    control: u16,
    generation: u64,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Nginx {
    /// Starts nginx whose `http` block holds `http` (server blocks, upstreams, maps) and
    /// waits until it serves.
    ///
    /// # Panics
    /// When nginx does not start or rejects the configuration.
    pub async fn start(http: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "idle-scaler-nginx-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("logs")).expect("nginx prefix");
        let control = free_port();
        std::fs::write(dir.join("nginx.conf"), conf(&dir, control, 0, http)).expect("nginx.conf");
        let mut command = Command::new(NGINX);
        command
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let nginx = Self {
            _process: Process::spawn(command),
            dir,
            control,
            generation: 0,
        };
        until_listening(nginx.control_addr(), "nginx", DEADLINE).await;
        nginx.until_generation(0).await;
        nginx
    }

    /// Replaces the `http` block's contents and waits until the new configuration answers.
    ///
    /// # Panics
    /// When nginx rejects it or does not apply it in time (its error log is in the message).
    pub async fn reload(&mut self, http: &str) {
        self.generation += 1;
        std::fs::write(
            self.dir.join("nginx.conf"),
            conf(&self.dir, self.control, self.generation, http),
        )
        .expect("nginx.conf");
        let out = Command::new(NGINX)
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("logs/error.log"))
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "reload"])
            .output()
            .expect("nginx -s reload");
        assert!(
            out.status.success(),
            "nginx -s reload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.until_generation(self.generation).await;
    }

    /// The access log so far: `<client> "<request line>" <status> <host> <upstream>` lines.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.access_log_path()).unwrap_or_default()
    }

    /// Where the access log is written.
    pub fn access_log_path(&self) -> PathBuf {
        self.dir.join("logs/access.log")
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }

    fn control_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.control))
    }

    async fn until_generation(&self, generation: u64) {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            let answer = send(None, self.control_addr(), Call::get("/generation")).await;
            if answer.is_ok_and(|a| a.body == generation.to_string()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "nginx did not apply configuration {generation}:\n{}",
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The whole configuration: logs and temporary files under `dir`, the control server, and
/// the test's `http` contents.
fn conf(dir: &std::path::Path, control: u16, generation: u64, http: &str) -> String {
    let d = dir.display();
    // Running as root, nginx would hand its workers to `nobody`; keep them root so they can
    // write under the test's directory.
    let user = if is_root() { "user root;" } else { "" };
    format!(
        r#"{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
  log_format test '$remote_addr "$request" $status $host $upstream_addr';
  access_log {d}/logs/access.log test;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{control};
    access_log off;
    location = /generation {{ return 200 "{generation}"; }}
  }}
{http}
}}
"#
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}
