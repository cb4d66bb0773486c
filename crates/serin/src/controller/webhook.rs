//! Webhooks: the payload Flagger POSTs (`CallWebhook`, `CallEventWebhook` in Flagger's
//! `pkg/controller/webhook.go`), the revision checksum (`canaryChecksum`), and the HTTP client
//! with go-retryablehttp's semantics (`newHTTPClient`, `callWebhook`): per-attempt timeout,
//! `retries` extra attempts on transport errors, 429 and 5xx other than 501, exponential
//! back-off honouring `Retry-After` on 429/503, success iff the answer is HTTP 200..=202.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Serialize;

use crate::api::{CanaryPhase, CanaryStatus, CanaryWebhook};
use crate::tls::{Alpn, Verification};

/// Longest response body (in characters) quoted in an error message.
const MAX_BODY_CHARS: usize = 512;

/// The JSON body of every webhook call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HookPayload {
    pub name: String,
    pub namespace: String,
    pub phase: CanaryPhase,
    /// Identifies the revision under analysis ([`checksum`]).
    pub checksum: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// A successful answer (HTTP 200..=202).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookResponse {
    pub status: u16,
    /// The response body, trimmed and cut to a few hundred characters.
    pub body: String,
}

/// A webhook call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL cannot be used.
    #[error("invalid webhook URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The answer was not 200..=202 and is not retried: the message is the response body (as
    /// Flagger reports it), or the status when the body is empty.
    #[error("{message}")]
    Rejected { status: u16, message: String },
    /// A transport error that is not retried (TLS verification, too many redirects, ...).
    #[error("POST {url}: {cause}")]
    Transport { url: String, cause: String },
    /// Every attempt failed with a retriable error.
    #[error("POST {url} giving up after {attempts} attempt(s): {cause}")]
    GaveUp {
        url: String,
        attempts: u32,
        cause: String,
    },
    /// The HTTP client could not be built.
    #[error("building the webhook HTTP client: {0}")]
    Client(String),
}

/// HTTP client for webhooks ([`HttpWebhookClient`] in production; the controller's tests and
/// the simulator have their own).
#[async_trait]
pub trait WebhookClient: Send + Sync {
    /// POSTs `payload` to `hook.url` with the hook's timeout, retries and TLS setting. Success
    /// iff the final answer is HTTP 200..=202.
    async fn post(
        &self,
        hook: &CanaryWebhook,
        payload: &HookPayload,
    ) -> Result<HookResponse, WebhookError>;
}

/// A stable checksum of the revision a status describes: FNV-1a (64 bit) over the canonical
/// JSON of `{lastAppliedSpec, trackedConfigs}` (sorted keys), written with Flagger's alphabet.
/// Its value differs from Flagger's (which hashes a Go-specific dump); it is stable per revision.
pub fn checksum(status: &CanaryStatus) -> String {
    let canonical = serde_json::json!({
        "lastAppliedSpec": status.last_applied_spec.as_deref().unwrap_or(""),
        "trackedConfigs": status.tracked_configs.clone().unwrap_or_default(),
    });
    safe_encode(&fnv1a64(canonical.to_string().as_bytes()).to_string())
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// Kubernetes' `rand.SafeEncodeString`: maps each byte into an alphabet without vowels and
/// look-alike characters.
fn safe_encode(s: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// The reqwest-based [`WebhookClient`].
#[derive(Clone, Debug)]
pub struct HttpWebhookClient {
    client: reqwest::Client,
    insecure: reqwest::Client,
    min_wait: Duration,
    max_wait: Duration,
}

impl HttpWebhookClient {
    /// A client with go-retryablehttp's back-off bounds (1 s … 30 s).
    pub fn new() -> Result<Self, WebhookError> {
        Self::with_backoff(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// A client with custom back-off bounds (the wait before retry `n` is `min · 2ⁿ`, capped).
    pub fn with_backoff(min_wait: Duration, max_wait: Duration) -> Result<Self, WebhookError> {
        let build = |verification| {
            crate::tls::http_client(verification, Alpn::Http2OrHttp1)
                .map_err(|e| WebhookError::Client(e.to_string()))?
                .build()
                .map_err(|e| WebhookError::Client(error_chain(&e)))
        };
        Ok(Self {
            client: build(Verification::Platform)?,
            insecure: build(Verification::AcceptAny)?,
            min_wait,
            max_wait,
        })
    }

    /// The wait before retry number `retry` (0-based), unless the server said otherwise.
    fn backoff(&self, retry: u32, response: Option<&reqwest::Response>) -> Duration {
        if let Some(resp) = response
            && matches!(
                resp.status(),
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            )
            && let Some(seconds) = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Duration::from_secs(seconds);
        }
        let factor = 2u32.saturating_pow(retry);
        self.min_wait
            .checked_mul(factor)
            .unwrap_or(self.max_wait)
            .min(self.max_wait)
    }
}

/// Whether go-retryablehttp retries this status.
fn retriable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

/// Whether a transport error is worth retrying (not bad URLs, redirect loops or TLS
/// certificate failures).
fn retriable_transport(error: &reqwest::Error) -> bool {
    if error.is_builder() || error.is_redirect() {
        return false;
    }
    let chain = error_chain(error).to_ascii_lowercase();
    !(chain.contains("certificate") || chain.contains("unknownissuer"))
}

/// `error: cause: cause …`, skipping causes already contained in the previous text.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

fn describe_status(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

async fn body_text(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let trimmed = text.trim();
    if trimmed.chars().count() > MAX_BODY_CHARS {
        let cut: String = trimmed.chars().take(MAX_BODY_CHARS).collect();
        format!("{cut}…")
    } else {
        trimmed.to_string()
    }
}

#[async_trait]
impl WebhookClient for HttpWebhookClient {
    async fn post(
        &self,
        hook: &CanaryWebhook,
        payload: &HookPayload,
    ) -> Result<HookResponse, WebhookError> {
        let url = reqwest::Url::parse(hook.url.trim()).map_err(|e| WebhookError::InvalidUrl {
            url: hook.url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebhookError::InvalidUrl {
                url: hook.url.clone(),
                reason: format!("unsupported scheme {:?}", url.scheme()),
            });
        }
        let client = if hook.disable_tls.unwrap_or(false) {
            &self.insecure
        } else {
            &self.client
        };
        let attempts = hook.retries().saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = client
                .post(url.clone())
                .timeout(hook.timeout())
                .json(payload)
                .send()
                .await;
            let last = attempt >= attempts;
            let (cause, response) = match result {
                Ok(resp) => {
                    let status = resp.status();
                    if status.as_u16() <= 202 && !status.is_informational() {
                        return Ok(HookResponse {
                            status: status.as_u16(),
                            body: body_text(resp).await,
                        });
                    }
                    if !retriable_status(status) {
                        let body = body_text(resp).await;
                        let message = if body.is_empty() {
                            describe_status(status)
                        } else {
                            body
                        };
                        return Err(WebhookError::Rejected {
                            status: status.as_u16(),
                            message,
                        });
                    }
                    (describe_status(status), Some(resp))
                }
                Err(e) => {
                    let cause = error_chain(&e);
                    if !retriable_transport(&e) {
                        return Err(WebhookError::Transport {
                            url: url.to_string(),
                            cause,
                        });
                    }
                    (cause, None)
                }
            };
            if last {
                return Err(WebhookError::GaveUp {
                    url: url.to_string(),
                    attempts,
                    cause,
                });
            }
            let wait = self.backoff(attempt - 1, response.as_ref());
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use axum::Json;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    use axum::routing::post;

    use super::*;

    #[derive(Clone, Default)]
    struct Server {
        hits: Arc<AtomicUsize>,
        bodies: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    }

    /// Serves `answers[i]` on the i-th request (the last one repeats).
    async fn serve(
        answers: Vec<(u16, &'static str, Option<&'static str>)>,
        delay: Duration,
    ) -> (String, Server) {
        let state = Server::default();
        let handler_state = state.clone();
        let app = axum::Router::new()
            .route(
                "/hook",
                post(
                    move |State(s): State<Server>, Json(body): Json<serde_json::Value>| {
                        let answers = answers.clone();
                        async move {
                            let n = s.hits.fetch_add(1, Ordering::SeqCst);
                            s.bodies.lock().unwrap().push(body);
                            tokio::time::sleep(delay).await;
                            let (code, text, retry_after) = answers[n.min(answers.len() - 1)];
                            let mut headers = HeaderMap::new();
                            if let Some(r) = retry_after {
                                headers.insert("retry-after", r.parse().unwrap());
                            }
                            (AxumStatus::from_u16(code).unwrap(), headers, text)
                        }
                    },
                ),
            )
            .with_state(handler_state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/hook"), state)
    }

    fn hook(url: &str, retries: i32, timeout: &str) -> CanaryWebhook {
        CanaryWebhook {
            name: "gate".into(),
            url: url.into(),
            retries: Some(retries),
            timeout: Some(timeout.into()),
            ..Default::default()
        }
    }

    fn payload() -> HookPayload {
        HookPayload {
            name: "podinfo".into(),
            namespace: "test".into(),
            phase: CanaryPhase::Progressing,
            checksum: "abc".into(),
            metadata: BTreeMap::from([("type".to_string(), "bash".to_string())]),
        }
    }

    fn client() -> HttpWebhookClient {
        HttpWebhookClient::with_backoff(Duration::from_millis(10), Duration::from_millis(40))
            .unwrap()
    }

    #[tokio::test]
    async fn success_is_200_to_202_and_the_payload_is_flaggers() {
        for code in [200, 201, 202] {
            let (url, server) = serve(vec![(code, "", None)], Duration::ZERO).await;
            client()
                .post(&hook(&url, 0, "5s"), &payload())
                .await
                .unwrap();
            assert_eq!(
                server.bodies.lock().unwrap()[0],
                serde_json::json!({"name": "podinfo", "namespace": "test",
                    "phase": "Progressing", "checksum": "abc", "metadata": {"type": "bash"}})
            );
        }
        let (url, _) = serve(vec![(204, "", None)], Duration::ZERO).await;
        let err = client()
            .post(&hook(&url, 0, "5s"), &payload())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "HTTP 204 No Content");
    }

    #[tokio::test]
    async fn disable_tls_accepts_a_self_signed_certificate_and_only_then() {
        let tls = devcluster::tls::generate().unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let listener = devcluster::tls::TlsListener::spawn(tcp, tls.acceptor, stopped);
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("https://{addr}/hook");

        let mut insecure = hook(&url, 0, "5s");
        insecure.disable_tls = Some(true);
        client().post(&insecure, &payload()).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        // Verified (the default): the self-signed certificate is refused before any request.
        let err = client()
            .post(&hook(&url, 0, "5s"), &payload())
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with(&format!("POST {url}")), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let _ = stop.send(true);
        server.abort();
    }

    #[tokio::test]
    async fn empty_metadata_is_omitted() {
        let (url, server) = serve(vec![(200, "", None)], Duration::ZERO).await;
        let mut p = payload();
        p.metadata.clear();
        p.phase = CanaryPhase::Succeeded;
        client().post(&hook(&url, 0, "5s"), &p).await.unwrap();
        assert_eq!(
            server.bodies.lock().unwrap()[0],
            serde_json::json!({"name": "podinfo", "namespace": "test",
                "phase": "Succeeded", "checksum": "abc"})
        );
    }

    #[tokio::test]
    async fn rejection_reports_the_body_and_is_not_retried() {
        let (url, server) = serve(vec![(403, "Forbidden\n", None)], Duration::ZERO).await;
        let err = client()
            .post(&hook(&url, 3, "5s"), &payload())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "Forbidden");
        assert_eq!(server.hits.load(Ordering::SeqCst), 1);

        let (url, server) = serve(vec![(501, "", None)], Duration::ZERO).await;
        let err = client()
            .post(&hook(&url, 3, "5s"), &payload())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "HTTP 501 Not Implemented");
        assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_given_up() {
        let (url, server) = serve(vec![(503, "busy", None)], Duration::ZERO).await;
        let err = client()
            .post(&hook(&url, 2, "5s"), &payload())
            .await
            .unwrap_err();
        assert_eq!(server.hits.load(Ordering::SeqCst), 3);
        assert_eq!(
            err.to_string(),
            format!("POST {url} giving up after 3 attempt(s): HTTP 503 Service Unavailable")
        );

        let (url, server) = serve(
            vec![(500, "", None), (429, "", None), (200, "", None)],
            Duration::ZERO,
        )
        .await;
        client()
            .post(&hook(&url, 2, "5s"), &payload())
            .await
            .unwrap();
        assert_eq!(server.hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn retry_after_is_honoured() {
        let (url, server) =
            serve(vec![(429, "", Some("1")), (200, "", None)], Duration::ZERO).await;
        let start = Instant::now();
        client()
            .post(&hook(&url, 1, "5s"), &payload())
            .await
            .unwrap();
        assert!(start.elapsed() >= Duration::from_secs(1));
        assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn per_attempt_timeout() {
        let (url, server) = serve(vec![(200, "", None)], Duration::from_secs(3)).await;
        let start = Instant::now();
        let err = client()
            .post(&hook(&url, 1, "1s"), &payload())
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(2900));
        assert_eq!(server.hits.load(Ordering::SeqCst), 2);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("POST {url} giving up after 2 attempt(s): ")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn bad_urls_and_refused_connections_are_errors() {
        let err = client()
            .post(&hook("not a url", 0, "5s"), &payload())
            .await
            .unwrap_err();
        assert!(matches!(err, WebhookError::InvalidUrl { .. }), "{err}");
        let err = client()
            .post(&hook("ftp://example.invalid/x", 0, "5s"), &payload())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unsupported scheme"), "{err}");

        // A port that nothing listens on: bind, note the port, close.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/hook");
        let err = client()
            .post(&hook(&url, 1, "5s"), &payload())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("POST {url} giving up after 2 attempt(s): ")),
            "{err}"
        );
    }

    #[test]
    fn checksum_is_stable_per_revision() {
        let mut a = CanaryStatus {
            last_applied_spec: Some("spec-a".into()),
            ..Default::default()
        };
        let first = checksum(&a);
        assert_eq!(first, checksum(&a.clone()));
        assert!(
            first
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
        a.canary_weight = 50;
        a.phase = CanaryPhase::Progressing;
        assert_eq!(first, checksum(&a), "only the revision counts");
        a.tracked_configs = Some(BTreeMap::from([("configmap/x".into(), "1".into())]));
        assert_ne!(first, checksum(&a));
        a.last_applied_spec = Some("spec-b".into());
        a.tracked_configs = None;
        assert_ne!(first, checksum(&a));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = HttpWebhookClient::with_backoff(Duration::from_secs(1), Duration::from_secs(30))
            .unwrap();
        let waits: Vec<u64> = (0..7).map(|n| c.backoff(n, None).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30]);
    }
}
