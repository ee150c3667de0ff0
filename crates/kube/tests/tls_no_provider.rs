//! A process with both rustls providers compiled in and no default installed: rustls alone
//! would panic, unable to choose. The adapter hands its own provider (`ring` by default) to
//! rustls, so its client works over https and the process default stays unset. Its own test
//! binary, because the default provider is process-wide.

use std::time::Duration;

use idle_scaler_core::config::ClusterConfig;
use idle_scaler_core::{ClusterName, ScalerSource, Target};
use idle_scaler_kube::LazyScalerSource;
use idle_scaler_testkit::tls::HttpsFake;
use rustls::crypto::CryptoProvider;

#[tokio::test]
async fn with_no_process_provider_the_adapter_hands_rustls_its_own() {
    assert!(CryptoProvider::get_default().is_none());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let https = HttpsFake::start(dir.path()).await;
    https.fake.create_deployment("apps", "web", 3);
    let settings = ClusterConfig {
        kubeconfig: Some(https.kubeconfig.clone()),
        context: None,
    };
    let cluster = ClusterName::new("east").expect("a cluster name");
    let source = LazyScalerSource::for_cluster(&cluster, &settings, Duration::from_secs(10));
    let scaler = source.scaler().await.expect("a client, not a panic");
    let target = Target {
        cluster: Some(cluster),
        namespace: "apps".into(),
        name: "web".into(),
    };
    assert_eq!(scaler.get_scale(&target).await.expect("scale").replicas, 3);

    let own_first = idle_scaler_kube::crypto_provider().cipher_suites[0].suite();
    assert_eq!(
        https.front.suites(),
        [own_first],
        "one https connection, the adapter's provider"
    );
    assert!(
        CryptoProvider::get_default().is_none(),
        "the adapter installed a process default"
    );
}
