//! `parking = off` unparks what is still parked, a bounded number per tick; the flag off
//! calls nothing at all.

use super::*;
use idle_scaler_core::job::DRAIN_PER_TICK;

#[tokio::test]
async fn parking_off_unparks_everything_still_parked_fifty_apps_a_tick() {
    let world = World::new();
    for i in 0..120 {
        let app = Target::new("apps", format!("app-{i}"));
        world.parker.add_app(&app, &[&app.name]);
        idle_scaler_core::Parker::park(world.parker.as_ref(), &app)
            .await
            .expect("park");
    }
    let config = Config {
        enabled: true,
        ..Config::default()
    };
    let job = world.job(config);
    let mut unparked = Vec::new();
    for _ in 0..5 {
        let report = job.tick().await.expect("tick");
        unparked.push(report.parking.get("unparked").copied().unwrap_or(0));
    }
    assert_eq!(DRAIN_PER_TICK, 50);
    assert_eq!(unparked, [50, 50, 20, 0, 0]);
    let listed = idle_scaler_core::Parker::parked(world.parker.as_ref())
        .await
        .expect("list");
    assert!(listed.is_empty());
    // The job listed until a list came back empty (the fourth tick), then never again;
    // the test's own list is the fifth.
    assert_eq!(world.calls(ParkerMethod::Parked), 4 + 1);
    assert_eq!(world.calls(ParkerMethod::Park), 120);
}

#[tokio::test]
async fn with_the_flag_off_the_parker_is_never_called() {
    let world = World::new();
    let id = world.idle_app(&web(), &["web"]).await;
    idle_scaler_core::Parker::park(world.parker.as_ref(), &web())
        .await
        .expect("park");
    let before = world.parker.calls().len();
    let job = world.job(Config {
        enabled: false,
        ..parking()
    });
    for _ in 0..3 {
        job.tick().await.expect("tick");
        world.clock.advance(Duration::minutes(20));
    }
    assert_eq!(world.parker.calls().len(), before);
    assert_eq!(world.state(id).await, SleepState::Awake);
}
