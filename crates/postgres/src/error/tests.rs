use super::*;

#[test]
fn password_is_found_and_redacted() {
    let url = "postgres://u:s3cr%40t@db.example:5433/app?sslmode=disable";
    assert_eq!(password_of(url).as_deref(), Some("s3cr%40t"));
    assert_eq!(
        redact(
            "bad url postgres://u:s3cr%40t@db",
            password_of(url).as_deref()
        ),
        "bad url postgres://u:<redacted>@db"
    );
    assert_eq!(
        redact("auth failed for s3cr@t", password_of(url).as_deref()),
        "auth failed for <redacted>"
    );
    assert_eq!(password_of("postgres://u@h/db"), None);
    assert_eq!(password_of("postgres://h/db"), None);
}
