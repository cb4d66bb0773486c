//! `serin hey …`: the built-in load generator with hey's flags and report.

use std::process::ExitCode;

use crate::loadtester::hey::{self as heyflags, HeyError};
use crate::loadtester::{loadgen, summary};

/// Arguments of `serin hey`: hey's own single-dash flags followed by the URL, passed through
/// unchanged (run `serin hey -help` for the list).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// hey's flags and the URL, e.g. `-z 10s -c 50 http://127.0.0.1:8080/`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs the generator and prints hey's summary (or CSV with `-o csv`).
pub fn run(args: &Args) -> ExitCode {
    let opts = match heyflags::parse_args(&args.args) {
        Ok(o) => o,
        Err(HeyError::Help(usage)) => {
            eprint!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}\n\n{}", heyflags::USAGE);
            return ExitCode::FAILURE;
        }
    };
    let threads = opts
        .cpus
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let stop = loadgen::StopSignal::new();
        let on_interrupt = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_interrupt.stop();
            }
        });
        loadgen::run(&opts, stop).await
    });
    match result {
        Ok(report) => {
            let text = if opts.csv {
                summary::format_csv(&report)
            } else {
                summary::format_summary(&report)
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
