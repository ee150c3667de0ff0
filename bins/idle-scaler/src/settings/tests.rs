use idle_scaler_prometheus::Headers;

use idle_scaler_kube::waker_addresses::{LocalAddresses, WakerService};

use super::*;

// The rule itself is tested in `idle_scaler_core::redact`; this pins what `config` shows.
#[test]
fn redacts_passwords() {
    assert_eq!(
        redact_url("postgres://app:s3cret@db:5432/platform"),
        "postgres://app:<redacted>@db:5432/platform"
    );
    assert_eq!(
        redact_url("postgres://app@db/platform"),
        "postgres://app@db/platform"
    );
    assert_eq!(
        redact_url("postgres://db/platform?user=app&password=s3cret"),
        "postgres://db/platform?user=app&password=<redacted>"
    );
    assert_eq!(
        redact_url("postgres://a:p@ss@db:5432/x"),
        "postgres://a:<redacted>@db:5432/x"
    );
    assert!(!redact_url("not a url s3cret").contains("s3cret"));
}

#[test]
fn config_output_hides_a_prometheus_password_and_keeps_one_job_object() {
    let settings = Settings {
        job: Config::default(),
        prometheus: PrometheusConfig {
            prometheus_url: "http://u:s3cret@prom:9090".into(),
            prometheus_bearer_token_file: "/run/secrets/token".into(),
            prometheus_headers: Headers(
                [("X-Scope-OrgID", "team-a"), ("X-Api-Key", "k3y-s3cret")]
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .into(),
            ),
            ..PrometheusConfig::default()
        },
        database_url: None,
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
        waker: WakerConfig::default(),
        waker_listen_addr: None,
        probe_listen_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9091))),
        parking_listen_addr: Some(SocketAddr::from(([0, 0, 0, 0], 8081))),
        waker_addresses: WakerAddressSource::Service(WakerService {
            namespace: "idle-scaler".into(),
            name: "idle-scaler".into(),
        }),
        route_index: false,
        local_addresses: LocalAddresses::Refuse,
        pod_ip: None,
        wake_token: None,
        log_format: LogFormat::Text,
        http_limits: Limits::default(),
        http_drain: Duration::from_secs(20),
        warnings: Vec::new(),
    };
    let v = settings.redacted().expect("JSON");
    assert_eq!(v["job"]["prometheus_url"], "http://u:<redacted>@prom:9090");
    assert_eq!(v["job"]["prometheus_timeout_seconds"], 5);
    assert_eq!(v["job"]["idle_minutes"], 30);
    assert_eq!(v["job"]["waker_timeout_seconds"], 30);
    assert_eq!(v["job"]["waker_target_header"], "X-Idle-Scaler-Target");
    assert_eq!(v["waker_listen_addr"], "off");
    assert_eq!(v["probe_listen_addr"], "127.0.0.1:9091");
    assert_eq!(v["parking_listen_addr"], "0.0.0.0:8081");
    assert_eq!(v["waker_addresses"], "service idle-scaler/idle-scaler");
    assert_eq!(v["route_index"], "off");
    assert_eq!(v["http_listen_backlog"], 512);
    assert_eq!(v["http_drain_seconds"], 20);
    assert_eq!(
        v["job"]["prometheus_bearer_token_file"],
        "/run/secrets/token"
    );
    assert_eq!(v["job"]["prometheus_headers"]["X-Scope-OrgID"], "team-a");
    assert_eq!(v["job"]["prometheus_headers"]["X-Api-Key"], "<redacted>");
    assert_eq!(v["job"]["prometheus_preset"], "ingress-nginx");
    assert!(!v.to_string().contains("s3cret"), "{v}");
    assert!(!format!("{settings:?}").contains("s3cret"));
}
