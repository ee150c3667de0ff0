#[test]
fn message_is_one_line_naming_the_feature() {
    assert!(!super::MESSAGE.contains('\n'));
    assert!(super::MESSAGE.contains("--features demo"));
}
