//! Shared harness of the controller integration tests: a dev cluster with Serin's and Istio's
//! CRDs (installed with `devcluster::testing`, the harness the unit tests share), a fake
//! Prometheus and a webhook receiver on 127.0.0.1:0, and the controller running in-process
//! (`serin::cli::controller::serve`) until stopped.
//!
//! With `SERIN_E2E_KUBECONFIG` set (an admin kubeconfig, e.g. from `scripts/real-cluster.sh`),
//! the scenarios run on that cluster instead: the CRDs are applied there, the namespace `test`
//! is emptied for each scenario, `serin simulate-workloads` runs in-process for the
//! workloads in it, and the controller talks to the API server as the ServiceAccount
//! `serin-system/serin`, bound only to the ClusterRole Serin ships in `deploy/rbac/`,
//! so a missing permission fails the scenario. Scenarios that need the dev cluster's fault
//! hooks or two clusters are skipped there with a printed reason ([`dev_cluster_only`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use devcluster::{Config, DevCluster};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use serin::api::Canary;
use serin::cli::controller::{Args, serve};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod real;

pub const NS: &str = "test";

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn init_logs() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SERIN_TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------------------------
// Fake Prometheus

/// What the fake Prometheus answers: success rate (percent) and p99 latency (ms; in seconds for
/// histograms in seconds), `1` for `vector(1)`.
#[derive(Clone)]
pub struct FakeProm {
    pub values: Arc<Mutex<(f64, f64)>>,
    pub url: String,
    _task: Arc<JoinHandle<()>>,
}

impl FakeProm {
    pub async fn start(success_rate: f64, latency_ms: f64) -> Self {
        let values = Arc::new(Mutex::new((success_rate, latency_ms)));
        async fn query(
            State(v): State<Arc<Mutex<(f64, f64)>>>,
            Query(q): Query<BTreeMap<String, String>>,
        ) -> Json<Value> {
            let text = q.get("query").cloned().unwrap_or_default();
            let (rate, latency) = *v.lock().unwrap();
            let value = if text.trim() == "vector(1)" {
                1.0
            } else if text.contains("histogram_quantile") {
                // Observers whose histograms are in seconds (e.g. the `kubernetes` provider's
                // `http_request_duration_seconds`) get seconds (not Istio's
                // `..._milliseconds_bucket`, which also ends in `seconds_bucket`).
                if text.contains("_seconds_bucket") {
                    latency / 1000.0
                } else {
                    latency
                }
            } else {
                rate
            };
            Json(json!({"status": "success", "data": {"resultType": "vector",
                "result": [{"metric": {}, "value": [1.0, value.to_string()]}]}}))
        }
        let app = Router::new()
            .route("/api/v1/query", get(query).post(query))
            .with_state(values.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            values,
            url,
            _task: Arc::new(task),
        }
    }

    pub fn set(&self, success_rate: f64, latency_ms: f64) {
        *self.values.lock().unwrap() = (success_rate, latency_ms);
    }
}

impl Drop for FakeProm {
    fn drop(&mut self) {
        if Arc::strong_count(&self._task) == 1 {
            self._task.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook receiver

/// Records every POST (path, body) and answers with the status set per path (default 200).
#[derive(Clone)]
pub struct Hooks {
    pub calls: Arc<Mutex<Vec<(String, Value)>>>,
    pub status: Arc<Mutex<BTreeMap<String, u16>>>,
    pub url: String,
    task: Arc<JoinHandle<()>>,
}

#[derive(Clone)]
struct HookState {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    status: Arc<Mutex<BTreeMap<String, u16>>>,
}

impl Hooks {
    pub async fn start() -> Self {
        let state = HookState {
            calls: Arc::new(Mutex::new(Vec::new())),
            status: Arc::new(Mutex::new(BTreeMap::new())),
        };
        async fn hook(
            State(s): State<HookState>,
            uri: axum::http::Uri,
            body: String,
        ) -> axum::http::StatusCode {
            let path = uri.path().to_string();
            let value = serde_json::from_str(&body).unwrap_or(Value::Null);
            s.calls.lock().unwrap().push((path.clone(), value));
            let code = s.status.lock().unwrap().get(&path).copied().unwrap_or(200);
            axum::http::StatusCode::from_u16(code).unwrap()
        }
        let app = Router::new()
            .route("/{*path}", post(hook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            calls: state.calls,
            status: state.status,
            url,
            task: Arc::new(task),
        }
    }

    pub fn set_status(&self, path: &str, code: u16) {
        self.status.lock().unwrap().insert(path.to_string(), code);
    }

    /// `eventMessage` of every event webhook call, in order.
    pub fn event_messages(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == "/events")
            .filter_map(|(_, v)| v.pointer("/metadata/eventMessage").and_then(Value::as_str))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster

/// The admin kubeconfig of a real cluster to run the scenarios on, if one is given.
pub fn real_cluster() -> Option<PathBuf> {
    std::env::var_os("SERIN_E2E_KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// True (after printing why) when the scenario runs on a real cluster and needs the dev
/// cluster; the caller returns at once.
pub fn dev_cluster_only(reason: &str) -> bool {
    if real_cluster().is_some() {
        eprintln!("skipped on the real control plane: {reason}");
        return true;
    }
    false
}

/// The CRDs the scenarios need: Serin's and Istio's.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = serin::api::crd::all();
    crds.extend(devcluster::testing::crds_from_yaml(include_str!(
        "../fixtures/crds/istio.yaml"
    )));
    crds
}

pub struct Cluster {
    dev: Option<DevCluster>,
    /// The in-process workload simulator on a real cluster.
    simulator: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    /// The client of the tests themselves (admin).
    pub client: Client,
    /// The kubeconfig the controller uses.
    pub kubeconfig: PathBuf,
}

impl Cluster {
    pub async fn start() -> Self {
        init_logs();
        if let Some(admin) = real_cluster() {
            return real::start(&admin).await;
        }
        let dev = DevCluster::start_with(Config {
            ready_delay: Duration::from_millis(200),
            ..Config::default()
        })
        .await
        .unwrap();
        let client = dev.client();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let kubeconfig = std::env::temp_dir().join(format!(
            "serin-controller-test-{}-{n}.kubeconfig",
            std::process::id()
        ));
        dev.write_kubeconfig(&kubeconfig).unwrap();
        let c = Self {
            dev: Some(dev),
            simulator: None,
            client,
            kubeconfig,
        };
        devcluster::testing::install_crds(&c.client, crds()).await;
        let ns: Api<Namespace> = Api::all(c.client.clone());
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await
        .unwrap();
        c
    }

    /// The dev cluster (its fault hooks, simulator scripts); scenarios that use it return
    /// early on a real cluster through [`dev_cluster_only`].
    pub fn dev(&self) -> &DevCluster {
        self.dev
            .as_ref()
            .expect("this scenario needs the dev cluster (call dev_cluster_only first)")
    }

    pub async fn shutdown(self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        if let Some((stop, task)) = self.simulator {
            let _ = stop.send(true);
            let _ = task.await;
        }
        match self.dev {
            Some(dev) => dev.shutdown().await,
            None => real::clean(&self.client).await,
        }
    }

    pub fn canaries(&self) -> Api<Canary> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn dynamic(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
    ) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
        Api::namespaced_with(self.client.clone(), NS, &ar)
    }

    /// Replaces the Canary CRD with one without integer bounds (an older CRD left installed),
    /// so that out-of-range Canaries are stored as a user's cluster can store them.
    /// Stores `canary` (raw JSON) the way a cluster with an older, unbounded Canary CRD would:
    /// the CRD is replaced by one without integer bounds, then the create is retried until the
    /// API server validates with the new schema (a real kube-apiserver switches a CRD's schema
    /// asynchronously after the update; the dev cluster does not validate custom resources).
    pub async fn create_canary_under_unbounded_crd(&self, canary: Value) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for mut crd in serin::api::crd::all() {
            if crd.spec.names.kind != "Canary" {
                continue;
            }
            serin::api::crd::without_integer_bounds(&mut crd);
            crd.metadata.managed_fields = None;
            let name = crd.metadata.name.clone().unwrap_or_default();
            crds.patch(
                &name,
                &PatchParams::apply("serin-e2e").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap();
        }
        let raw = self.dynamic("flagger.app", "v1beta1", "Canary", "canaries");
        let object: DynamicObject = serde_json::from_value(canary).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match raw.create(&PostParams::default(), &object).await {
                Ok(_) => return,
                Err(kube::Error::Api(e))
                    if e.code == 422 && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("storing the unbounded Canary: {e}"),
            }
        }
    }

    pub fn virtual_services(&self) -> Api<DynamicObject> {
        self.dynamic(
            "networking.istio.io",
            "v1beta1",
            "VirtualService",
            "virtualservices",
        )
    }

    pub async fn create_deployment(&self, name: &str, image: &str) {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": image,
                        "ports": [{"name": "http", "containerPort": 9898}]}]}
                }
            }
        }))
        .unwrap();
        self.deployments()
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }

    pub async fn set_image(&self, name: &str, image: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}});
        self.deployments()
            .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
    }

    pub async fn image(&self, name: &str) -> Option<String> {
        let d = self.deployments().get_opt(name).await.unwrap()?;
        d.spec?.template.spec?.containers.first()?.image.clone()
    }

    pub async fn replicas(&self, name: &str) -> Option<i32> {
        self.deployments()
            .get_opt(name)
            .await
            .unwrap()?
            .spec?
            .replicas
    }

    pub async fn create_canary(&self, canary: Value) {
        let c: Canary = serde_json::from_value(canary).unwrap();
        self.canaries()
            .create(&PostParams::default(), &c)
            .await
            .unwrap();
    }

    pub async fn canary(&self, name: &str) -> Option<Canary> {
        self.canaries().get_opt(name).await.unwrap()
    }

    pub async fn phase(&self, name: &str) -> String {
        self.canary(name)
            .await
            .and_then(|c| c.status)
            .map(|s| s.phase.as_str().to_string())
            .unwrap_or_default()
    }

    /// (primary, canary) weights of the VirtualService `name`.
    pub async fn vs_weights(&self, name: &str) -> Option<(i64, i64)> {
        let vs = self.virtual_services().get_opt(name).await.unwrap()?;
        weights_of(&vs.data)
    }

    /// The Kubernetes Events on the Canary `name`, oldest first.
    pub async fn k8s_events(&self, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), NS);
        let mut events: Vec<Event> = api
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            // Only the Canary's: a real API server also records events on the Service of the
            // same name (e.g. `ClusterIPNotAllocated` from its ClusterIP repair loop).
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.involved_object.kind.as_deref() == Some("Canary")
            })
            .collect();
        events.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        events
    }
}

pub fn weights_of(vs: &Value) -> Option<(i64, i64)> {
    let routes = vs
        .pointer("/spec/http")?
        .as_array()?
        .last()?
        .get("route")?
        .as_array()?;
    let mut primary = None;
    let mut canary = None;
    for r in routes {
        let host = r.pointer("/destination/host")?.as_str()?;
        let w = r.get("weight").and_then(Value::as_i64).unwrap_or(0);
        if host.ends_with("-primary") {
            primary = Some(w);
        } else if host.ends_with("-canary") {
            canary = Some(w);
        }
    }
    Some((primary?, canary.unwrap_or(0)))
}

// ---------------------------------------------------------------------------------------------
// Controller

pub struct Controller {
    stop: watch::Sender<bool>,
    pub task: JoinHandle<Result<(), serin::cli::controller::ControllerError>>,
}

#[derive(Parser)]
struct ArgsCli {
    #[command(flatten)]
    args: Args,
}

/// Parses controller flags the way `serin controller` does.
pub fn controller_args(flags: &[String]) -> Args {
    let argv: Vec<String> = std::iter::once("controller".to_string())
        .chain(flags.iter().cloned())
        .collect();
    ArgsCli::try_parse_from(argv).unwrap().args
}

impl Controller {
    /// Starts the controller against `cluster` with the test defaults plus `extra` flags.
    pub fn start(cluster: &Cluster, prom: &FakeProm, extra: &[&str]) -> Self {
        Self::start_with_metrics_server(cluster, &prom.url, extra)
    }

    /// Starts the controller with `metrics_server` as its global Prometheus.
    pub fn start_with_metrics_server(
        cluster: &Cluster,
        metrics_server: &str,
        extra: &[&str],
    ) -> Self {
        let mut flags: Vec<String> = vec![
            format!("--kubeconfig={}", cluster.kubeconfig.display()),
            format!("--metrics-server={metrics_server}"),
            "--port=0".into(),
            "--min-analysis-interval=1s".into(),
            "--log-level=debug".into(),
        ];
        // Flags in `extra` replace the defaults of the same name.
        let name = |f: &str| f.split('=').next().unwrap_or(f).to_string();
        flags.retain(|f| !extra.iter().any(|e| name(e) == name(f)));
        flags.extend(extra.iter().map(|s| s.to_string()));
        let args = controller_args(&flags);
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(serve(args, rx));
        Self { stop, task }
    }

    pub async fn stop(self) -> Result<(), serin::cli::controller::ControllerError> {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("controller did not stop")
            .expect("controller task panicked")
    }
}

/// Polls `f` every 50 ms until it returns `Some`, panicking with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the Canary reaches `phase`.
pub async fn wait_phase(cluster: &Cluster, name: &str, phase: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let current = cluster.phase(name).await;
        if current == phase {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for phase {phase}, still {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

enum Seen {
    Phase(String),
    Weights(Option<(i64, i64)>),
}

/// Records every phase and VirtualService weight change on a background task.
pub struct Recorder {
    pub phases: Arc<Mutex<Vec<String>>>,
    pub weights: Arc<Mutex<Vec<(i64, i64)>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    pub fn start(cluster: &Cluster, name: &str) -> Self {
        let phases = Arc::new(Mutex::new(Vec::<String>::new()));
        let weights = Arc::new(Mutex::new(Vec::<(i64, i64)>::new()));
        let canaries = cluster.canaries();
        let vss = cluster.virtual_services();
        let name = name.to_string();
        let (p, w) = (phases.clone(), weights.clone());
        let task = tokio::spawn(async move {
            use futures::StreamExt;
            use kube::runtime::{WatchStreamExt, watcher};
            let wc = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let c_stream = watcher(canaries, wc.clone())
                .default_backoff()
                .applied_objects()
                .boxed();
            let v_stream = watcher(vss, wc).default_backoff().applied_objects().boxed();
            let phase_of = |c: Canary| {
                Seen::Phase(
                    c.status
                        .map(|s| s.phase.as_str().to_string())
                        .unwrap_or_default(),
                )
            };
            let mut merged = futures::stream::select(
                c_stream.map(move |r| r.ok().map(phase_of)),
                v_stream.map(|r| r.ok().map(|v| Seen::Weights(weights_of(&v.data)))),
            );
            while let Some(item) = merged.next().await {
                match item {
                    Some(Seen::Phase(phase)) => {
                        let mut p = p.lock().unwrap();
                        if p.last() != Some(&phase) {
                            p.push(phase);
                        }
                    }
                    Some(Seen::Weights(Some(ws))) => {
                        let mut w = w.lock().unwrap();
                        if w.last() != Some(&ws) {
                            w.push(ws);
                        }
                    }
                    _ => {}
                }
            }
        });
        Self {
            phases,
            weights,
            task,
        }
    }

    pub fn phases(&self) -> Vec<String> {
        self.phases.lock().unwrap().clone()
    }

    pub fn weights(&self) -> Vec<(i64, i64)> {
        self.weights.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Canary for the podinfo Deployment with the Istio provider and built-in metrics;
/// `analysis_extra` keys replace the analysis' (null removes a key).
pub fn podinfo_canary(hooks: &Hooks, analysis_extra: Value) -> Value {
    let mut analysis = json!({
        "interval": "1s",
        "threshold": 2,
        "maxWeight": 30,
        "stepWeight": 10,
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
            {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"}
        ],
        "webhooks": [
            {"name": "events", "type": "event", "url": format!("{}/events", hooks.url)}
        ]
    });
    if let (Some(a), Some(extra)) = (analysis.as_object_mut(), analysis_extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                a.remove(k);
            } else {
                a.insert(k.clone(), v.clone());
            }
        }
    }
    json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "progressDeadlineSeconds": 60,
            "service": {"port": 9898},
            "analysis": analysis
        }
    })
}

/// One scenario at a time: each runs a dev cluster and a controller with 1 s analysis intervals,
/// and two of them on a loaded 2-core machine made step timings flaky.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Runs a scenario in a free slot and fails it instead of hanging when it takes longer than a
/// minute (waiting for the slot does not count).
pub async fn guarded<F: Future>(f: F) -> F::Output {
    let _slot = SLOTS.acquire().await.unwrap();
    // A real API server's writes go through etcd: more time, same checks.
    let limit = if real_cluster().is_some() { 120 } else { 60 };
    tokio::time::timeout(Duration::from_secs(limit), f)
        .await
        .expect("test timed out")
}

/// True when `expected` appear in `messages` in this order (others may interleave).
pub fn contains_in_order(messages: &[String], expected: &[&str]) -> bool {
    let mut idx = 0;
    for m in messages {
        if idx < expected.len() && m == expected[idx] {
            idx += 1;
        }
    }
    idx == expected.len()
}

impl Hooks {
    /// Waits (up to 5 s) until `expected` appear in order among the events received, then
    /// asserts it. Some events are recorded after the status write a test waits for (e.g.
    /// `Promotion completed!` after phase Succeeded, `Terminated` after the finalizer is gone,
    /// as in Flagger), so checking right away would race.
    pub async fn wait_events_in_order(&self, expected: &[&str]) {
        let start = Instant::now();
        while !contains_in_order(&self.event_messages(), expected)
            && start.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_in_order(&self.event_messages(), expected);
    }
}

/// Asserts that `expected` appear in `messages` in this order (other messages may interleave).
pub fn assert_in_order(messages: &[String], expected: &[&str]) {
    let mut idx = 0;
    for m in messages {
        if idx < expected.len() && m == expected[idx] {
            idx += 1;
        }
    }
    assert_eq!(
        idx,
        expected.len(),
        "missing {:?} (in order) in {messages:#?}",
        expected.get(idx)
    );
}

/// Starts the usual scene: cluster, fake Prometheus (all good), webhook receiver, the podinfo
/// Deployment at 6.0.0, the controller, and a Canary from `canary`; waits for `Initialized`.
pub async fn initialized_scene(
    analysis_extra: Value,
    spec_extra: Value,
) -> (Cluster, FakeProm, Hooks, Controller, Recorder) {
    let cluster = Cluster::start().await;
    let (prom, hooks, ctrl, rec) = initialize_in(&cluster, analysis_extra, spec_extra).await;
    (cluster, prom, hooks, ctrl, rec)
}

/// [`initialized_scene`] in an existing cluster.
pub async fn initialize_in(
    cluster: &Cluster,
    analysis_extra: Value,
    spec_extra: Value,
) -> (FakeProm, Hooks, Controller, Recorder) {
    let prom = FakeProm::start(100.0, 100.0).await;
    let hooks = Hooks::start().await;
    cluster
        .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
        .await;
    let ctrl = Controller::start(cluster, &prom, &[]);
    let rec = Recorder::start(cluster, "podinfo");
    let mut canary = podinfo_canary(&hooks, analysis_extra);
    if let (Some(spec), Some(extra)) = (
        canary.pointer_mut("/spec").and_then(Value::as_object_mut),
        spec_extra.as_object(),
    ) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    cluster.create_canary(canary).await;
    wait_phase(cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
    (prom, hooks, ctrl, rec)
}

/// Runs the `kubectl-serin` binary built with this test: (success, stdout, stderr).
pub async fn run_plugin(argv: Vec<String>) -> (bool, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-serin"))
            .args(&argv)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
