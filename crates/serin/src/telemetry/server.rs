//! The controller's HTTP server (Flagger's `pkg/server/server.go`): `GET /metrics`,
//! `GET /healthz` and `GET /readyz` on `-port` (default 8080).
//!
//! ```no_run
//! # async fn run() -> Result<(), serin::telemetry::server::ServerError> {
//! use serin::metrics::recorder::Recorder;
//! use serin::telemetry::server::{Readiness, bind, router, serve};
//! let recorder = Recorder::new();
//! let readiness = Readiness::new();
//! let listener = bind(8080).await?;
//! // ... once the CRDs are found and the caches synced: readiness.set_ready();
//! serve(listener, router(recorder, readiness.clone()), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::recorder::{CONTENT_TYPE, Recorder};

/// How long open connections may finish after shutdown was requested (Flagger: 3 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// The HTTP server flag. Flatten into the controller's arguments with `#[command(flatten)]`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ServerArgs {
    /// Port of the HTTP server (/metrics, /healthz, /readyz).
    #[arg(long = "port", value_name = "PORT", default_value_t = 8080)]
    pub port: u16,
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs { port: 8080 }
    }
}

/// A shared readiness flag: `/readyz` answers 200 once [`Readiness::set_ready`] was called
/// (after the CRDs were found and the caches synced), 503 before and after
/// [`Readiness::set_not_ready`].
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AppState {
    recorder: Recorder,
    readiness: Readiness,
}

/// The router with `/metrics`, `/healthz` and `/readyz`. Other routes may be merged into it.
pub fn router(recorder: Recorder, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            recorder,
            readiness,
        })
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.recorder.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(err) => {
            tracing::error!("metrics encoding failed: {err}");
            (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "OK"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "OK")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Listens on all interfaces at `port` (0 picks a free port): IPv6 and IPv4 where the host
/// has IPv6, IPv4 only otherwise.
pub async fn bind(port: u16) -> Result<TcpListener, ServerError> {
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    if let Ok(listener) = TcpListener::bind(v6).await {
        return Ok(listener);
    }
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish for
/// at most [`SHUTDOWN_GRACE`].
pub async fn serve<F>(listener: TcpListener, router: Router, shutdown: F) -> Result<(), ServerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("Starting HTTP server on port {}", addr.port());
    }
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let graceful = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(graceful);
    let deadline = async move {
        // Resolves SHUTDOWN_GRACE after shutdown was requested; never before.
        if stopping_rx.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => result.map_err(ServerError::Serve),
        () = deadline => {
            tracing::info!("HTTP server: open connections did not finish in time, closing them");
            Ok(())
        }
    }
}
