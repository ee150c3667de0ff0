//! Headless Chromium driven over WebDriver (chromedriver: plain HTTP + JSON, no client
//! library). Dropping the [`Browser`] ends the session (Chromium quits) and kills chromedriver.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::http::{Call, send};
use super::{CHROMEDRIVER, CHROMIUM, Process, artifacts, free_port, until_listening};

/// How long one WebDriver command may take (a navigation waits for the page's load).
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// A Chromium session.
#[derive(Debug)]
pub struct Browser {
    _process: Process,
    port: u16,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Blocking on purpose (Drop cannot await): chromedriver closes Chromium cleanly; the
        // process group's kill then takes whatever is left.
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                self.session
            );
            if s.write_all(req.as_bytes()).is_ok() {
                let mut buf = [0_u8; 1024];
                let _ = s.read(&mut buf);
            }
        }
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with `args` added to the usual ones.
    ///
    /// # Panics
    /// When chromedriver does not start or refuses the session.
    pub async fn start(args: &[String]) -> Self {
        let port = free_port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let process = Process::spawn(command);
        until_listening(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "chromedriver",
            Duration::from_secs(20),
        )
        .await;
        let mut all = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1000,700".to_owned(),
        ];
        all.extend_from_slice(args);
        let caps = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
            "binary": CHROMIUM, "args": all,
        }}}});
        let v = webdriver(port, "POST", "/session", &caps).await;
        let session = v["sessionId"].as_str().expect("session id").to_owned();
        Self {
            _process: process,
            port,
            session,
        }
    }

    /// A command of this session (`url`, `source`, `execute/sync`, ...).
    pub async fn cmd(&self, method: &str, what: &str, body: Value) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        webdriver(self.port, method, &path, &body).await
    }

    /// Opens `url` and returns once the page has loaded.
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "url", json!({ "url": url })).await;
    }

    /// The current page's HTML.
    pub async fn source(&self) -> String {
        let v = self.cmd("GET", "source", Value::Null).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn execute(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Saves a screenshot of the page as `name` under [`artifacts`].
    pub async fn screenshot(&self, name: &str) {
        let b64 = self.cmd("GET", "screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64"))
            .expect("png");
        std::fs::write(artifacts().join(name), png).expect("write screenshot");
    }
}

async fn webdriver(port: u16, method: &str, path: &str, body: &Value) -> Value {
    let body = if method == "GET" || method == "DELETE" {
        String::new()
    } else {
        body.to_string()
    };
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let call = Call {
        method,
        path,
        headers: &[("Content-Type", "application/json")],
        body: &body,
    };
    let answer = tokio::time::timeout(COMMAND_DEADLINE, send(None, to, call))
        .await
        .unwrap_or_else(|_| panic!("WebDriver {method} {path}: no answer in {COMMAND_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
    assert_eq!(answer.status, 200, "{method} {path}: {}", answer.body);
    let v: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    v["value"].clone()
}
