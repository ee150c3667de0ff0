//! A host that compiles both rustls providers in and installs its own default (aws-lc, here
//! narrowed to one cipher suite so that its use shows on the wire) before the job builds its
//! client: the adapter's client (kube's connector) uses it, never panics and never replaces it.
//! Its own test binary, because the default provider is process-wide.

use std::sync::Arc;
use std::time::Duration;

use idle_scaler_core::config::ClusterConfig;
use idle_scaler_core::{ClusterName, ScalerFactory, Target};
use idle_scaler_kube::LazyScalerFactory;
use idle_scaler_testkit::tls::HttpsFake;
use rustls::CipherSuite;
use rustls::crypto::CryptoProvider;

#[tokio::test]
async fn a_host_that_installs_aws_lc_first_gets_a_client_on_its_provider() {
    let mut hosts = rustls::crypto::aws_lc_rs::default_provider();
    hosts
        .cipher_suites
        .retain(|c| c.suite() == CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    hosts.install_default().expect("the host installs first");
    let installed = CryptoProvider::get_default().expect("installed").clone();

    let dir = tempfile::tempdir().expect("a temporary directory");
    let https = HttpsFake::start(dir.path()).await;
    https.fake.create_deployment("apps", "web", 2);
    let settings = ClusterConfig {
        kubeconfig: Some(https.kubeconfig.clone()),
        context: None,
    };
    let cluster = ClusterName::new("east").expect("a cluster name");
    let source = LazyScalerFactory::for_cluster(&cluster, &settings, Duration::from_secs(10));
    let scaler = source.scaler().await.expect("a client");
    let target = Target {
        cluster: Some(cluster),
        namespace: "apps".into(),
        name: "web".into(),
    };
    assert_eq!(scaler.get_scale(&target).await.expect("scale").replicas, 2);

    assert_eq!(
        https.front.suites(),
        [CipherSuite::TLS13_CHACHA20_POLY1305_SHA256],
        "both default providers put AES first: CHACHA20 means the host's provider chose"
    );
    let after = CryptoProvider::get_default().expect("still installed");
    assert!(
        Arc::ptr_eq(&installed, after),
        "the host's provider was replaced"
    );
}
