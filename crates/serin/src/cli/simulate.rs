//! `serin simulate CANARY.yaml --metrics SCRIPT`: runs the real scheduler on a fake clock
//! against scripted metric values, webhook answers and revisions (docs/simulate.md), prints the
//! timeline and the outcome. Exit status: 0 promoted, 1 rolled back, 2 undecided within the
//! script's duration, 3 unusable input.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::api::{Canary, Provider, duration};
use crate::simulate::{self, Outcome, load_canary, script::Timeline};

/// Simulate a Canary's analysis against scripted metrics and webhooks.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Canary manifest (the first Canary in the file).
    #[arg(value_name = "CANARY.yaml")]
    pub canary: PathBuf,
    /// The script: metric values, webhook answers and new revisions over time.
    #[arg(long, value_name = "SCRIPT")]
    pub metrics: PathBuf,
    /// The controller's default provider, for a Canary without `spec.provider`.
    #[arg(long, default_value = "istio", value_parser = parse_provider)]
    pub mesh_provider: Provider,
}

fn parse_provider(s: &str) -> Result<Provider, String> {
    s.parse()
        .map_err(|e: crate::api::provider::UnknownProvider| e.to_string())
}

pub fn run(args: &Args) -> ExitCode {
    let input = || -> Result<(Canary, Timeline), String> {
        let text = std::fs::read_to_string(&args.canary)
            .map_err(|e| format!("{}: {e}", args.canary.display()))?;
        let canary = load_canary(&text).map_err(|e| format!("{}: {e}", args.canary.display()))?;
        let text = std::fs::read_to_string(&args.metrics)
            .map_err(|e| format!("{}: {e}", args.metrics.display()))?;
        let script =
            Timeline::parse(&text).map_err(|e| format!("{}: {e}", args.metrics.display()))?;
        Ok((canary, script))
    };
    let (canary, script) = match input() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("serin simulate: {e}");
            return ExitCode::from(3);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("serin simulate: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let started = std::time::Instant::now();
    let report = runtime.block_on(simulate::run(canary, script, args.mesh_provider.clone()));
    for line in &report.timeline {
        println!("{line}");
    }
    let took = started.elapsed();
    let (text, code) = match report.outcome {
        Outcome::Promoted(after) => (
            format!(
                "promoted {} after the new revision",
                duration::format(after)
            ),
            0,
        ),
        Outcome::RolledBack(after) => (
            format!(
                "rolled back {} after the new revision",
                duration::format(after)
            ),
            1,
        ),
        Outcome::Undecided => (
            "neither promoted nor rolled back within the script's duration".to_string(),
            2,
        ),
    };
    println!(
        "outcome: {text} ({} scheduler runs simulated in {} ms)",
        report.reconciles,
        took.as_millis()
    );
    ExitCode::from(code)
}
