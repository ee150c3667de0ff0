//! A real headless Chromium, driven over WebDriver (chromedriver, plain HTTP + JSON), visits a
//! slept app through nginx: it sees the starting page, then the app's own page with no user
//! action. Screenshots of both go to `target/test-artifacts/`.

use std::process::{Child, Command, Stdio};

use base64::Engine;
use serde_json::{Value, json};

use super::real::{artifacts, behind_nginx, call, free_port};
use super::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn webdriver(port: u16, method: &str, path: &str, body: &Value) -> Value {
    tokio::time::timeout(
        Duration::from_secs(60),
        webdriver_call(port, method, path, body),
    )
    .await
    .unwrap_or_else(|_| panic!("WebDriver {method} {path}: no answer in 60 s"))
}

async fn webdriver_call(port: u16, method: &str, path: &str, body: &Value) -> Value {
    let body = if method == "GET" || method == "DELETE" {
        String::new()
    } else {
        body.to_string()
    };
    let answer = call(
        port,
        method,
        path,
        &[("Content-Type", "application/json")],
        &body,
    )
    .await;
    let v: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    assert_eq!(answer.status, 200, "{method} {path}: {}", answer.body);
    v["value"].clone()
}

impl Driver {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1000,700"],
        }}}});
        let mut driver = Self {
            child,
            port,
            session: String::new(),
        };
        let v = webdriver(port, "POST", "/session", &caps).await;
        driver.session = v["sessionId"].as_str().expect("session id").to_owned();
        driver
    }

    async fn cmd(&self, method: &str, what: &str, body: Value) -> Value {
        webdriver(
            self.port,
            method,
            &format!("/session/{}/{what}", self.session),
            &body,
        )
        .await
    }

    async fn source(&self) -> String {
        self.cmd("GET", "source", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn screenshot(&self, name: &str) {
        let b64 = self.cmd("GET", "screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64"))
            .expect("png");
        std::fs::write(artifacts().join(name), png).expect("write screenshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_the_starting_page_then_the_app_without_any_action() {
    let (w, nginx) = behind_nginx(Duration::from_secs(2)).await;
    let driver = Driver::start().await;
    driver
        .cmd(
            "POST",
            "url",
            json!({ "url": format!("{}/welcome", nginx.url()) }),
        )
        .await;
    let first = driver.source().await;
    assert!(first.contains("Starting web"), "{first}");
    driver.screenshot("waker-starting-page.png").await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let app = loop {
        let page = driver.source().await;
        if page.contains("hello from apps/web") {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached the app: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(app.contains("GET /welcome"), "{app}");
    driver.screenshot("waker-app-page.png").await;
    let _ = webdriver(
        driver.port,
        "DELETE",
        &format!("/session/{}", driver.session),
        &Value::Null,
    )
    .await;
    assert_eq!(scale_writes(&w.fake), 1);
}
