use super::*;

#[test]
fn logs_once_per_period_and_counts_the_rest() {
    let log = RejectedLog::default();
    let t0 = Instant::now();
    assert_eq!(log.should_log(t0), Some(0));
    for i in 1..=5 {
        assert_eq!(log.should_log(t0 + Duration::from_secs(i)), None);
    }
    assert_eq!(log.should_log(t0 + RejectedLog::PERIOD), Some(5));
    assert_eq!(
        log.should_log(t0 + RejectedLog::PERIOD + Duration::from_secs(1)),
        None
    );
}
