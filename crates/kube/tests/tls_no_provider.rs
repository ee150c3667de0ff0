//! A process with both rustls providers compiled in and no default installed: rustls alone
//! would panic, unable to choose. Building its first client, the adapter installs its own
//! provider (`ring` by default) as the process default, so its client works over https, and
//! a later `install_default` is an error, not a panic. Its own test binary, because the
//! default provider is process-wide.

use std::time::Duration;

use idle_scaler_core::config::ClusterConfig;
use idle_scaler_core::{ClusterName, ScalerFactory, Target};
use idle_scaler_kube::LazyScalerFactory;
use idle_scaler_testkit::tls::HttpsFake;
use rustls::crypto::CryptoProvider;

#[tokio::test]
async fn with_no_process_provider_the_adapter_installs_its_own() {
    assert!(CryptoProvider::get_default().is_none());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let https = HttpsFake::start(dir.path()).await;
    https.fake.create_deployment("apps", "web", 3);
    let settings = ClusterConfig {
        kubeconfig: Some(https.kubeconfig.clone()),
        context: None,
    };
    let cluster = ClusterName::new("east").expect("a cluster name");
    let source = LazyScalerFactory::for_cluster(&cluster, &settings, Duration::from_secs(10));
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
    let installed = CryptoProvider::get_default().expect("the adapter installed a default");
    let groups = |p: &CryptoProvider| p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>();
    assert_eq!(
        groups(installed),
        groups(&idle_scaler_kube::crypto_provider()),
        "the adapter's provider (aws-lc's key exchange groups differ)"
    );
    let late = rustls::crypto::aws_lc_rs::default_provider().install_default();
    assert!(
        late.is_err(),
        "a host installing after the first client is refused"
    );
}
