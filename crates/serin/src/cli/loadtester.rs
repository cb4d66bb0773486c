//! `serin loadtester`: the Flagger-compatible loadtester webhook service.

use std::process::ExitCode;
use std::time::Duration;

use crate::loadtester::{self, Config, logging};

/// Flags of `serin loadtester` (Flagger's loadtester flags; `-flag` spelling also accepted).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port to listen on (all interfaces).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Maximum run time of any task (Go duration); longer tasks are killed.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Only canaries in namespaces matching this regular expression may use the API (empty = all).
    #[arg(long, default_value = "")]
    pub namespace_regexp: String,
    /// Allowed command prefix for cmd/bash/helm/kubectl tasks (repeatable). When given, any other
    /// command is rejected with 403; nothing but plain arguments may follow the prefix.
    #[arg(long = "allow-cmd", value_name = "PREFIX")]
    pub allow_cmd: Vec<String>,
    /// Require `Authorization: Bearer <token>` (or `?token=<token>`) on every endpoint but /healthz.
    #[arg(long, env = "SERIN_LOADTESTER_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Log level: debug, info, warn or error.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Accepted for compatibility with Flagger's loadtester; logs are always JSON.
    #[arg(long, default_value = "json", hide = true)]
    pub zap_encoding: String,
    /// Accepted for compatibility with Flagger's loadtester; has no effect.
    #[arg(long, hide = true)]
    pub zap_replace_globals: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    loadtester::parse_go_duration(s)
}

/// Runs the service until SIGINT/SIGTERM.
pub fn run(args: &Args) -> ExitCode {
    let level = match logging::parse_level(&args.log_level) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(level) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = Config {
        timeout: args.timeout,
        namespace_regexp: args.namespace_regexp.clone(),
        allow_cmd: args.allow_cmd.clone(),
        auth_token: args.auth_token.clone(),
    };
    let result = runtime.block_on(async {
        let state = loadtester::state(&config)?;
        let listener = loadtester::bind(args.port).await?;
        tracing::info!(
            "Starting load tester v{} API on port {} (timeout {}, auth {}, allow-cmd {:?})",
            env!("CARGO_PKG_VERSION"),
            args.port,
            loadtester::format_duration(config.timeout),
            if state.auth_token.is_some() {
                "on"
            } else {
                "off"
            },
            config.allow_cmd
        );
        loadtester::serve(listener, state, shutdown_signal()).await
    });
    match result {
        Ok(()) => {
            tracing::info!("HTTP server stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
