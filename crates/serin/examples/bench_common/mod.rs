//! What the controller benchmarks share (`bench_controller.rs` on the dev cluster,
//! `bench_flagger.rs` on a real control plane): the workload of N Deployments and Canaries,
//! image changes, phase counts, the Event watch that times revision detection, and readings of
//! a process (`/proc`) and of Prometheus text expositions.
// Each benchmark compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use serin::api::Canary;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

pub fn proc_status_kb(pid: u32, field: &str) -> Result<u64, BoxError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))?;
    let kb = line
        .split_whitespace()
        .nth(1)
        .ok_or("bad status line")?
        .parse()?;
    Ok(kb)
}

/// utime + stime of `pid`, in clock ticks.
pub fn proc_cpu_ticks(pid: u32) -> Result<u64, BoxError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = text.rsplit_once(')').ok_or("bad /proc/pid/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: u64 = fields.get(12).ok_or("no stime")?.parse()?;
    Ok(utime + stime)
}

pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The value of an unlabelled sample `name` (or with exactly `labels`) in a text exposition.
pub fn metric_value(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == name_and_labels).then(|| v.parse().ok())?
        })
        .unwrap_or(0.0)
}

pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

pub fn name(i: usize) -> String {
    format!("app-{i:04}")
}

/// N Deployments `app-NNNN` (one replica) and their Canaries in namespace `ns`: provider
/// `istio`, `interval`, `stepWeight: 10` to `maxWeight: 50`, `threshold: 5`, no metrics, no
/// webhooks. `headless`: the generated Services get no cluster IP (a real API server's
/// service range may hold fewer than the 3 N Services).
pub async fn create_objects(
    client: &Client,
    ns: &str,
    n: usize,
    interval: &str,
    headless: bool,
) -> Result<(), BoxError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let canaries: Api<Canary> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(0..n)
        .map(|i| {
            let deployments = deployments.clone();
            let canaries = canaries.clone();
            async move {
                let app = name(i);
                let d: Deployment = serde_json::from_value(json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": app, "namespace": ns, "labels": {"app": app}},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": app}},
                        "template": {
                            "metadata": {"labels": {"app": app}},
                            "spec": {"containers": [{"name": "app", "image": "example/app:1.0.0",
                                "ports": [{"name": "http", "containerPort": 9898}]}]}
                        }
                    }
                }))?;
                deployments.create(&PostParams::default(), &d).await?;
                let c: Canary = serde_json::from_value(json!({
                    "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
                    "metadata": {"name": app, "namespace": ns},
                    "spec": {
                        "provider": "istio",
                        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
                        "progressDeadlineSeconds": 3600,
                        "service": {"port": 9898, "headless": headless},
                        "analysis": {"interval": interval, "threshold": 5,
                            "stepWeight": 10, "maxWeight": 50}
                    }
                }))?;
                canaries.create(&PostParams::default(), &c).await?;
                Ok::<(), BoxError>(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// How many Canaries of namespace `ns` are in each phase (`""`: no status yet).
pub async fn phases(client: &Client, ns: &str) -> Result<BTreeMap<String, usize>, BoxError> {
    let canaries: Api<Canary> = Api::namespaced(client.clone(), ns);
    let mut out = BTreeMap::new();
    for c in canaries.list(&ListParams::default()).await?.items {
        let phase = c
            .status
            .map(|s| s.phase.as_str().to_string())
            .unwrap_or_default();
        *out.entry(phase).or_insert(0) += 1;
    }
    Ok(out)
}

pub async fn set_image(
    deployments: &Api<Deployment>,
    app: &str,
    image: &str,
) -> Result<(), BoxError> {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    deployments
        .patch(app, &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    Ok(())
}

/// Canary name → when its last image change was sent (waiting for detection).
pub type Pending = Arc<Mutex<HashMap<String, Instant>>>;

/// Every Canary Event message the watch saw: `(canary, message, when it was first seen)`, in
/// order of arrival (an Event object rewritten with a new message counts again).
pub type EventLog = Arc<Mutex<Vec<(String, String, Instant)>>>;

/// client-go's event aggregation (Flagger) prefixes the 11th and later similar Events of an
/// object with this.
const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// Watches the Events of namespace `ns` and turns `New revision detected!` on a pending Canary
/// into a latency; with `log`, also records every Canary Event message (timed on arrival).
pub fn spawn_detection_watch(
    client: Client,
    ns: &str,
    pending: Pending,
    latencies: Arc<Mutex<Vec<(String, f64)>>>,
    log: Option<EventLog>,
) -> tokio::sync::oneshot::Receiver<()> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let api: Api<Event> = Api::namespaced(client, ns);
    tokio::spawn(async move {
        // With back-off: once the benchmark stops the dev cluster, a watch retrying without
        // pause never yields, and the runtime (so the process) could not shut down.
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut ready = Some(ready_tx);
        let mut errors = 0usize;
        while let Some(ev) = stream.next().await {
            let now = Instant::now();
            let obj = match ev {
                Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => e,
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    errors += 1;
                    if errors <= 5 {
                        eprintln!("the Event watch failed (it is restarted): {e}");
                    }
                    continue;
                }
            };
            if obj.involved_object.kind.as_deref() != Some("Canary") {
                continue;
            }
            let (Some(canary), Some(message)) = (obj.involved_object.name, obj.message) else {
                continue;
            };
            let message = message
                .strip_prefix(COMBINED_PREFIX)
                .map_or(message.clone(), str::to_string);
            let detected = message.starts_with("New revision detected!");
            if let Some(log) = &log {
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((canary.clone(), message, now));
            }
            if !detected {
                continue;
            }
            let sent = pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&canary);
            if let Some(sent) = sent {
                latencies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((canary, now.duration_since(sent).as_secs_f64()));
            }
        }
    });
    ready_rx
}

pub fn free_port() -> Result<u16, BoxError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub fn latency_summary(label: &str, mut values: Vec<f64>, expected: usize) {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        println!("{label}: no detections observed (of {expected})");
        return;
    }
    println!(
        "{label}: n={} (of {expected}) p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        values.len(),
        percentile(&values, 0.50) * 1000.0,
        percentile(&values, 0.90) * 1000.0,
        percentile(&values, 0.99) * 1000.0,
        values.last().copied().unwrap_or(f64::NAN) * 1000.0,
    );
}

/// What a watch on the Canaries saw: each Canary's phase and when its first status arrived.
#[derive(Default)]
pub struct CanaryTrack {
    pub phase: HashMap<String, String>,
    pub first_status: HashMap<String, Instant>,
}

impl CanaryTrack {
    /// Canaries per phase (`""` = no status yet).
    pub fn phases(&self, n: usize) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for phase in self.phase.values() {
            *out.entry(phase.clone()).or_insert(0) += 1;
        }
        let unseen = n.saturating_sub(self.phase.len());
        if unseen > 0 {
            *out.entry(String::new()).or_insert(0) += unseen;
        }
        out.retain(|_, v| *v > 0);
        out
    }
}

/// Follows the Canaries of `ns` with a watch (no polling lists, which at 10,000 Canaries would
/// load the API server more than the controller does). Abort the returned task once its figures
/// are taken: during an analysis window the watch would decode every status write (about 100
/// a second per 1,000 Canaries) on the cores the controller and the dev cluster share.
pub fn spawn_canary_tracker(
    client: Client,
    ns: &str,
) -> (Arc<Mutex<CanaryTrack>>, tokio::task::AbortHandle) {
    let track = Arc::new(Mutex::new(CanaryTrack::default()));
    let api: Api<Canary> = Api::namespaced(client, ns);
    let t = track.clone();
    let task = tokio::spawn(async move {
        // With back-off, as the Event watch: without it, once the benchmark stops the dev
        // cluster, this watch retried without pause, never yielded, and kept the process alive
        // at half a core after its report (a later benchmark run then shared the machine).
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
        while let Some(event) = events.next().await {
            let canary = match event {
                Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) => c,
                _ => continue,
            };
            let Some(name) = canary.metadata.name.clone() else {
                continue;
            };
            let phase = canary
                .status
                .as_ref()
                .map(|s| s.phase.as_str().to_string())
                .unwrap_or_default();
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            if canary.status.is_some() {
                t.first_status
                    .entry(name.clone())
                    .or_insert_with(Instant::now);
            }
            t.phase.insert(name, phase);
        }
    });
    (track, task.abort_handle())
}
