//! A host that compiles both rustls providers in and installs aws-lc as the process default
//! before the job builds its client: the adapter uses the host's provider and never panics.
//! Its own test binary, because the default provider is process-wide.

use std::sync::Arc;
use std::time::Duration;

use idle_scaler_core::{ScalerSource, Target};
use idle_scaler_kube::LazyScalerSource;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use rustls::crypto::CryptoProvider;

#[tokio::test]
async fn a_host_that_installs_aws_lc_first_gets_a_working_client() {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("the host installs first");
    let hosts = CryptoProvider::get_default().expect("installed").clone();

    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 2);
    let source = LazyScalerSource::from_url(fake.url(), Duration::from_secs(10));
    let scaler = source.scaler().await.expect("a client");
    let target = Target {
        cluster: None,
        namespace: "apps".into(),
        name: "web".into(),
    };
    assert_eq!(scaler.get_scale(&target).await.expect("scale").replicas, 2);

    let after = CryptoProvider::get_default().expect("still installed");
    assert!(
        Arc::ptr_eq(&hosts, after),
        "the host's provider was replaced"
    );
}
