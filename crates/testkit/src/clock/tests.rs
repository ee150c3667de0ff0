use super::*;

#[test]
fn clones_share_the_time() {
    let start = DateTime::<Utc>::UNIX_EPOCH;
    let a = ManualClock::new(start);
    let b = a.clone();
    a.advance(Duration::minutes(3));
    assert_eq!(b.now(), start + Duration::minutes(3));
    b.set(start);
    assert_eq!(a.now(), start);
}
