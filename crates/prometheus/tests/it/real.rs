//! Against a real Prometheus scraping the test's exporter every second.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use idle_scaler_core::{
    ActivitySource, Config, Error, FixedScalerFactory, Job, MockScaler, Scale, SkipReason, Store,
    SystemClock, Target, Traffic,
};
use idle_scaler_prometheus::{DEFAULT_QUERY, PrometheusConfig, PrometheusSource, Settings};
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::MemoryStore;

use crate::support::{Exporter, Prometheus, eventually};

fn target(namespace: &str, name: &str) -> Target {
    Target {
        cluster: None,
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn window() -> chrono::Duration {
    chrono::Duration::minutes(30)
}

fn source(settings: Settings) -> PrometheusSource {
    PrometheusSource::new(settings).expect("valid settings")
}

fn default_settings(prometheus: &Prometheus) -> Settings {
    Settings::from_config(&PrometheusConfig {
        prometheus_url: prometheus.url(),
        ..PrometheusConfig::default()
    })
}

async fn ask(
    source: &PrometheusSource,
    targets: &[Target],
    at: DateTime<Utc>,
) -> HashMap<Target, Traffic> {
    source
        .traffic(targets, window(), at)
        .await
        .expect("Prometheus answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_template_tells_traffic_from_quiet_unknown_and_probe_only_apps() {
    let (exporter, exporter_addr) = Exporter::start().await;
    // Series exist once an ingress served a request (as in ingress-nginx).
    exporter.requests("apps", "web", "/", 10);
    exporter.requests("apps", "quiet", "/", 3);
    exporter.requests("apps", "probed", "/healthz", 5);
    exporter.requests("apps", "web.v2", "/", 4);
    exporter.requests("apps", "webxv2", "/", 1); // what an unescaped `web.v2` would match
    exporter.requests("apps", "webx", "/", 1); // what an unanchored `web` would match
    exporter.requests("staging", "web", "/", 2); // same name, other namespace
    let prometheus = Prometheus::start(exporter_addr).await;
    let source = source(default_settings(&prometheus));
    let asked = [
        target("apps", "web"),
        target("apps", "quiet"),
        target("apps", "probed"),
        target("apps", "web.v2"),
        target("apps", "absent"),
        target("staging", "web"),
    ];

    // Once scraped, every exported series is known and none has traffic yet. Known two
    // seconds ago too, so the question about the past below has data to answer from.
    let before = eventually("every exported ingress is known", || async {
        let seen = ask(&source, &asked, Utc::now() - chrono::Duration::seconds(2)).await;
        ((seen.len() == 5).then(|| seen.clone()), format!("{seen:?}"))
    })
    .await;
    assert!(
        before.values().all(|t| *t == Traffic::Quiet),
        "{before:?}\n{}",
        prometheus.log()
    );

    // Health-check traffic and look-alike names first, then the real traffic, so the
    // scrape that sees the real traffic sees the rest too.
    exporter.requests("apps", "probed", "/healthz", 50);
    exporter.requests("apps", "webxv2", "/", 3);
    exporter.requests("apps", "webx", "/", 3);
    let driven_at = Utc::now();
    exporter.requests("apps", "web", "/", 7);

    let (last_seen, seen) = eventually("apps/web shows its traffic", || async {
        let seen = ask(&source, &asked, Utc::now()).await;
        let found = match seen.get(&target("apps", "web")) {
            Some(Traffic::LastSeen(at)) => Some((*at, seen.clone())),
            _ => None,
        };
        (found, format!("{seen:?}"))
    })
    .await;
    // Reported at the resolution of the template's 30 s steps: never before the request,
    // never after the question.
    let slack = chrono::Duration::seconds(1);
    assert!(
        last_seen >= driven_at - slack && last_seen <= Utc::now() + slack,
        "last seen {last_seen}, driven at {driven_at}"
    );
    let quiet = [
        target("apps", "quiet"),
        target("apps", "probed"),
        target("apps", "web.v2"),
        target("staging", "web"),
    ];
    for t in &quiet {
        assert_eq!(seen.get(t), Some(&Traffic::Quiet), "{t}: {seen:?}");
    }
    assert_eq!(
        seen.get(&target("apps", "absent")),
        None,
        "no data: unknown"
    );
    assert_eq!(seen.len(), 5, "only asked targets are answered: {seen:?}");

    // Evaluated at the time asked: before the request there was no traffic.
    let earlier = ask(&source, &asked, driven_at - chrono::Duration::seconds(1)).await;
    assert_eq!(
        earlier.get(&target("apps", "web")),
        Some(&Traffic::Quiet),
        "{earlier:?}"
    );

    // The exclusion is what keeps the probed app quiet: without it, its probes count.
    let unfiltered = source_with_query(
        &prometheus,
        &DEFAULT_QUERY.replace(", path!~\"/healthz|/readyz|/livez\"", ""),
    );
    let seen = ask(&unfiltered, &asked, Utc::now()).await;
    assert!(
        matches!(
            seen.get(&target("apps", "probed")),
            Some(Traffic::LastSeen(_))
        ),
        "{seen:?}"
    );
}

fn source_with_query(prometheus: &Prometheus, query: &str) -> PrometheusSource {
    source(Settings {
        query: query.to_owned(),
        ..default_settings(prometheus)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_labels_map_another_metric_back_to_targets() {
    let (exporter, exporter_addr) = Exporter::start().await;
    exporter.add(
        "http_requests_total",
        &[("exported_namespace", "shop"), ("service", "cart")],
        1,
    );
    exporter.add("http_requests_total", &[("service", "orphan")], 1);
    let prometheus = Prometheus::start(exporter_addr).await;
    let started = Utc::now();
    // The time of the latest sample: a deliberately simple template, to test the mapping.
    let source = source(Settings {
        query: "max by (exported_namespace, service) (timestamp(http_requests_total\
                {exported_namespace=~\"{namespaces}\", service=~\"{names}\"}))"
            .into(),
        namespace_label: "exported_namespace".into(),
        name_label: "service".into(),
        ..default_settings(&prometheus)
    });
    let asked = [target("shop", "cart"), target("shop", "orphan")];
    let seen = eventually("shop/cart is scraped", || async {
        let seen = ask(&source, &asked, Utc::now()).await;
        (
            seen.get(&target("shop", "cart")).copied(),
            format!("{seen:?}"),
        )
    })
    .await;
    assert!(
        matches!(seen, Traffic::LastSeen(at) if at >= started - chrono::Duration::seconds(2)),
        "{seen:?}"
    );
    let all = ask(&source, &asked, Utc::now()).await;
    assert_eq!(
        all.len(),
        1,
        "the sample without a namespace label maps to nothing: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_templates_are_invalid_and_a_stopped_prometheus_is_unavailable() {
    let (exporter, exporter_addr) = Exporter::start().await;
    exporter.requests("apps", "web", "/", 1);
    let prometheus = Prometheus::start(exporter_addr).await;
    let asked = [target("apps", "web")];

    let unbalanced = source_with_query(&prometheus, "sum by (ingress) (rate(x[{window}])");
    let err = unbalanced
        .traffic(&asked, window(), Utc::now())
        .await
        .expect_err("parse error");
    assert!(
        matches!(&err, Error::Invalid { message: m, .. } if m.contains("bad_data") && m.contains("parse error")),
        "{err}"
    );

    let range = source_with_query(
        &prometheus,
        "nginx_ingress_controller_requests{ingress=~\"{names}\"}[{window}]",
    );
    let err = range
        .traffic(&asked, window(), Utc::now())
        .await
        .expect_err("a range vector");
    assert!(
        matches!(&err, Error::Invalid { message: m, .. } if m.contains("instant vector") && m.contains("matrix")),
        "{err}"
    );

    let source = source(default_settings(&prometheus));
    let url = prometheus.url();
    drop(prometheus);
    let err = source
        .traffic(&asked, window(), Utc::now())
        .await
        .expect_err("Prometheus is gone");
    assert!(
        matches!(&err, Error::Unavailable { message: m, .. } if m.contains(url.trim_start_matches("http://"))),
        "{err}"
    );
}

/// The whole loop: a tick over the in-memory store asks the real Prometheus, keeps the busy
/// app up with its traffic recorded in its row, sleeps the quiet one, and keeps the one
/// Prometheus knows nothing about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_keeps_the_busy_app_records_its_traffic_and_sleeps_the_quiet_one() {
    let (exporter, exporter_addr) = Exporter::start().await;
    exporter.requests("apps", "busy", "/", 1);
    exporter.requests("apps", "quiet", "/", 1);
    let prometheus = Prometheus::start(exporter_addr).await;
    let source = Arc::new(source(default_settings(&prometheus)));
    let asked = [target("apps", "busy"), target("apps", "quiet")];
    eventually("both ingresses are known", || async {
        let seen = ask(&source, &asked, Utc::now()).await;
        ((seen.len() == 2).then_some(()), format!("{seen:?}"))
    })
    .await;
    exporter.requests("apps", "busy", "/", 5);
    let last_seen = eventually("apps/busy shows its traffic", || async {
        let seen = ask(&source, &asked, Utc::now()).await;
        match seen.get(&target("apps", "busy")) {
            Some(Traffic::LastSeen(at)) => (Some(*at), String::new()),
            other => (None, format!("{other:?}")),
        }
    })
    .await;

    let store = MemoryStore::new();
    let long_ago = Utc::now() - chrono::Duration::hours(3);
    let busy = store
        .insert(NewDeployment::k8s("apps", "busy", long_ago))
        .await
        .expect("insert");
    let quiet = store
        .insert(NewDeployment::k8s("apps", "quiet", long_ago))
        .await
        .expect("insert");
    let dark = store
        .insert(NewDeployment::k8s("apps", "dark", long_ago))
        .await
        .expect("insert");
    let mut scaler = MockScaler::new();
    // Only apps/quiet may reach Kubernetes.
    scaler
        .expect_get_scale()
        .withf(|t| t.name == "quiet")
        .times(1)
        .returning(|_| {
            Ok(Scale {
                replicas: 2,
                resource_version: "1".into(),
            })
        });
    scaler
        .expect_set_replicas()
        .withf(|t, r, _| t.name == "quiet" && *r == 0)
        .times(1)
        .returning(|_, _, _| Ok(()));
    let job = Job::builder(
        Config {
            enabled: true,
            ..Config::default()
        },
        Arc::new(store.clone()),
        Arc::new(FixedScalerFactory(Arc::new(scaler))),
    )
    .clock(Arc::new(SystemClock))
    .activity_source(source)
    .build();
    let report = job.tick().await.expect("tick");
    assert_eq!(report.skipped(SkipReason::RecentTraffic), 1, "{report:?}");
    assert_eq!(report.skipped(SkipReason::ActivityUnknown), 1, "{report:?}");
    assert_eq!(report.slept.len(), 1, "{report:?}");
    let busy_row = store.get(busy).await.expect("get").expect("row");
    assert!(
        busy_row.last_activity_at >= last_seen - chrono::Duration::milliseconds(1),
        "the row records the traffic: {} vs {last_seen}",
        busy_row.last_activity_at
    );
    assert_eq!(
        store
            .get(quiet)
            .await
            .expect("get")
            .expect("row")
            .sleep_state,
        idle_scaler_core::SleepState::Asleep
    );
    assert_eq!(
        store
            .get(dark)
            .await
            .expect("get")
            .expect("row")
            .last_activity_at,
        long_ago.trunc_subsecs(6),
        "unknown traffic records nothing"
    );
}
