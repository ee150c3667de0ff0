//! Environment proxy variables apply only as kube applies them: `HTTPS_PROXY` to a client
//! from a kubeconfig unless `NO_PROXY` names the server, never to an in-cluster configuration
//! unless its proxy is set. The variables are process-wide, so each case runs this binary
//! again (the ignored `case` test) with them set, against a server and a proxy kept here.

use std::path::Path;
use std::time::Duration;

use idle_scaler_core::{Scaler, Target};
use idle_scaler_kube::KubeScaler;
use idle_scaler_testkit::tls::{ConnectProxy, HttpsFake};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the `case` test in a child process with `env`; true if it passed.
async fn child(case: &str, https: &HttpsFake, ca: &Path, env: &[(&str, &str)]) -> bool {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("this binary"));
    cmd.args(["--exact", "case", "--ignored", "--test-threads=1"])
        .env("PROXY_ENV_CASE", case)
        .env("PROXY_ENV_KUBECONFIG", &https.kubeconfig)
        .env("PROXY_ENV_SERVER", https.front.url())
        .env("PROXY_ENV_CA", ca)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .envs(env.iter().copied());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run the child");
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    }
    out.status.success()
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_proxies_apply_as_kube_applies_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let https = HttpsFake::start(dir.path()).await;
    https.fake.create_deployment("apps", "web", 3);
    let ca = dir.path().join("ca.pem");
    let proxy = ConnectProxy::start().await;
    let server = https.front.url().trim_start_matches("https://").to_owned();
    let via = [("HTTPS_PROXY", proxy.url())];
    let via: Vec<(&str, &str)> = via.iter().map(|(k, v)| (*k, v.as_str())).collect();

    assert!(child("kubeconfig", &https, &ca, &via).await);
    assert_eq!(
        proxy.targets(),
        std::slice::from_ref(&server),
        "HTTPS_PROXY is used"
    );

    let skipped = [via[0], ("NO_PROXY", "127.0.0.1")];
    assert!(child("kubeconfig", &https, &ca, &skipped).await);
    assert_eq!(proxy.targets().len(), 1, "NO_PROXY names the server");

    assert!(child("in-cluster", &https, &ca, &via).await);
    assert_eq!(proxy.targets().len(), 1, "in-cluster ignores HTTPS_PROXY");

    assert!(child("in-cluster-with-proxy", &https, &ca, &via).await);
    assert_eq!(proxy.targets(), [server.clone(), server], "unless told to");
    assert_eq!(
        https.front.suites().len(),
        4,
        "every case reached the server"
    );
}

/// One case, run by the test above in a child process.
#[tokio::test]
#[ignore = "run by environment_proxies_apply_as_kube_applies_them"]
async fn case() {
    let var = |name: &str| std::env::var(name).expect(name);
    let scaler = match var("PROXY_ENV_CASE").as_str() {
        "kubeconfig" => {
            let file = var("PROXY_ENV_KUBECONFIG");
            KubeScaler::from_kubeconfig("test", Some(Path::new(&file)), None, TIMEOUT)
                .await
                .expect("a client")
        }
        case => {
            // What `kube::Config::incluster` sets: the server, the mounted CA file, no proxy.
            let mut config = kube::Config::new(var("PROXY_ENV_SERVER").parse().expect("a URL"));
            config.root_cert_file = Some(var("PROXY_ENV_CA").into());
            if case == "in-cluster-with-proxy" {
                config.proxy_url = Some(var("HTTPS_PROXY").parse().expect("a proxy URL"));
            }
            KubeScaler::new(
                idle_scaler_kube::client::build(config).expect("a client"),
                TIMEOUT,
            )
        }
    };
    let target = Target {
        cluster: None,
        namespace: "apps".into(),
        name: "web".into(),
    };
    assert_eq!(
        scaler.get_scale(&target).await.expect("a scale").replicas,
        3
    );
}
