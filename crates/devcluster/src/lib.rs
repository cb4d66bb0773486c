#![forbid(unsafe_code)]
//! Serin's dev cluster: an in-memory Kubernetes API server that the real kube-rs client and the
//! real kubectl talk to, with a workload simulator and fault hooks. Dev and test only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), devcluster::Error> {
//! let cluster = devcluster::DevCluster::start().await?;
//! let client = cluster.client();
//! cluster.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! # drop(client);
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```

pub mod apply;
pub mod convert;
pub mod defaults;
pub mod discovery;
pub mod faults;
pub mod gc;
pub mod knative;
pub mod kubeconfig;
pub mod mesh;
pub mod ops;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod requests;
pub mod sampleapp;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod simulator;
pub mod status;
pub mod store;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;

pub use faults::{FaultError, Faults};
pub use knative::KnativeModel;
pub use requests::{RecordedRequest, RequestLog};
pub use simulator::{Behaviour, Script, Simulator, StatusModel};

use server::Shared;
use store::{Store, random_suffix};

/// Errors of starting and driving a dev cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
    #[error("creating the kube client: {0}")]
    Client(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("serializing the dump: {0}")]
    Dump(String),
}

/// Settings of a dev cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// 0 picks a free port.
    pub port: u16,
    /// Bearer token clients must send; None generates a random one.
    pub token: Option<String>,
    /// Delay after which simulated workloads become ready.
    pub ready_delay: Duration,
    /// How often the simulator writes workload status.
    pub simulator_tick: Duration,
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Events kept for watch resumption; older resourceVersions get 410 Gone.
    pub event_log_capacity: usize,
    /// Cut every watch after this long (exercises client re-watch paths).
    pub max_watch_duration: Option<Duration>,
    /// Delay before the garbage collector acts (background deletion is asynchronous).
    pub gc_delay: Duration,
    /// Namespaces created at start.
    pub namespaces: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 0,
            token: None,
            ready_delay: Duration::from_millis(500),
            simulator_tick: Duration::from_millis(50),
            bookmark_interval: Duration::from_secs(30),
            event_log_capacity: 10_000,
            max_watch_duration: None,
            gc_delay: Duration::from_millis(20),
            namespaces: vec!["default".into(), "kube-system".into(), "kube-public".into()],
        }
    }
}

/// A running dev cluster. Several may run in one process; nothing is global.
pub struct DevCluster {
    shared: Arc<Shared>,
    client: kube::Client,
    shutdown_tx: tokio_watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    ca_pem: String,
    ca_der: Vec<u8>,
    connections: Arc<std::sync::atomic::AtomicU64>,
}

impl DevCluster {
    /// Starts a dev cluster with default settings on 127.0.0.1 and a free port.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Config::default()).await
    }

    /// Starts a dev cluster; it is serving when this returns.
    pub async fn start_with(config: Config) -> Result<Self, Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| Error::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            port: config.port,
            source,
        })?;
        let token = config.token.clone().unwrap_or_else(|| random_suffix(32));
        let (shutdown_tx, shutdown_rx) = tokio_watch::channel(false);
        let mut store = Store::new(config.event_log_capacity);
        if let Some(nsdef) = store.registry.by_key("/namespaces") {
            for ns in &config.namespaces {
                let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let _ = ops::create(
                    &mut store,
                    &nsdef,
                    "v1",
                    "",
                    body,
                    &ops::WriteOpts::default(),
                );
            }
        }
        let gc_notify = store.gc_notify.clone();
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            token,
            faults: Arc::new(Faults::new()),
            requests: RequestLog::default(),
            sim: Arc::new(Simulator::new(config.ready_delay)),
            shutdown: shutdown_rx.clone(),
            bookmark_interval: config.bookmark_interval,
            max_watch: config.max_watch_duration,
            addr,
        });
        let mut tasks = Vec::new();
        let app = server::router(shared.clone());
        let mut srv_shutdown = shutdown_rx.clone();
        let tls = tls::generate()?;
        let listener = tls::TlsListener::spawn(listener, tls.acceptor.clone(), shutdown_rx.clone());
        let connections = listener.accepted();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = srv_shutdown.wait_for(|s| *s).await;
                })
                .await;
        }));
        let sim_shared = shared.clone();
        let mut sim_shutdown = shutdown_rx.clone();
        let tick = config.simulator_tick.max(Duration::from_millis(1));
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                tokio::select! {
                    _ = interval.tick() => {
                        let mut st = sim_shared.lock();
                        sim_shared.sim.tick(&mut st);
                    }
                    _ = sim_shutdown.changed() => break,
                }
            }
        }));
        let gc_shared = shared.clone();
        let mut gc_shutdown = shutdown_rx;
        let gc_delay = config.gc_delay;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = gc_notify.notified() => {
                        tokio::time::sleep(gc_delay).await;
                        let mut st = gc_shared.lock();
                        gc::collect(&mut st);
                    }
                    _ = gc_shutdown.changed() => break,
                }
            }
        }));
        let client = make_client(&format!("https://{addr}"), &shared.token, &tls.cert_der)?;
        Ok(Self {
            shared,
            client,
            shutdown_tx,
            tasks: Mutex::new(tasks),
            ca_pem: tls.cert_pem,
            ca_der: tls.cert_der,
            connections,
        })
    }

    /// `https://127.0.0.1:PORT` (self-signed; see [`DevCluster::ca_pem`]).
    pub fn url(&self) -> String {
        format!("https://{}", self.shared.addr)
    }

    /// The server's self-signed certificate (PEM), to trust in other HTTP clients.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server's certificate (DER).
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// How many TCP connections the API endpoint has accepted since the start.
    pub fn connections_accepted(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The bearer token clients must send.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// An authenticated kube client (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The kubeconfig text for this cluster.
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(
            &self.url(),
            &self.shared.token,
            &tls::base64(self.ca_pem.as_bytes()),
        )
    }

    /// Writes the kubeconfig to `path` atomically.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        Ok(kubeconfig::write_atomic(path, &self.kubeconfig())?)
    }

    /// Fault hooks: latency, error shares per verb, dropping watches.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The request log (off until `requests().set_enabled(true)`): which requests were made.
    pub fn requests(&self) -> &RequestLog {
        &self.shared.requests
    }

    /// The workload simulator: default delay and per-object scripts.
    pub fn simulator(&self) -> &Simulator {
        &self.shared.sim
    }

    /// Forgets the event log: watches resuming from any older resourceVersion get 410 Gone.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().current_rv()
    }

    /// Every stored object as a multi-document YAML stream (for debugging).
    pub fn dump_yaml(&self) -> Result<String, Error> {
        let st = self.shared.lock();
        let mut objs: Vec<&serde_json::Value> = st.all_objects().map(|(_, o)| o).collect();
        objs.sort_by_key(|o| {
            (
                o.get("apiVersion").map(|v| v.to_string()),
                o.get("kind").map(|v| v.to_string()),
                store::namespace_of(o).to_string(),
                store::name_of(o).to_string(),
            )
        });
        let mut out = String::new();
        for o in objs {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(o).map_err(|e| Error::Dump(e.to_string()))?);
        }
        Ok(out)
    }

    /// Stops serving: ends watches, the simulator and the garbage collector.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

fn make_client(url: &str, token: &str, ca_der: &[u8]) -> Result<kube::Client, Error> {
    let uri = url
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| Error::Client(e.to_string()))?;
    let mut config = kube::Config::new(uri);
    config.default_namespace = "default".into();
    config.auth_info.token = Some(token.to_string().into());
    config.root_cert = Some(vec![ca_der.to_vec()]);
    kube::Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
}
