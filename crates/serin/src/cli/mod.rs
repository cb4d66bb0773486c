//! The `serin` command line: one file per subcommand.
//!
//! Flagger's binaries take Go-style flags with a single dash (`-metrics-server=...`). Serin accepts
//! both spellings: [`normalize_args`] rewrites single-dash long flags to the double-dash form before
//! clap sees them.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod controller;
pub mod crds;
#[cfg(feature = "workstation")]
pub mod demo;
#[cfg(feature = "workstation")]
pub mod dev_cluster;
pub mod hey;
pub mod loadtester;
#[cfg(feature = "workstation")]
pub mod sample_app;
#[cfg(feature = "workstation")]
pub mod simulate;
#[cfg(feature = "workstation")]
pub mod simulate_workloads;
pub mod validate;

/// Progressive delivery for Kubernetes, compatible with Flagger's API.
#[derive(Debug, Parser)]
#[command(name = "serin", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions (Canary, MetricTemplate, AlertProvider) as YAML.
    Crds(crds::Args),
    /// Check Canary, MetricTemplate and AlertProvider manifests and report every problem.
    Validate(validate::Args),
    #[cfg(feature = "workstation")]
    /// Run the dev cluster: an in-memory Kubernetes API (kubectl and kube-rs work against it) with
    /// simulated workloads and fault injection. Writes a kubeconfig once serving.
    DevCluster(dev_cluster::Args),
    /// Run the controller: watches Canaries and runs their analysis (Flagger's flags).
    Controller(Box<controller::Args>),
    /// Run the Flagger-compatible loadtester webhook service (tasks, gates, built-in hey).
    Loadtester(loadtester::Args),
    /// Generate HTTP load with hey's flags and report (built in, no hey binary needed).
    Hey(hey::Args),
    #[cfg(feature = "workstation")]
    /// Write Deployment and DaemonSet status through any API server, as the missing
    /// controllers and kubelet would (the dev cluster's simulator, for node-less clusters).
    SimulateWorkloads(simulate_workloads::Args),
    #[cfg(feature = "workstation")]
    /// The seed's Flux + Istio workshop on this machine: dev cluster, dev mesh, sample app,
    /// Prometheus, loadtester and controller; a promotion, an A/B test and a rollback.
    Demo(demo::Args),
    #[cfg(feature = "workstation")]
    /// One pod of the podinfo-compatible sample app (run by the dev mesh).
    #[command(hide = true)]
    SampleApp(sample_app::Args),
    #[cfg(feature = "workstation")]
    /// Run a Canary's analysis on a fake clock against scripted metrics, webhooks and revisions;
    /// prints the timeline; exit status 0 promoted, 1 rolled back, 2 undecided.
    Simulate(simulate::Args),
}

/// Subcommands whose own flags may be written Go-style (`-flag`, `-flag=value`).
const GO_STYLE_SUBCOMMANDS: &[&str] = &["controller", "loadtester", "dev-cluster"];

/// Rewrites `-long-flag[=value]` to `--long-flag[=value]` for the subcommands that accept
/// Flagger's Go-style flags. Short flags (`-h`), negative numbers, a lone `-` (stdin) and
/// everything after `--` are left alone. Other subcommands (e.g. `hey`, whose flags are
/// hey's own single-dash flags) see their arguments unchanged.
pub fn normalize_args<I>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = OsString>,
{
    let mut out = Vec::new();
    let mut subcommand_seen: Option<bool> = None; // Some(go_style) once the subcommand is known
    let mut after_double_dash = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 {
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        match subcommand_seen {
            None => {
                if !text.starts_with('-') {
                    subcommand_seen = Some(GO_STYLE_SUBCOMMANDS.contains(&text));
                }
                out.push(arg);
            }
            Some(go_style) => {
                if text == "--" {
                    after_double_dash = true;
                }
                if go_style && !after_double_dash && is_single_dash_long(text) {
                    out.push(OsString::from(format!("-{text}")));
                } else {
                    out.push(arg);
                }
            }
        }
    }
    out
}

fn is_single_dash_long(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('-') else {
        return false;
    };
    if rest.starts_with('-') {
        return false;
    }
    let name = rest.split('=').next().unwrap_or(rest);
    name.len() > 1 && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

/// Parses the process arguments and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_args(std::env::args_os()));
    match cli.command {
        Command::Crds(args) => crds::run(&args),
        Command::Validate(args) => validate::run(&args),
        #[cfg(feature = "workstation")]
        Command::DevCluster(args) => dev_cluster::run(&args),
        Command::Controller(args) => controller::run(&args),
        Command::Loadtester(args) => loadtester::run(&args),
        Command::Hey(args) => hey::run(&args),
        #[cfg(feature = "workstation")]
        Command::SimulateWorkloads(args) => simulate_workloads::run(&args),
        #[cfg(feature = "workstation")]
        Command::Demo(args) => demo::run(&args),
        #[cfg(feature = "workstation")]
        Command::SampleApp(args) => sample_app::run(&args),
        #[cfg(feature = "workstation")]
        Command::Simulate(args) => simulate::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn go_style_flags_become_double_dash_for_controller() {
        assert_eq!(
            norm(&[
                "serin",
                "controller",
                "-metrics-server=http://p:9090",
                "-log-level",
                "info"
            ]),
            [
                "serin",
                "controller",
                "--metrics-server=http://p:9090",
                "--log-level",
                "info"
            ]
        );
    }

    #[test]
    fn short_flags_numbers_and_stdin_are_untouched() {
        assert_eq!(
            norm(&["serin", "loadtester", "-h", "-1", "-", "--port", "8080"]),
            ["serin", "loadtester", "-h", "-1", "-", "--port", "8080"]
        );
    }

    #[test]
    fn other_subcommands_keep_their_arguments() {
        assert_eq!(
            norm(&["serin", "validate", "-", "x.yaml"]),
            ["serin", "validate", "-", "x.yaml"]
        );
    }

    #[test]
    fn nothing_after_double_dash_is_rewritten() {
        assert_eq!(
            norm(&["serin", "controller", "--", "-weird"]),
            ["serin", "controller", "--", "-weird"]
        );
    }
}
