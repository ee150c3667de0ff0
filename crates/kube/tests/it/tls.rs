//! The adapter's TLS (kube's connector): each way a kubeconfig configures TLS, an exec
//! plugin's certificate and its expiry, and a kubeconfig's proxy, against the fake API server
//! behind a real TLS front.

use std::path::{Path, PathBuf};

use base64::Engine;
use idle_scaler_core::config::ClusterConfig;
use idle_scaler_core::{ClusterName, Error, Scaler, ScalerFactory};
use idle_scaler_kube::{KubeScaler, LazyScalerFactory};
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::tls::{ConnectProxy, Issued, Pki, TlsFront, ca_data, kubeconfig};

use super::*;

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    pki: Pki,
    fake: FakeApiServer,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().to_owned();
    let pki = Pki::create(&path, "ca");
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 3);
    Setup {
        _dir: dir,
        dir: path,
        pki,
        fake,
    }
}

fn b64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).expect("read a PEM file"))
}

async fn scaler(file: &Path) -> KubeScaler {
    KubeScaler::from_kubeconfig("test", Some(file), None, TIMEOUT)
        .await
        .expect("a client from the kubeconfig")
}

async fn replicas(scaler: &KubeScaler) -> idle_scaler_core::Result<i32> {
    scaler.get_scale(&web()).await.map(|s| s.replicas)
}

fn front_server(s: &Setup) -> Issued {
    s.pki.server("server", &["127.0.0.1", "localhost"])
}

#[tokio::test]
async fn the_kubeconfig_ca_verifies_the_server() {
    let s = setup().await;
    let front = TlsFront::start(s.fake.addr(), &front_server(&s), None).await;
    let ca = ca_data(&s.pki.ca);
    let file = kubeconfig(&s.dir, &front.url(), &ca, "");
    assert_eq!(
        replicas(&scaler(&file).await)
            .await
            .expect("a scale over https"),
        3
    );
    assert_eq!(front.suites().len(), 1, "one TLS connection");
    let by_path = format!("certificate-authority: {}", s.pki.ca.display());
    let file = kubeconfig(&s.dir, &front.url(), &by_path, "");
    assert_eq!(replicas(&scaler(&file).await).await.expect("a scale"), 3);
    assert_eq!(front.suites().len(), 2, "the CA file verified the second");
}

#[tokio::test]
async fn a_server_no_trusted_ca_issued_is_refused() {
    let s = setup().await;
    let front = TlsFront::start(s.fake.addr(), &front_server(&s), None).await;
    // No CA in the kubeconfig: the platform's roots, which do not hold the test CA.
    let file = kubeconfig(&s.dir, &front.url(), "", "");
    let err = replicas(&scaler(&file).await).await.expect_err("refused");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    // The operator's WARN says why, not only hyper's "client error (Connect)".
    assert!(
        idle_scaler_core::error_chain(&err).contains("UnknownIssuer"),
        "{err}"
    );
    // Another CA than the one that issued the server's certificate.
    let other = Pki::create(&s.dir, "other");
    let ca = ca_data(&other.ca);
    let file = kubeconfig(&s.dir, &front.url(), &ca, "");
    let err = replicas(&scaler(&file).await).await.expect_err("refused");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    front.wait_refused(2).await;
    assert!(front.suites().is_empty(), "no handshake completed");
    assert_eq!(s.fake.requests().len(), 0, "nothing reached the API server");
}

#[tokio::test]
async fn the_in_cluster_ca_file_verifies_the_server() {
    let s = setup().await;
    let front = TlsFront::start(s.fake.addr(), &front_server(&s), None).await;
    // What `kube::Config::incluster` sets: the mounted `ca.crt`, re-read as it rotates.
    let mut config = kube::Config::new(front.url().parse().expect("a URL"));
    config.root_cert_file = Some(s.pki.ca.clone());
    let client = idle_scaler_kube::client::build(config).expect("a client");
    assert_eq!(
        replicas(&KubeScaler::new(client, TIMEOUT))
            .await
            .expect("a scale"),
        3
    );

    let other = Pki::create(&s.dir, "other");
    let mut config = kube::Config::new(front.url().parse().expect("a URL"));
    config.root_cert_file = Some(other.ca.clone());
    let client = idle_scaler_kube::client::build(config).expect("a client");
    replicas(&KubeScaler::new(client, TIMEOUT))
        .await
        .expect_err("another CA's file does not verify it");
}

#[tokio::test]
async fn insecure_skip_tls_verify_accepts_an_unknown_issuer() {
    let s = setup().await;
    let front = TlsFront::start(s.fake.addr(), &front_server(&s), None).await;
    let file = kubeconfig(&s.dir, &front.url(), "insecure-skip-tls-verify: true", "");
    assert_eq!(replicas(&scaler(&file).await).await.expect("a scale"), 3);
}

#[tokio::test]
async fn tls_server_name_names_the_certificate_to_expect() {
    let s = setup().await;
    let named = s.pki.server("named", &["kubernetes.default.svc"]);
    let front = TlsFront::start(s.fake.addr(), &named, None).await;
    let ca = ca_data(&s.pki.ca);
    let without = kubeconfig(&s.dir, &front.url(), &ca, "");
    let err = replicas(&scaler(&without).await)
        .await
        .expect_err("the certificate does not name 127.0.0.1");
    assert!(
        idle_scaler_core::error_chain(&err).contains("certificate not valid for name"),
        "{err}"
    );
    let with = kubeconfig(
        &s.dir,
        &front.url(),
        &format!("{ca}\ntls-server-name: kubernetes.default.svc"),
        "",
    );
    assert_eq!(replicas(&scaler(&with).await).await.expect("a scale"), 3);
}

#[tokio::test]
async fn a_client_certificate_from_the_kubeconfig_passes_mutual_tls() {
    let s = setup().await;
    let front = TlsFront::start(s.fake.addr(), &front_server(&s), Some(&s.pki.ca)).await;
    let client = s.pki.client("client", "idle-scaler");
    let ca = ca_data(&s.pki.ca);

    let anonymous = kubeconfig(&s.dir, &front.url(), &ca, "");
    let err = replicas(&scaler(&anonymous).await)
        .await
        .expect_err("a client certificate is required");
    assert!(
        idle_scaler_core::error_chain(&err).contains("CertificateRequired"),
        "{err}"
    );
    let data = format!(
        "client-certificate-data: {}\nclient-key-data: {}",
        b64(&client.cert),
        b64(&client.key)
    );
    let inline = kubeconfig(&s.dir, &front.url(), &ca, &data);
    assert_eq!(replicas(&scaler(&inline).await).await.expect("a scale"), 3);
    let files = format!(
        "client-certificate: {}\nclient-key: {}",
        client.cert.display(),
        client.key.display()
    );
    let by_path = kubeconfig(&s.dir, &front.url(), &ca, &files);
    assert_eq!(replicas(&scaler(&by_path).await).await.expect("a scale"), 3);
    assert_eq!(front.client_certificates(), 2);
}

#[tokio::test]
async fn a_client_certificate_without_its_key_is_an_error_naming_the_key() {
    let s = setup().await;
    let client = s.pki.client("client", "idle-scaler");
    let ca = ca_data(&s.pki.ca);
    let half = format!("client-certificate-data: {}", b64(&client.cert));
    let file = kubeconfig(&s.dir, "https://127.0.0.1:1", &ca, &half);
    let err = KubeScaler::from_kubeconfig("test", Some(&file), None, TIMEOUT)
        .await
        .expect_err("no key");
    assert!(
        idle_scaler_core::error_chain(&err).contains("client key"),
        "{err}"
    );
}

/// A plugin (a shell script in `dir`) that logs each run to `runs` and answers an
/// `ExecCredential` with the `client` certificate, expiring at `expiry` if given.
fn exec_plugin(dir: &Path, client: &Issued, expiry: Option<&str>) -> (String, PathBuf) {
    let pem = |p: &Path| std::fs::read_to_string(p).expect("read PEM");
    let mut status = serde_json::json!({
        "clientCertificateData": pem(&client.cert),
        "clientKeyData": pem(&client.key),
    });
    if let Some(expiry) = expiry {
        status["expirationTimestamp"] = expiry.into();
    }
    let credential = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": status,
    });
    let n = std::fs::read_dir(dir).expect("list the directory").count();
    let (answer, runs) = (
        dir.join(format!("answer{n}.json")),
        dir.join(format!("runs{n}")),
    );
    std::fs::write(&answer, credential.to_string()).expect("write the plugin's answer");
    let script = dir.join(format!("plugin{n}.sh"));
    let body = format!(
        "#!/bin/sh\necho run >> '{}'\ncat '{}'\n",
        runs.display(),
        answer.display()
    );
    std::fs::write(&script, body).expect("write the plugin");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&script, mode).expect("make the plugin executable");
    let user = format!(
        "exec:\n  apiVersion: client.authentication.k8s.io/v1\n  command: {}\n  \
         interactiveMode: Never",
        script.display()
    );
    (user, runs)
}

fn runs(file: &Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn a_client_certificate_from_an_exec_plugin_passes_mutual_tls() {
    let s = setup().await;
    let front = TlsFront::start(s.fake.addr(), &front_server(&s), Some(&s.pki.ca)).await;
    let (exec, plugin_runs) = exec_plugin(&s.dir, &s.pki.client("exec", "idle-scaler"), None);
    let file = kubeconfig(&s.dir, &front.url(), &ca_data(&s.pki.ca), &exec);
    assert_eq!(replicas(&scaler(&file).await).await.expect("a scale"), 3);
    assert_eq!(front.client_certificates(), 1);
    assert_eq!(
        runs(&plugin_runs),
        1,
        "the plugin runs once per client build"
    );
}

/// A factory over `file` as a named cluster, and the target it serves.
fn cluster_source(file: &Path) -> (LazyScalerFactory, idle_scaler_core::Target) {
    let cluster = ClusterName::new("east").expect("a cluster name");
    let settings = ClusterConfig {
        kubeconfig: Some(file.to_owned()),
        context: None,
    };
    let source = LazyScalerFactory::for_cluster(&cluster, &settings, TIMEOUT);
    let target = idle_scaler_core::Target {
        cluster: Some(cluster),
        ..web()
    };
    (source, target)
}

#[tokio::test]
async fn an_exec_certificate_is_kept_until_it_expires_then_the_client_is_rebuilt() {
    let s = setup().await;
    let front = TlsFront::start(s.fake.addr(), &front_server(&s), Some(&s.pki.ca)).await;
    let client = s.pki.client("exec", "idle-scaler");
    let ca = ca_data(&s.pki.ca);
    for (expiry, builds) in [
        (Some("2999-01-01T00:00:00Z"), 1),
        (None, 1),
        (Some("2001-01-01T00:00:00Z"), 3),
    ] {
        let (exec, plugin_runs) = exec_plugin(&s.dir, &client, expiry);
        let (source, target) = cluster_source(&kubeconfig(&s.dir, &front.url(), &ca, &exec));
        for _ in 0..3 {
            let scaler = source.scaler().await.expect("a client");
            assert_eq!(
                scaler.get_scale(&target).await.expect("a scale").replicas,
                3
            );
        }
        assert_eq!(runs(&plugin_runs), builds, "expiry {expiry:?}");
    }
}

#[tokio::test]
async fn a_kubeconfig_proxy_url_is_the_way_to_the_server() {
    let s = setup().await;
    let front = TlsFront::start(s.fake.addr(), &front_server(&s), None).await;
    let proxy = ConnectProxy::start().await;
    let ca = ca_data(&s.pki.ca);
    let file = kubeconfig(
        &s.dir,
        &front.url(),
        &format!("{ca}\nproxy-url: {}", proxy.url()),
        "",
    );
    assert_eq!(replicas(&scaler(&file).await).await.expect("a scale"), 3);
    let server = front.url().trim_start_matches("https://").to_owned();
    assert_eq!(proxy.targets(), [server], "one tunnel, to the API server");

    for other in ["socks5://127.0.0.1:1080", "https://user:pw@127.0.0.1:3129"] {
        let file = kubeconfig(
            &s.dir,
            &front.url(),
            &format!("{ca}\nproxy-url: {other}"),
            "",
        );
        let err = KubeScaler::from_kubeconfig("test", Some(&file), None, TIMEOUT)
            .await
            .expect_err("a proxy the client cannot use is refused, not bypassed");
        assert!(err.to_string().contains("proxy-url"), "{err}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    assert_eq!(front.suites().len(), 1, "nothing went around the proxy");
}
