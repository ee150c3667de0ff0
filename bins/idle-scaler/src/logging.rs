//! The tracing subscriber: the binary is the only place one is installed.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::settings::LogFormat;

/// Installs the subscriber: `RUST_LOG` (default `info`), text or JSON lines on stderr.
pub fn init(format: LogFormat) {
    init_with(format, "info");
}

/// As [`init`], with another filter when `RUST_LOG` is unset.
pub fn init_with(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        // The module path is left out in both formats: in JSON it would be a second
        // `"target"` key beside the events' own `target` (the app, `namespace/name`).
        .with_target(false);
    // A second init (tests, the demo after a command) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .try_init(),
        LogFormat::Text => builder.with_writer(Escaping { ansi }).try_init(),
    };
}

/// Text lines on stderr with control characters in them escaped: values taken from the
/// database (a `provider_id` holding a newline) or a remote error cannot forge a log line.
/// The formatter writes each event in one call ending with its newline, which is kept.
#[derive(Debug, Clone, Copy)]
struct Escaping {
    /// Keep ESC: the formatter colours its output on a terminal.
    ansi: bool,
}

impl<'a> MakeWriter<'a> for Escaping {
    type Writer = EscapingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter { ansi: self.ansi }
    }
}

struct EscapingWriter {
    ansi: bool,
}

impl Write for EscapingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr()
            .lock()
            .write_all(&escape(buf, self.ansi))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `line` with every ASCII control character except a final newline (and ESC when `ansi`)
/// written as an escape (`\n`, `\r`, `\t`, `\x07`).
fn escape(line: &[u8], ansi: bool) -> Vec<u8> {
    let (body, end) = match line.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (line, &b""[..]),
    };
    let mut out = Vec::with_capacity(line.len());
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x1b if ansi => out.push(b),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(end);
    out
}

#[cfg(test)]
mod tests;
