//! The client certificate the adapter presents, found where kube 5 finds it: an exec plugin
//! that answers with a certificate (when exec is the kubeconfig's way to authenticate), else
//! the kubeconfig's `client-certificate(-data)` and `client-key(-data)`.

use std::path::Path;

use base64::Engine;
use kube::client::RustlsTlsError;
use kube::config::{AuthInfo, ExecConfig, ExecInteractiveMode, KubeconfigError, LoadDataError};
use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;
use serde::Deserialize;

/// The identity as PEM (key, then certificate chain), or none.
pub(super) fn pem(config: &kube::Config) -> kube::Result<Option<Vec<u8>>> {
    if let Some(pem) = from_exec(&config.auth_info) {
        return Ok(Some(pem));
    }
    from_kubeconfig(&config.auth_info).map_err(kube::Error::InferKubeconfig)
}

/// The certificate chain and private key of `pem`.
pub(super) fn parse(
    data: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), RustlsTlsError> {
    let mut chain = Vec::new();
    let (mut pkcs8, mut pkcs1, mut sec1) = (None, None, None);
    let mut reader = std::io::Cursor::new(data);
    while let Some((kind, der)) =
        pem::from_buf(&mut reader).map_err(RustlsTlsError::InvalidIdentityPem)?
    {
        match kind {
            SectionKind::Certificate => chain.push(der.into()),
            SectionKind::PrivateKey => pkcs8 = Some(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => pkcs1 = Some(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => sec1 = Some(PrivateKeyDer::Sec1(der.into())),
            _ => return Err(RustlsTlsError::UnknownPrivateKeyFormat),
        }
    }
    let key = pkcs8
        .or(pkcs1)
        .or(sec1)
        .ok_or(RustlsTlsError::MissingPrivateKey)?;
    if chain.is_empty() {
        return Err(RustlsTlsError::MissingCertificate);
    }
    Ok((chain, key))
}

fn from_kubeconfig(auth: &AuthInfo) -> Result<Option<Vec<u8>>, KubeconfigError> {
    let cert = load(
        auth.client_certificate_data.as_deref(),
        auth.client_certificate.as_deref(),
    )
    .map_err(KubeconfigError::LoadClientCertificate)?;
    let key = load(
        auth.client_key_data.as_ref().map(|k| k.expose_secret()),
        auth.client_key.as_deref(),
    )
    .map_err(KubeconfigError::LoadClientKey)?;
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(KubeconfigError::LoadClientKey(
            LoadDataError::NoBase64DataOrFile,
        )),
        (None, Some(_)) => Err(KubeconfigError::LoadClientCertificate(
            LoadDataError::NoBase64DataOrFile,
        )),
        (Some(cert), Some(mut key)) => {
            key.extend_from_slice(&cert);
            Ok(Some(key))
        }
    }
}

/// Base64 data wins over a file, as in kubectl; a trailing newline is ensured so that two
/// blobs concatenate into valid PEM.
fn load(data: Option<&str>, file: Option<&str>) -> Result<Option<Vec<u8>>, LoadDataError> {
    let mut bytes = match (data, file) {
        (Some(data), _) => base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(LoadDataError::DecodeBase64)?,
        (None, Some(file)) => {
            std::fs::read(file).map_err(|e| LoadDataError::ReadFile(e, Path::new(file).into()))?
        }
        (None, None) => return Ok(None),
    };
    if bytes.last().is_some_and(|end| *end != b'\n') {
        bytes.push(b'\n');
    }
    Ok(Some(bytes))
}

#[derive(Deserialize)]
struct ExecCredential {
    status: Option<ExecStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecStatus {
    client_certificate_data: Option<String>,
    client_key_data: Option<String>,
}

/// The certificate an exec plugin answers with, when exec is how this kubeconfig
/// authenticates (kube tries an auth provider, basic auth, a token and a token file first).
/// A plugin that fails or answers with a token gives none here: kube's auth layer runs it
/// again for the token and reports its errors.
fn from_exec(auth: &AuthInfo) -> Option<Vec<u8>> {
    let basic = auth.username.is_some() && auth.password.is_some();
    if auth.auth_provider.is_some() || basic || auth.token.is_some() || auth.token_file.is_some() {
        return None;
    }
    let exec = auth.exec.as_ref()?;
    let status = match run(exec) {
        Ok(credential) => credential.status?,
        Err(why) => {
            tracing::debug!(target: "idle_scaler", %why, "exec plugin gave no client certificate");
            return None;
        }
    };
    let (cert, key) = (status.client_certificate_data?, status.client_key_data?);
    let mut pem = key.into_bytes();
    pem.push(b'\n');
    pem.extend_from_slice(cert.as_bytes());
    pem.push(b'\n');
    Some(pem)
}

fn run(exec: &ExecConfig) -> Result<ExecCredential, String> {
    let command = exec.command.as_deref().ok_or("no command")?;
    let mut cmd = std::process::Command::new(command);
    cmd.args(exec.args.iter().flatten());
    for env in exec.env.iter().flatten() {
        if let (Some(name), Some(value)) = (env.get("name"), env.get("value")) {
            cmd.env(name, value);
        }
    }
    let interactive = exec.interactive_mode != Some(ExecInteractiveMode::Never);
    if interactive {
        cmd.stdin(std::process::Stdio::inherit());
        cmd.stderr(std::process::Stdio::inherit());
    } else {
        cmd.stdin(std::process::Stdio::piped());
    }
    let cluster = match (exec.provide_cluster_info, &exec.cluster) {
        (true, Some(cluster)) => Some(cluster),
        (true, None) => return Err("provideClusterInfo without cluster information".into()),
        (false, _) => None,
    };
    let mut spec = serde_json::json!({ "interactive": interactive });
    if let Some(cluster) = cluster {
        spec["cluster"] = serde_json::to_value(cluster).map_err(|e| e.to_string())?;
    }
    let info = serde_json::json!({
        "apiVersion": exec.api_version,
        "kind": "ExecCredential",
        "spec": spec,
    });
    cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
    for name in exec.drop_env.iter().flatten() {
        cmd.env_remove(name);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("starting {command:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{command:?} exited with {}", out.status));
    }
    // Plugins write JSON, some YAML (client-go reads both); YAML 1.2 reads both. The parser's
    // error quotes the answer, which may hold a key or a token: not repeated.
    serde_saphyr::from_slice(&out.stdout)
        .map_err(|_| format!("{command:?} answered no readable ExecCredential"))
}
