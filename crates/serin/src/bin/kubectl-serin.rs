#![forbid(unsafe_code)]
//! The `kubectl-serin` binary: `kubectl serin get|status|why|promote|abort|retry|pause|resume`
//! (see `kubectl serin --help`).

fn main() -> std::process::ExitCode {
    serin::tls::install_default();
    serin::plugin::main()
}
