use super::*;

#[test]
fn a_userinfo_password_is_replaced_and_the_user_kept() {
    assert_eq!(
        redact_url("postgres://app:s3cret@db:5432/platform"),
        "postgres://app:<redacted>@db:5432/platform"
    );
    assert_eq!(
        redact_url("http://u:secret@prom:9090/prefix?x=1"),
        "http://u:<redacted>@prom:9090/prefix?x=1"
    );
    // The last `@` ends the userinfo: a raw `@` in the password is still hidden.
    assert_eq!(
        redact_url("postgres://a:p@ss@db:5432/x"),
        "postgres://a:<redacted>@db:5432/x"
    );
    assert_eq!(password_of("postgres://a:p@ss@db:5432/x"), Some("p@ss"));
}

#[test]
fn a_url_without_a_password_is_unchanged() {
    for url in [
        "postgres://app@db/platform",
        "postgres://db/platform",
        "http://prometheus.monitoring:9090",
        "http://[::1]:9090/prom",
        "postgres://app:@db/x",
    ] {
        assert_eq!(redact_url(url), url);
        assert_eq!(password_of(url), None, "{url}");
        assert_eq!(redact_in(&format!("bad {url}"), url), format!("bad {url}"));
    }
}

#[test]
fn an_ipv6_host_is_not_mistaken_for_a_password() {
    let url = "postgres://u:pw@[::1]:5432/db";
    assert_eq!(redact_url(url), "postgres://u:<redacted>@[::1]:5432/db");
    assert_eq!(password_of(url), Some("pw"));
    assert_eq!(password_of("postgres://[::1]:5432/db"), None);
}

#[test]
fn a_query_password_is_replaced() {
    let url = "postgres://db/platform?user=app&password=s3cret";
    assert_eq!(
        redact_url(url),
        "postgres://db/platform?user=app&password=<redacted>"
    );
    assert_eq!(password_of(url), Some("s3cret"));
}

#[test]
fn a_percent_encoded_password_is_found_in_both_forms() {
    let url = "postgres://u:s3cr%40t@db.example:5433/app?sslmode=disable";
    assert_eq!(password_of(url), Some("s3cr%40t"));
    assert_eq!(
        redact_url(url),
        "postgres://u:<redacted>@db.example:5433/app?sslmode=disable"
    );
    assert_eq!(
        redact_in("bad url postgres://u:s3cr%40t@db", url),
        "bad url postgres://u:<redacted>@db"
    );
    assert_eq!(
        redact_in("auth failed for s3cr@t", url),
        "auth failed for <redacted>"
    );
}

#[test]
fn without_a_scheme_nothing_leaks() {
    assert_eq!(redact_url("not a url s3cret"), "<unparseable URL>");
    assert_eq!(redact_url("u:s3cret@db/x"), "<unparseable URL>");
    // Error texts about a mistyped URL still lose the password.
    assert_eq!(password_of("u:s3cret@db/x"), Some("s3cret"));
    assert_eq!(
        redact_in("invalid URL \"u:s3cret@db/x\"", "u:s3cret@db/x"),
        "invalid URL \"u:<redacted>@db/x\""
    );
    assert_eq!(password_of("prom:9090"), None);
}
