//! `serin validate`: print the manifests.
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> ExitCode {
    eprintln!("serin validate: not wired yet in this skeleton commit");
    ExitCode::FAILURE
}
