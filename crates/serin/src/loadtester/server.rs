//! The HTTP API: Flagger's loadtester endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use regex::Regex;
use tracing::{error, info};

use crate::loadtester::gates::{GateKind, GateStore};
use crate::loadtester::tasks::{Answer, Payload, TaskRunner};

/// Shared state of the API.
#[derive(Debug)]
pub struct AppState {
    /// Manual gates.
    pub gates: GateStore,
    /// Task runner (timeout, allow-list, dedup).
    pub runner: Arc<TaskRunner>,
    /// Only canaries in matching namespaces may use the API (`None` = all).
    pub namespace_regexp: Option<Regex>,
    /// Bearer token required on every endpoint but `/healthz` (`None` = no auth).
    pub auth_token: Option<String>,
    /// Client for concord and ngrinder.
    pub http: reqwest::Client,
    gate_checks: AtomicU64,
}

impl AppState {
    /// New state.
    pub fn new(
        runner: Arc<TaskRunner>,
        namespace_regexp: Option<Regex>,
        auth_token: Option<String>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            gates: GateStore::new(),
            runner,
            namespace_regexp,
            auth_token,
            http,
            gate_checks: AtomicU64::new(0),
        }
    }
}

type Shared = Arc<AppState>;

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// The router with every endpoint.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", any(|| async { text(StatusCode::OK, "OK") }))
        .route("/metrics", any(metrics))
        .route(
            "/gate/approve",
            any(|| async { text(StatusCode::OK, "OK") }),
        )
        .route(
            "/gate/halt",
            any(|| async { text(StatusCode::FORBIDDEN, "Forbidden") }),
        )
        .route(
            "/gate/check",
            any(|s, b| gate_check(s, b, GateKind::Promotion)),
        )
        .route(
            "/gate/open",
            any(|s, b| gate_set(s, b, GateKind::Promotion, true)),
        )
        .route(
            "/gate/close",
            any(|s, b| gate_set(s, b, GateKind::Promotion, false)),
        )
        .route(
            "/rollback/check",
            any(|s, b| gate_check(s, b, GateKind::Rollback)),
        )
        .route(
            "/rollback/open",
            any(|s, b| gate_set(s, b, GateKind::Rollback, true)),
        )
        .route(
            "/rollback/close",
            any(|s, b| gate_set(s, b, GateKind::Rollback, false)),
        )
        .fallback(task)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Constant-time comparison (length leaks, content does not).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let Some(token) = state.auth_token.as_deref() else {
        return next.run(req).await;
    };
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim().as_bytes(), token.as_bytes()));
    let from_query = req.uri().query().is_some_and(|q| {
        q.split('&').any(|kv| {
            kv.strip_prefix("token=")
                .is_some_and(|t| same(t.as_bytes(), token.as_bytes()))
        })
    });
    if from_header || from_query {
        next.run(req).await
    } else {
        text(StatusCode::UNAUTHORIZED, "Unauthorized")
    }
}

/// Decodes the payload and applies `--namespace-regexp`.
fn payload(state: &AppState, body: &[u8]) -> Result<Payload, Box<Response>> {
    let payload = Payload::parse(body).map_err(|e| {
        error!("{e}");
        Box::new(text(StatusCode::BAD_REQUEST, e.to_string()))
    })?;
    if let Some(re) = &state.namespace_regexp
        && !re.is_match(&payload.namespace)
    {
        info!(
            canary = payload.canary(),
            "namespace {} is not allowed by --namespace-regexp", payload.namespace
        );
        return Err(Box::new(text(StatusCode::FORBIDDEN, "Forbidden")));
    }
    Ok(payload)
}

async fn gate_check(State(state): State<Shared>, body: Bytes, kind: GateKind) -> Response {
    let p = match payload(&state, &body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    state.gate_checks.fetch_add(1, Ordering::Relaxed);
    let key = kind.key(&p.name, &p.namespace);
    let approved = state.gates.is_open(&key);
    let what = if kind == GateKind::Rollback {
        "rollback"
    } else {
        "gate"
    };
    info!(
        canary = p.canary(),
        "{key} {what} check: approved {approved}"
    );
    if approved {
        text(StatusCode::OK, "Approved")
    } else {
        text(StatusCode::FORBIDDEN, "Forbidden")
    }
}

async fn gate_set(
    State(state): State<Shared>,
    body: Bytes,
    kind: GateKind,
    open: bool,
) -> Response {
    let p = match payload(&state, &body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let key = kind.key(&p.name, &p.namespace);
    if open {
        state.gates.open(&key);
    } else {
        state.gates.close(&key);
    }
    let what = if kind == GateKind::Rollback {
        "rollback"
    } else {
        "gate"
    };
    let verb = if open { "opened" } else { "closed" };
    info!(canary = p.canary(), "{key} {what} {verb}");
    StatusCode::ACCEPTED.into_response()
}

async fn task(State(state): State<Shared>, body: Bytes) -> Response {
    let p = match payload(&state, &body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    match state.runner.handle(&p, &state.http).await {
        Ok(Answer::Accepted) => StatusCode::ACCEPTED.into_response(),
        Ok(Answer::Done(body)) => text(StatusCode::OK, body),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_client_error() {
                info!(canary = p.canary(), "task rejected: {e}");
            }
            text(status, e.to_string())
        }
    }
}

async fn metrics(State(state): State<Shared>) -> Response {
    let s = state.runner.stats();
    let body = format!(
        "# HELP serin_loadtester_tasks_started_total Background tasks started.\n\
         # TYPE serin_loadtester_tasks_started_total counter\n\
         serin_loadtester_tasks_started_total {}\n\
         # HELP serin_loadtester_tasks_skipped_total Task requests dropped because the same task was running.\n\
         # TYPE serin_loadtester_tasks_skipped_total counter\n\
         serin_loadtester_tasks_skipped_total {}\n\
         # HELP serin_loadtester_tasks_failed_total Tasks that failed.\n\
         # TYPE serin_loadtester_tasks_failed_total counter\n\
         serin_loadtester_tasks_failed_total {}\n\
         # HELP serin_loadtester_tasks_running Background tasks running now.\n\
         # TYPE serin_loadtester_tasks_running gauge\n\
         serin_loadtester_tasks_running {}\n\
         # HELP serin_loadtester_gate_checks_total Gate and rollback checks answered.\n\
         # TYPE serin_loadtester_gate_checks_total counter\n\
         serin_loadtester_gate_checks_total {}\n",
        s.started,
        s.skipped,
        s.failed,
        s.running,
        state.gate_checks.load(Ordering::Relaxed)
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}
