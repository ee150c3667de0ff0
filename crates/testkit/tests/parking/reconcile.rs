//! The reconcile of parked apps: asleep ones parked again, awake or rowless ones unparked.

use super::*;

#[tokio::test]
async fn a_missing_slice_is_parked_again_within_the_reconcile_period() {
    let world = World::new();
    world.idle_app(&web(), &["web", "web-grpc"]).await;
    let config = parking();
    let job = world.job(config.clone());
    job.tick().await.expect("tick");
    world.parker.delete_slice("apps", "web-grpc");
    let until = world.clock_now() + a_period(&config);
    while world.clock_now() < until && world.parker.parked_services(&web()).len() < 2 {
        world.clock.advance(Duration::seconds(
            i64::try_from(config.interval_seconds).expect("small"),
        ));
        job.tick().await.expect("tick");
    }
    assert_eq!(world.parker.parked_services(&web()), ["web", "web-grpc"]);
}

#[tokio::test]
async fn an_app_woken_elsewhere_is_unparked_once_ready_within_the_period() {
    let world = World::new();
    let id = world.idle_app(&web(), &["web"]).await;
    let config = parking();
    let job = world.job(config.clone());
    job.tick().await.expect("tick");
    assert!(world.parker.is_parked(&web()));
    // The CLI (another process, no parker) wakes it.
    let cli = world.builder(config.clone()).build();
    cli.wake(id).await.expect("wake");
    world.parker.set_ready(&web(), false);

    // Not ready: the sweep leaves it parked.
    world.clock.advance(a_period(&config));
    job.tick().await.expect("tick");
    assert!(world.parker.is_parked(&web()));

    world.parker.set_ready(&web(), true);
    world.clock.advance(a_period(&config));
    job.tick().await.expect("tick");
    assert!(!world.parker.is_parked(&web()));
    assert_eq!(world.calls(ParkerMethod::UnparkNow), 0);
}

#[tokio::test]
async fn a_parked_app_whose_row_is_gone_is_unparked_at_once() {
    let world = World::new();
    let id = world.idle_app(&web(), &["web"]).await;
    let config = parking();
    let job = world.job(config.clone());
    job.tick().await.expect("tick");
    world.parker.set_ready(&web(), false);
    world.store.delete(id).await.expect("delete");
    world.clock.advance(a_period(&config));
    let report = job.tick().await.expect("tick");
    assert!(!world.parker.is_parked(&web()));
    assert_eq!(report.parking.get("unparked"), Some(&1));
}
