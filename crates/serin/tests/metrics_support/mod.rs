//! Test helpers for the metrics tests: a recording HTTP server on 127.0.0.1:0 and an in-memory
//! `MetricsEnv`.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serin::api::metric_template::MetricTemplate;
use serin::metrics::analysis::{EnvError, MetricsEnv};

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Raw query string.
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// Decoded query parameters.
    pub fn params(&self) -> BTreeMap<String, String> {
        reqwest::Url::parse(&format!("http://x/?{}", self.query))
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
    pub fn param(&self, key: &str) -> String {
        self.params()
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("no query parameter {key} in {:?}", self.query))
    }
    pub fn header(&self, key: &str) -> String {
        self.headers
            .get(&key.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| panic!("no header {key} in {:?}", self.headers))
    }
    pub fn body_str(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn text(status: u16, content_type: &'static str, body: &str) -> Self {
        Self {
            status,
            content_type,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Answer + Send + Sync>;

/// An HTTP server on 127.0.0.1:0 that records every request and answers with `handler`.
/// Stops when dropped.
pub struct FakeServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeServer {
    pub async fn start(handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Self {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let recorded = requests.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let recorded = recorded.clone();
                let handler = handler.clone();
                async move {
                    let request = Recorded {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        query: uri.query().unwrap_or_default().to_string(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect(),
                        body: body.to_vec(),
                    };
                    recorded.lock().unwrap().push(request.clone());
                    let answer = handler(&request);
                    if !answer.delay.is_zero() {
                        tokio::time::sleep(answer.delay).await;
                    }
                    let response: Response = (
                        StatusCode::from_u16(answer.status).unwrap(),
                        [("content-type", answer.content_type)],
                        answer.body,
                    )
                        .into_response();
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            url: format!("http://{addr}"),
            requests,
            shutdown: Some(tx),
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .last()
            .cloned()
            .expect("no request received")
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An in-memory `MetricsEnv`.
#[derive(Default)]
pub struct FakeEnv {
    pub templates: BTreeMap<(String, String), MetricTemplate>,
    pub secrets: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
    pub knative_revisions: BTreeMap<(String, String), String>,
    pub kube_config: Option<kube::Config>,
    /// When set, every MetricTemplate read fails transiently with this message (an API server
    /// answering 5xx).
    pub unavailable: Option<String>,
}

impl FakeEnv {
    pub fn with_template(mut self, namespace: &str, yaml_json: serde_json::Value) -> Self {
        let template: MetricTemplate = serde_json::from_value(yaml_json).unwrap();
        let name = template.metadata.name.clone().unwrap();
        self.templates
            .insert((namespace.to_string(), name), template);
        self
    }
    pub fn with_secret(mut self, namespace: &str, name: &str, data: &[(&str, &str)]) -> Self {
        self.secrets.insert(
            (namespace.to_string(), name.to_string()),
            data.iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        );
        self
    }
}

#[async_trait]
impl MetricsEnv for FakeEnv {
    async fn template(&self, namespace: &str, name: &str) -> Result<MetricTemplate, EnvError> {
        if let Some(message) = &self.unavailable {
            return Err(EnvError::transient(message.clone()));
        }
        self.templates
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| {
                EnvError::from(format!("metrictemplates.flagger.app \"{name}\" not found"))
            })
    }
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, EnvError> {
        self.secrets
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| EnvError::from(format!("secrets \"{name}\" not found")))
    }
    async fn knative_latest_created_revision(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, EnvError> {
        self.knative_revisions
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| {
                EnvError::from(format!("services.serving.knative.dev \"{name}\" not found"))
            })
    }
    fn kube_config(&self) -> Option<kube::Config> {
        self.kube_config.clone()
    }
}

/// A Canary from JSON (apiVersion/kind filled in).
pub fn canary(name: &str, namespace: &str, spec: serde_json::Value) -> serin::api::Canary {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .unwrap()
}

/// A Prometheus `/api/v1/query` vector answer with one sample.
pub fn prom_vector(value: &str) -> serde_json::Value {
    serde_json::json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1_700_000_000.123, value]}
        ]}
    })
}

pub fn prom_empty() -> serde_json::Value {
    serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": []}})
}

pub fn credentials(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}
