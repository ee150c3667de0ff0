//! Every error mapping of the adapter (its crate documentation), over real HTTP.

use std::time::{Duration, Instant};

use idle_scaler_core::{Error, Reach, Scaler};
use idle_scaler_testkit::fake_kube::Fault;

use super::*;

fn assert_kind(err: &Error, want: &str) {
    let got = format!("{err:?}");
    assert!(got.starts_with(want), "want {want}, got {got}");
}

/// How far an `Unavailable` request got: the job tells an outage from one failed request.
fn assert_reach(err: &Error, want: Reach) {
    assert!(
        matches!(err, Error::Unavailable { reach, .. } if *reach == want),
        "want {want:?}, got {err:?}"
    );
}

#[tokio::test]
async fn missing_deployment_is_not_found_on_read_and_write() {
    let (_fake, scaler) = setup(1, TIMEOUT).await;
    let gone = Target {
        cluster: None,
        namespace: "apps".into(),
        name: "gone".into(),
    };
    assert_kind(&scaler.get_scale(&gone).await.expect_err("404"), "NotFound");
    assert_kind(
        &scaler
            .set_replicas(&gone, 0, Some("1"))
            .await
            .expect_err("404"),
        "NotFound",
    );
    assert_kind(
        &scaler.set_replicas(&gone, 1, None).await.expect_err("404"),
        "NotFound",
    );
}

#[tokio::test]
async fn a_deployment_deleted_after_the_read_is_not_found() {
    let (fake, scaler) = setup(2, TIMEOUT).await;
    let scale = scaler.get_scale(&web()).await.expect("scale");
    assert!(fake.delete_deployment("apps", "web"));
    let err = scaler
        .set_replicas(&web(), 0, Some(&scale.resource_version))
        .await
        .expect_err("gone");
    assert_kind(&err, "NotFound");
}

#[tokio::test]
async fn a_negative_count_is_invalid_from_the_server_validation() {
    let (fake, scaler) = setup(2, TIMEOUT).await;
    assert_kind(
        &scaler
            .set_replicas(&web(), -1, None)
            .await
            .expect_err("422"),
        "Invalid",
    );
    assert_eq!(fake.replicas("apps", "web"), Some(2));
}

#[tokio::test]
async fn injected_status_codes_map_to_domain_outcomes() {
    let cases = [
        (401, "Forbidden"),
        (403, "Forbidden"),
        (404, "NotFound"),
        (409, "Conflict"),
        (422, "Invalid"),
        (500, "Unavailable"),
    ];
    let (fake, scaler) = setup(2, TIMEOUT).await;
    for (code, want) in cases {
        fake.inject(Fault::status(code).on_method("PATCH").on_path("/scale"));
        let err = scaler
            .set_replicas(&web(), 0, None)
            .await
            .expect_err("injected");
        assert_kind(&err, want);
        assert_eq!(
            fake.replicas("apps", "web"),
            Some(2),
            "{code}: nothing written"
        );

        fake.inject(Fault::status(code).on_method("GET"));
        let err = scaler.get_scale(&web()).await.expect_err("injected");
        assert_kind(&err, want);
        if want == "Unavailable" {
            assert_reach(&err, Reach::Answered);
        }
    }
}

#[tokio::test]
async fn persistent_503_is_unavailable_within_the_timeout() {
    // kube retries 503 with backoff; the per-request timeout bounds the whole call.
    let (fake, scaler) = setup(2, Duration::from_millis(500)).await;
    fake.inject(Fault::status(503).times(usize::MAX));
    let started = Instant::now();
    assert_kind(
        &scaler.get_scale(&web()).await.expect_err("503"),
        "Unavailable",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_single_503_is_retried_by_the_client() {
    let (fake, scaler) = setup(2, TIMEOUT).await;
    fake.inject(Fault::status(503));
    assert_eq!(scaler.get_scale(&web()).await.expect("retried").replicas, 2);
    assert_eq!(fake.requests().len(), 2, "one refused, one served");
}

#[tokio::test]
async fn connect_refused_is_unavailable() {
    let fake = FakeApiServer::start().await;
    let url = fake.url();
    fake.shutdown().await;
    let scaler = KubeScaler::from_url(&url, TIMEOUT).expect("scaler");
    let err = scaler.get_scale(&web()).await.expect_err("refused");
    assert_kind(&err, "Unavailable");
    assert_reach(&err, Reach::NotReached);
    assert!(
        idle_scaler_core::error_chain(&err).contains("Connection refused"),
        "{err}"
    );
}

#[tokio::test]
async fn a_slow_server_is_unavailable_after_the_timeout() {
    let (fake, scaler) = setup(2, Duration::from_millis(200)).await;
    fake.inject(Fault::latency(Duration::from_secs(30)).on_method("PATCH"));
    let started = Instant::now();
    let err = scaler
        .set_replicas(&web(), 0, None)
        .await
        .expect_err("timeout");
    assert_kind(&err, "Unavailable");
    assert_reach(&err, Reach::NoAnswer);
    assert!(format!("{err}").contains("200 ms"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_dropped_connection_is_unavailable_and_the_client_recovers() {
    let (fake, scaler) = setup(2, TIMEOUT).await;
    fake.inject(Fault::drop_connection().on_method("PATCH"));
    let err = scaler
        .set_replicas(&web(), 0, None)
        .await
        .expect_err("dropped");
    assert_kind(&err, "Unavailable");
    assert_reach(&err, Reach::NoAnswer);
    assert_eq!(
        fake.replicas("apps", "web"),
        Some(2),
        "the dropped write was not applied"
    );
    // The next call opens a new connection and goes through.
    scaler
        .set_replicas(&web(), 0, None)
        .await
        .expect("recovered");
    assert_eq!(fake.replicas("apps", "web"), Some(0));
}
