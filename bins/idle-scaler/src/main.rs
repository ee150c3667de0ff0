//! The idle-scaler binary: see `idle-scaler --help`.

fn main() -> std::process::ExitCode {
    idle_scaler::main()
}
