//! A podinfo-compatible sample app for the dev mesh and `serin demo`: the endpoints the seeds'
//! tutorials call (`/`, `/version`, `/healthz`, `/readyz`, `/status/{code}`, `/delay/{seconds}`,
//! `/token`), configured the way a pod template configures podinfo (the version comes from the
//! image tag, `PODINFO_UI_MESSAGE` and `PODINFO_UI_COLOR` from env) plus two demo knobs:
//! `SAMPLE_APP_ERROR_PERCENT` (share of `/` requests answered 500) and `SAMPLE_APP_DELAY_MS`
//! (latency added to `/`).
//!
//! Errors are spread evenly and deterministically (request n fails when the running count of
//! failures due at `percent` goes up), so a given share is exact over every 100 requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;

/// Env var: share of `/` requests (0-100) answered with HTTP 500.
pub const ENV_ERROR_PERCENT: &str = "SAMPLE_APP_ERROR_PERCENT";
/// Env var: milliseconds added to every `/` request.
pub const ENV_DELAY_MS: &str = "SAMPLE_APP_DELAY_MS";

/// A bad setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SampleAppError {
    #[error("{name}={value:?} is not a whole number{range}")]
    Number {
        name: String,
        value: String,
        range: &'static str,
    },
}

/// What one sample-app process serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleAppConfig {
    pub version: String,
    pub hostname: String,
    pub message: String,
    pub color: String,
    pub error_percent: u32,
    pub delay: Duration,
}

/// The version podinfo reports for an image: its tag (`ghcr.io/stefanprodan/podinfo:6.0.1` →
/// `6.0.1`), `latest` when there is none; a digest is ignored.
pub fn version_from_image(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.to_string(),
        _ => "latest".to_string(),
    }
}

impl SampleAppConfig {
    /// The settings from a version, a hostname and environment variables (looked up by `env`).
    pub fn from_env(
        version: &str,
        hostname: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SampleAppError> {
        let number = |name: &str, max: Option<u64>| -> Result<u64, SampleAppError> {
            let Some(raw) = env(name) else { return Ok(0) };
            let parsed = raw.trim().parse::<u64>().ok();
            match (parsed, max) {
                (Some(n), Some(max)) if n <= max => Ok(n),
                (Some(n), None) => Ok(n),
                _ => Err(SampleAppError::Number {
                    name: name.to_string(),
                    value: raw,
                    range: if max.is_some() { " from 0 to 100" } else { "" },
                }),
            }
        };
        let error_percent = number(ENV_ERROR_PERCENT, Some(100))?;
        let delay_ms = number(ENV_DELAY_MS, None)?;
        Ok(Self {
            version: version.to_string(),
            hostname: hostname.to_string(),
            message: env("PODINFO_UI_MESSAGE")
                .unwrap_or_else(|| format!("greetings from podinfo v{version}")),
            color: env("PODINFO_UI_COLOR").unwrap_or_else(|| "#34577c".to_string()),
            error_percent: u32::try_from(error_percent).unwrap_or(100),
            delay: Duration::from_millis(delay_ms),
        })
    }
}

/// Whether the `n`th request (0-based) fails at `percent`: failures are spread evenly, exactly
/// `percent` of every 100 consecutive requests.
pub fn fails(n: u64, percent: u32) -> bool {
    let p = u64::from(percent.min(100));
    (n + 1) * p / 100 > n * p / 100
}

struct AppState {
    config: SampleAppConfig,
    served: AtomicU64,
    tokens: AtomicU64,
}

/// The sample app's routes.
pub fn router(config: SampleAppConfig) -> Router {
    let state = Arc::new(AppState {
        config,
        served: AtomicU64::new(0),
        tokens: AtomicU64::new(0),
    });
    Router::new()
        .route("/", get(index))
        .route("/version", get(version))
        .route("/healthz", get(health))
        .route("/readyz", get(health))
        .route("/status/{code}", any(status))
        .route("/delay/{seconds}", any(delay))
        .route("/token", any(token))
        .with_state(state)
}

fn json_response(code: StatusCode, body: serde_json::Value) -> Response {
    (code, axum::Json(body)).into_response()
}

async fn index(State(st): State<Arc<AppState>>) -> Response {
    let n = st.served.fetch_add(1, Ordering::Relaxed);
    if !st.config.delay.is_zero() {
        tokio::time::sleep(st.config.delay).await;
    }
    if fails(n, st.config.error_percent) {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"code": 500, "message": "internal server error (SAMPLE_APP_ERROR_PERCENT)"}),
        );
    }
    let c = &st.config;
    json_response(
        StatusCode::OK,
        json!({
            "hostname": c.hostname,
            "version": c.version,
            "revision": "",
            "color": c.color,
            "logo": "https://raw.githubusercontent.com/stefanprodan/podinfo/gh-pages/cuddle_clap.gif",
            "message": c.message,
            "goos": std::env::consts::OS,
            "goarch": std::env::consts::ARCH,
            "runtime": "serin sample-app",
            "num_goroutine": "1",
            "num_cpu": std::thread::available_parallelism().map_or(1, usize::from).to_string(),
        }),
    )
}

async fn version(State(st): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        json!({"version": st.config.version, "commit": ""}),
    )
}

async fn health() -> Response {
    json_response(StatusCode::OK, json!({"status": "OK"}))
}

async fn status(Path(code): Path<String>) -> Response {
    match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(c) if c.as_u16() >= 200 => json_response(c, json!({"status": c.as_u16()})),
        _ => json_response(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "message": format!("invalid status code {code:?}")}),
        ),
    }
}

async fn delay(Path(seconds): Path<String>) -> Response {
    match seconds.parse::<u64>() {
        Ok(s) if s <= 600 => {
            tokio::time::sleep(Duration::from_secs(s)).await;
            json_response(StatusCode::OK, json!({"delay": s}))
        }
        _ => json_response(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "message": format!("invalid delay {seconds:?} (0 to 600 seconds)")}),
        ),
    }
}

async fn token(State(st): State<Arc<AppState>>) -> Response {
    let n = st.tokens.fetch_add(1, Ordering::Relaxed);
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
    json_response(
        StatusCode::OK,
        json!({
            "token": format!("sample-{}-{n}", st.config.hostname),
            "expires_at": expires.to_string(),
        }),
    )
}

/// Serves the sample app on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SampleAppConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds 127.0.0.1:`port` (0: a free port) and returns the listener and its address.
pub async fn bind(port: u16) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_image_tag() {
        assert_eq!(
            version_from_image("ghcr.io/stefanprodan/podinfo:6.0.1"),
            "6.0.1"
        );
        assert_eq!(version_from_image("localhost:5000/podinfo:5.0.1"), "5.0.1");
        assert_eq!(version_from_image("localhost:5000/podinfo"), "latest");
        assert_eq!(
            version_from_image("stefanprodan/podinfo:5.0.0@sha256:abc"),
            "5.0.0"
        );
    }

    #[test]
    fn errors_are_spread_exactly() {
        for p in [0u32, 1, 7, 33, 50, 99, 100] {
            let failed = (0..1000).filter(|n| fails(*n, p)).count();
            assert_eq!(failed, p as usize * 10, "percent {p}");
        }
        assert!(!fails(0, 50) && fails(1, 50) && !fails(2, 50));
    }

    #[test]
    fn settings_from_env() -> Result<(), SampleAppError> {
        let env = |k: &str| match k {
            ENV_ERROR_PERCENT => Some("30".to_string()),
            ENV_DELAY_MS => Some("250".to_string()),
            _ => None,
        };
        let c = SampleAppConfig::from_env("6.0.0", "backend-0", env)?;
        assert_eq!(c.error_percent, 30);
        assert_eq!(c.delay, Duration::from_millis(250));
        assert_eq!(c.message, "greetings from podinfo v6.0.0");
        let bad = SampleAppConfig::from_env("1", "h", |k| {
            (k == ENV_ERROR_PERCENT).then(|| "150".to_string())
        });
        assert_eq!(
            bad.err().map(|e| e.to_string()).as_deref(),
            Some("SAMPLE_APP_ERROR_PERCENT=\"150\" is not a whole number from 0 to 100")
        );
        Ok(())
    }
}
