use super::*;

#[test]
fn held_requests_are_capped_per_app_and_released_when_answered() {
    let held = Held::new(2);
    let (a, b) = (Target::new("apps", "a"), Target::new("apps", "b"));
    let first = held.try_hold(&a).expect("first");
    let _second = held.try_hold(&a).expect("second");
    assert!(held.try_hold(&a).is_none(), "a third one for the same app");
    let _other = held.try_hold(&b).expect("another app has its own places");
    drop(first);
    assert!(held.try_hold(&a).is_some(), "a place came free");
}
