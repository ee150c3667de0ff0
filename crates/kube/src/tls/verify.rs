//! Server certificate verifiers built on an explicit crypto provider.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kube::client::RustlsTlsError;
use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{RootCertStore, SignatureScheme};

/// Verifies against the CA bundle in a file, re-read about once a minute: the in-cluster
/// `ca.crt` rotates in its projected volume like the token beside it. Connections already
/// made keep their handshake; new ones use the fresh roots. A failed re-read keeps the
/// roots last loaded (the file is briefly absent while the volume is swapped).
#[derive(Debug)]
pub(super) struct Reloading {
    path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Arc<WebPkiServerVerifier>, Instant)>,
}

impl Reloading {
    const INTERVAL: Duration = Duration::from_secs(60);

    pub(super) fn new(
        path: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, RustlsTlsError> {
        let verifier = load(&path, &provider)?;
        Ok(Self {
            path,
            provider,
            current: RwLock::new((verifier, Instant::now())),
        })
    }

    fn current(&self) -> Arc<WebPkiServerVerifier> {
        {
            let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
            if guard.1.elapsed() < Self::INTERVAL {
                return guard.0.clone();
            }
        }
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        if guard.1.elapsed() >= Self::INTERVAL {
            match load(&self.path, &self.provider) {
                Ok(fresh) => guard.0 = fresh,
                Err(e) => tracing::warn!(
                    target: "idle_scaler",
                    path = %self.path.display(),
                    error = %e,
                    "re-reading the Kubernetes CA bundle failed; keeping the roots last loaded"
                ),
            }
            guard.1 = Instant::now();
        }
        guard.0.clone()
    }

    #[cfg(test)]
    fn expire(&self) {
        let mut guard = self.current.write().unwrap();
        guard.1 = Instant::now() - Self::INTERVAL;
    }
}

fn load(
    path: &PathBuf,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, RustlsTlsError> {
    let add = |e: Box<dyn std::error::Error + Send + Sync>| RustlsTlsError::AddRootCertificate(e);
    let pem =
        std::fs::read(path).map_err(|e| add(format!("reading {}: {e}", path.display()).into()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| add(Box::new(e)))?)
            .map_err(|e| add(Box::new(e)))?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| add(format!("{}: {e}", path.display()).into()))
}

impl ServerCertVerifier for Reloading {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.current()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// `insecure-skip-tls-verify`: any certificate is accepted. The handshake signatures are
/// still checked with the provider, so the server at least holds the key of what it shows.
#[derive(Debug)]
pub(super) struct AcceptAny {
    provider: Arc<CryptoProvider>,
}

impl AcceptAny {
    pub(super) fn new(provider: Arc<CryptoProvider>) -> Self {
        tracing::warn!(
            target: "idle_scaler",
            "the Kubernetes API server's certificate is not verified (insecure-skip-tls-verify)"
        );
        Self { provider }
    }
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use idle_scaler_testkit::tls::Pki;
    use rustls::pki_types::ServerName;

    use super::*;

    fn cert(path: &std::path::Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).expect("a certificate")
    }

    #[test]
    fn the_ca_file_is_reread_after_the_interval_and_a_failed_read_keeps_the_last_roots() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (old, new) = (
            Pki::create(dir.path(), "old"),
            Pki::create(dir.path(), "new"),
        );
        let server = cert(&new.server("server", &["127.0.0.1"]).cert);
        let name = ServerName::try_from("127.0.0.1").expect("a name");
        let file = dir.path().join("ca.crt");
        std::fs::copy(&old.ca, &file).expect("mount the old CA");
        let verifier = Reloading::new(file.clone(), crate::crypto_provider()).expect("a verifier");
        let verify = || verifier.verify_server_cert(&server, &[], &name, &[], UnixTime::now());

        assert!(verify().is_err(), "the old CA did not issue it");
        std::fs::copy(&new.ca, &file).expect("rotate the CA");
        assert!(verify().is_err(), "read again only after the interval");
        verifier.expire();
        verify().expect("the rotated CA is read");
        std::fs::remove_file(&file).expect("the volume is swapped");
        verifier.expire();
        verify().expect("a failed read keeps the roots last loaded");
    }

    #[test]
    fn a_missing_ca_file_is_an_error_naming_it() {
        let err = Reloading::new("/nonexistent/ca.crt".into(), crate::crypto_provider())
            .expect_err("no file");
        assert!(err.to_string().contains("/nonexistent/ca.crt"), "{err}");
    }
}
