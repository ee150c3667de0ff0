use super::*;

#[test]
fn credentials_leave_the_server_url() {
    let mut config = kube::Config::new("https://kuser:s3cret@api.example:6443/".parse().unwrap());
    move_userinfo_to_basic_auth(&mut config);
    assert_eq!(config.cluster_url.to_string(), "https://api.example:6443/");
    assert_eq!(config.auth_info.username.as_deref(), Some("kuser"));
    assert!(config.auth_info.password.is_some());

    let mut plain = kube::Config::new("https://api.example:6443/".parse().unwrap());
    move_userinfo_to_basic_auth(&mut plain);
    assert_eq!(plain.cluster_url.to_string(), "https://api.example:6443/");
    assert!(plain.auth_info.username.is_none());
}
