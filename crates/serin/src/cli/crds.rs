//! `serin crds`: print the CustomResourceDefinitions.
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> ExitCode {
    eprintln!("serin crds: not wired yet in this skeleton commit");
    ExitCode::FAILURE
}
