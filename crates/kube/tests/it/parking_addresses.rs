//! Waker addresses over real HTTP: a change re-points every parked slice (and only
//! idle-scaler's), a family switch writes the new slice before deleting the old, and the
//! waker Service's ready `parking` endpoints feed the addresses without ever emptying them.

use std::sync::Arc;

use idle_scaler_core::parking::Parker;
use idle_scaler_kube::LazyScalerFactory;
use idle_scaler_kube::waker_addresses::{LocalAddresses, WakerService, watch_waker_service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::parking::*;
use super::*;

fn our_slices(fake: &FakeApiServer, namespace: &str) -> Vec<Value> {
    fake.endpoint_slices(namespace)
        .into_iter()
        .filter(|s| {
            s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "idle-scaler"
        })
        .collect()
}

/// `apps/web` (two Services) and `shop/cart` asleep, and a hand-written slice in `apps`.
async fn two_apps(fake: &FakeApiServer) -> Value {
    fake.create_deployment("apps", "web", 0);
    fake.create_service("apps", "web", "web", &[("http", 80)]);
    fake.create_service("apps", "web-admin", "web", &[("web", 8080)]);
    fake.create_deployment("shop", "cart", 0);
    fake.create_service("shop", "cart", "cart", &[("http", 80), ("http-alt", 8080)]);
    create_slice(
        fake,
        "apps",
        json!({
            "metadata": { "name": "hand-written", "labels": { "kubernetes.io/service-name": "web" } },
            "addressType": "IPv4",
            "endpoints": [{ "addresses": ["10.9.9.9"], "conditions": { "ready": true } }],
            "ports": [{ "name": "http", "port": 8081 }],
        }),
    )
    .await
}

#[tokio::test]
async fn an_address_change_repoints_every_parked_slice_at_once() {
    let fake = FakeApiServer::start().await;
    let hand_written = two_apps(&fake).await;
    let (tx, parker) = host_parker(&fake, "10.0.0.7:8081");
    parker.park(&target("apps", "web")).await.expect("park web");
    parker
        .park(&target("shop", "cart"))
        .await
        .expect("park cart");
    let parker = Arc::new(parker);
    let stop = CancellationToken::new();
    let follower = tokio::spawn({
        let (parker, stop) = (parker.clone(), stop.clone());
        async move { parker.follow_addresses(stop).await }
    });

    tx.send_replace(Some("10.0.0.8:9000,10.0.0.9:9000".parse().expect("valid")));

    let moved = |fake: &FakeApiServer| {
        ["apps", "shop"].iter().all(|ns| {
            our_slices(fake, ns).iter().all(|s| {
                addresses_of(s) == ["10.0.0.8", "10.0.0.9"] && s["ports"][0]["port"] == 9000
            })
        })
    };
    wait_until(
        &fake,
        "every parked slice points at the new addresses",
        moved,
    )
    .await;
    assert_eq!(our_slices(&fake, "apps").len(), 2);
    let cart = our_slices(&fake, "shop");
    assert_eq!(cart.len(), 1);
    assert_eq!(
        cart[0]["ports"][1]["port"], 9001,
        "port + 1 stays the second port"
    );
    assert_eq!(slice(&fake, "apps", "hand-written"), Some(hand_written));
    stop.cancel();
    follower.await.expect("the follower ends on shutdown");
}

#[tokio::test]
async fn a_new_run_with_other_static_addresses_repoints_what_the_last_one_left() {
    let fake = FakeApiServer::start().await;
    two_apps(&fake).await;
    parker(&fake)
        .park(&target("shop", "cart"))
        .await
        .expect("park");
    let restarted = Arc::new(parker_with(&fake, feed("10.0.0.8:8081")));
    let stop = CancellationToken::new();
    let follower = tokio::spawn({
        let (parker, stop) = (restarted.clone(), stop.clone());
        async move { parker.follow_addresses(stop).await }
    });

    wait_until(&fake, "the slice points at this run's address", |fake| {
        slice(fake, "shop", "idle-scaler-cart").is_some_and(|s| addresses_of(&s) == ["10.0.0.8"])
    })
    .await;
    stop.cancel();
    follower.await.expect("the follower ends on shutdown");
}

#[tokio::test]
async fn a_family_switch_writes_the_new_slice_before_deleting_the_old() {
    let fake = FakeApiServer::start().await;
    two_apps(&fake).await;
    let (tx, parker) = host_parker(&fake, "10.0.0.7:8081");
    parker.park(&target("shop", "cart")).await.expect("park");
    let old = slice(&fake, "shop", "idle-scaler-cart").expect("v4 slice");
    fake.clear_requests();

    tx.send_replace(Some("[fd00::8]:8081".parse().expect("valid")));
    let report = parker.repoint().await.expect("repoint");

    assert_eq!(report.count("parked"), 1, "{report:?}");
    assert_eq!(report.count("unparked"), 1, "{report:?}");
    assert!(slice(&fake, "shop", "idle-scaler-cart").is_none());
    let v6 = slice(&fake, "shop", "idle-scaler-cart-v6").expect("v6 slice");
    assert_eq!(v6["addressType"], "IPv6");
    assert_eq!(addresses_of(&v6), ["fd00::8"]);
    assert_eq!(v6["metadata"]["labels"], old["metadata"]["labels"]);
    assert_eq!(
        v6["metadata"]["ownerReferences"],
        old["metadata"]["ownerReferences"]
    );
    let writes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    let methods: Vec<&str> = writes.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "DELETE"], "{writes:?}");
    assert_eq!(
        writes[1].json()["preconditions"]["uid"],
        old["metadata"]["uid"]
    );
}

#[tokio::test]
async fn a_repoint_with_nothing_to_change_is_one_list() {
    let fake = FakeApiServer::start().await;
    two_apps(&fake).await;
    let parker = parker(&fake);
    parker.park(&target("apps", "web")).await.expect("park");
    fake.clear_requests();

    let report = parker.repoint().await.expect("repoint");

    assert_eq!(report.count("unchanged"), 2, "{report:?}");
    assert_eq!(fake.requests().len(), 1, "{:?}", fake.requests());
}

/// A log sink the test can wait on.
#[derive(Clone)]
struct Logs(tokio::sync::watch::Sender<String>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf).into_owned();
        self.0.send_modify(|all| all.push_str(&text));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Replaces the endpoints of the waker Service's slice.
async fn set_endpoints(fake: &FakeApiServer, endpoints: &[(&str, bool)]) {
    let api: Api<EndpointSlice> = Api::namespaced(client(fake), "idle-scaler");
    let mut slice = api.get("idle-scaler-abcde").await.expect("slice");
    slice.endpoints = serde_json::from_value(json!(
        endpoints
            .iter()
            .map(|(ip, ready)| json!({ "addresses": [ip], "conditions": { "ready": ready } }))
            .collect::<Vec<_>>()
    ))
    .expect("endpoints");
    api.replace("idle-scaler-abcde", &PostParams::default(), &slice)
        .await
        .expect("replaced");
}

#[tokio::test]
async fn the_waker_service_feeds_its_ready_parking_endpoints_and_never_an_empty_set() {
    let (sink, mut logs) = tokio::sync::watch::channel(String::new());
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Logs(sink.clone()))
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Another test thread may have cached "no interest" for a callsite meanwhile.
    tracing::callsite::rebuild_interest_cache();

    let fake = FakeApiServer::start().await;
    create_slice(
        &fake,
        "idle-scaler",
        json!({
            "metadata": {
                "name": "idle-scaler-abcde",
                "labels": {
                    "kubernetes.io/service-name": "idle-scaler",
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": [
                { "addresses": ["10.0.0.1"], "conditions": { "ready": true } },
                { "addresses": ["10.0.0.2"], "conditions": { "ready": false } },
            ],
            "ports": [{ "name": "metrics", "port": 9090 }, { "name": "parking", "port": 8081 }],
        }),
    )
    .await;
    let factory = Arc::new(LazyScalerFactory::from_url(fake.url(), TIMEOUT));
    let service: WakerService = "idle-scaler/idle-scaler".parse().expect("valid");
    let stop = CancellationToken::new();
    let (mut feed, task) =
        watch_waker_service(factory, service, LocalAddresses::Refuse, stop.clone());
    let shown = |feed: &Option<idle_scaler_kube::parking::WakerAddresses>| {
        feed.as_ref().map(ToString::to_string).unwrap_or_default()
    };
    let wait = |feed: &mut idle_scaler_kube::waker_addresses::AddressFeed, want: &'static str| {
        let mut feed = feed.clone();
        async move {
            tokio::time::timeout(TIMEOUT, feed.wait_for(|a| shown(a) == want))
                .await
                .unwrap_or_else(|_| panic!("the feed never became {want}"))
                .expect("feed open");
        }
    };

    wait(&mut feed, "10.0.0.1:8081").await;
    set_endpoints(&fake, &[("10.0.0.1", true), ("10.0.0.2", true)]).await;
    wait(&mut feed, "10.0.0.1:8081,10.0.0.2:8081").await;
    feed.borrow_and_update();

    set_endpoints(&fake, &[("10.0.0.1", false), ("10.0.0.2", false)]).await;
    tokio::time::timeout(TIMEOUT, logs.wait_for(|l| l.contains("no ready endpoint")))
        .await
        .expect("the empty set is logged")
        .expect("logs open");
    assert!(
        !feed.has_changed().expect("open"),
        "an empty set is never sent"
    );
    assert_eq!(shown(&feed.borrow()), "10.0.0.1:8081,10.0.0.2:8081");

    set_endpoints(&fake, &[("10.0.0.3", true)]).await;
    wait(&mut feed, "10.0.0.3:8081").await;

    stop.cancel();
    task.await.expect("the follower ends on shutdown");
}
