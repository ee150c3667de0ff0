//! The idle-scaler binary as a library: command line, daemon, HTTP endpoints and the demo.
//! `main.rs` only calls [`main`].

mod commands;
#[cfg(feature = "demo")]
mod demo;
#[cfg(not(feature = "demo"))]
mod demo_unavailable;
#[cfg(not(feature = "demo"))]
use demo_unavailable as demo;
mod logging;
mod parking;
mod server;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The parking listener's sockets (its eight ports, bound all or none) and its shutdown linger
/// (open while parked slices still list the pod), for serving the parking listener.
pub use server::{
    Linger, LingerEnd, PARKING_LINGER, ParkingSockets, linger_while_listed,
    stop_parking_after_linger,
};
pub use settings::Settings;

/// Puts idle Kubernetes Deployments to sleep (replicas=0) and wakes them again.
#[derive(Debug, Parser)]
#[command(name = "idle-scaler", version, about, propagate_version = true)]
pub struct Cli {
    /// Optional TOML file with job settings (environment variables override it).
    #[arg(long, global = true, env = "IDLE_SCALER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: tick every interval, serve /metrics, /healthz, /readyz and wake (default).
    Run,
    /// Run one tick now. Exits 1 when any scale-down failed.
    Tick,
    /// Dry run: list what a tick would put to sleep. Writes nothing.
    Plan {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List apps asleep (or mid-sleep): id, target, since, restore count; then the totals
    /// (apps asleep, replicas saved).
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Wake one app: restore its replica count and mark it awake.
    Wake {
        /// The deployment id (a UUID).
        id: String,
    },
    /// Remove every parked slice now, in every namespace, ready app or not (uninstall
    /// first). Exits 1 when any could not be removed.
    Unpark {
        /// Every parked app (required: the command has no other form).
        #[arg(long, required = true)]
        all: bool,
    },
    /// Apply the database migrations (creates the reference `deployments` table).
    Migrate,
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Run a self-contained demo: fake Kubernetes API, in-memory store, virtual clock.
    Demo,
}

/// Parses the command line, runs the command and maps errors to a one-line message.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line, the whole cause chain, no backtrace.
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `--help` and `--version` print as clap renders them; a usage error is one line, like
/// every other error of this binary, exit code 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // clap's message is the paragraph before its usage block; fold it onto one line.
    let rendered = e.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("error: {message} (see idle-scaler --help)");
    ExitCode::from(2)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => commands::daemon(settings).await,
        Command::Tick => commands::tick(settings).await,
        Command::Plan { json } => commands::plan(settings, json).await,
        Command::Status { json } => commands::status(settings, json).await,
        Command::Wake { id } => commands::wake(settings, &id).await,
        Command::Unpark { all: _ } => commands::unpark_all(settings).await,
        Command::Migrate => commands::migrate(settings).await,
        Command::Config => commands::config(&settings),
        Command::Demo => demo::run(settings).await,
    }
}
