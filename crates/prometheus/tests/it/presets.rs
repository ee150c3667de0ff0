//! The shipped templates of other implementations, against a real Prometheus scraping their
//! metric names and labels: busy, quiet, unknown, and names that only look alike.

use chrono::Utc;
use idle_scaler_core::{ActivitySource, Target, Traffic};
use idle_scaler_prometheus::{Preset, PrometheusConfig, PrometheusSource, Settings};

use crate::support::{Exporter, Prometheus, eventually};

fn target(namespace: &str, name: &str) -> Target {
    Target {
        cluster: None,
        namespace: namespace.into(),
        name: name.into(),
    }
}

/// Counts `by` requests of `namespace/name` the way the implementation exports them.
type Drive = fn(&Exporter, &str, &str, u64);

async fn busy_quiet_and_unknown_are_told_apart(preset: Preset, drive: Drive) {
    let (exporter, exporter_addr) = Exporter::start().await;
    for (namespace, name) in [
        ("apps", "web"),
        ("apps", "quiet"),
        ("apps", "web-api"),
        ("apps", "webx"),      // what an unanchored `web` would match
        ("apps", "svc-extra"), // what `svc` with a port `extra-...` would match
        ("staging", "web"),
    ] {
        drive(&exporter, namespace, name, 1);
    }
    let prometheus = Prometheus::start(exporter_addr).await;
    let source = PrometheusSource::new(Settings::from_config(&PrometheusConfig {
        prometheus_url: prometheus.url(),
        prometheus_query: preset.query().into(),
        prometheus_namespace_label: preset.namespace_label().into(),
        prometheus_name_label: preset.name_label().into(),
        ..PrometheusConfig::default()
    }))
    .expect("valid settings");
    let asked = [
        target("apps", "web"),
        target("apps", "quiet"),
        target("apps", "web-api"),
        target("apps", "absent"),
        target("apps", "svc"),
        target("staging", "web"),
    ];
    let ask = || async {
        source
            .traffic(&asked, chrono::Duration::minutes(30), Utc::now())
            .await
            .expect("Prometheus answers")
    };
    let before = eventually(
        &format!("{preset:?}: every exported app is known"),
        || async {
            let seen = ask().await;
            ((seen.len() == 4).then(|| seen.clone()), format!("{seen:?}"))
        },
    )
    .await;
    assert!(
        before.values().all(|t| *t == Traffic::Quiet),
        "{preset:?}: {before:?}\n{}",
        prometheus.log()
    );

    // The look-alike first, so the scrape that sees apps/web's traffic sees it too.
    drive(&exporter, "apps", "webx", 5);
    let driven_at = Utc::now();
    drive(&exporter, "apps", "web", 5);
    let seen = eventually(
        &format!("{preset:?}: apps/web shows its traffic"),
        || async {
            let seen = ask().await;
            let busy = matches!(seen.get(&target("apps", "web")), Some(Traffic::LastSeen(_)));
            (busy.then(|| seen.clone()), format!("{seen:?}"))
        },
    )
    .await;
    let Some(Traffic::LastSeen(at)) = seen.get(&target("apps", "web")) else {
        unreachable!("waited for it")
    };
    assert!(
        *at >= driven_at - chrono::Duration::seconds(1),
        "{preset:?}: {at} vs {driven_at}"
    );
    for quiet in [
        target("apps", "quiet"),
        target("apps", "web-api"),
        target("staging", "web"),
    ] {
        assert_eq!(
            seen.get(&quiet),
            Some(&Traffic::Quiet),
            "{preset:?} {quiet}: {seen:?}"
        );
    }
    for unknown in [target("apps", "absent"), target("apps", "svc")] {
        assert_eq!(
            seen.get(&unknown),
            None,
            "{preset:?} {unknown}: no data, unknown: {seen:?}"
        );
    }
    assert_eq!(seen.len(), 4, "{preset:?}: only asked targets: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_istio_preset_reads_destination_workloads() {
    // Any reporter counts: the quiet app is seen only by its callers' proxies.
    busy_quiet_and_unknown_are_told_apart(Preset::Istio, |e, namespace, name, by| {
        let reporter = if name == "quiet" {
            "source"
        } else {
            "destination"
        };
        e.istio(namespace, name, reporter, by);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traefik_preset_splits_the_service_label() {
    // A named port on `web-api`: `apps-web-api-http` must not be read as `web` with port
    // `api-http`.
    busy_quiet_and_unknown_are_told_apart(Preset::Traefik, |e, namespace, name, by| {
        let port = if name == "web-api" { "http" } else { "80" };
        e.traefik(namespace, name, port, by);
    })
    .await;
}
