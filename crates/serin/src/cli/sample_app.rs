//! `serin sample-app` (hidden): one pod of the podinfo-compatible sample app, as the dev mesh
//! runs it for `serin demo`. Prints `listening on 127.0.0.1:PORT` once serving; exits on
//! SIGINT/SIGTERM or when its stdin closes (the parent is gone; so not with `</dev/null`).

use std::process::ExitCode;

use devcluster::sampleapp::{self, SampleAppConfig};
use std::io::Read;

/// Flags of `serin sample-app`; behaviour comes from env (`SAMPLE_APP_ERROR_PERCENT`,
/// `SAMPLE_APP_DELAY_MS`, `PODINFO_UI_MESSAGE`, `PODINFO_UI_COLOR`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The version `/` and `/version` report (the image tag).
    #[arg(long = "app-version", default_value = "latest")]
    pub app_version: String,
    /// The hostname `/` reports (the pod name).
    #[arg(long, default_value = "sample-app")]
    pub hostname: String,
}

pub fn run(args: &Args) -> ExitCode {
    let config = match SampleAppConfig::from_env(&args.app_version, &args.hostname, |k| {
        std::env::var(k).ok()
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("serin sample-app: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("serin sample-app: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let (listener, addr) = match sampleapp::bind(args.port).await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("serin sample-app: binding 127.0.0.1:{}: {e}", args.port);
                return ExitCode::FAILURE;
            }
        };
        println!("listening on {addr}");
        let shutdown = async {
            let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
                let _ = closed_tx.send(());
            });
            let stdin_closed = async {
                let _ = closed_rx.await;
            };
            tokio::select! {
                _ = stdin_closed => {}
                _ = crate::demo::processes::shutdown_signal() => {}
            }
        };
        match sampleapp::serve(listener, config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("serin sample-app: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
