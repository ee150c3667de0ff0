//! TLS for tests: a throwaway PKI made with the `openssl` CLI (the Debian package `openssl`),
//! and [`TlsFront`], a TLS-terminating TCP proxy to put in front of a plain-HTTP server such
//! as the fake Kubernetes API server. The front hands its crypto provider (`ring`) to rustls
//! itself, so it never installs or reads the process default a test may be checking.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A test certificate authority in a directory; it issues server and client certificates.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    ca_key: PathBuf,
}

/// A certificate and its private key (PEM files).
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

impl Pki {
    /// A new CA named `name`, its files in `dir` under the prefix `name`.
    pub fn create(dir: &Path, name: &str) -> Self {
        let ca = dir.join(format!("{name}.pem"));
        let ca_key = dir.join(format!("{name}.key"));
        let subject = format!("/CN=idle-scaler test CA {name}");
        openssl(
            &[
                &["req", "-x509"][..],
                &EC,
                &["-subj", &subject, "-days", "2"],
            ]
            .concat(),
            &[("-keyout", &ca_key), ("-out", &ca)],
        );
        Self {
            dir: dir.to_owned(),
            ca,
            ca_key,
        }
    }

    /// A server certificate for `names` (IP addresses or DNS names).
    pub fn server(&self, stem: &str, names: &[&str]) -> Issued {
        let alt: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        let ext = format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
            alt.join(",")
        );
        self.issue(stem, names.first().copied().unwrap_or("server"), &ext)
    }

    /// A client certificate with common name `cn`.
    pub fn client(&self, stem: &str, cn: &str) -> Issued {
        let ext = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
                   extendedKeyUsage=clientAuth\n";
        self.issue(stem, cn, ext)
    }

    fn issue(&self, stem: &str, cn: &str, ext: &str) -> Issued {
        let path = |suffix: &str| self.dir.join(format!("{stem}.{suffix}"));
        let ext_file = path("ext");
        std::fs::write(&ext_file, ext).expect("write the extensions file");
        let subject = format!("/CN={cn}");
        openssl(
            &[&["req"][..], &EC, &["-subj", &subject]].concat(),
            &[("-keyout", &path("key")), ("-out", &path("csr"))],
        );
        openssl(
            &["x509", "-req", "-days", "2", "-CAcreateserial"],
            &[
                ("-in", &path("csr")),
                ("-CA", &self.ca),
                ("-CAkey", &self.ca_key),
                ("-extfile", &ext_file),
                ("-out", &path("crt")),
            ],
        );
        Issued {
            cert: path("crt"),
            key: path("key"),
        }
    }
}

/// The fake API server behind a [`TlsFront`] whose certificate (for 127.0.0.1) a new CA in
/// `dir` issued, and a kubeconfig in `dir` that points at the front and trusts that CA.
#[derive(Debug)]
pub struct HttpsFake {
    /// The fake API server (plain HTTP behind the front).
    pub fake: crate::fake_kube::FakeApiServer,
    /// The TLS front clients talk to.
    pub front: TlsFront,
    /// A kubeconfig for the front.
    pub kubeconfig: PathBuf,
}

impl HttpsFake {
    /// Starts the fake and its front.
    pub async fn start(dir: &Path) -> Self {
        let pki = Pki::create(dir, "ca");
        let fake = crate::fake_kube::FakeApiServer::start().await;
        let front = TlsFront::start(fake.addr(), &pki.server("server", &["127.0.0.1"]), None).await;
        let kubeconfig = kubeconfig(dir, &front.url(), &ca_data(&pki.ca), "");
        Self {
            fake,
            front,
            kubeconfig,
        }
    }
}

/// Writes a kubeconfig with one context to a new file in `dir`: `cluster` and `user` are
/// the bodies of its cluster and user (YAML lines, e.g. `certificate-authority-data: ...`).
pub fn kubeconfig(dir: &Path, server: &str, cluster: &str, user: &str) -> PathBuf {
    let indent = |body: &str| -> String { body.lines().map(|l| format!("    {l}\n")).collect() };
    let user = match user {
        "" => "    {}\n".to_owned(),
        body => indent(body),
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n{}\
         users:\n- name: u\n  user:\n{user}\
         contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
        indent(cluster),
    );
    let n = KUBECONFIGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{n}.kubeconfig"));
    std::fs::write(&path, yaml).expect("write the kubeconfig");
    path
}

static KUBECONFIGS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `certificate-authority-data: <base64 of the PEM file>`, a kubeconfig cluster line.
pub fn ca_data(ca: &Path) -> String {
    use base64::Engine;
    let pem = std::fs::read(ca).expect("read the CA");
    format!(
        "certificate-authority-data: {}",
        base64::engine::general_purpose::STANDARD.encode(pem)
    )
}

fn openssl(args: &[&str], paths: &[(&str, &PathBuf)]) {
    let mut command = Command::new("openssl");
    command.args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    let out = command.output().unwrap_or_else(|e| {
        panic!("running openssl (the Debian package `openssl` makes the test certificates): {e}")
    });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TLS front on 127.0.0.1: each connection is handshaken with the server certificate
/// (and, when asked, a client certificate from the given CA is required), then its bytes
/// are copied to and from the plain backend. Failed handshakes are counted.
#[derive(Debug)]
pub struct TlsFront {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    refused: tokio::sync::watch::Receiver<usize>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Seen {
    suites: Vec<CipherSuite>,
    client_certs: usize,
}

impl TlsFront {
    /// Starts a front for `backend` with the server certificate `server`; with `client_ca`,
    /// only clients presenting a certificate that CA issued complete the handshake.
    pub async fn start(backend: SocketAddr, server: &Issued, client_ca: Option<&Path>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions");
        let builder = match client_ca {
            Some(ca) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)), provider)
                        .build()
                        .expect("a client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let chain = CertificateDer::pem_file_iter(&server.cert)
            .expect("read the server certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("parse the server certificate");
        let key = PrivateKeyDer::from_pem_file(&server.key).expect("read the server key");
        let config = builder
            .with_single_cert(chain, key)
            .expect("the server certificate and key match");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (refused_tx, refused) = tokio::sync::watch::channel(0);
        let task = tokio::spawn(accept(
            listener,
            acceptor,
            backend,
            seen.clone(),
            refused_tx,
        ));
        Self {
            addr,
            seen,
            refused,
            task,
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The cipher suite of every completed handshake, in order.
    pub fn suites(&self) -> Vec<CipherSuite> {
        self.seen().suites.clone()
    }

    /// Completed handshakes in which the client presented a certificate.
    pub fn client_certificates(&self) -> usize {
        self.seen().client_certs
    }

    /// Handshakes that failed so far. The client may see its failure before the front
    /// counts it: [`TlsFront::wait_refused`] waits for a count.
    pub fn refused(&self) -> usize {
        *self.refused.borrow()
    }

    /// Waits (at most 10 s, then panics) until `n` handshakes have failed.
    pub async fn wait_refused(&self, n: usize) {
        let mut refused = self.refused.clone();
        let reached = refused.wait_for(|count| *count >= n);
        tokio::time::timeout(std::time::Duration::from_secs(10), reached)
            .await
            .unwrap_or_else(|_| panic!("{} handshakes refused, not {n}", self.refused()))
            .expect("the front is running");
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn roots(ca: &Path) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read the CA") {
        roots.add(cert.expect("parse the CA")).expect("add the CA");
    }
    roots
}

async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    backend: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    refused: tokio::sync::watch::Sender<usize>,
) {
    let refused = Arc::new(refused);
    while let Ok((tcp, _)) = listener.accept().await {
        let (acceptor, seen, refused) = (acceptor.clone(), seen.clone(), refused.clone());
        tokio::spawn(async move {
            let mut tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(_) => return refused.send_modify(|count| *count += 1),
            };
            let (_, conn) = tls.get_ref();
            let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
            let client_cert = conn.peer_certificates().is_some_and(|c| !c.is_empty());
            {
                let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
                seen.suites.extend(suite);
                seen.client_certs += usize::from(client_cert);
            }
            if let Ok(mut plain) = TcpStream::connect(backend).await {
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            }
        });
    }
}

/// An HTTP CONNECT proxy on 127.0.0.1 that records each tunnel's target (`host:port`) and
/// then copies bytes both ways; the way to see that a client went through a proxy.
#[derive(Debug)]
pub struct ConnectProxy {
    addr: SocketAddr,
    targets: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl ConnectProxy {
    /// Starts the proxy.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = targets.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(tunnel(stream, seen.clone()));
            }
        });
        Self {
            addr,
            targets,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The target of every CONNECT so far, in order.
    pub fn targets(&self) -> Vec<String> {
        self.targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tunnel(mut client: TcpStream, targets: Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so nothing after the request head is read ahead of the tunnel.
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let Some(target) = head
        .strip_prefix("CONNECT ")
        .and_then(|r| r.split(' ').next())
    else {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            .await;
        return;
    };
    targets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(target.to_owned());
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_ok()
    {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}
