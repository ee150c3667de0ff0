use super::*;

#[test]
fn ages_read_like_kubectl() {
    assert_eq!(human_age(5), "5s");
    assert_eq!(human_age(200), "3m20s");
    assert_eq!(human_age(900), "15m");
    assert_eq!(human_age(4 * 3600), "4h");
}
