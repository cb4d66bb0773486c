//! The fake Prometheus and webhook server the chaos Canaries' checks and hooks call: each
//! query's answer is chosen by its metric name (a value, `NaN`, nothing, garbage, a hang).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use serde_json::json;

use super::BoxError;

#[derive(Clone, Default)]
pub struct Fakes {
    pub queries: Arc<AtomicU64>,
    pub hooks: Arc<AtomicU64>,
}

async fn prom_query(
    State(f): State<Fakes>,
    Query(q): Query<BTreeMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    f.queries.fetch_add(1, Ordering::Relaxed);
    let query = q.get("query").cloned().unwrap_or_default();
    let vector = |v: &str| {
        json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1_700_000_000.0, v]}]}})
    };
    if query.starts_with("chaos_nan") {
        axum::Json(vector("NaN")).into_response()
    } else if query.starts_with("chaos_empty") {
        axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": []}}))
            .into_response()
    } else if query.starts_with("chaos_garbage") {
        "<html>this is not JSON</html>".into_response()
    } else if query.starts_with("chaos_hang") {
        tokio::time::sleep(Duration::from_secs(120)).await;
        axum::Json(vector("0")).into_response()
    } else {
        axum::Json(vector("0")).into_response()
    }
}

async fn hook(
    State(f): State<Fakes>,
    Query(q): Query<BTreeMap<String, String>>,
) -> axum::http::StatusCode {
    f.hooks.fetch_add(1, Ordering::Relaxed);
    if let Some(secs) = q.get("hang").and_then(|s| s.parse().ok()) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    axum::http::StatusCode::OK
}

pub async fn start_fakes(fakes: Fakes) -> Result<String, BoxError> {
    let app = axum::Router::new()
        .route("/api/v1/query", get(prom_query).post(prom_query))
        .route("/-/healthy", get(|| async { "ok" }))
        .route("/hook", post(hook))
        .with_state(fakes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}
