//! `idle-scaler demo` in a binary built without the `demo` feature: the fake API server and
//! the in-memory store are not linked in, so say how to get a binary that has them.

use std::process::ExitCode;

use crate::settings::Settings;

/// What `demo` prints: one line naming the command that builds a binary with the demo.
const MESSAGE: &str = "error: this idle-scaler was built without the demo feature; rebuild with \
                       `cargo install --path bins/idle-scaler --features demo`";

/// Prints [`MESSAGE`] and exits 2, like a usage error.
pub async fn run(_settings: Settings) -> anyhow::Result<ExitCode> {
    eprintln!("{MESSAGE}");
    Ok(ExitCode::from(2))
}

#[cfg(test)]
mod tests;
