//! The in-memory Parker keeps the adapter's rules: idempotent parks, hand-written slices left
//! alone, nothing deleted before the app is ready, faults before any effect.

use super::*;

fn web() -> Target {
    Target::new("apps", "web")
}

fn counts(report: &ParkReport) -> Vec<(&'static str, u64)> {
    report.results.iter().map(|(k, v)| (*k, *v)).collect()
}

#[tokio::test]
async fn park_writes_each_service_once_and_counts_skips_and_conflicts() {
    let parker = MemoryParker::new();
    parker.add_app(&web(), &["web", "web-admin", "web-grpc"]);
    parker.add_skipped_service(&web(), "web-headless", "headless");
    parker.hand_write_slice("apps", "web-admin");
    let first = parker.park(&web()).await.expect("park");
    assert_eq!(
        counts(&first),
        [("conflict", 1), ("headless", 1), ("parked", 2)]
    );
    let again = parker.park(&web()).await.expect("park");
    assert_eq!(
        counts(&again),
        [("conflict", 1), ("headless", 1), ("unchanged", 2)]
    );
    assert_eq!(parker.parked_services(&web()), ["web", "web-grpc"]);
    assert!(parker.has_hand_written_slice("apps", "web-admin"));
    let listed = parker.parked().await.expect("list");
    assert_eq!(
        listed,
        [ParkedApp {
            target: web(),
            services: 2
        }]
    );
}

#[tokio::test]
async fn a_gone_deployment_is_not_found_and_a_cluster_name_is_ignored() {
    let parker = MemoryParker::new();
    let e = parker.park(&web()).await.expect_err("no app");
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    parker.add_app(&web(), &["web"]);
    let mut east = web();
    east.cluster = Some(idle_scaler_core::ClusterName::new("east").expect("a name"));
    parker.park(&east).await.expect("park");
    assert!(parker.is_parked(&web()));
}

#[tokio::test]
async fn unpark_deletes_nothing_before_the_app_is_ready_and_never_a_hand_written_slice() {
    let parker = MemoryParker::new();
    parker.add_app(&web(), &["web", "web-admin"]);
    parker.hand_write_slice("apps", "web-admin");
    parker.park(&web()).await.expect("park");
    assert_eq!(
        parker.unpark(&web()).await.expect("unpark"),
        Unpark::NotReady
    );
    assert!(parker.is_parked(&web()));
    parker.set_ready(&web(), true);
    let Unpark::Done(done) = parker.unpark(&web()).await.expect("unpark") else {
        panic!("ready");
    };
    assert_eq!(counts(&done), [("unparked", 1)]);
    assert!(!parker.is_parked(&web()));
    assert!(parker.has_hand_written_slice("apps", "web-admin"));
    // Nothing parked: done at once, whatever the readiness.
    parker.set_ready(&web(), false);
    assert_eq!(
        parker.unpark(&web()).await.expect("unpark"),
        Unpark::Done(ParkReport::default())
    );
}

#[tokio::test(start_paused = true)]
async fn unpark_when_ready_waits_for_readiness_and_gives_up_at_the_timeout() {
    let parker = std::sync::Arc::new(MemoryParker::new());
    parker.add_app(&web(), &["web"]);
    parker.park(&web()).await.expect("park");
    let waiting = tokio::spawn({
        let parker = parker.clone();
        async move {
            parker
                .unpark_when_ready(&web(), Duration::from_secs(60))
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(parker.is_parked(&web()), "not ready yet: still parked");
    parker.set_ready(&web(), true);
    let done = waiting.await.expect("task").expect("unpark");
    assert!(matches!(done, Unpark::Done(r) if r.count("unparked") == 1));

    parker.set_ready(&web(), false);
    parker.park(&web()).await.expect("park");
    let started = tokio::time::Instant::now();
    let given_up = parker
        .unpark_when_ready(&web(), Duration::from_secs(60))
        .await
        .expect("unpark");
    assert_eq!(given_up, Unpark::NotReady);
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    assert!(parker.is_parked(&web()));
}

#[tokio::test]
async fn unpark_now_deletes_whatever_the_readiness() {
    let parker = MemoryParker::new();
    parker.add_app(&web(), &["web"]);
    parker.park(&web()).await.expect("park");
    let done = parker.unpark_now(&web()).await.expect("unpark");
    assert_eq!(done.count("unparked"), 1);
    assert!(parker.parked().await.expect("list").is_empty());
}

#[tokio::test]
async fn injected_faults_fail_before_any_effect_and_every_call_is_logged() {
    let parker = MemoryParker::new();
    parker.add_app(&web(), &["web"]);
    parker.fail_next(2);
    assert!(parker.park(&web()).await.is_err());
    assert!(parker.parked().await.is_err());
    assert!(!parker.is_parked(&web()));
    parker
        .park(&web())
        .await
        .expect("the third call goes through");
    parker.set_unavailable(true);
    assert!(parker.unpark_now(&web()).await.is_err());
    assert!(parker.is_parked(&web()));
    parker.set_unavailable(false);
    let methods: Vec<_> = parker.calls().iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        [
            ParkerMethod::Park,
            ParkerMethod::Parked,
            ParkerMethod::Park,
            ParkerMethod::UnparkNow
        ]
    );
    assert_eq!(parker.calls()[0].target, Some(web()));
}

#[tokio::test]
async fn parked_by_app_names_only_idle_scalers_slices_and_logs_no_call() {
    let api = Target::new("apps", "api");
    let parker = MemoryParker::new();
    parker.add_app(&web(), &["web", "web-admin"]);
    parker.add_app(&api, &["api"]);
    parker.hand_write_slice("apps", "web-admin");
    assert!(parker.parked_by_app().is_empty());
    parker.park(&web()).await.expect("park");
    let by_app = parker.parked_by_app();
    let names: Vec<_> = by_app
        .iter()
        .map(|((ns, app), svcs)| (ns.as_str(), app.as_str(), svcs.len()))
        .collect();
    assert_eq!(names, [("apps", "web", 1)]);
    assert!(by_app[&("apps".to_owned(), "web".to_owned())].contains("web"));
    // A harness's look, not a Parker call: the log holds only the park.
    assert_eq!(parker.calls().len(), 1);
}
