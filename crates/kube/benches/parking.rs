//! API requests per app for sleep + park and for wake + unpark, through `KubeScaler` and
//! `KubeParker` against the fake API server, at 100 and at 1,000 slept apps (10 apps and 10
//! Services per namespace). The requests are the fake's own record of what it received.
//!
//! What it shows: the requests per app stay the same whatever the number of slept apps
//! (O(slept) in all), and no per-app request reads the whole cluster; only `parked()` and a
//! re-point with nothing to change list every namespace, once each.
//!
//! Run: `cargo bench -p idle-scaler-kube --bench parking`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use idle_scaler_core::parking::{Parker, Unpark};
use idle_scaler_core::{Scaler, Target};
use idle_scaler_kube::waker_addresses::{LocalAddresses, fixed_addresses};
use idle_scaler_kube::{KubeParker, KubeScaler, LazyScalerFactory};
use idle_scaler_testkit::fake_kube::{FakeApiServer, RecordedRequest};

const APPS_PER_NAMESPACE: usize = 10;
const TIMEOUT: Duration = Duration::from_secs(10);

fn target(i: usize) -> Target {
    Target {
        cluster: None,
        namespace: format!("team-{}", i / APPS_PER_NAMESPACE),
        name: format!("app-{i}"),
    }
}

/// `VERB resource[/subresource]` of a request (`LIST` and `WATCH` for a collection's `GET`),
/// its scope marked: `LIST endpointslices (all namespaces)` is a list of the cluster.
fn kind(r: &RecordedRequest) -> String {
    let segments: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    // `/api/v1/...` or `/apis/<group>/v1/...`
    let mut rest = match segments.first() {
        Some(&"api") => &segments[2.min(segments.len())..],
        _ => &segments[3.min(segments.len())..],
    };
    let namespaced = rest.first() == Some(&"namespaces");
    if namespaced {
        rest = &rest[2.min(rest.len())..];
    }
    let resource = match rest {
        [resource, _, sub] => format!("{resource}/{sub}"),
        [resource, ..] => (*resource).to_owned(),
        [] => String::new(),
    };
    let verb = match (r.method.as_str(), rest.len()) {
        ("GET", 1) if r.query_param("watch").is_some_and(|w| w == "true") => "WATCH",
        ("GET", 1) => "LIST",
        (m, _) => m,
    };
    let scope = if namespaced { "" } else { " (all namespaces)" };
    format!("{verb} {resource}{scope}")
}

fn tally(requests: &[RecordedRequest]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in requests {
        *out.entry(kind(r)).or_default() += 1;
    }
    out
}

struct Round {
    apps: usize,
    sleep_park: Vec<RecordedRequest>,
    sleep_park_wall: Duration,
    wake_unpark: Vec<RecordedRequest>,
    wake_unpark_wall: Duration,
    parked_requests: usize,
    repoint_requests: usize,
}

async fn round(apps: usize) -> Round {
    let fake = FakeApiServer::start().await;
    for i in 0..apps {
        let t = target(i);
        fake.create_deployment(&t.namespace, &t.name, 2);
        fake.create_service(&t.namespace, &t.name, &t.name, &[("http", 80)]);
        // The app's pods, once ready, serve here: the controller publishes their slice.
        fake.set_app_endpoint(
            &t.namespace,
            &t.name,
            &format!("10.1.{}.{}:8080", i / 250, i % 250),
        );
    }
    let scaler = KubeScaler::from_url(&fake.url(), TIMEOUT).expect("scaler");
    let factory = Arc::new(LazyScalerFactory::from_url(fake.url(), TIMEOUT));
    let feed = fixed_addresses("10.0.0.7:8081", LocalAddresses::Refuse).expect("addresses");
    let parker = KubeParker::new(factory, feed);

    fake.clear_requests();
    let started = Instant::now();
    for i in 0..apps {
        let t = target(i);
        let scale = scaler.get_scale(&t).await.expect("get scale");
        scaler
            .set_replicas(&t, 0, Some(&scale.resource_version))
            .await
            .expect("sleep");
        let report = parker.park(&t).await.expect("park");
        assert_eq!(report.count("parked"), 1, "{t}: {report:?}");
    }
    let sleep_park_wall = started.elapsed();
    let sleep_park = fake.requests();

    fake.clear_requests();
    let parked = parker.parked().await.expect("parked");
    assert_eq!(parked.len(), apps);
    let parked_requests = fake.requests().len();
    fake.clear_requests();
    let report = parker.repoint().await.expect("repoint");
    assert_eq!(report.count("unchanged"), apps as u64);
    let repoint_requests = fake.requests().len();

    fake.clear_requests();
    let started = Instant::now();
    for i in 0..apps {
        let t = target(i);
        scaler.set_replicas(&t, 2, None).await.expect("wake");
        let done = parker.unpark_when_ready(&t, TIMEOUT).await.expect("unpark");
        assert!(
            matches!(&done, Unpark::Done(r) if r.count("unparked") == 1),
            "{t}: {done:?}"
        );
    }
    let wake_unpark_wall = started.elapsed();
    let wake_unpark = fake.requests();
    assert!(
        parker.parked().await.expect("parked").is_empty(),
        "every app unparked"
    );
    Round {
        apps,
        sleep_park,
        sleep_park_wall,
        wake_unpark,
        wake_unpark_wall,
        parked_requests,
        repoint_requests,
    }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn per_app(n: usize, apps: usize) -> f64 {
    n as f64 / apps as f64
}

fn print_phase(name: &str, requests: &[RecordedRequest], wall: Duration, apps: usize) {
    let cluster_lists = requests
        .iter()
        .filter(|r| kind(r).ends_with("(all namespaces)"))
        .count();
    println!(
        "  {name}: {} requests, {:.2} per app, {cluster_lists} lists of the cluster, {:.1} s",
        requests.len(),
        per_app(requests.len(), apps),
        wall.as_secs_f64()
    );
    for (kind, n) in tally(requests) {
        println!("    {kind:<28} {:>6.2} per app", per_app(n, apps));
    }
    assert_eq!(
        cluster_lists, 0,
        "{name}: a per-app request listed the cluster"
    );
}

#[tokio::main]
async fn main() {
    println!(
        "idle-scaler-kube: API requests per app, KubeScaler + KubeParker against the fake API server ({APPS_PER_NAMESPACE} apps and Services per namespace, one HTTP port each)"
    );
    for apps in [100, 1_000] {
        let r = round(apps).await;
        println!("{} slept apps:", r.apps);
        print_phase("sleep + park", &r.sleep_park, r.sleep_park_wall, r.apps);
        print_phase("wake + unpark", &r.wake_unpark, r.wake_unpark_wall, r.apps);
        println!(
            "  parked(): {} request(s); re-point with nothing to change: {} request(s)",
            r.parked_requests, r.repoint_requests
        );
    }
}
