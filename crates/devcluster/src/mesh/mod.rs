//! The dev mesh: an HTTP proxy on 127.0.0.1 that plays Istio's ingress gateway and sidecars for
//! a dev cluster.
//!
//! - A request in origin form (`GET / HTTP/1.1`, any Host) enters at the **ingress gateway**: it
//!   is routed by the VirtualServices bound to a gateway whose hosts match (`*` matches all).
//! - A request in absolute form (`GET http://backend.prod:9898/ HTTP/1.1`, what HTTP clients
//!   send to an `HTTP_PROXY`) is a **sidecar** request: the host is read as a cluster service
//!   name (`<svc>.<ns>[.svc.cluster.local]`) and routed by the mesh VirtualServices for that
//!   service, else straight to the service. Services registered with [`Mesh::add_static`] (the
//!   loadtester, Prometheus) go to their local address.
//!
//! Destinations are Services; their selector (plus a DestinationRule subset's labels) picks the
//! ready [`pods`] (local sample-app servers). Every request a pod answers is counted in Istio's
//! metrics ([`metrics`]), served on a separate port at `/metrics` for Prometheus.

pub mod metrics;
pub mod pods;
pub mod route;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;

use crate::server::Shared;
use crate::{Behaviour, DevCluster, Script};
use metrics::{MeshMetrics, RequestLabels};
use pods::{Launcher, Pod, PodSet};
use route::{Decision, Destination, Entry, RouteError, RouteRequest, ServiceRef};

/// The ready delay that stands for "not yet": the simulator keeps the old ready count.
const NOT_YET: Duration = Duration::from_secs(365 * 24 * 3600);

/// Settings of a dev mesh.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Proxy port (ingress gateway and HTTP proxy); 0 picks a free one.
    pub port: u16,
    /// Port of `/metrics`; 0 picks a free one.
    pub metrics_port: u16,
    /// How sample-app pods are run.
    pub launcher: Launcher,
    /// Deployments whose image contains one of these run sample-app pods.
    pub images: Vec<String>,
    /// How often pods are reconciled with the Deployments.
    pub tick: Duration,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            port: 0,
            metrics_port: 0,
            launcher: Launcher::InProcess,
            images: vec!["podinfo".to_string()],
            tick: Duration::from_millis(200),
        }
    }
}

/// Errors of starting a dev mesh.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("binding 127.0.0.1:{port} for the dev mesh: {source}")]
    Bind { port: u16, source: std::io::Error },
}

struct Inner {
    cluster: Arc<Shared>,
    pods: Mutex<Vec<Pod>>,
    pod_errors: Mutex<String>,
    statics: Mutex<BTreeMap<ServiceRef, SocketAddr>>,
    metrics: MeshMetrics,
    client: Client<HttpConnector, Body>,
    rng: AtomicU64,
    rr: AtomicU64,
}

/// A running dev mesh; [`Mesh::shutdown`] stops its servers and every pod.
pub struct Mesh {
    inner: Arc<Inner>,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    shutdown_tx: tokio_watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DevCluster {
    /// Starts a dev mesh over this cluster's Services, VirtualServices, DestinationRules and
    /// Deployments.
    pub async fn start_mesh(&self, config: MeshConfig) -> Result<Mesh, MeshError> {
        Mesh::start(self.shared.clone(), config).await
    }
}

async fn bind(port: u16) -> Result<(tokio::net::TcpListener, SocketAddr), MeshError> {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| MeshError::Bind { port, source })?;
    let a = l
        .local_addr()
        .map_err(|source| MeshError::Bind { port, source })?;
    Ok((l, a))
}

fn splitmix(state: &AtomicU64) -> u64 {
    let mut z = state
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Mesh {
    async fn start(cluster: Arc<Shared>, config: MeshConfig) -> Result<Self, MeshError> {
        let (proxy_listener, addr) = bind(config.port).await?;
        let (metrics_listener, metrics_addr) = bind(config.metrics_port).await?;
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u16(addr.port());
            h.finish()
        };
        let inner = Arc::new(Inner {
            cluster,
            pods: Mutex::new(Vec::new()),
            pod_errors: Mutex::new(String::new()),
            statics: Mutex::new(BTreeMap::new()),
            metrics: MeshMetrics::default(),
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build_http(),
            rng: AtomicU64::new(seed),
            rr: AtomicU64::new(0),
        });
        let (shutdown_tx, shutdown_rx) = tokio_watch::channel(false);
        let mut tasks = Vec::new();
        let serve = |listener: tokio::net::TcpListener, app: axum::Router| {
            let mut rx = shutdown_rx.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|s| *s).await;
                    })
                    .await;
            })
        };
        tasks.push(serve(
            proxy_listener,
            axum::Router::new()
                .fallback(proxy)
                .with_state(inner.clone()),
        ));
        tasks.push(serve(
            metrics_listener,
            axum::Router::new()
                .fallback(metrics_handler)
                .with_state(inner.clone()),
        ));
        let pods_inner = inner.clone();
        let mut rx = shutdown_rx;
        tasks.push(tokio::spawn(async move {
            let mut set = PodSet::new(config.launcher);
            let mut interval = tokio::time::interval(config.tick.max(Duration::from_millis(10)));
            let mut last_errors = String::new();
            let mut rollout_state: BTreeMap<(String, String), bool> = BTreeMap::new();
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = rx.wait_for(|s| *s) => break,
                }
                let deployments: Vec<Value> = {
                    let st = pods_inner.cluster.lock();
                    st.list("apps/deployments", None, None)
                        .map(|(_, v)| v.clone())
                        .collect()
                };
                let wanted = pods::wanted(&deployments, &config.images);
                set.refresh().await;
                let errors = set.apply(&wanted).await;
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let text = text.join("; ");
                if !text.is_empty() && text != last_errors {
                    tracing::warn!(errors = %text, "dev mesh: pods did not start");
                }
                last_errors.clone_from(&text);
                *pods_inner
                    .pod_errors
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = text;
                let pods_now = set.pods();
                // The Deployment's status follows the processes: its new replicas count as
                // ready once their processes answer /readyz (the simulator keeps the old ready
                // count until then).
                for (key, ready) in pods::rollout_ready(&wanted, &pods_now) {
                    if rollout_state.get(&key) != Some(&ready) {
                        let delay = if ready { Duration::ZERO } else { NOT_YET };
                        pods_inner.cluster.sim.script(
                            "Deployment",
                            &key.0,
                            &key.1,
                            Script {
                                ready_delay: Some(delay),
                                behaviour: Behaviour::Normal,
                            },
                        );
                        rollout_state.insert(key, ready);
                    }
                }
                rollout_state.retain(|key, _| {
                    let keep = wanted
                        .iter()
                        .any(|w| w.namespace == key.0 && w.workload == key.1);
                    if !keep {
                        pods_inner
                            .cluster
                            .sim
                            .clear_script("Deployment", &key.0, &key.1);
                    }
                    keep
                });
                *pods_inner
                    .pods
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = pods_now;
            }
            set.stop_all().await;
            pods_inner
                .pods
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
        }));
        Ok(Self {
            inner,
            addr,
            metrics_addr,
            shutdown_tx,
            tasks,
        })
    }

    /// The proxy address: the ingress gateway (`http://ADDR/`) and the `HTTP_PROXY` for clients
    /// that use cluster service names.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where Prometheus scrapes Istio's request metrics (`http://ADDR/metrics`).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Sends requests for a Service to a local address (a process outside the dev cluster's
    /// pods, e.g. the loadtester or Prometheus).
    pub fn add_static(&self, service: ServiceRef, addr: SocketAddr) {
        self.inner
            .statics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(service, addr);
    }

    /// The sample-app pods, ready or not.
    pub fn pods(&self) -> Vec<Pod> {
        self.inner
            .pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Why pods failed to start at the last reconcile (empty when all started).
    pub fn pod_errors(&self) -> String {
        self.inner
            .pod_errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The request metrics (also served at `/metrics`).
    pub fn metrics(&self) -> &MeshMetrics {
        &self.inner.metrics
    }

    /// Stops the proxy, the metrics server and every pod (waits for their processes to exit).
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

async fn metrics_handler(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    if req.uri().path() != "/metrics" && req.uri().path() != "/stats/prometheus" {
        return (
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        inner.metrics.render(),
    )
        .into_response()
}

fn text(code: StatusCode, body: impl Into<String>) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], body.into()).into_response()
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

fn split_authority(authority: &str) -> (String, Option<u16>) {
    match authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.parse().ok()),
        _ => (authority.to_string(), None),
    }
}

/// The pods a destination can go to: ready pods matching the Service selector and the subset.
fn endpoints(inner: &Inner, dest: &Destination, rules: &[Value]) -> Result<Vec<Pod>, String> {
    let selector: BTreeMap<String, String> = {
        let st = inner.cluster.lock();
        let svc = st
            .get("/services", &dest.service.namespace, &dest.service.name)
            .ok_or_else(|| {
                format!(
                    "service {}.{} not found",
                    dest.service.name, dest.service.namespace
                )
            })?;
        svc.pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    if selector.is_empty() {
        return Ok(Vec::new());
    }
    let extra = route::subset_labels(rules, dest);
    let pods = inner
        .pods
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(pods
        .iter()
        .filter(|p| p.ready && p.namespace == dest.service.namespace)
        .filter(|p| {
            selector
                .iter()
                .chain(extra.iter().map(|(k, v)| (k, v)))
                .all(|(k, v)| p.labels.get(k) == Some(v))
        })
        .cloned()
        .collect())
}

struct Outgoing {
    method: axum::http::Method,
    path_and_query: String,
    authority: String,
    headers: HeaderMap,
    body: bytes::Bytes,
}

impl Outgoing {
    fn request(&self, to: SocketAddr) -> Option<axum::http::Request<Body>> {
        let uri: Uri = format!("http://{to}{}", self.path_and_query).parse().ok()?;
        let mut b = axum::http::Request::builder()
            .method(self.method.clone())
            .uri(uri);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        if let Ok(host) = HeaderValue::from_str(&self.authority) {
            b = b.header(header::HOST, host);
        }
        b.body(Body::from(self.body.clone())).ok()
    }
}

async fn proxy(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    if req.method() == axum::http::Method::CONNECT {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the dev mesh proxies plain http:// only (no CONNECT)\n",
        );
    }
    let (parts, body) = req.into_parts();
    let (entry, authority) = match parts.uri.authority() {
        Some(a) => (Entry::Mesh, a.as_str().to_string()),
        None => (
            Entry::Gateway,
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string(),
        ),
    };
    let (host, port) = split_authority(&authority);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "request body over 16 MiB\n");
    };
    let mut headers = parts.headers.clone();
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    headers.remove(header::HOST);
    let out = Outgoing {
        method: parts.method.clone(),
        path_and_query,
        authority: authority.clone(),
        headers,
        body,
    };

    if entry == Entry::Mesh
        && let Some(service) =
            route::service_of_host(&host, "default").filter(|_| host.contains('.'))
    {
        let static_addr = inner
            .statics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&service)
            .copied();
        if let Some(addr) = static_addr {
            return forward(&inner, &out, addr, None).await.0;
        }
    }

    let route_req = RouteRequest {
        host: host.clone(),
        port,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().ok()?.to_string(),
                ))
            })
            .collect(),
    };
    let (vss, drs): (Vec<Value>, Vec<Value>) = {
        let st = inner.cluster.lock();
        (
            st.list("networking.istio.io/virtualservices", None, None)
                .map(|(_, v)| v.clone())
                .collect(),
            st.list("networking.istio.io/destinationrules", None, None)
                .map(|(_, v)| v.clone())
                .collect(),
        )
    };
    let roll = splitmix(&inner.rng);
    let mirror_roll = (splitmix(&inner.rng) % 10_000) as f64 / 100.0;
    let decision = match route::decide(&vss, &entry, &route_req, roll, mirror_roll) {
        Ok(d) => d,
        Err(e @ RouteError::NoRoute(_)) => return text(StatusCode::NOT_FOUND, format!("{e}\n")),
        Err(e @ RouteError::NotAClusterHost(_)) => {
            return text(StatusCode::BAD_GATEWAY, format!("{e}\n"));
        }
    };
    let source = match entry {
        Entry::Gateway => ("istio-ingressgateway", "istio-system"),
        Entry::Mesh => ("unknown", "unknown"),
    };
    if let Some(mirror) = &decision.mirror {
        let inner2 = inner.clone();
        let mirror = mirror.clone();
        let out2 = Outgoing {
            method: out.method.clone(),
            path_and_query: out.path_and_query.clone(),
            authority: format!("{}-shadow", out.authority),
            headers: out.headers.clone(),
            body: out.body.clone(),
        };
        let drs2 = drs.clone();
        tokio::spawn(async move {
            let _ = to_destination(&inner2, &out2, &mirror, &drs2, None, source).await;
        });
    }
    to_destination(
        &inner,
        &out,
        &decision.destination,
        &drs,
        Some(&decision),
        source,
    )
    .await
}

async fn to_destination(
    inner: &Arc<Inner>,
    out: &Outgoing,
    dest: &Destination,
    drs: &[Value],
    decision: Option<&Decision>,
    source: (&str, &str),
) -> Response {
    let pods = match endpoints(inner, dest, drs) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    };
    if pods.is_empty() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
    }
    let retries = decision.and_then(|d| d.retries.clone());
    let attempts = retries.as_ref().map_or(0, |r| r.attempts);
    let timeout = retries
        .as_ref()
        .and_then(|r| r.per_try_timeout)
        .or_else(|| decision.and_then(|d| d.timeout));
    let mut attempt = 0;
    loop {
        let i = inner.rr.fetch_add(1, Ordering::Relaxed) as usize % pods.len();
        let labels = labels_for(&pods[i], dest, source);
        let (response, answered) = forward(inner, out, pods[i].addr, Some((labels, timeout))).await;
        let again = retries.as_ref().is_some_and(|r| r.retries(answered));
        if !again || attempt >= attempts {
            return response;
        }
        attempt += 1;
    }
}

fn labels_for(pod: &Pod, dest: &Destination, source: (&str, &str)) -> RequestLabels {
    RequestLabels {
        source_workload: source.0.to_string(),
        source_workload_namespace: source.1.to_string(),
        destination_workload: pod.workload.clone(),
        destination_workload_namespace: pod.namespace.clone(),
        destination_app: pod
            .labels
            .get("app")
            .or_else(|| pod.labels.get("app.kubernetes.io/name"))
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        destination_version: pod
            .labels
            .get("version")
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        destination_service: format!(
            "{}.{}.svc.cluster.local",
            dest.service.name, dest.service.namespace
        ),
        destination_service_name: dest.service.name.clone(),
        destination_service_namespace: dest.service.namespace.clone(),
        response_code: 0,
    }
}

/// Sends one attempt; returns the response and the upstream's status code (None when it did not
/// answer: connection failure, reset or timeout).
async fn forward(
    inner: &Inner,
    out: &Outgoing,
    to: SocketAddr,
    metrics: Option<(RequestLabels, Option<Duration>)>,
) -> (Response, Option<u16>) {
    let Some(req) = out.request(to) else {
        return (
            text(StatusCode::BAD_REQUEST, "request could not be forwarded\n"),
            None,
        );
    };
    let started = Instant::now();
    let timeout = metrics
        .as_ref()
        .and_then(|(_, t)| *t)
        .unwrap_or(Duration::from_secs(300));
    let result = tokio::time::timeout(timeout, inner.client.request(req)).await;
    let (response, code, answered) = match result {
        Ok(Ok(resp)) => {
            let code = resp.status().as_u16();
            let (parts, body) = resp.into_parts();
            (Response::from_parts(parts, Body::new(body)), code, true)
        }
        Ok(Err(e)) => (
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("upstream connect error or disconnect/reset before headers: {e}\n"),
            ),
            503,
            false,
        ),
        Err(_) => (
            text(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout"),
            504,
            false,
        ),
    };
    if let Some((mut labels, _)) = metrics {
        labels.response_code = code;
        inner
            .metrics
            .record(labels, started.elapsed().as_secs_f64() * 1000.0);
    }
    (response, answered.then_some(code))
}
