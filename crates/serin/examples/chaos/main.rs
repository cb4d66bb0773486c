//! Chaos suite (issue 19): healthy and hostile Canaries on an in-process dev cluster, analysed by
//! the real `serin controller` binary (one, or two under leader election) that is SIGKILLed at
//! random moments, with API faults, while invariants are checked continuously. See
//! `tests/chaos/README.md`; figures in `docs/reliability.md`.
//!
//! ```sh
//! cargo build -p serin --bin serin --example chaos
//! target/debug/examples/chaos --serin target/debug/serin --profile short
//! ```
//!
//! Exit status 0 when every invariant held and every Canary ended in its expected phase, 1
//! otherwise (the report names each violation).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use clap::Parser;
use devcluster::{Config, DevCluster};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NS: &str = "chaos";
const ISTIO_CRDS: &str = include_str!("../../../examples/istio-crds.yaml");
/// The weight at which healthy canaries are promoted (steps of 20).
const MAX_WEIGHT: i64 = 60;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser, Debug)]
#[command(about = "Chaos suite of `serin controller` on the dev cluster")]
struct Args {
    /// The `serin` binary to run as the controller.
    #[arg(long, default_value = "target/debug/serin")]
    serin: PathBuf,
    /// `short` (CI: 4 healthy canaries, 2 kills, 150 s budget) or `long` (20 healthy canaries,
    /// 8 kills, API faults, 600 s budget); the flags below override the profile.
    #[arg(long, default_value = "short")]
    profile: String,
    /// Healthy canaries (expected: Succeeded).
    #[arg(long)]
    canaries: Option<usize>,
    /// SIGKILLs of a controller at random moments.
    #[arg(long)]
    kills: Option<usize>,
    /// Run two controllers under leader election and kill the leader.
    #[arg(long)]
    leader: bool,
    /// API faults, `VERB=CODE:SHARE` as `serin dev-cluster --fail` (repeatable).
    #[arg(long = "fail")]
    fail: Vec<String>,
    /// Latency added to every API request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// End every watch stream this often (0: never).
    #[arg(long, default_value_t = 0)]
    drop_watches_secs: u64,
    /// Also store a Canary that no client can decode (threshold 2147483648).
    #[arg(long)]
    undecodable: bool,
    /// Leave out the hostile Canaries.
    #[arg(long)]
    no_hostile: bool,
    /// Give up after this long (seconds).
    #[arg(long)]
    budget_secs: Option<u64>,
    /// The kills happen at random moments within this many seconds after the new revisions.
    #[arg(long)]
    kill_window_secs: Option<u64>,
    /// Seed of the kill schedule.
    #[arg(long, default_value_t = 19)]
    seed: u64,
    /// Keep the work directory (logs, kubeconfig).
    #[arg(long)]
    keep: bool,
}

struct Profile {
    canaries: usize,
    kills: usize,
    budget: Duration,
    kill_window: Duration,
    faults: Vec<String>,
    latency_ms: u64,
    drop_watches_secs: u64,
}

impl Args {
    fn profile(&self) -> Result<Profile, BoxError> {
        let mut p = match self.profile.as_str() {
            "short" => Profile {
                canaries: 4,
                kills: 2,
                budget: Duration::from_secs(150),
                kill_window: Duration::from_secs(25),
                faults: vec![],
                latency_ms: 0,
                drop_watches_secs: 0,
            },
            "long" => Profile {
                canaries: 20,
                kills: 8,
                budget: Duration::from_secs(600),
                kill_window: Duration::from_secs(240),
                faults: vec![
                    "patch=409:0.1".into(),
                    "update=503:0.1".into(),
                    "get=500:0.05".into(),
                ],
                latency_ms: 20,
                drop_watches_secs: 5,
            },
            other => return Err(format!("unknown profile {other:?} (short, long)").into()),
        };
        if let Some(n) = self.canaries {
            p.canaries = n;
        }
        if let Some(n) = self.kills {
            p.kills = n;
        }
        if let Some(s) = self.budget_secs {
            p.budget = Duration::from_secs(s);
        }
        if let Some(s) = self.kill_window_secs {
            p.kill_window = Duration::from_secs(s);
        }
        if !self.fail.is_empty() {
            p.faults = self.fail.clone();
        }
        if self.latency_ms > 0 {
            p.latency_ms = self.latency_ms;
        }
        if self.drop_watches_secs > 0 {
            p.drop_watches_secs = self.drop_watches_secs;
        }
        Ok(p)
    }
}

/// What a Canary is expected to end as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Succeeded,
    Failed,
    /// Refused as an invalid spec: never runs, gets an `invalid canary spec` event.
    Refused,
}

struct Case {
    name: String,
    expect: Expect,
    what: &'static str,
    analysis: Value,
    extra_spec: Value,
}

/// xorshift64*: the kill schedule, reproducible from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

// ---------------------------------------------------------------------------------------------
// Fake Prometheus and webhook server

#[derive(Clone, Default)]
struct Fakes {
    queries: Arc<AtomicU64>,
    hooks: Arc<AtomicU64>,
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

async fn start_fakes(fakes: Fakes) -> Result<String, BoxError> {
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

// ---------------------------------------------------------------------------------------------
// Objects

fn cases(profile: &Profile, hostile: bool, fake: &str) -> Vec<Case> {
    let metric = |q: &str| json!([{"name": "chaos", "query": q, "thresholdRange": {"max": 1}, "interval": "1m"}]);
    let base = |metrics: Value, hooks: Value| {
        json!({"interval": "2s", "threshold": 2, "stepWeight": 20, "maxWeight": MAX_WEIGHT,
               "metrics": metrics, "webhooks": hooks})
    };
    let ok_hook = json!([{"name": "load", "type": "rollout", "url": format!("{fake}/hook"), "timeout": "5s"}]);
    // Every second healthy canary reads its check from a MetricTemplate, so that API faults on
    // GET hit the template reads (retried, then held; never a failed check).
    let templated = json!([{"name": "chaos", "templateRef": {"name": "healthy"}, "thresholdRange": {"max": 1}, "interval": "1m"}]);
    let mut out: Vec<Case> = (0..profile.canaries)
        .map(|i| Case {
            name: format!("good-{i:02}"),
            expect: Expect::Succeeded,
            what: "healthy",
            analysis: if i % 2 == 1 {
                base(templated.clone(), ok_hook.clone())
            } else {
                base(metric("chaos_ok"), ok_hook.clone())
            },
            extra_spec: json!({}),
        })
        .collect();
    if !hostile {
        return out;
    }
    let mut add = |name: &str, expect, what, analysis: Value, extra_spec: Value| {
        out.push(Case {
            name: name.to_string(),
            expect,
            what,
            analysis,
            extra_spec,
        })
    };
    add(
        "nan-metric",
        Expect::Failed,
        "metric answers NaN",
        base(metric("chaos_nan"), ok_hook.clone()),
        json!({}),
    );
    add(
        "empty-metric",
        Expect::Failed,
        "metric answers an empty vector",
        base(metric("chaos_empty"), ok_hook.clone()),
        json!({}),
    );
    add(
        "garbage-metric",
        Expect::Failed,
        "metric answers non-JSON",
        base(metric("chaos_garbage"), ok_hook.clone()),
        json!({}),
    );
    add(
        "hanging-metric",
        Expect::Failed,
        "metric server never answers",
        base(metric("chaos_hang"), ok_hook.clone()),
        json!({}),
    );
    add(
        "broken-template",
        Expect::Failed,
        "MetricTemplate with a broken query",
        base(
            json!([{"name": "broken", "templateRef": {"name": "broken"}, "thresholdRange": {"max": 1}}]),
            ok_hook.clone(),
        ),
        json!({}),
    );
    add(
        "missing-template",
        Expect::Failed,
        "MetricTemplate that does not exist",
        base(
            json!([{"name": "missing", "templateRef": {"name": "no-such-template"}, "thresholdRange": {"max": 1}}]),
            ok_hook.clone(),
        ),
        json!({}),
    );
    add(
        "unreachable-hook",
        Expect::Failed,
        "rollout webhook nobody listens on",
        base(
            metric("chaos_ok"),
            json!([{"name": "load", "type": "rollout", "url": "http://127.0.0.1:1/", "timeout": "2s"}]),
        ),
        json!({}),
    );
    add(
        "hanging-hook",
        Expect::Succeeded,
        "rollout webhook answering after 15 s (timeout 1m)",
        base(
            metric("chaos_ok"),
            json!([{"name": "load", "type": "rollout", "url": format!("{fake}/hook?hang=15"), "timeout": "1m"}]),
        ),
        json!({}),
    );
    let mut huge = base(metric("chaos_ok"), ok_hook.clone());
    huge["stepWeightPromotion"] = json!(2147483647);
    huge["maxWeight"] = json!(1000);
    add(
        "out-of-range",
        Expect::Refused,
        "stepWeightPromotion 2147483647, maxWeight 1000",
        huge,
        json!({}),
    );
    let mut huge_step = base(metric("chaos_ok"), ok_hook);
    huge_step["stepWeight"] = json!(2147483647);
    huge_step["maxWeight"] = json!(2147483647);
    add(
        "huge-step",
        Expect::Refused,
        "stepWeight = maxWeight = 2147483647",
        huge_step,
        json!({}),
    );
    out
}

async fn install(client: &Client) -> Result<(), BoxError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crds = serin::api::crd::all();
    // The hostile Canaries need a CRD that stores out-of-range numbers, as an older one does.
    crds.iter_mut()
        .for_each(serin::api::crd::without_integer_bounds);
    for doc in ISTIO_CRDS.split("\n---\n") {
        if !doc.trim().is_empty() {
            crds.push(serde_saphyr::from_str(doc)?);
        }
    }
    for crd in crds {
        api.create(&PostParams::default(), &crd).await?;
    }
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NS}}))?,
    )
    .await?;
    Ok(())
}

fn dynamic(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client.clone(), NS, &resource)
}

async fn create_objects(
    client: &Client,
    cases: &[Case],
    undecodable: bool,
    fake: &str,
) -> Result<(), BoxError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    // Canaries go in as raw JSON: the dev cluster (like an older CRD) stores out-of-range values.
    let canaries = dynamic(client, "flagger.app", "v1beta1", "Canary", "canaries");
    let templates = dynamic(
        client,
        "flagger.app",
        "v1beta1",
        "MetricTemplate",
        "metrictemplates",
    );
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
        "metadata": {"name": "broken", "namespace": NS},
        "spec": {"provider": {"type": "prometheus", "address": "http://127.0.0.1:1"},
                 "query": "sum(rate({{ broken"}
    }))?;
    templates.create(&PostParams::default(), &template).await?;
    let healthy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
        "metadata": {"name": "healthy", "namespace": NS},
        "spec": {"provider": {"type": "prometheus", "address": fake}, "query": "chaos_ok"}
    }))?;
    templates.create(&PostParams::default(), &healthy).await?;
    let mut all: Vec<(String, Value, Value)> = cases
        .iter()
        .map(|c| (c.name.clone(), c.analysis.clone(), c.extra_spec.clone()))
        .collect();
    if undecodable {
        let mut analysis = cases
            .first()
            .map(|c| c.analysis.clone())
            .unwrap_or_else(|| json!({"interval": "2s", "stepWeight": 20}));
        analysis["threshold"] = json!(2147483648u64);
        all.push(("undecodable".into(), analysis, json!({})));
    }
    for (app, analysis, extra) in all {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": app, "namespace": NS, "labels": {"app": app}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "app", "image": "example/app:1.0.0",
                        "ports": [{"name": "http", "containerPort": 9898}]}]}
                }
            }
        }))?;
        deployments.create(&PostParams::default(), &d).await?;
        let mut spec = json!({
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "progressDeadlineSeconds": 120,
            "service": {"port": 9898},
            "analysis": analysis,
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let c: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": app, "namespace": NS},
            "spec": spec,
        }))?;
        canaries.create(&PostParams::default(), &c).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Controllers

struct Controller {
    child: tokio::process::Child,
    log: PathBuf,
    started: Instant,
}

struct Controllers {
    serin: PathBuf,
    kubeconfig: PathBuf,
    metrics_server: String,
    leader: bool,
    work: PathBuf,
    running: Vec<Controller>,
    starts: usize,
}

impl Controllers {
    fn spawn(&mut self) -> Result<(), BoxError> {
        self.starts += 1;
        let log = self.work.join(format!("controller-{}.log", self.starts));
        let file = std::fs::File::create(&log)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = tokio::process::Command::new(&self.serin);
        cmd.arg("controller")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--port", &port.to_string()])
            .args(["--log-level", "info"])
            .args(["--metrics-server", &self.metrics_server])
            .args(["--min-analysis-interval", "1s"])
            .args(["--control-loop-interval", "2s"]);
        if self.leader {
            cmd.args([
                "--enable-leader-election",
                "--leader-election-namespace",
                NS,
            ])
            .args(["--leader-election-lease-duration", "3s"])
            .args(["--leader-election-renew-deadline", "2s"])
            .args(["--leader-election-retry-period", "500ms"]);
        }
        let child = cmd
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()?;
        self.running.push(Controller {
            child,
            log,
            started: Instant::now(),
        });
        Ok(())
    }

    /// SIGKILLs one controller (the leader when two run) and starts a new one.
    async fn kill_one(&mut self) -> Result<String, BoxError> {
        let index = if self.leader {
            self.running
                .iter()
                .position(|c| log_text(&c.log).contains("successfully acquired lease"))
                .unwrap_or(0)
        } else {
            0
        };
        if index >= self.running.len() {
            self.spawn()?;
            return Ok("no controller was running".into());
        }
        let mut victim = self.running.remove(index);
        victim.child.start_kill()?;
        let _ = victim.child.wait().await;
        let alive = victim.started.elapsed().as_secs_f64();
        self.spawn()?;
        Ok(format!(
            "SIGKILL {} after {alive:.1} s{}",
            victim.log.display(),
            if self.leader { " (the leader)" } else { "" }
        ))
    }

    async fn stop_all(&mut self) {
        for c in &mut self.running {
            let _ = c.child.start_kill();
            let _ = c.child.wait().await;
        }
        self.running.clear();
    }

    fn logs(&self) -> Vec<PathBuf> {
        (1..=self.starts)
            .map(|i| self.work.join(format!("controller-{i}.log")))
            .collect()
    }
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Invariants

#[derive(Default)]
struct Observed {
    phase: String,
    status_weight: i64,
    primary_image: String,
    /// When status and routes started to disagree.
    disagree_since: Option<Instant>,
    /// Samples in a row with a changed primary template outside promotion.
    template_outside_promotion: u32,
    progressing_seen: bool,
    max_canary_weight: i64,
    /// The longest disagreement of status and routes seen, in seconds.
    max_disagree_secs: f64,
}

#[derive(Default)]
struct Monitor {
    objects: BTreeMap<String, Observed>,
    violations: Vec<String>,
    samples: u64,
}

impl Monitor {
    fn violation(&mut self, text: String) {
        if self.violations.len() < 200 && !self.violations.contains(&text) {
            println!("VIOLATION {text}");
            self.violations.push(text);
        }
    }
}

/// `(primary, canary)` weights of the first HTTP route of a VirtualService, or a problem.
fn vs_weights(vs: &Value, app: &str) -> Result<Option<(i64, i64)>, String> {
    let Some(routes) = vs.pointer("/spec/http/0/route").and_then(Value::as_array) else {
        return Ok(None);
    };
    let mut primary = 0;
    let mut canary = 0;
    for r in routes {
        let host = r
            .pointer("/destination/host")
            .and_then(Value::as_str)
            .unwrap_or("");
        let weight = r.get("weight").and_then(Value::as_i64).unwrap_or(0);
        if !(0..=100).contains(&weight) {
            return Err(format!("weight {weight} for {host} outside 0-100"));
        }
        if host.starts_with(&format!("{app}-primary")) {
            primary += weight;
        } else if host.starts_with(&format!("{app}-canary")) {
            canary += weight;
        }
    }
    if primary + canary != 100 {
        return Err(format!("weights {primary}/{canary} do not sum to 100"));
    }
    Ok(Some((primary, canary)))
}

async fn sample(
    client: &Client,
    cases: &BTreeMap<String, Expect>,
    m: &mut Monitor,
    interval: Duration,
) -> Result<(), BoxError> {
    let canaries = dynamic(client, "flagger.app", "v1beta1", "Canary", "canaries");
    let services = dynamic(
        client,
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
        "virtualservices",
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let list = canaries.list(&ListParams::default()).await?;
    let vss: BTreeMap<String, Value> = services
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|o| Some((o.metadata.name.clone()?, serde_json::to_value(&o).ok()?)))
        .collect();
    let deps: BTreeMap<String, Deployment> = deployments
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|d| Some((d.metadata.name.clone()?, d)))
        .collect();
    m.samples += 1;
    for c in list.items {
        let Some(name) = c.metadata.name.clone() else {
            continue;
        };
        if !cases.contains_key(&name) {
            continue;
        }
        let data = &c.data;
        let phase = data
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let status_weight = data
            .pointer("/status/canaryWeight")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let routes = vss.get(&name).map(|vs| vs_weights(vs, &name));
        let primary = deps.get(&format!("{name}-primary"));
        let image = primary
            .and_then(|d| {
                d.spec
                    .as_ref()?
                    .template
                    .spec
                    .as_ref()?
                    .containers
                    .first()?
                    .image
                    .clone()
            })
            .unwrap_or_default();
        let replicas = primary.and_then(|d| d.spec.as_ref()?.replicas);

        let mut found = Vec::new();
        let obs = m.objects.entry(name.clone()).or_default();
        match routes {
            Some(Err(e)) => found.push(format!("{name}: VirtualService {e}")),
            Some(Ok(Some((_, canary)))) => {
                obs.max_canary_weight = obs.max_canary_weight.max(canary);
                if canary > MAX_WEIGHT {
                    found.push(format!(
                        "{name}: canary weight {canary} above maxWeight {MAX_WEIGHT}"
                    ));
                }
                let settled = matches!(
                    phase.as_str(),
                    "Progressing" | "Succeeded" | "Failed" | "Initialized"
                );
                if settled && canary != status_weight {
                    let since = *obs.disagree_since.get_or_insert_with(Instant::now);
                    let secs = since.elapsed().as_secs_f64();
                    obs.max_disagree_secs = obs.max_disagree_secs.max(secs);
                    let limit = interval * 2 + Duration::from_secs(3);
                    if since.elapsed() > limit {
                        found.push(format!(
                            "{name}: status.canaryWeight {status_weight} and the VirtualService's {canary} disagree for more than {} s (phase {phase})",
                            limit.as_secs()
                        ));
                    }
                } else {
                    obs.disagree_since = None;
                }
            }
            _ => {}
        }
        if replicas == Some(0) {
            found.push(format!("{name}: primary at 0 replicas (phase {phase})"));
        }
        if !obs.primary_image.is_empty() && !image.is_empty() && image != obs.primary_image {
            if matches!(phase.as_str(), "Promoting" | "Finalising" | "Succeeded") {
                obs.primary_image = image.clone();
                obs.template_outside_promotion = 0;
            } else {
                obs.template_outside_promotion += 1;
                if obs.template_outside_promotion >= 3 {
                    found.push(format!(
                        "{name}: primary template changed to {image} while phase {phase}"
                    ));
                }
            }
        } else if obs.primary_image.is_empty() {
            obs.primary_image = image;
        }
        if phase == "Progressing" {
            obs.progressing_seen = true;
        }
        if cases.get(&name) == Some(&Expect::Refused) && obs.progressing_seen {
            found.push(format!("{name}: refused spec ran (phase {phase})"));
        }
        obs.phase = phase;
        obs.status_weight = status_weight;
        for f in found {
            m.violation(f);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("chaos: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = tokio::select! {
        r = run() => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        _ = term.recv() => Err("terminated".into()),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, BoxError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let profile = args.profile()?;
    if !args.serin.exists() {
        return Err(format!(
            "{} not found: build it or pass --serin",
            args.serin.display()
        )
        .into());
    }
    let work = std::env::temp_dir().join(format!("serin-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let kubeconfig = work.join("kubeconfig");

    let dev = DevCluster::start_with(Config {
        ready_delay: Duration::from_millis(300),
        ..Config::default()
    })
    .await?;
    dev.write_kubeconfig(&kubeconfig)?;
    let client = dev.client();
    install(&client).await?;
    let fakes = Fakes::default();
    let fake_url = start_fakes(fakes.clone()).await?;
    let cases = cases(&profile, !args.no_hostile, &fake_url);
    create_objects(&client, &cases, args.undecodable, &fake_url).await?;
    let expected: BTreeMap<String, Expect> =
        cases.iter().map(|c| (c.name.clone(), c.expect)).collect();
    println!(
        "profile={} healthy={} hostile={} undecodable={} kills={} leader={} faults={:?} latency_ms={} drop_watches_secs={} seed={} work={}",
        args.profile,
        profile.canaries,
        cases.len() - profile.canaries,
        args.undecodable,
        profile.kills,
        args.leader,
        profile.faults,
        profile.latency_ms,
        profile.drop_watches_secs,
        args.seed,
        work.display()
    );

    let mut controllers = Controllers {
        serin: args.serin.clone(),
        kubeconfig: kubeconfig.clone(),
        metrics_server: fake_url.clone(),
        leader: args.leader,
        work: work.clone(),
        running: Vec::new(),
        starts: 0,
    };
    controllers.spawn()?;
    if args.leader {
        controllers.spawn()?;
    }

    // Initialisation, without faults.
    let t0 = Instant::now();
    let interval = Duration::from_secs(2);
    let mut monitor = Monitor::default();
    let runnable: Vec<&Case> = cases
        .iter()
        .filter(|c| c.expect != Expect::Refused)
        .collect();
    loop {
        sample(&client, &expected, &mut monitor, interval).await?;
        let ready = runnable
            .iter()
            .filter(|c| {
                monitor
                    .objects
                    .get(&c.name)
                    .is_some_and(|o| o.phase == "Initialized")
            })
            .count();
        if ready == runnable.len() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(90) {
            println!("only {ready} of {} Initialized after 90 s", runnable.len());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("initialised in {:.1} s", t0.elapsed().as_secs_f64());

    // Faults on, then a new revision for every Canary.
    for spec in &profile.faults {
        dev.faults().add_spec(spec)?;
    }
    if profile.latency_ms > 0 {
        dev.faults()
            .set_latency(Duration::from_millis(profile.latency_ms));
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for c in &cases {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example/app:2.0.0"}]}}}});
        // The benchmark's own writes must get through the faults.
        for _ in 0..20 {
            match deployments
                .patch(&c.name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    let start = Instant::now();
    let budget = profile.budget;
    let mut rng = Rng(args.seed.max(1));
    // Kill moments at random within the kill window (while the canaries run).
    let window = profile.kill_window.min(budget).as_millis() as u64;
    let mut kill_at: Vec<Duration> = (0..profile.kills)
        .map(|_| Duration::from_millis(rng.below(window)))
        .collect();
    kill_at.sort();
    let mut kills = kill_at.into_iter().peekable();
    let mut last_drop = Instant::now();
    let mut succeeded_at: BTreeMap<String, f64> = BTreeMap::new();
    let mut kill_log = Vec::new();
    let finished = |m: &Monitor| {
        expected.iter().all(|(name, e)| {
            let phase = m.objects.get(name).map(|o| o.phase.as_str()).unwrap_or("");
            match e {
                Expect::Succeeded => phase == "Succeeded",
                Expect::Failed => phase == "Failed",
                Expect::Refused => true,
            }
        })
    };
    while start.elapsed() < budget {
        if kills.peek().is_some_and(|at| start.elapsed() >= *at) {
            kills.next();
            let what = controllers.kill_one().await?;
            println!("{:>6.1} s {what}", start.elapsed().as_secs_f64());
            kill_log.push(what);
        }
        if profile.drop_watches_secs > 0
            && last_drop.elapsed() >= Duration::from_secs(profile.drop_watches_secs)
        {
            dev.faults().drop_watches();
            last_drop = Instant::now();
        }
        if let Err(e) = sample(&client, &expected, &mut monitor, interval).await {
            // The monitor's own reads go through the faults too.
            let _ = e;
        }
        for (name, o) in &monitor.objects {
            if o.phase == "Succeeded" && !succeeded_at.contains_key(name) {
                succeeded_at.insert(name.clone(), start.elapsed().as_secs_f64());
            }
        }
        if finished(&monitor) && kills.peek().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    dev.faults().clear();
    // One more sample without faults, after a settle.
    tokio::time::sleep(interval * 2).await;
    let _ = sample(&client, &expected, &mut monitor, interval).await;
    controllers.stop_all().await;

    // Final phases.
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let events = events.list(&ListParams::default()).await?.items;
    let mut wrong = Vec::new();
    for c in &cases {
        let phase = monitor
            .objects
            .get(&c.name)
            .map(|o| o.phase.clone())
            .unwrap_or_default();
        let ok = match c.expect {
            Expect::Succeeded => phase == "Succeeded",
            Expect::Failed => phase == "Failed",
            Expect::Refused => events.iter().any(|e| {
                e.involved_object.name.as_deref() == Some(c.name.as_str())
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("invalid canary spec"))
            }),
        };
        if !ok {
            wrong.push(format!(
                "{} ({}): expected {:?}, ended {phase:?}",
                c.name, c.what, c.expect
            ));
        }
    }
    for w in &wrong {
        monitor.violation(format!("final phase: {w}"));
    }
    // No panic in any controller log; texts in words.
    for log in controllers.logs() {
        let text = log_text(&log);
        if text.contains("panicked") {
            monitor.violation(format!("{}: a panic", log.display()));
        }
        if text.contains("Status { status: Some(") {
            monitor.violation(format!(
                "{}: a Rust debug dump of an API error",
                log.display()
            ));
        }
    }
    // Template reads under API faults: held steps, and failed checks caused by the API server.
    let mut held = 0;
    let mut template_failures = 0;
    for log in controllers.logs() {
        let text = log_text(&log);
        held += text
            .matches("cannot be read, retrying at the next interval")
            .count();
        template_failures += text
            .lines()
            .filter(|l| l.contains("Metric template healthy.") && l.contains("error:"))
            .count();
    }
    if template_failures > 0 {
        monitor.violation(format!(
            "{template_failures} failed checks of healthy canaries caused by reading their MetricTemplate"
        ));
    }
    // Healthy canaries kept progressing: all Succeeded, and when.
    let mut healthy: Vec<f64> = cases
        .iter()
        .filter(|c| c.what == "healthy")
        .filter_map(|c| succeeded_at.get(&c.name).copied())
        .collect();
    healthy.sort_by(f64::total_cmp);

    println!("---");
    println!("template reads held after retries: {held}");
    println!(
        "ran {elapsed:.1} s, {} samples, {} controller starts, {} kills, {} Prometheus queries, {} webhook calls",
        monitor.samples,
        controllers.starts,
        kill_log.len(),
        fakes.queries.load(Ordering::Relaxed),
        fakes.hooks.load(Ordering::Relaxed)
    );
    if let (Some(first), Some(last)) = (healthy.first(), healthy.last()) {
        println!(
            "healthy canaries Succeeded: {} of {} (first after {first:.1} s, last after {last:.1} s)",
            healthy.len(),
            profile.canaries
        );
    } else {
        println!("healthy canaries Succeeded: 0 of {}", profile.canaries);
    }
    for c in &cases {
        let o = monitor.objects.get(&c.name);
        println!(
            "  {:<18} {:<48} expected {:<9} ended {:<12} max canary weight {:<3} longest status/routes disagreement {:.1} s",
            c.name,
            c.what,
            format!("{:?}", c.expect),
            o.map(|o| o.phase.as_str()).unwrap_or("?"),
            o.map(|o| o.max_canary_weight).unwrap_or(0),
            o.map(|o| o.max_disagree_secs).unwrap_or(0.0)
        );
    }
    println!("violations: {}", monitor.violations.len());
    for v in &monitor.violations {
        println!("  {v}");
    }
    if args.keep || !monitor.violations.is_empty() {
        println!("logs kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(monitor.violations.is_empty())
}
