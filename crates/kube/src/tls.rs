//! The rustls crypto provider of the adapter's client. kube's connector takes rustls's
//! process-wide default, and rustls panics when none is installed and it was built with more
//! than one provider (a host enabling `aws-lc-rs` somewhere while this crate enables `ring`).
//! So before a client is built the adapter installs its own provider as the process default,
//! unless one is installed already (a host's choice, a FIPS build for instance, is kept).

use rustls::crypto::CryptoProvider;

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("idle-scaler-kube needs the `ring` (default) or the `aws-lc-rs` feature");

/// The provider this crate was built with: `ring` (feature `ring`, the default) or aws-lc
/// (feature `aws-lc-rs` without `ring`).
pub fn crypto_provider() -> CryptoProvider {
    #[cfg(feature = "ring")]
    return rustls::crypto::ring::default_provider();
    #[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
    return rustls::crypto::aws_lc_rs::default_provider();
}

/// Installs [`crypto_provider`] as the process default unless one is installed.
pub(crate) fn install_default_provider() {
    if CryptoProvider::get_default().is_none() {
        // The only error is another thread installing first: a default exists either way.
        let _ = crypto_provider().install_default();
    }
}
