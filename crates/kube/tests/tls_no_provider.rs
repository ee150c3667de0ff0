//! A process with both rustls providers compiled in and none installed (rustls alone would
//! panic, unable to choose): the adapter installs its own (`ring` by default) and its client
//! works. Its own test binary, because the default provider is process-wide.

use std::time::Duration;

use idle_scaler_core::{ScalerSource, Target};
use idle_scaler_kube::LazyScalerSource;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use rustls::crypto::CryptoProvider;

fn suites(p: &CryptoProvider) -> Vec<rustls::CipherSuite> {
    p.cipher_suites.iter().map(|s| s.suite()).collect()
}

#[tokio::test]
async fn with_no_process_provider_the_adapter_installs_its_own_and_works() {
    assert!(CryptoProvider::get_default().is_none());
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 3);
    let source = LazyScalerSource::from_url(fake.url(), Duration::from_secs(10));
    let scaler = source.scaler().await.expect("a client, not a panic");
    let target = Target {
        cluster: None,
        namespace: "apps".into(),
        name: "web".into(),
    };
    assert_eq!(scaler.get_scale(&target).await.expect("scale").replicas, 3);

    let installed = CryptoProvider::get_default().expect("the adapter installed one");
    assert_eq!(
        suites(installed),
        suites(&idle_scaler_kube::crypto_provider())
    );
}
