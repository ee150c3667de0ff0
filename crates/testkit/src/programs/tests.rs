use super::check;

#[test]
fn a_missing_program_skips_outside_ci() {
    assert!(!check("t", &["/bin/sh", "/nonexistent/program"], false));
    assert!(check("t", &["/bin/sh"], false));
    assert!(check("t", &["/bin/sh"], true));
}

#[test]
#[should_panic(expected = "/nonexistent/program missing under CI")]
fn a_missing_program_fails_under_ci() {
    check("t", &["/bin/sh", "/nonexistent/program"], true);
}
