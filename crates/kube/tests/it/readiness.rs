//! The readiness wait over real HTTP: a watch of one Deployment on the fake, and the RBAC it
//! needs (`list`, `watch` on `deployments`, nothing else).

use idle_scaler_core::{Readiness, ReadyState, Scaler};
use idle_scaler_testkit::fake_kube::Fault;

use super::*;

/// Every request the wait made is a GET of the `deployments` collection narrowed to the one
/// name: a list or a watch, nothing RBAC would have to grant beyond `list` and `watch`.
fn assert_only_list_and_watch(fake: &FakeApiServer) {
    let requests = fake.requests();
    assert!(!requests.is_empty());
    for r in requests {
        assert_eq!(r.method, "GET", "{r:?}");
        assert_eq!(r.path, "/apis/apps/v1/namespaces/apps/deployments", "{r:?}");
        assert_eq!(
            r.query_param("fieldSelector").as_deref(),
            Some("metadata.name%3Dweb"),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn a_ready_deployment_is_ready_at_once_with_one_list() {
    let (fake, scaler) = setup(2, TIMEOUT).await;
    let got = scaler.wait_ready(&web(), TIMEOUT).await.expect("wait");
    assert_eq!(got, ReadyState::Ready);
    assert_only_list_and_watch(&fake);
    assert_eq!(fake.requests().len(), 1, "one list, no watch");
}

#[tokio::test]
async fn pods_that_start_later_are_seen_through_the_watch() {
    let (fake, scaler) = setup(0, TIMEOUT).await;
    fake.set_ready_delay(Duration::from_millis(300));
    scaler
        .set_replicas(&web(), 2, None)
        .await
        .expect("scale up");
    let d = fake.deployment("apps", "web").expect("deployment");
    assert!(d["status"]["readyReplicas"].is_null(), "not ready yet: {d}");
    fake.clear_requests();

    let started = tokio::time::Instant::now();
    let got = scaler.wait_ready(&web(), TIMEOUT).await.expect("wait");
    assert_eq!(got, ReadyState::Ready);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "waited for the pods"
    );
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.query_param("watch").as_deref() == Some("true")),
        "{requests:?}"
    );
    assert_only_list_and_watch(&fake);
}

#[tokio::test]
async fn pods_never_ready_time_out() {
    let (fake, scaler) = setup(0, TIMEOUT).await;
    fake.set_ready_delay(Duration::from_secs(3600));
    scaler
        .set_replicas(&web(), 1, None)
        .await
        .expect("scale up");
    let got = scaler
        .wait_ready(&web(), Duration::from_millis(300))
        .await
        .expect("wait");
    assert_eq!(got, ReadyState::TimedOut);
}

#[tokio::test]
async fn a_status_of_an_older_generation_is_not_ready() {
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "web", "generation": 3 },
        "status": { "observedGeneration": 2, "readyReplicas": 1 },
    }))
    .expect("deployment");
    assert!(!idle_scaler_kube::is_ready(&d));
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "web", "generation": 3 },
        "status": { "observedGeneration": 3, "availableReplicas": 1 },
    }))
    .expect("deployment");
    assert!(idle_scaler_kube::is_ready(&d));
}

#[test]
fn a_deployment_scaled_to_zero_is_not_ready_while_its_pods_still_count() {
    // Right after a scale-down the status may still count the terminating pods as ready.
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "web", "generation": 4 },
        "spec": { "replicas": 0, "selector": {}, "template": {} },
        "status": { "observedGeneration": 4, "readyReplicas": 2, "availableReplicas": 2 },
    }))
    .expect("deployment");
    assert!(!idle_scaler_kube::is_ready(&d));
}

#[tokio::test]
async fn a_missing_deployment_is_not_found() {
    let (_fake, scaler) = setup(1, TIMEOUT).await;
    let missing = Target {
        cluster: None,
        namespace: "apps".into(),
        name: "nope".into(),
    };
    let e = scaler
        .wait_ready(&missing, TIMEOUT)
        .await
        .expect_err("missing");
    assert!(
        matches!(e, idle_scaler_core::Error::NotFound { .. }),
        "{e:?}"
    );
}

/// Waits until `done` holds, polling, failing after `deadline`.
async fn until(deadline: Duration, what: &str, done: impl Fn() -> bool) {
    let end = tokio::time::Instant::now() + deadline;
    while !done() {
        assert!(
            tokio::time::Instant::now() < end,
            "not within {deadline:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn watches(fake: &FakeApiServer) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.query_param("watch").as_deref() == Some("true"))
        .count()
}

/// The API server goes away while the wait watches: the wait keeps trying, pausing longer
/// each time, and is ready once the API is back, well inside its timeout.
#[tokio::test]
async fn a_watch_broken_by_an_outage_is_watched_again_once_the_api_is_back() {
    let (fake, scaler) = setup(0, TIMEOUT).await;
    fake.set_ready_delay(Duration::from_secs(3600));
    scaler
        .set_replicas(&web(), 1, None)
        .await
        .expect("scale up");
    fake.clear_requests();
    let waiting = scaler.clone();
    let wait =
        tokio::spawn(async move { waiting.wait_ready(&web(), Duration::from_secs(30)).await });
    until(Duration::from_secs(10), "a watch", || watches(&fake) == 1).await;

    // Down: the open watch breaks and every request is dropped unanswered.
    fake.inject(Fault::drop_connection().times(usize::MAX));
    fake.clear_requests();
    let down = tokio::time::Instant::now();
    fake.sever_connections();
    until(Duration::from_secs(10), "four attempts", || {
        fake.requests().len() >= 4
    })
    .await;
    assert!(
        down.elapsed() >= Duration::from_millis(700),
        "paused between attempts: {:?} for {:?}",
        down.elapsed(),
        fake.requests()
    );
    assert!(
        !wait.is_finished(),
        "the wait goes on while the API is away"
    );

    // Back, and the pods are ready now.
    fake.clear_faults();
    fake.set_ready_delay(Duration::ZERO);
    fake.scale_externally("apps", "web", 2).expect("scaled");
    let got = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("ready soon after the API is back")
        .expect("task")
        .expect("wait");
    assert_eq!(got, ReadyState::Ready);
    assert_only_list_and_watch(&fake);
}

/// An API that answers nothing in time does not hold the wait past its deadline, however
/// long one request may take.
#[tokio::test]
async fn a_slow_api_does_not_hold_the_wait_past_its_deadline() {
    let (fake, scaler) = setup(0, TIMEOUT).await;
    fake.inject(Fault::latency(Duration::from_secs(5)).times(usize::MAX));
    let started = tokio::time::Instant::now();
    let got = scaler
        .wait_ready(&web(), Duration::from_millis(300))
        .await
        .expect("wait");
    assert_eq!(got, ReadyState::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// An API that keeps failing is asked again with growing pauses until the deadline, and the
/// wait then answers its failure, at the deadline.
#[tokio::test]
async fn a_failing_api_is_retried_with_pauses_until_the_deadline() {
    let (fake, scaler) = setup(0, TIMEOUT).await;
    fake.inject(Fault::status(500).times(usize::MAX));
    let started = tokio::time::Instant::now();
    let err = scaler
        .wait_ready(&web(), Duration::from_secs(1))
        .await
        .expect_err("the API failed throughout");
    let took = started.elapsed();
    assert!(
        matches!(err, idle_scaler_core::Error::Unavailable { .. }),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // At 0, 100, 300 and 700 ms: not a loop, not a single try.
    let attempts = fake.requests().len();
    assert!((3..=6).contains(&attempts), "{attempts} attempts");
}
