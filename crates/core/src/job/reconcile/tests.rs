use super::checks_per_tick;

#[test]
fn the_slice_covers_every_asleep_row_once_per_period() {
    // 2 min ticks, 10 min period: each row is due after 8 minutes, a quarter each tick.
    assert_eq!(checks_per_tick(100_000, 120, 10), 25_000);
    assert_eq!(checks_per_tick(1_000, 120, 10), 250);
    assert_eq!(checks_per_tick(3, 120, 10), 1);
    // A tick longer than the period checks them all.
    assert_eq!(checks_per_tick(50, 3_600, 10), 50);
}
