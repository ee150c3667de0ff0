//! The TLS configuration of the adapter's client, built here with an explicit rustls crypto
//! provider.
//!
//! kube 5's own `ConfigExt::rustls_client_config` takes rustls's process-wide default
//! provider, and rustls panics when none is installed and it was compiled with more than one
//! (a host that enables `aws-lc-rs` somewhere while this crate enables `ring`). So the adapter
//! builds the same configuration itself from the same `kube::Config` fields, with a provider
//! it hands to rustls: [`provider`] (the host's default if it installed one, otherwise this
//! crate's [`crypto_provider`]). It never installs a process default.
//!
//! What it honours, as kube does: the kubeconfig's CA (`root_cert`) or else the platform's
//! trust store; the in-cluster CA file (`root_cert_file`), re-read about once a minute to
//! survive CA rotation; a client certificate from the kubeconfig or from an exec plugin;
//! `insecure-skip-tls-verify`; `tls-server-name`.

mod identity;
mod verify;

use std::sync::Arc;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use kube::client::RustlsTlsError;
use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls_platform_verifier::BuilderVerifierExt;

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("idle-scaler-kube needs the `ring` (default) or the `aws-lc-rs` feature");

/// The provider this crate was built with: `ring` (feature `ring`, the default) or aws-lc
/// (feature `aws-lc-rs` without `ring`).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "ring")]
    return Arc::new(rustls::crypto::ring::default_provider());
    #[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
}

/// The provider a client is built with when the caller names none: the process default if
/// the host installed one (its choice, a FIPS build for instance, is kept), otherwise
/// [`crypto_provider`]. Reads the default, never installs one.
pub fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(crypto_provider)
}

/// The rustls configuration for `config`, with `provider` handed to rustls explicitly.
pub fn client_config(
    config: &kube::Config,
    provider: Arc<CryptoProvider>,
) -> kube::Result<ClientConfig> {
    let tls = kube::Error::RustlsTls;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            kube::Error::Service(format!("the rustls crypto provider cannot be used: {e}").into())
        })?;
    let builder = match &config.root_cert {
        Some(certs) => builder.with_root_certificates(root_store(certs).map_err(tls)?),
        // No CA configured: the platform's trust store, as client-go leaves `RootCAs` nil.
        None => builder
            .with_platform_verifier()
            .map_err(|e| tls(RustlsTlsError::AddRootCertificate(Box::new(e))))?,
    };
    let mut client = match identity::pem(config)? {
        Some(pem) => {
            let (chain, key) = identity::parse(&pem).map_err(tls)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls(RustlsTlsError::InvalidPrivateKey(e)))?
        }
        None => builder.with_no_client_auth(),
    };
    if config.accept_invalid_certs {
        client
            .dangerous()
            .set_certificate_verifier(Arc::new(verify::AcceptAny::new(provider)));
    } else if let Some(path) = &config.root_cert_file {
        let verifier = verify::Reloading::new(path.clone(), provider).map_err(tls)?;
        client
            .dangerous()
            .set_certificate_verifier(Arc::new(verifier));
    }
    Ok(client)
}

/// An https-or-http connector over `http` for `config`, with `provider`.
pub(crate) fn https_connector<H>(
    config: &kube::Config,
    provider: Arc<CryptoProvider>,
    http: H,
) -> kube::Result<HttpsConnector<H>> {
    let client = client_config(config, provider)?;
    let mut builder = HttpsConnectorBuilder::new()
        .with_tls_config(client)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = name
            .clone()
            .try_into()
            .map_err(|e| kube::Error::RustlsTls(RustlsTlsError::InvalidServerName(e)))?;
        builder = builder.with_server_name_resolver(FixedServerNameResolver::new(name));
    }
    Ok(builder.enable_http1().wrap_connector(http))
}

fn root_store(certs: &[Vec<u8>]) -> Result<RootCertStore, RustlsTlsError> {
    let mut store = RootCertStore::empty();
    for der in certs {
        store
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| RustlsTlsError::AddRootCertificate(Box::new(e)))?;
    }
    Ok(store)
}
