use super::*;

#[test]
fn bearer_scheme_is_case_insensitive() {
    for header in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR  t0k"] {
        assert_eq!(bearer_token(header), Some("t0k"), "{header}");
    }
    assert_eq!(bearer_token("Basic t0k"), None);
    assert_eq!(bearer_token("Bearert0k"), None);
}

#[test]
fn a_wake_of_another_instances_cluster_is_misdirected_not_a_server_error() {
    let id = Uuid::nil();
    let res = ApiError::Job(Error::ClusterNotServed {
        id,
        cluster: "west".into(),
    })
    .into_response();
    assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
}

#[test]
fn echoed_input_is_capped() {
    let long = "x".repeat(10_000);
    let cut = truncate(&long);
    assert_eq!(cut.chars().count(), ECHO_MAX_CHARS + 1);
    assert!(cut.ends_with('…'));
    assert_eq!(truncate("short"), "short");
    // Cut on a character boundary, never inside one.
    assert_eq!(
        truncate(&"é".repeat(100)).chars().count(),
        ECHO_MAX_CHARS + 1
    );
}
