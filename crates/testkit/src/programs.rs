//! Real programs around the code under test: nginx and HAProxy as data planes, headless
//! Chromium through chromedriver, curl. Each runs as a child of the test that is killed when
//! its guard drops, and [`http`] is a raw HTTP/1.1 client that hides no redirect or retry.
//!
//! A missing program skips the test with a message on stderr, but only outside CI: under CI
//! (`CI` set to anything but empty, `0` or `false`) it fails the test, since `scripts/test`
//! installs them all.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

pub mod http;
pub mod nginx;
pub mod webdriver;

/// Debian's nginx (package `nginx`).
pub const NGINX: &str = "/usr/sbin/nginx";
/// Debian's HAProxy (package `haproxy`).
pub const HAPROXY: &str = "/usr/sbin/haproxy";
/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// curl (package `curl`).
pub const CURL: &str = "/usr/bin/curl";

/// Whether `test` can run: every one of `programs` is installed. When one is missing, says
/// so on stderr and returns false outside CI; under CI it panics.
///
/// # Panics
/// Under CI, when a program is missing.
pub fn available(test: &str, programs: &[&str]) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    check(test, programs, ci)
}

fn check(test: &str, programs: &[&str], ci: bool) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !Path::new(p).is_file())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !ci,
        "{test}: {} missing under CI (scripts/test installs them)",
        missing.join(", ")
    );
    eprintln!(
        "SKIPPED {test}: {} not installed (scripts/test installs them; under CI this fails)",
        missing.join(", ")
    );
    false
}

/// A child process killed (and reaped) when this drops, so a failing test leaves none behind;
/// started in a process group of its own, whose every member (nginx's workers, the Chromium
/// chromedriver starts) is killed with it.
#[derive(Debug)]
pub struct Process {
    child: Child,
}

impl Process {
    /// Spawns `command` in a new process group.
    ///
    /// # Panics
    /// If it cannot be spawned.
    pub fn spawn(mut command: Command) -> Self {
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {:?}: {e}", command.get_program()));
        Self { child }
    }

    /// The process id (and its group's).
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released for the process that will listen on it).
///
/// # Panics
/// If no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts connections at `addr`, polling every 20 ms.
///
/// # Panics
/// After `deadline`, naming `what`.
pub async fn until_listening(addr: SocketAddr, what: &str, deadline: Duration) {
    let until = tokio::time::Instant::now() + deadline;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < until,
            "{what} did not listen on {addr} within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Where tests keep artifacts such as screenshots: `target/test-artifacts/` of the
/// workspace (or of `CARGO_TARGET_DIR`).
///
/// # Panics
/// If the directory cannot be created.
pub fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("artifacts dir {}: {e}", dir.display()));
    dir
}

/// `127.0.0.1`.
pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[cfg(test)]
mod tests;
