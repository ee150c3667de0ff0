use super::escape;

#[test]
fn a_value_with_a_newline_stays_on_its_line() {
    let line = b"WARN skipped provider_id=k8s:a/b\n2026-01-01 ERROR forged\n";
    assert_eq!(
        escape(line, false),
        b"WARN skipped provider_id=k8s:a/b\\n2026-01-01 ERROR forged\n"
    );
    assert_eq!(
        escape(b"a\rb\x1b[31m\x07\n", false),
        b"a\\rb\\x1b[31m\\x07\n"
    );
    assert_eq!(
        escape(b"\x1b[31mWARN\x1b[0m x\n", true),
        b"\x1b[31mWARN\x1b[0m x\n"
    );
    assert_eq!(escape("é ü\n".as_bytes(), false), "é ü\n".as_bytes());
}
