//! Many visitors of one slept app: one wake, one scale write, every one answered.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_make_one_wake_and_one_scale_write() {
    let w = world(Duration::from_millis(300), None).await;
    let answers = futures::future::join_all((0..50).map(|i| {
        let router = w.router.clone();
        async move {
            let req = nginx(if i % 2 == 0 { "GET" } else { "POST" }, "/orders?page=2")
                .header("Accept", "application/json")
                .body(Body::from("payload"))
                .expect("request");
            send(&router, req).await
        }
    }))
    .await;
    for res in &answers {
        assert_eq!(res.status(), 307);
        assert_eq!(res.headers()["location"], "/orders?page=2");
        let cold: u64 = res.headers()["x-idle-scaler-cold-start-ms"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("millis");
        assert!(cold >= 250, "held until the pods were ready: {cold} ms");
    }
    assert_eq!(scale_writes(&w.fake), 1, "{:?}", w.fake.requests());
    assert_eq!(w.fake.replicas("apps", "web"), Some(2), "restore count");
    let row = w.store.read(w.id).await.expect("read").expect("row");
    assert_eq!(row.sleep_state, SleepState::Awake);
}
