//! Fidelity of the fake API server against a client nobody here wrote: the real `kubectl`.
//! If kubectl accepts the fake's discovery, objects, Scale and Status bodies, and refuses
//! what a real cluster refuses, the fake is faithful for the calls this project makes.
//!
//! Needs `kubectl` on PATH (Debian package `kubernetes-client`; `.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use idle_scaler_testkit::fake_kube::{FakeApiServer, Fault};

// The generic store's objects (slices, routes) through kubectl.
#[path = "fake_kube_kubectl/objects.rs"]
mod objects;

fn kubectl() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("kubectl"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "kubectl not found on PATH: this test runs the real kubectl against the fake API \
                 server; install it with `apt-get install kubernetes-client` (Debian package \
                 kubernetes-client)"
            )
        })
}

/// A kubeconfig for the fake: plain http, a dummy token, namespace `apps` by default.
fn write_kubeconfig(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let config = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}
users:
- name: fake
  user:
    token: fake-token
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: apps
current-context: fake
"
    );
    std::fs::write(&path, config).expect("writing the kubeconfig");
    path
}

struct Kubectl {
    bin: PathBuf,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(url: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = write_kubeconfig(dir.path(), url);
        Self {
            bin: kubectl(),
            dir,
            kubeconfig,
        }
    }

    /// Starts kubectl off the async runtime (the fake serves on it meanwhile).
    fn start(&self, args: &[&str]) -> tokio::task::JoinHandle<Output> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .arg("--request-timeout=20s")
            .args(args)
            // Isolated from the machine's ~/.kube and any KUBECONFIG.
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG");
        let shown = format!("kubectl {}", args.join(" "));
        tokio::task::spawn_blocking(move || {
            cmd.output()
                .unwrap_or_else(|e| panic!("running {shown}: {e}"))
        })
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.start(args).await.expect("kubectl task")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The whitespace-separated cells of each line.
fn table(stdout: &[u8]) -> Vec<Vec<String>> {
    text(stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_and_scales_a_deployment_on_the_fake() {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 2);
    fake.create_deployment("apps", "api", 1);
    let k = Kubectl::new(&fake.url());

    // get: discovery, then the server-side printed Table.
    let out = k.run(&["get", "deployment", "web", "-n", "apps"]).await;
    assert!(
        out.status.success(),
        "kubectl get failed: {}",
        text(&out.stderr)
    );
    let rows = table(&out.stdout);
    assert_eq!(
        rows[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{rows:?}"
    );
    assert_eq!(rows[1][..4], ["web", "2/2", "2", "2"], "{rows:?}");
    assert_eq!(rows.len(), 2, "{rows:?}");

    // list, default namespace from the kubeconfig context.
    let out = k.run(&["get", "deployments"]).await;
    assert!(
        out.status.success(),
        "kubectl get deployments failed: {}",
        text(&out.stderr)
    );
    let names: Vec<_> = table(&out.stdout)
        .iter()
        .skip(1)
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names, ["api", "web"]);

    // A missing one: the Status body is printed as the real apiserver's would be.
    let out = k.run(&["get", "deployment", "gone", "-n", "apps"]).await;
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        r#"Error from server (NotFound): deployments.apps "gone" not found"#
    );

    // scale to 0 through the scale subresource.
    let rv_before = fake.resource_version("apps", "web").expect("rv");
    let out = k
        .run(&["scale", "deployment", "web", "-n", "apps", "--replicas=0"])
        .await;
    assert!(
        out.status.success(),
        "kubectl scale failed: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).trim(), "deployment.apps/web scaled");
    assert_eq!(fake.replicas("apps", "web"), Some(0));
    let rv_after = fake.resource_version("apps", "web").expect("rv");
    assert_ne!(
        rv_after, rv_before,
        "an effective write moves the resourceVersion"
    );
    let scale_writes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| (r.method, r.path, r.content_type))
        .collect();
    assert_eq!(
        scale_writes,
        [(
            "PATCH".to_owned(),
            "/apis/apps/v1/namespaces/apps/deployments/web/scale".to_owned(),
            Some("application/merge-patch+json".to_owned())
        )],
        "kubectl wrote through the scale subresource"
    );

    // A stale --current-replicas must be refused and change nothing.
    let out = k
        .run(&[
            "scale",
            "deployment",
            "web",
            "-n",
            "apps",
            "--current-replicas=2",
            "--replicas=3",
        ])
        .await;
    assert!(
        !out.status.success(),
        "a stale --current-replicas was accepted: {}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("Expected replicas to be 2, was 0"),
        "stderr: {}",
        text(&out.stderr)
    );
    assert_eq!(fake.replicas("apps", "web"), Some(0));
    assert_eq!(fake.resource_version("apps", "web"), Some(rv_after.clone()));

    // A stale --resource-version is refused: kubectl compares it with the Scale's.
    let stale = format!("--resource-version={rv_before}");
    let out = k
        .run(&[
            "scale",
            "deployment",
            "web",
            "-n",
            "apps",
            &stale,
            "--replicas=3",
        ])
        .await;
    assert!(
        !out.status.success(),
        "a stale resourceVersion was accepted: {}",
        text(&out.stdout)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "Expected resource version to be {rv_before}, was {rv_after}"
        )),
        "stderr: {stderr}"
    );
    assert_eq!(fake.replicas("apps", "web"), Some(0));

    // The current one goes through.
    let out = k
        .run(&[
            "scale",
            "deployment",
            "web",
            "-n",
            "apps",
            &format!("--resource-version={rv_after}"),
            "--current-replicas=0",
            "--replicas=3",
        ])
        .await;
    assert!(
        out.status.success(),
        "kubectl scale failed: {}",
        text(&out.stderr)
    );
    assert_eq!(fake.replicas("apps", "web"), Some(3));
    // kubectl sends a precondition as a PUT of the whole Scale carrying the version it read.
    let put = fake
        .requests()
        .into_iter()
        .rfind(|r| r.method != "GET")
        .expect("a write");
    assert_eq!(put.method, "PUT");
    assert_eq!(
        put.path,
        "/apis/apps/v1/namespaces/apps/deployments/web/scale"
    );
    assert_eq!(put.json()["kind"], "Scale");
    assert_eq!(put.json()["metadata"]["resourceVersion"], rv_after.as_str());
    assert_eq!(put.status, Some(200));

    let out = k.run(&["get", "deployment", "web", "-n", "apps"]).await;
    assert_eq!(table(&out.stdout)[1][..4], ["web", "3/3", "3", "3"]);

    // A change between kubectl's read and its write: the fake refuses the PUT with 409.
    // The PUT is held back by injected latency; the Deployment is scaled meanwhile.
    fake.inject(Fault::latency(Duration::from_secs(2)).on_method("PUT"));
    let rv_now = fake.resource_version("apps", "web").expect("rv");
    let current = format!("--resource-version={rv_now}");
    let racing = k.start(&[
        "scale",
        "deployment",
        "web",
        "-n",
        "apps",
        &current,
        "--replicas=1",
    ]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !fake
        .requests()
        .iter()
        .any(|r| r.method == "PUT" && r.status.is_none())
    {
        assert!(
            Instant::now() < deadline,
            "kubectl never sent its PUT: {:?}",
            fake.requests()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fake.scale_externally("apps", "web", 5);
    let out = racing.await.expect("kubectl task");
    assert!(
        !out.status.success(),
        "a write over a change was accepted: {}",
        text(&out.stdout)
    );
    let statuses: Vec<_> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses.last(), Some(&Some(409)), "{statuses:?}");
    // kubectl retries a conflict by reading again; its own precondition then fails.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("Expected resource version to be {rv_now}")),
        "stderr: {stderr}"
    );
    assert_eq!(
        fake.replicas("apps", "web"),
        Some(5),
        "the other writer's count stands"
    );
}
