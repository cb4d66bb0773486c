#![forbid(unsafe_code)]
//! The `serin` binary: see `serin --help`.

fn main() -> std::process::ExitCode {
    serin::cli::main()
}
