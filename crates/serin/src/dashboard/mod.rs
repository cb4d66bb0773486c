//! The read-only live web dashboard of `serin controller --dashboard-port N` (Serin only):
//! a page listing every Canary with, per Canary, its phase, the traffic weight over time,
//! each metric's value against its threshold range over the run, the events Serin recorded
//! and the decision record (`status.decisions`). The page follows changes over server-sent
//! events, without reloading.
//!
//! * [`state`]: the shared in-memory view (the controller's Canary cache plus bounded
//!   histories).
//! * [`feed`]: what feeds it (the Canary watch and the event sink).
//! * [`server`]: the HTTP routes and the page assets (embedded in the binary).
//!
//! Off by default; nothing is kept when it is off. It binds 127.0.0.1 unless
//! `--dashboard-address` says otherwise.

pub mod feed;
pub mod server;
pub mod state;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::controller::ports::EventSink;
use crate::controller::runtime::Observer;
pub use feed::EventTee;
pub use state::View;

/// The address the dashboard listens on once started (shared by clones; for callers that
/// asked for port 0, such as tests).
#[derive(Clone, Debug, Default)]
pub struct BoundAddress(Arc<OnceLock<SocketAddr>>);

impl BoundAddress {
    /// The address, once the dashboard listens.
    pub fn get(&self) -> Option<SocketAddr> {
        self.0.get().copied()
    }

    fn set(&self, addr: SocketAddr) {
        let _ = self.0.set(addr);
    }
}

/// Flags of the dashboard. Flatten into the controller's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    /// Serve the read-only web dashboard on this port (off when unset; 0 picks a free port).
    #[arg(id = "dashboard_port", long = "dashboard-port", value_name = "PORT")]
    pub port: Option<u16>,
    /// Address the dashboard listens on (e.g. 0.0.0.0 in a pod, behind `kubectl port-forward`).
    #[arg(
        id = "dashboard_address",
        long = "dashboard-address",
        value_name = "IP",
        default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST)
    )]
    pub address: IpAddr,
    /// Where the dashboard listens once started (not a flag).
    #[arg(skip)]
    pub bound: BoundAddress,
}

impl Default for DashboardArgs {
    fn default() -> Self {
        Self {
            port: None,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bound: BoundAddress::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("the dashboard cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the dashboard's HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// A running dashboard; dropping it stops it at once.
pub struct Dashboard {
    view: Arc<View>,
    addr: SocketAddr,
    /// `None` once [`Dashboard::stopped`] took it.
    task: Option<JoinHandle<Result<(), DashboardError>>>,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Dashboard {
    /// Listens as `args` say and serves until `shutdown` turns true; `None` when the dashboard
    /// is off.
    pub async fn start(
        args: &DashboardArgs,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Option<Self>, DashboardError> {
        let Some(port) = args.port else {
            return Ok(None);
        };
        let addr = SocketAddr::new(args.address, port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DashboardError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DashboardError::Bind { addr, source })?;
        args.bound.set(addr);
        tracing::info!("Dashboard listening on http://{addr}/");
        let view = Arc::new(View::new());
        let router = server::router(view.clone(), shutdown.clone());
        let mut stop = shutdown;
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
                .map_err(DashboardError::Serve)
        });
        Ok(Some(Self {
            view,
            addr,
            task: Some(task),
        }))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The controller's event sink, also showing each event on the dashboard.
    pub fn tee(&self, events: Arc<dyn EventSink>) -> Arc<dyn EventSink> {
        Arc::new(EventTee::new(events, self.view.clone()))
    }

    /// The observer of the controller's Canary watch.
    pub fn observer(&self) -> Observer {
        Observer(self.view.clone())
    }

    /// Waits for the server to stop (after shutdown).
    pub async fn stopped(mut self) -> Result<(), DashboardError> {
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!("the dashboard's HTTP server stopped abnormally: {e}");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
