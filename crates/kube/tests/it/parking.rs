//! Shared setup of the parking tests: a parker on the fake, a client of its own, and a wait
//! (by watch, with a deadline) until the fake's slices satisfy a condition.

use std::sync::Arc;

use futures::StreamExt;
use idle_scaler_kube::parking::WakerAddresses;
use idle_scaler_kube::waker_addresses::{AddressFeed, LocalAddresses, fixed_addresses};
use idle_scaler_kube::{KubeParker, LazyScalerFactory};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams, WatchParams};
use serde_json::Value;

use super::*;

/// Where the tests' slices point: nothing connects to it.
pub const WAKER: &str = "10.0.0.7:8081";

/// A feed of fixed addresses.
pub fn feed(addresses: &str) -> AddressFeed {
    fixed_addresses(addresses, LocalAddresses::Refuse).expect("valid waker addresses")
}

/// A parker on `fake` pointing at `addresses`.
pub fn parker_with(fake: &FakeApiServer, addresses: AddressFeed) -> KubeParker {
    let factory = Arc::new(LazyScalerFactory::from_url(fake.url(), TIMEOUT));
    KubeParker::new(factory, addresses)
}

/// A parker on `fake` pointing at [`WAKER`].
pub fn parker(fake: &FakeApiServer) -> KubeParker {
    parker_with(fake, feed(WAKER))
}

/// A channel a host keeps to hand new addresses, and the parker reading it.
pub fn host_parker(
    fake: &FakeApiServer,
    addresses: &str,
) -> (
    tokio::sync::watch::Sender<Option<WakerAddresses>>,
    KubeParker,
) {
    let first: WakerAddresses = addresses.parse().expect("valid");
    let (tx, rx) = tokio::sync::watch::channel(Some(first));
    (tx, parker_with(fake, rx))
}

/// A kube client of the test's own, for objects the fake's helpers do not make.
pub fn client(fake: &FakeApiServer) -> kube::Client {
    let config = kube::Config::new(fake.url().parse().expect("url"));
    idle_scaler_kube::client::build(config).expect("client")
}

/// `target(ns, name)` of the default cluster.
pub fn target(namespace: &str, name: &str) -> Target {
    Target {
        cluster: None,
        namespace: namespace.into(),
        name: name.into(),
    }
}

/// The slice `name` of `namespace` on the fake.
pub fn slice(fake: &FakeApiServer, namespace: &str, name: &str) -> Option<Value> {
    fake.endpoint_slices(namespace)
        .into_iter()
        .find(|s| s["metadata"]["name"] == name)
}

/// The names of the slices of `namespace` on the fake.
pub fn slice_names(fake: &FakeApiServer, namespace: &str) -> Vec<String> {
    fake.endpoint_slices(namespace)
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// The addresses of a slice's endpoints.
pub fn addresses_of(slice: &Value) -> Vec<String> {
    slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// Creates a slice as a person would (`kubectl apply` of a hand-written one).
pub async fn create_slice(fake: &FakeApiServer, namespace: &str, slice: Value) -> Value {
    let api: Api<EndpointSlice> = Api::namespaced(client(fake), namespace);
    let slice: EndpointSlice = serde_json::from_value(slice).expect("an EndpointSlice");
    let created = api
        .create(&PostParams::default(), &slice)
        .await
        .expect("created");
    serde_json::to_value(created).expect("json")
}

/// Waits (by a watch of every slice, at most [`TIMEOUT`]) until `done` holds of the fake;
/// panics naming `what` otherwise.
pub async fn wait_until(fake: &FakeApiServer, what: &str, done: impl Fn(&FakeApiServer) -> bool) {
    let api: Api<EndpointSlice> = Api::all(client(fake));
    let list = api.list(&ListParams::default()).await.expect("list");
    if done(fake) {
        return;
    }
    let rv = list.metadata.resource_version.unwrap_or_default();
    let wp = WatchParams::default().timeout(10);
    let stream = api.watch(&wp, &rv).await.expect("watch");
    let mut stream = std::pin::pin!(stream);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(_)) if done(fake) => return,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("{what}: not within {TIMEOUT:?}"),
        }
    }
}
