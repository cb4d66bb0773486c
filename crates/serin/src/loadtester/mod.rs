//! `serin loadtester`: a webhook service compatible with Flagger's loadtester, with a built-in
//! hey (see `docs/loadtester.md`).
//!
//! - [`server`]: the HTTP API (tasks, gates, health, metrics, auth)
//! - [`tasks`]: task types, allow-list, the deduplicating runner; [`exec`] runs processes
//! - [`gates`]: in-memory manual gates
//! - [`hey`], [`loadgen`], [`rawhttp`], [`summary`]: hey's flags, the load generator and its
//!   HTTP/1.1 client, hey's report
//! - [`concord`], [`ngrinder`]: the HTTP-API task types
//! - [`logging`]: JSON lines with a top-level `msg`

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::tls::{Alpn, Verification};

pub mod concord;
pub mod exec;
pub mod gates;
pub mod hey;
pub mod loadgen;
pub mod logging;
pub mod ngrinder;
pub mod rawhttp;
pub mod server;
pub mod summary;
pub mod tasks;

/// Errors starting the loadtester.
#[derive(Debug, thiserror::Error)]
pub enum LoadtesterError {
    /// `--namespace-regexp` does not compile.
    #[error("invalid --namespace-regexp: {0}")]
    NamespaceRegexp(#[from] regex::Error),
    /// The HTTP client for concord/ngrinder could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// Binding or serving failed.
    #[error("HTTP server: {0}")]
    Io(#[from] std::io::Error),
}

/// Loadtester settings (the `serin loadtester` flags).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Maximum run time of any task.
    pub timeout: Duration,
    /// Only canaries whose namespace matches may use the API (empty = all).
    pub namespace_regexp: String,
    /// Allowed command prefixes for process-running tasks (empty = all commands).
    pub allow_cmd: Vec<String>,
    /// Bearer token required by every endpoint but `/healthz`.
    pub auth_token: Option<String>,
}

/// Builds the API state from the settings.
pub fn state(config: &Config) -> Result<Arc<server::AppState>, LoadtesterError> {
    let namespace_regexp = if config.namespace_regexp.is_empty() {
        None
    } else {
        Some(Regex::new(&config.namespace_regexp)?)
    };
    let http = crate::tls::http_client(Verification::Platform, Alpn::Http2OrHttp1)
        .map_err(|e| LoadtesterError::Client(e.to_string()))?
        .build()
        .map_err(|e| LoadtesterError::Client(e.to_string()))?;
    let runner = tasks::TaskRunner::new(config.timeout, config.allow_cmd.clone());
    Ok(Arc::new(server::AppState::new(
        runner,
        namespace_regexp,
        config.auth_token.clone().filter(|t| !t.is_empty()),
        http,
    )))
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<server::AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LoadtesterError> {
    axum::serve(listener, server::router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Binds `0.0.0.0:port`.
pub async fn bind(port: u16) -> Result<tokio::net::TcpListener, LoadtesterError> {
    Ok(tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await?)
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`, `10s`; a bare `0` is zero).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {s:?}"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("missing unit in duration {text:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {text:?}")),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Formats a duration the way Go prints it (`1h0m0s`, `1m30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        let ms = d.as_millis();
        return if ms > 0 {
            format!("{ms}ms")
        } else {
            format!("{}µs", d.as_micros())
        };
    }
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_millis();
    let s_text = if frac > 0 {
        format!("{s}.{frac:03}").trim_end_matches('0').to_owned()
    } else {
        s.to_string()
    };
    if h > 0 {
        format!("{h}h{m}m{s_text}s")
    } else if m > 0 {
        format!("{m}m{s_text}s")
    } else {
        format!("{s_text}s")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("1d").is_err());
        assert!(parse_go_duration("-1s").is_err());
        assert!(parse_go_duration("").is_err());
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
