//! `serin validate PATH... | -`: check Canary, MetricTemplate and AlertProvider manifests.
//!
//! Reads files, directories (recursively, `*.yaml`, `*.yml`, `*.json`) and `-` (stdin); reports
//! every problem as `FILE: DOCUMENT: FIELD: MESSAGE`; exits 1 when any error was found.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::api::Provider;
use crate::api::manifest::{self, DocumentReport};
use crate::api::structural::Severity;
use crate::api::validation::Options;

/// Check manifests and report every problem (exit status 1 on any error).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to check; `-` reads standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The controller's default provider, for canaries without `spec.provider`.
    #[arg(long, default_value = "istio", value_parser = parse_provider)]
    pub mesh_provider: Provider,
    /// Print only errors, not warnings.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_provider(s: &str) -> Result<Provider, String> {
    s.parse()
        .map_err(|e: crate::api::provider::UnknownProvider| e.to_string())
}

/// Counts of a run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub documents: usize,
    pub errors: usize,
    pub warnings: usize,
}

pub fn run(args: &Args) -> ExitCode {
    let options = Options {
        default_provider: args.mesh_provider.clone(),
    };
    let mut out = String::new();
    let summary = validate_paths(&args.paths, &options, args.quiet, &mut out);
    print!("{out}");
    eprintln!(
        "{} document(s) checked: {} error(s), {} warning(s)",
        summary.documents, summary.errors, summary.warnings
    );
    if summary.errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Checks every path and appends the report lines to `out`.
pub fn validate_paths(
    paths: &[PathBuf],
    options: &Options,
    quiet: bool,
    out: &mut String,
) -> Summary {
    let mut summary = Summary::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => check_text("<stdin>", &text, options, quiet, out, &mut summary),
                Err(err) => file_error("<stdin>", &err.to_string(), out, &mut summary),
            }
            continue;
        }
        let files = match collect_files(path) {
            Ok(files) => files,
            Err(err) => {
                file_error(
                    &path.display().to_string(),
                    &err.to_string(),
                    out,
                    &mut summary,
                );
                continue;
            }
        };
        for file in files {
            let label = file.display().to_string();
            match std::fs::read_to_string(&file) {
                Ok(text) => check_text(&label, &text, options, quiet, out, &mut summary),
                Err(err) => file_error(&label, &err.to_string(), out, &mut summary),
            }
        }
    }
    summary
}

fn file_error(label: &str, message: &str, out: &mut String, summary: &mut Summary) {
    summary.errors += 1;
    out.push_str(&format!("{label}: error: {message}\n"));
}

fn check_text(
    label: &str,
    text: &str,
    options: &Options,
    quiet: bool,
    out: &mut String,
    summary: &mut Summary,
) {
    let reports = match manifest::check_yaml(text, options) {
        Ok(reports) => reports,
        Err(err) => {
            let message = err.to_string();
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            file_error(label, &format!("invalid YAML: {message}"), out, summary);
            return;
        }
    };
    for report in reports.iter().filter(|r| r.checked) {
        summary.documents += 1;
        write_report(label, report, quiet, out, summary);
    }
}

fn write_report(
    label: &str,
    report: &DocumentReport,
    quiet: bool,
    out: &mut String,
    summary: &mut Summary,
) {
    let doc = format!("document {} ({})", report.index, report.describe());
    for problem in &report.problems {
        let severity = match problem.severity {
            Severity::Error => {
                summary.errors += 1;
                "error"
            }
            Severity::Warning => {
                summary.warnings += 1;
                if quiet {
                    continue;
                }
                "warning"
            }
        };
        let field = if problem.path.is_empty() {
            String::new()
        } else {
            format!("{}: ", problem.path)
        };
        out.push_str(&format!(
            "{label}: {doc}: {severity}: {field}{}\n",
            problem.message
        ));
    }
}

fn collect_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        // Surface "not found" and permission errors here rather than later.
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() {
                stack.push(entry);
            } else if entry
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            {
                files.push(entry);
            }
        }
    }
    files.sort();
    Ok(files)
}
