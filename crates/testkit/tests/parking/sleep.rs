//! The park after a confirmed sleep.

use super::*;

#[tokio::test]
async fn a_confirmed_sleep_parks_the_apps_services_in_the_same_tick() {
    let world = World::new();
    let id = world
        .idle_app(&web(), &["web", "web-grpc", "web-admin"])
        .await;
    // Someone's own slice under the name idle-scaler would use: never touched.
    world.parker.hand_write_slice("apps", "web-admin");
    let report = world.job(parking()).tick().await.expect("tick");
    assert_eq!(world.state(id).await, SleepState::Asleep);
    assert_eq!(world.deployments.replicas(&web()), Some(0));
    assert_eq!(world.parker.parked_services(&web()), ["web", "web-grpc"]);
    assert!(world.parker.has_hand_written_slice("apps", "web-admin"));
    assert_eq!(report.parking.get("parked"), Some(&2));
    assert_eq!(report.parking.get("conflict"), Some(&1));
}

#[tokio::test]
async fn a_failed_park_leaves_the_sleep_and_the_reconcile_parks_the_app_later() {
    let world = World::new();
    let id = world.idle_app(&web(), &["web"]).await;
    let config = parking();
    let job = world.job(config.clone());
    world.parker.fail_next(1);
    let report = job
        .tick()
        .await
        .expect("a parking failure never fails the tick");
    assert_eq!(report.slept.len(), 1);
    assert_eq!(report.parking.get("failed"), Some(&1));
    assert_eq!(world.state(id).await, SleepState::Asleep);
    assert_eq!(world.deployments.replicas(&web()), Some(0));
    assert!(!world.parker.is_parked(&web()));

    // Within one reconcile period, the drift check finds it at 0 and parks it.
    let until = start() + a_period(&config);
    while world.clock_now() < until && !world.parker.is_parked(&web()) {
        world.clock.advance(Duration::seconds(
            i64::try_from(config.interval_seconds).expect("small"),
        ));
        job.tick().await.expect("tick");
    }
    assert!(world.parker.is_parked(&web()), "parked within the period");
    assert_eq!(world.state(id).await, SleepState::Asleep);
}

#[tokio::test]
async fn an_app_of_another_cluster_is_slept_but_never_parked() {
    let world = World::new();
    world.idle_app(&web(), &["web"]).await;
    let api = Target {
        cluster: Some(east()),
        ..Target::new("apps", "api")
    };
    // The in-memory cluster and parker key apps by namespace and name: another name.
    let api_id = world.idle_app(&api, &["api"]).await;
    let mut config = parking();
    config.clusters.insert(
        east(),
        idle_scaler_core::ClusterConfig {
            context: Some("east".into()),
            ..Default::default()
        },
    );
    let job = world
        .builder(config)
        .cluster(
            east(),
            Arc::new(FixedScalerFactory(world.deployments.clone())),
        )
        .parker(world.parker.clone(), None)
        .build();
    let report = job.tick().await.expect("tick");
    assert_eq!(report.slept.len(), 2);
    assert_eq!(world.state(api_id).await, SleepState::Asleep);
    assert!(world.parker.is_parked(&web()));
    assert!(!world.parker.is_parked(&api));
    assert!(
        world
            .parker
            .calls()
            .iter()
            .all(|c| c.target.as_ref().is_none_or(|t| t.name != "api")),
        "{:?}",
        world.parker.calls()
    );
}
