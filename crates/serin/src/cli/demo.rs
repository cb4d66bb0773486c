//! `serin demo`: seed 000's workshop on this machine (see docs/demo.md).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::demo::{self, Options};

/// Flags of `serin demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Shortest safe intervals and no pauses for reading (what CI runs).
    #[arg(long)]
    pub fast: bool,
    /// Leave everything running at the end (prints KUBECONFIG, the ingress and Prometheus URLs)
    /// until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// Write the outcome (promoted images, A/B counts, events, notifications) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
}

pub fn run(args: &Args) -> ExitCode {
    let serin = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("serin demo: finding the serin binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Options {
        fast: args.fast,
        keep: args.keep,
        summary: args.summary.clone(),
        serin,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("serin demo: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo::run(&opts)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serin demo: {e}");
            ExitCode::FAILURE
        }
    }
}
