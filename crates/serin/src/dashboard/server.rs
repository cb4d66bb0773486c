//! The dashboard's HTTP routes, all `GET` (the dashboard is read-only):
//!
//! | route | answer |
//! |---|---|
//! | `/` | the page (`assets/page.html`) |
//! | `/page.js`, `/page.css` | its script and style |
//! | `/api/canaries` | JSON: every Canary's row ([`Summary`](super::state::Summary)) |
//! | `/api/canaries/{namespace}/{name}` | JSON: one Canary's [`Detail`](super::state::Detail), 404 when unknown |
//! | `/api/stream` | server-sent events: `canary` (a row changed; data: the row), `removed` (data: `{"key"}`), `resync` (reload the list) |
//!
//! Every answer is built from the in-memory [`View`]; no request reaches the Kubernetes API.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::state::{Change, View};

const PAGE: &str = include_str!("assets/page.html");
const SCRIPT: &str = include_str!("assets/page.js");
const STYLE: &str = include_str!("assets/page.css");

/// Scripts, styles and connections from the dashboard's own origin only.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";
/// How often an idle stream sends a comment (keeps proxies and port-forwards open).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Clone)]
struct AppState {
    view: Arc<View>,
    shutdown: watch::Receiver<bool>,
}

/// The dashboard's routes over `view`; open streams end when `shutdown` turns true.
pub fn router(view: Arc<View>, shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/page.js", get(script))
        .route("/page.css", get(style))
        .route("/api/canaries", get(list))
        .route("/api/canaries/{namespace}/{name}", get(detail))
        .route("/api/stream", get(stream))
        .layer(axum::middleware::map_response(secure))
        .with_state(AppState { view, shutdown })
}

/// Headers of every answer: no caching of live data, no framing, no sniffing.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn list(State(state): State<AppState>) -> Response {
    axum::Json(state.view.list()).into_response()
}

async fn detail(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match state.view.detail(&namespace, &name) {
        Some(detail) => axum::Json(detail).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no canary {namespace}/{name}")})),
        )
            .into_response(),
    }
}

async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = state.view.subscribe();
    let events = futures::stream::unfold(
        (state.view, changes, state.shutdown),
        |(view, mut changes, mut shutdown)| async move {
            loop {
                let change = tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return None,
                    change = changes.recv() => change,
                };
                let event = match change {
                    Ok(Change::Updated(key)) => match view.summary(&key) {
                        Some(row) => Event::default().event("canary").json_data(row).ok(),
                        // Events of a Canary the cache no longer (or not yet) holds.
                        None => None,
                    },
                    Ok(Change::Removed(key)) => Event::default()
                        .event("removed")
                        .json_data(json!({ "key": key }))
                        .ok(),
                    Ok(Change::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        Some(Event::default().event("resync").data("{}"))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                if let Some(event) = event {
                    return Some((Ok(event), (view, changes, shutdown)));
                }
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
