//! https, credentials and extra headers. TLS and basic auth against a real Prometheus started
//! with `--web.config.file`; bearer tokens and extra headers against a local server that
//! records what it is sent (Prometheus's web config has no bearer tokens).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use chrono::Utc;
use idle_scaler_core::{
    ActivitySource, Config, Error, FixedScalerFactory, Job, MockScaler, SkipReason, SystemClock,
    Target, Traffic,
};
use idle_scaler_prometheus::{Auth, Headers, PrometheusConfig, PrometheusSource, Settings};
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::MemoryStore;
use tokio::net::TcpListener;

use crate::support::{Exporter, Prometheus, WebConfig, eventually};
use idle_scaler_testkit::tls::Pki;

const USER: &str = "scraper";
const PASSWORD: &str = "right-horse-battery";
/// bcrypt of [`PASSWORD`] at cost 4 (the minimum: the test is about the wiring, not the hash),
/// made once with libxcrypt's crypt(3); that it is right shows in the queries that succeed.
const PASSWORD_BCRYPT: &str = "$2b$04$JSH2L/bNCvIMcGHU6UPjaey9TJovd5A5A0RNJ1s5IcZx4EIhzkSTm";
const WRONG_PASSWORD: &str = "wrong-horse-staple";

fn web() -> Target {
    Target {
        cluster: None,
        namespace: "apps".into(),
        name: "web".into(),
    }
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}

fn settings(url: String) -> Settings {
    Settings::from_config(&PrometheusConfig {
        prometheus_url: url,
        ..PrometheusConfig::default()
    })
}

async fn ask(
    source: &PrometheusSource,
) -> Result<std::collections::HashMap<Target, Traffic>, Error> {
    source
        .traffic(&[web()], chrono::Duration::minutes(30), Utc::now())
        .await
}

/// Tracing output of this thread, for checking what reaches the logs.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Current-thread: the capturing subscriber is this thread's default, and the tick runs here.
#[tokio::test]
async fn https_and_basic_auth_against_a_real_prometheus_and_a_refused_password_sleeps_nothing() {
    let (exporter, exporter_addr) = Exporter::start().await;
    exporter.requests("apps", "web", "/", 1);
    let dir = tempfile::tempdir().expect("dir");
    let pki = Pki::create(dir.path(), "ca");
    let (ca, tls) = (
        pki.ca.clone(),
        pki.server("server", &["127.0.0.1", "localhost"]),
    );
    let prometheus = Prometheus::start_with(
        exporter_addr,
        Some(&WebConfig {
            tls,
            user: USER.into(),
            bcrypt_hash: PASSWORD_BCRYPT.into(),
        }),
    )
    .await;
    let url = prometheus.url();
    assert!(url.starts_with("https://"), "{url}");
    let right = Settings {
        ca_file: Some(ca),
        auth: Auth::Basic {
            username: USER.into(),
            // As a Secret written with `echo` would hold it.
            password_file: write(dir.path(), "password", &format!("{PASSWORD}\n")),
        },
        ..settings(url.clone())
    };
    let source = PrometheusSource::new(right.clone()).expect("valid settings");
    let seen = eventually("apps/web is known over https with the password", || async {
        match ask(&source).await {
            Ok(seen) => (seen.get(&web()).copied(), format!("{seen:?}")),
            Err(e) => (None, e.to_string()),
        }
    })
    .await;
    assert_eq!(seen, Traffic::Quiet, "{}", prometheus.log());

    // A wrong password: refused, said with the status and the URL, never the password.
    let wrong = Arc::new(
        PrometheusSource::new(Settings {
            auth: Auth::Basic {
                username: USER.into(),
                password_file: write(dir.path(), "wrong", WRONG_PASSWORD),
            },
            ..right.clone()
        })
        .expect("valid settings"),
    );
    let err = ask(&wrong).await.expect_err("401");
    let endpoint = format!("{url}/api/v1/query");
    assert!(
        matches!(&err, Error::Forbidden { message: m, .. } if m.contains("401 Unauthorized") && m.contains(&endpoint)),
        "{err}"
    );
    for shown in [
        idle_scaler_core::error_chain(&err),
        format!("{err:?}"),
        format!("{wrong:?}"),
    ] {
        assert!(
            !shown.contains(WRONG_PASSWORD) && !shown.contains(PASSWORD),
            "{shown}"
        );
    }

    // Without the test CA the server is not trusted (the system roots do not know it).
    let untrusted = PrometheusSource::new(Settings {
        ca_file: None,
        ..right.clone()
    });
    match untrusted {
        Ok(untrusted) => {
            let err = ask(&untrusted).await.expect_err("unknown issuer");
            let shown = idle_scaler_core::error_chain(&err);
            assert!(
                matches!(&err, Error::Unavailable { .. }) && shown.contains("UnknownIssuer"),
                "{shown}"
            );
        }
        // A machine without system CAs: refused before any request, saying what to set.
        Err(e) => assert!(e.to_string().contains("prometheus_ca_file"), "{e}"),
    }

    // A tick with the refused password: the app's traffic is unknown, so nothing sleeps,
    // and neither password reaches the logs.
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Another test thread may have cached "no interest" for a callsite while this subscriber
    // was being set: recompute it, or an event can be dropped.
    tracing::callsite::rebuild_interest_cache();
    let store = MemoryStore::new();
    store
        .insert(NewDeployment::k8s(
            "apps",
            "web",
            Utc::now() - chrono::Duration::hours(3),
        ))
        .await
        .expect("insert");
    // No expectations: any Kubernetes call fails the test.
    let scaler = MockScaler::new();
    let job = Job::builder(
        Config {
            enabled: true,
            ..Config::default()
        },
        Arc::new(store),
        Arc::new(FixedScalerFactory(Arc::new(scaler))),
    )
    .clock(Arc::new(SystemClock))
    .activity_source(wrong)
    .build();
    let report = job.tick().await.expect("tick");
    assert!(report.slept.is_empty(), "{report:?}");
    assert_eq!(report.skipped(SkipReason::ActivityUnknown), 1, "{report:?}");
    let logs = logs.text();
    assert!(
        logs.contains("activity source failed") && logs.contains("401"),
        "{logs}"
    );
    assert!(
        !logs.contains(WRONG_PASSWORD) && !logs.contains(PASSWORD) && !logs.contains("Basic "),
        "{logs}"
    );
}

/// A stand-in Prometheus that records the headers of every query and answers apps/web quiet.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<HeaderMap>>>);

impl Recorder {
    async fn start() -> (Self, String) {
        let recorder = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().route(
            "/api/v1/query",
            post({
                let recorder = recorder.clone();
                move |headers: HeaderMap| {
                    recorder
                        .0
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(headers);
                    async {
                        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"namespace":"apps","ingress":"web"},"value":[1,"0"]}]}}"#
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (recorder, format!("http://{addr}"))
    }

    fn last(&self, name: &str) -> Option<String> {
        let seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let value = seen.last()?.get(name)?;
        Some(value.to_str().expect("ASCII").to_owned())
    }
}

#[tokio::test]
async fn a_bearer_token_rotated_on_disk_is_sent_by_the_next_query_with_the_extra_headers() {
    let (recorder, url) = Recorder::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let token_file = write(dir.path(), "token", "token-one\n");
    let source = PrometheusSource::new(Settings {
        auth: Auth::Bearer {
            token_file: token_file.clone(),
        },
        headers: Headers(
            [("X-Scope-OrgID", "team-a"), ("X-Api-Key", "k3y")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        ),
        ..settings(url)
    })
    .expect("valid settings");
    let seen = ask(&source).await.expect("answered");
    assert_eq!(seen.get(&web()), Some(&Traffic::Quiet));
    assert_eq!(
        recorder.last("authorization").as_deref(),
        Some("Bearer token-one")
    );
    assert_eq!(recorder.last("x-scope-orgid").as_deref(), Some("team-a"));
    assert_eq!(recorder.last("x-api-key").as_deref(), Some("k3y"));

    // Rotated as a Secret volume does it: a new file moved over the old one.
    let next = write(dir.path(), "token.new", "token-two");
    std::fs::rename(&next, &token_file).expect("rotate");
    ask(&source).await.expect("answered");
    assert_eq!(
        recorder.last("authorization").as_deref(),
        Some("Bearer token-two")
    );

    // Gone: that query fails naming the file; traffic is unknown, nothing else breaks.
    std::fs::remove_file(&token_file).expect("remove");
    let err = ask(&source).await.expect_err("no token");
    assert!(
        matches!(&err, Error::Unavailable { message: m, .. }
            if m.contains("prometheus_bearer_token_file") && m.contains(&token_file.display().to_string())),
        "{err}"
    );
    for shown in [err.to_string(), format!("{source:?}")] {
        assert!(
            !shown.contains("token-two") && !shown.contains("k3y"),
            "{shown}"
        );
    }
}

#[test]
fn an_unreadable_credential_file_fails_at_startup_naming_it() {
    let missing = PathBuf::from("/nonexistent/idle-scaler/token");
    let err = PrometheusSource::new(Settings {
        auth: Auth::Bearer {
            token_file: missing.clone(),
        },
        ..settings("http://127.0.0.1:9".into())
    })
    .expect_err("unreadable");
    assert!(
        err.to_string()
            .starts_with("cannot read prometheus_bearer_token_file /nonexistent/idle-scaler/token"),
        "{err}"
    );
}
