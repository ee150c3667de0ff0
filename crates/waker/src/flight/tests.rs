use idle_scaler_core::host::NewDeployment;

use super::*;

#[test]
fn an_app_is_settled_once_ready_for_a_few_seconds() {
    let now = Instant::now() + Duration::from_secs(3600);
    let wall = Utc::now();
    let awake_since = |secs: i64| {
        let at = wall - TimeDelta::seconds(secs);
        NewDeployment::k8s("apps", "web", at)
            .sleep_state(SleepState::Awake, at, None)
            .into_record()
    };
    let woken_just_now = awake_since(0);
    // Woken by this waker: counted from the moment the flight saw it ready.
    let ready = |secs: u64| now - Duration::from_secs(secs);
    assert!(!settled(&woken_just_now, true, ready(2), now, wall));
    assert!(settled(&woken_just_now, true, ready(3), now, wall));
    // It ran already: counted from the moment its row turned awake.
    assert!(!settled(&awake_since(2), false, now, now, wall));
    assert!(settled(&awake_since(3), false, now, now, wall));
    assert!(settled(&awake_since(7200), false, now, now, wall));
    // Asleep in the table but running (someone scaled it up): just found, not settled.
    let at = wall - TimeDelta::hours(2);
    let asleep = NewDeployment::k8s("apps", "web", at)
        .sleep_state(SleepState::Asleep, at, Some(1))
        .into_record();
    assert!(!settled(&asleep, false, now, now, wall));
}
