//! Several clusters: the waker finds the row and waits for readiness in the app's cluster, and
//! answers the generic 503 for an app of a cluster the instance does not serve.

use idle_scaler_core::{ClusterConfig, ClusterName};
use idle_scaler_kube::{KubeClusters, LazyScalerFactory};

use super::*;

struct TwoClusters {
    home: FakeApiServer,
    east: FakeApiServer,
    store: MemoryStore,
    router: Router,
}

/// `apps/web` asleep in both the default cluster and east (each on its own fake); the
/// instance serves both; the waker's own cluster is `waker_cluster`.
async fn two_clusters(waker_cluster: &str) -> TwoClusters {
    let (home, east) = (FakeApiServer::start().await, FakeApiServer::start().await);
    let store = MemoryStore::default();
    let past = Utc::now() - chrono::Duration::hours(2);
    for (fake, id) in [(&home, "k8s:apps/web"), (&east, "k8s@east:apps/web")] {
        fake.create_deployment("apps", "web", 0);
        store
            .insert(NewDeployment::new(id, past).sleep_state(SleepState::Asleep, past, Some(2)))
            .await
            .expect("insert");
    }
    let timeout = Duration::from_secs(10);
    let east_name = ClusterName::new("east").expect("valid");
    let kube = Arc::new(
        KubeClusters::new(Arc::new(LazyScalerFactory::from_url(home.url(), timeout))).with(
            east_name.clone(),
            Arc::new(LazyScalerFactory::from_url(east.url(), timeout)),
        ),
    );
    let mut config = Config::default();
    config.clusters.insert(
        east_name,
        ClusterConfig {
            context: Some("east".into()),
            ..ClusterConfig::default()
        },
    );
    let job = Arc::new(kube.job_builder(config, Arc::new(store.clone())).build());
    let waker = Waker::new(
        job,
        Arc::new(store.clone()),
        kube,
        Arc::new(SystemClock),
        WakerConfig {
            waker_timeout_seconds: 10,
            waker_cluster: waker_cluster.to_owned(),
            ..WakerConfig::default()
        },
    );
    TwoClusters {
        home,
        east,
        store,
        router: Arc::new(waker).router(),
    }
}

fn targeted(value: &str) -> Request<Body> {
    Request::builder()
        .uri("/shop")
        .header("X-Idle-Scaler-Target", value)
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn a_target_naming_a_cluster_wakes_the_app_in_that_cluster() {
    let w = two_clusters("").await;
    let res = send(&w.router, targeted("east:apps/web")).await;
    assert_eq!(res.status(), 307);
    assert_eq!(w.east.replicas("apps", "web"), Some(2));
    assert_eq!(
        w.home.replicas("apps", "web"),
        Some(0),
        "the default cluster's app stays"
    );
    assert_eq!(scale_writes(&w.home), 0);
    let rows = w.store.rows().await.expect("rows");
    let east_row = rows
        .iter()
        .find(|r| r.provider_id == "k8s@east:apps/web")
        .expect("row");
    assert_eq!(east_row.sleep_state, SleepState::Awake);
}

#[tokio::test]
async fn ingress_nginx_headers_are_of_the_wakers_own_cluster() {
    let w = two_clusters("east").await;
    let res = send(
        &w.router,
        nginx("GET", "/cart").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(res.status(), 307);
    assert_eq!(w.east.replicas("apps", "web"), Some(2));
    assert_eq!(scale_writes(&w.home), 0);
}

#[tokio::test]
async fn an_app_of_a_cluster_not_served_gets_the_generic_answer_and_nothing_moves() {
    let w = two_clusters("").await;
    for value in ["west:apps/web", "East:apps/web", "default:apps/web"] {
        let res = send(&w.router, targeted(value)).await;
        assert_eq!(res.status(), 503, "{value}");
    }
    assert_eq!(scale_writes(&w.home) + scale_writes(&w.east), 0);
    assert!(w.home.requests().is_empty() && w.east.requests().is_empty());
}
