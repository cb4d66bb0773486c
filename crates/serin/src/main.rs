#![forbid(unsafe_code)]
//! The `serin` binary: see `serin --help`.

fn main() -> std::process::ExitCode {
    serin::tls::install_default();
    serin::cli::main()
}
