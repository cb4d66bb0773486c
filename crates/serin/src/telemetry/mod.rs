//! Serin's own telemetry: logging set-up and the HTTP server with /metrics, /healthz, /readyz.

pub mod logging;
pub mod server;
