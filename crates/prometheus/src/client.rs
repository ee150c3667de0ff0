//! The HTTP(S) client: TLS over rustls, the credentials read from their files, the extra
//! headers, and the timeout around one exchange.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use idle_scaler_core::Error as CoreError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::{Error, Headers, Result, Settings};

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("idle-scaler-prometheus needs the `ring` (default) or the `aws-lc-rs` feature");

/// Largest answer read: a vector of one sample per candidate is a few kilobytes; anything
/// near this is a template that does not aggregate.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// How the client proves who it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// `Authorization: Bearer <token>`, the token read from this file at every query.
    Bearer {
        /// The file holding the token.
        token_file: PathBuf,
    },
    /// `Authorization: Basic ...`, the password read from this file at every query.
    Basic {
        /// The user.
        username: String,
        /// The file holding the password.
        password_file: PathBuf,
    },
}

/// The client of one Prometheus endpoint.
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub(crate) endpoint: Uri,
    auth: Auth,
    headers: Headers,
    timeout: Duration,
}

impl HttpClient {
    /// Builds the TLS configuration and reads the credential files once, so that a missing
    /// file or CA is a startup error naming its path rather than a WARN at every tick.
    pub(crate) fn new(endpoint: Uri, settings: &Settings) -> Result<Self> {
        let https = endpoint.scheme_str() == Some("https");
        let tls = tls_config(settings.ca_file.as_deref(), https)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        // The overall timeout bounds the whole query; this makes a black-holed address fail
        // with a connect error rather than a generic timeout.
        http.set_connect_timeout(Some(settings.timeout));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        authorization(&settings.auth)?;
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            endpoint,
            auth: settings.auth.clone(),
            headers: settings.headers.clone(),
            timeout: settings.timeout,
        })
    }

    /// POSTs the form `body` to the endpoint: the status and the body, read up to the limit.
    pub(crate) async fn post(&self, body: String) -> Result<(StatusCode, Bytes), CoreError> {
        let endpoint = &self.endpoint;
        // Read at every query: a token rotated on disk is used by the next one.
        let authorization = authorization(&self.auth)
            .map_err(|e| CoreError::unavailable(e.to_string()).with_source(e))?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(endpoint.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        for (name, value) in self.headers.to_http() {
            request = request.header(name, value);
        }
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CoreError::invalid("building the Prometheus request").with_source(e))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                CoreError::unavailable(format!("Prometheus at {endpoint}")).with_source(e)
            })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    CoreError::unavailable(format!(
                        "reading the answer of Prometheus at {endpoint}"
                    ))
                    .with_cause(e)
                })?
                .to_bytes();
            Ok::<_, CoreError>((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                CoreError::unavailable(format!(
                    "Prometheus at {endpoint} did not answer within {:?}",
                    self.timeout
                ))
            })?
    }
}

/// The `Authorization` value, marked sensitive so that hyper never prints it.
fn authorization(auth: &Auth) -> Result<Option<HeaderValue>> {
    let value = match auth {
        Auth::None => return Ok(None),
        Auth::Bearer { token_file } => {
            let token = read_secret("prometheus_bearer_token_file", token_file)?;
            format!("Bearer {}", token.trim())
        }
        Auth::Basic {
            username,
            password_file,
        } => {
            let password = read_secret("prometheus_basic_auth_password_file", password_file)?;
            // A file written with `echo` ends with a newline that is not the password's.
            let password = password
                .strip_suffix('\n')
                .map_or(password.as_str(), |p| p.strip_suffix('\r').unwrap_or(p));
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            format!("Basic {pair}")
        }
    };
    let mut value = HeaderValue::from_str(&value).map_err(|_| Error::Secret {
        key: secret_key(auth),
        path: secret_path(auth).to_owned(),
        why: "holds a character a header cannot carry (a control character or non-ASCII)",
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

fn secret_key(auth: &Auth) -> &'static str {
    match auth {
        Auth::Basic { .. } => "prometheus_basic_auth_password_file",
        _ => "prometheus_bearer_token_file",
    }
}

fn secret_path(auth: &Auth) -> &Path {
    match auth {
        Auth::Bearer { token_file } => token_file,
        Auth::Basic { password_file, .. } => password_file,
        Auth::None => Path::new(""),
    }
}

/// A credential file's content; an empty one is refused rather than sent as no credential.
/// Small and usually on a memory-backed Secret volume, so it is read without a blocking pool.
fn read_secret(key: &'static str, path: &Path) -> Result<String> {
    let content = std::fs::read_to_string(path).map_err(|source| Error::File {
        key,
        path: path.to_owned(),
        source,
    })?;
    if content.trim().is_empty() {
        return Err(Error::Secret {
            key,
            path: path.to_owned(),
            why: "is empty",
        });
    }
    Ok(content)
}

/// The crypto provider: the process default if the host installed one, otherwise this
/// crate's. It is handed to rustls explicitly, so a process whose rustls has several
/// providers compiled in and no default installed still gets a client, never a panic.
fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return installed.clone();
    }
    #[cfg(feature = "ring")]
    return Arc::new(rustls::crypto::ring::default_provider());
    #[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
}

/// Roots from `ca_file` when given (they replace the system's, as in Prometheus's own
/// `ca_file`), else the system's; none needed for plain http.
fn tls_config(ca_file: Option<&Path>, https: bool) -> Result<ClientConfig> {
    let tls = |why: String| Error::Tls { why };
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| Error::File {
            key: "prometheus_ca_file",
            path: path.to_owned(),
            source,
        })?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| tls(format!("{}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| tls(format!("a certificate in {}: {e}", path.display())))?;
        }
        if roots.is_empty() {
            return Err(tls(format!(
                "no PEM certificate in prometheus_ca_file {}",
                path.display()
            )));
        }
    } else if https {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
            return Err(tls(format!(
                "no system CA certificates found ({}); set prometheus_ca_file",
                errors.join("; ")
            )));
        }
    }
    Ok(ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(format!("the crypto provider: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

// Reading the credential files and the TLS roots: new tests go here.
#[cfg(test)]
mod tests;
