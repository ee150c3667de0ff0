//! The rustls crypto provider of the adapter's client.
//!
//! kube 5 builds its TLS configuration from rustls's process-wide default provider and has no
//! way to be handed one. When no default is installed and rustls was compiled with more than
//! one provider (a host that enables `aws-lc-rs` somewhere while this crate enables `ring`),
//! rustls cannot choose and panics on the first client build. So before building a client the
//! adapter makes sure a default exists: the host's, if the host installed one (it is used as
//! is), otherwise this crate's [`crypto_provider`], installed once. A host that wants another
//! provider installs it before the job builds its first client.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

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

/// The process default provider, installing [`crypto_provider`] first when there is none.
/// Never panics: a concurrent install by someone else simply wins.
pub fn ensure_crypto_provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return installed.clone();
    }
    // An error means another thread installed one meanwhile: that one is the default now.
    if Arc::unwrap_or_clone(crypto_provider())
        .install_default()
        .is_ok()
    {
        tracing::debug!("installed the adapter's rustls crypto provider as the process default");
    }
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(crypto_provider)
}
