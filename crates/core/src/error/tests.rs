use super::*;

#[test]
fn a_chain_names_every_cause_once() {
    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Connect(#[source] std::io::Error);
    let io = std::io::Error::other("invalid peer certificate: UnknownIssuer");
    let e = Error::unavailable("get scale apps/web").with_source(Connect(io));
    assert_eq!(
        chain(&e),
        "unavailable: get scale apps/web: client error (Connect): \
         invalid peer certificate: UnknownIssuer"
    );
}

#[test]
fn the_cause_is_kept_as_the_source() {
    let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
    let e = Error::unavailable("Kubernetes API").with_source(io);
    assert_eq!(e.to_string(), "unavailable: Kubernetes API");
    let source = std::error::Error::source(&e).expect("a source");
    assert_eq!(source.to_string(), "connect timed out");
    assert!(std::error::Error::source(&Error::conflict("x")).is_none());
}
