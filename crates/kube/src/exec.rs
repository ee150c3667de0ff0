//! A kubeconfig's exec credential plugin, run once per client build. kube would run it for
//! the auth layer, again for the TLS identity and again for the client's expiry, and its
//! errors carry the plugin's environment and output. Here the plugin's answer becomes plain
//! kubeconfig data before kube sees the configuration, and a failure names only the program
//! and how it ended.

use std::process::{Command, Stdio};

use base64::Engine;
use kube::config::{AuthInfo, ExecConfig};
use serde::Deserialize;

use crate::Error;

/// The part of an `ExecCredential` answer the client uses.
#[derive(Deserialize)]
struct Credential {
    status: Option<Status>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    token: Option<String>,
    client_certificate_data: Option<String>,
    client_key_data: Option<String>,
    expiration_timestamp: Option<String>,
}

/// Runs `auth`'s plugin if kube would authenticate with it and puts its credential into
/// `auth` in the plugin's place. Returns when that credential expires, if it does.
pub(crate) fn resolve(auth: &mut AuthInfo) -> crate::Result<Option<jiff::Timestamp>> {
    // kube's precedence: a provider, basic auth, a token or a token file before exec.
    let basic = auth.username.is_some() && auth.password.is_some();
    let before = auth.auth_provider.is_some() || basic || auth.token.is_some();
    let Some(exec) = auth.exec.take() else {
        return Ok(None);
    };
    if before || auth.token_file.is_some() {
        return Ok(None);
    }
    let program = exec.command.clone().unwrap_or_default();
    let fail = |outcome: &str| Error::Credential {
        program: program.clone(),
        outcome: outcome.to_owned(),
    };
    let out = command(&exec)
        .map_err(&fail)?
        .output()
        .map_err(|e| fail(&format!("it did not start ({})", e.kind())))?;
    if !out.status.success() {
        return Err(fail(&out.status.to_string()));
    }
    let status = serde_json::from_slice::<Credential>(&out.stdout)
        .ok()
        .and_then(|c| c.status)
        .ok_or_else(|| fail("its answer is no ExecCredential with a status"))?;
    let expiry = status.expiration_timestamp.map(|t| t.parse());
    let expiry = expiry
        .transpose()
        .map_err(|_| fail("its expirationTimestamp is not RFC 3339"))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    match (status.client_certificate_data, status.client_key_data) {
        (Some(cert), Some(key)) => {
            auth.client_certificate_data = Some(b64.encode(cert));
            auth.client_key_data = Some(b64.encode(key).into());
            (auth.client_certificate, auth.client_key) = (None, None);
        }
        _ => auth.token = status.token.map(Into::into),
    }
    Ok(expiry)
}

/// The plugin's command as client-go runs it, never interactive: a daemon has no terminal,
/// and the plugin's stderr is captured rather than mixed into the host's logs.
fn command(exec: &ExecConfig) -> Result<Command, &'static str> {
    let mut cmd = Command::new(exec.command.as_deref().ok_or("no command is configured")?);
    cmd.args(exec.args.iter().flatten());
    for env in exec.env.iter().flatten() {
        if let (Some(name), Some(value)) = (env.get("name"), env.get("value")) {
            cmd.env(name, value);
        }
    }
    let mut spec = serde_json::json!({ "interactive": false });
    if exec.provide_cluster_info {
        let cluster = exec
            .cluster
            .as_ref()
            .ok_or("provideClusterInfo without a cluster")?;
        spec["cluster"] = serde_json::to_value(cluster).map_err(|_| "unserialisable cluster")?;
    }
    let info = serde_json::json!({
        "apiVersion": exec.api_version, "kind": "ExecCredential", "spec": spec,
    });
    cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
    for name in exec.drop_env.iter().flatten() {
        cmd.env_remove(name);
    }
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    Ok(cmd)
}
