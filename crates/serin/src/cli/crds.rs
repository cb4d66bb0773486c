//! `serin crds`: print the CustomResourceDefinitions (Canary, MetricTemplate, AlertProvider).

use std::io::Write;
use std::process::ExitCode;

use crate::api::crd;

/// Print the CRDs as a multi-document YAML stream (`serin crds | kubectl apply -f -`).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> ExitCode {
    match crd::render_yaml() {
        Ok(yaml) => {
            let mut stdout = std::io::stdout().lock();
            if let Err(err) = stdout
                .write_all(yaml.as_bytes())
                .and_then(|()| stdout.flush())
            {
                eprintln!("serin crds: writing to stdout: {err}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("serin crds: {err}");
            ExitCode::FAILURE
        }
    }
}
