//! The credential files and the CA file, read as the client reads them (no network).

use super::*;

fn file(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write");
    path
}

#[test]
fn a_token_is_trimmed_and_a_password_loses_only_its_line_end() {
    let dir = tempfile::tempdir().expect("dir");
    let token_file = file(&dir, "token", "  t0ken\n");
    let bearer = authorization(&Auth::Bearer { token_file }).expect("read");
    let bearer = bearer.expect("a header");
    assert_eq!(bearer, "Bearer t0ken");
    assert!(bearer.is_sensitive());

    let password_file = file(&dir, "password", " pass word \r\n");
    let basic = authorization(&Auth::Basic {
        username: "scraper".into(),
        password_file,
    })
    .expect("read")
    .expect("a header");
    let pair = base64::engine::general_purpose::STANDARD.encode("scraper: pass word ");
    assert_eq!(basic, format!("Basic {pair}").as_str());
    assert!(basic.is_sensitive());
    assert_eq!(authorization(&Auth::None).expect("nothing to read"), None);
}

#[test]
fn an_unreadable_or_empty_file_is_named_and_its_content_never_shown() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing");
    let err = authorization(&Auth::Bearer {
        token_file: missing.clone(),
    })
    .expect_err("missing")
    .to_string();
    assert!(
        err.contains("prometheus_bearer_token_file")
            && err.contains(&missing.display().to_string()),
        "{err}"
    );
    let empty = file(&dir, "empty", "\n");
    let err = authorization(&Auth::Basic {
        username: "u".into(),
        password_file: empty,
    })
    .expect_err("empty")
    .to_string();
    assert!(
        err.contains("prometheus_basic_auth_password_file") && err.contains("is empty"),
        "{err}"
    );
    let control = file(&dir, "control", "s3cr\u{1}t");
    let err = authorization(&Auth::Bearer {
        token_file: control,
    })
    .expect_err("a control character")
    .to_string();
    assert!(
        err.contains("cannot carry") && !err.contains("s3cr"),
        "{err}"
    );
}

#[test]
fn a_ca_file_without_certificates_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let not_pem = file(&dir, "ca.pem", "hello\n");
    let err = tls_config(Some(&not_pem), true)
        .expect_err("no certificate")
        .to_string();
    assert!(
        err.contains("no PEM certificate") && err.contains(&not_pem.display().to_string()),
        "{err}"
    );
    let missing = dir.path().join("absent.pem");
    let err = tls_config(Some(&missing), true)
        .expect_err("missing")
        .to_string();
    assert!(
        err.contains("prometheus_ca_file") && err.contains("absent.pem"),
        "{err}"
    );
    // Plain http needs no roots at all, so a machine without any still builds a client.
    assert!(tls_config(None, false).is_ok());
}
