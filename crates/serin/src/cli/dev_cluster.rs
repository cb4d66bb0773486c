//! `serin dev-cluster`: the in-memory Kubernetes API emulator for development and tests.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use devcluster::{Config, DevCluster};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the kubeconfig (atomically, once the server is serving).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Bearer token clients must send (random when not given).
    #[arg(long)]
    pub token: Option<String>,
    /// Delay after which simulated Deployments and DaemonSets become ready.
    #[arg(long, default_value_t = 500)]
    pub ready_delay_ms: u64,
    /// Latency added to every API request.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Inject errors: VERB=CODE:SHARE, e.g. `patch=503:0.2` (codes 403, 409, 500, 503; verb or `*`). Repeatable.
    #[arg(long = "fail", value_name = "VERB=CODE:SHARE")]
    pub fail: Vec<String>,
    /// Cut every watch stream after this many seconds (clients must re-watch).
    #[arg(long)]
    pub drop_watches_after_secs: Option<u64>,
    /// Write every object as YAML to this file on exit.
    #[arg(long)]
    pub dump: Option<PathBuf>,
}

pub fn run(args: &Args) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serin dev-cluster: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(args))
}

async fn serve(args: &Args) -> ExitCode {
    let config = Config {
        port: args.port,
        token: args.token.clone(),
        ready_delay: Duration::from_millis(args.ready_delay_ms),
        max_watch_duration: args.drop_watches_after_secs.map(Duration::from_secs),
        ..Config::default()
    };
    let cluster = match DevCluster::start_with(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("serin dev-cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    cluster
        .faults()
        .set_latency(Duration::from_millis(args.latency_ms));
    for spec in &args.fail {
        if let Err(e) = cluster.faults().add_spec(spec) {
            eprintln!("serin dev-cluster: --fail {spec}: {e}");
            cluster.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = cluster.write_kubeconfig(&args.kubeconfig) {
        eprintln!("serin dev-cluster: {e}");
        cluster.shutdown().await;
        return ExitCode::FAILURE;
    }
    eprintln!(
        "serin dev-cluster: serving on {}; kubeconfig written to {}\n  try: kubectl --kubeconfig {} get namespaces",
        cluster.url(),
        args.kubeconfig.display(),
        args.kubeconfig.display()
    );
    wait_for_signal().await;
    eprintln!("serin dev-cluster: shutting down");
    let mut code = ExitCode::SUCCESS;
    if let Some(path) = &args.dump {
        match cluster.dump_yaml() {
            Ok(text) => {
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("serin dev-cluster: writing dump {}: {e}", path.display());
                    code = ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("serin dev-cluster: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    cluster.shutdown().await;
    code
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
