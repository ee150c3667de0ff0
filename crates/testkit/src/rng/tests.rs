use super::Rng;

#[test]
fn same_seed_same_stream() {
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    for _ in 0..100 {
        assert_eq!(a.next_u64(), b.next_u64());
    }
    assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
}

#[test]
fn ranges_stay_in_bounds() {
    let mut r = Rng::new(1);
    for _ in 0..1000 {
        assert!(r.below(3) < 3);
        assert!(r.index(5) < 5);
        assert!((-2..=4).contains(&r.range(-2, 4)));
    }
}

#[test]
fn unit_and_exponential_have_their_means() {
    let mut r = Rng::new(3);
    let n = 20_000;
    let units: f64 = (0..n).map(|_| r.unit()).sum::<f64>() / f64::from(n);
    assert!((0.48..0.52).contains(&units), "{units}");
    let exps: f64 = (0..n).map(|_| r.exponential(10.0)).sum::<f64>() / f64::from(n);
    assert!((9.5..10.5).contains(&exps), "{exps}");
    assert!((0..1000).all(|_| (0.0..1.0).contains(&r.unit())));
}
