//! Simulated pods backed by real local processes: for every Deployment whose container image is
//! the sample app's, one sample-app server per replica, started and stopped as the Deployment
//! scales or changes its pod template (new pods first, old ones stopped once the new ones are
//! ready). A pod is ready when its process answers `/readyz`; a process that exits is replaced.
//!
//! What to run is decided by pure functions ([`wanted`], [`plan`]); [`PodSet`] does the I/O.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::sampleapp::{self, SampleAppConfig};
use crate::store::random_suffix;

/// How sample-app pods are run.
#[derive(Debug, Clone)]
pub enum Launcher {
    /// A process per pod: `program args… --port 0 --app-version V --hostname POD`, with the pod's
    /// env; its first stdout line is `listening on 127.0.0.1:PORT`. Its stdin is a pipe the
    /// process should exit on when it closes (so a killed parent leaves nothing behind).
    Process { program: PathBuf, args: Vec<String> },
    /// A server task in this process per pod (tests).
    InProcess,
}

/// A pod the mesh can route to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    /// The Deployment it belongs to (Istio's `destination_workload`).
    pub workload: String,
    pub labels: BTreeMap<String, String>,
    pub addr: SocketAddr,
    pub version: String,
    pub template: u64,
    pub ready: bool,
    /// The process id, for processes.
    pub pid: Option<u32>,
}

/// A Deployment that should have sample-app pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub namespace: String,
    pub workload: String,
    pub replicas: usize,
    pub template: u64,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    /// Literal `env` values of the first container.
    pub env: Vec<(String, String)>,
}

fn hash_of(v: Option<&Value>) -> u64 {
    let mut h = DefaultHasher::new();
    v.map(Value::to_string).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// The Deployments (JSON objects) that run the sample app: the first container's image contains
/// one of `images` (e.g. `podinfo`). Replicas default to 1, as in Kubernetes.
pub fn wanted(deployments: &[Value], images: &[String]) -> Vec<Wanted> {
    deployments
        .iter()
        .filter_map(|d| {
            let template = d.pointer("/spec/template")?;
            let container = template.pointer("/spec/containers/0")?;
            let image = container.get("image")?.as_str()?;
            if !images.iter().any(|i| image.contains(i.as_str())) {
                return None;
            }
            let labels = template
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let env = container
                .get("env")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|e| {
                            Some((
                                e.get("name")?.as_str()?.to_string(),
                                e.get("value")?.as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(Wanted {
                namespace: d.pointer("/metadata/namespace")?.as_str()?.to_string(),
                workload: d.pointer("/metadata/name")?.as_str()?.to_string(),
                replicas: d
                    .pointer("/spec/replicas")
                    .and_then(Value::as_u64)
                    .map_or(1, |r| usize::try_from(r).unwrap_or(usize::MAX).min(20)),
                template: hash_of(Some(template)),
                labels,
                image: image.to_string(),
                env,
            })
        })
        .collect()
}

/// What to change: pods to start (index into the wanted list, one entry per pod) and pods to
/// stop (by name).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub start: Vec<usize>,
    pub stop: Vec<String>,
}

/// Compares wanted Deployments with running pods. Pods of the current template are topped up to
/// the replica count (extras stopped, not-ready ones first); pods of an older template are
/// stopped once the current template has enough ready pods (a surge rollout); pods of
/// Deployments no longer wanted are stopped.
pub fn plan(wanted: &[Wanted], running: &[Pod]) -> Plan {
    let mut out = Plan::default();
    for (i, w) in wanted.iter().enumerate() {
        let mine = |p: &&Pod| p.namespace == w.namespace && p.workload == w.workload;
        let mut current: Vec<&Pod> = running
            .iter()
            .filter(mine)
            .filter(|p| p.template == w.template)
            .collect();
        current.sort_by_key(|p| p.ready);
        let old: Vec<&Pod> = running
            .iter()
            .filter(mine)
            .filter(|p| p.template != w.template)
            .collect();
        if current.len() < w.replicas {
            out.start
                .extend(std::iter::repeat_n(i, w.replicas - current.len()));
        } else {
            let extra = current.len() - w.replicas;
            out.stop
                .extend(current.iter().take(extra).map(|p| p.name.clone()));
        }
        let ready = current.iter().filter(|p| p.ready).count();
        if ready >= w.replicas {
            out.stop.extend(old.iter().map(|p| p.name.clone()));
        }
    }
    for p in running {
        if !wanted
            .iter()
            .any(|w| w.namespace == p.namespace && w.workload == p.workload)
        {
            out.stop.push(p.name.clone());
        }
    }
    out
}

/// Whether each wanted Deployment has all its replicas of the current template running and
/// ready: `(namespace, name) → ready`.
pub fn rollout_ready(wanted: &[Wanted], running: &[Pod]) -> Vec<((String, String), bool)> {
    wanted
        .iter()
        .map(|w| {
            let ready = running
                .iter()
                .filter(|p| {
                    p.namespace == w.namespace
                        && p.workload == w.workload
                        && p.template == w.template
                        && p.ready
                })
                .count();
            (
                (w.namespace.clone(), w.workload.clone()),
                ready >= w.replicas,
            )
        })
        .collect()
}

enum Handle {
    Process(Child),
    Task {
        stop: oneshot::Sender<()>,
        task: JoinHandle<()>,
    },
}

struct Running {
    pod: Pod,
    handle: Handle,
}

/// Why a pod did not start.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("starting {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{0} did not report its port")]
    NoPort(String),
    #[error("binding a port for {pod}: {source}")]
    Bind { pod: String, source: std::io::Error },
    #[error("pod settings: {0}")]
    Config(#[from] sampleapp::SampleAppError),
}

/// The running sample-app pods of one mesh.
pub struct PodSet {
    launcher: Launcher,
    running: Vec<Running>,
}

async fn probe_ready(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

impl PodSet {
    pub fn new(launcher: Launcher) -> Self {
        Self {
            launcher,
            running: Vec::new(),
        }
    }

    /// The pods, ready or not.
    pub fn pods(&self) -> Vec<Pod> {
        self.running.iter().map(|r| r.pod.clone()).collect()
    }

    /// Forgets pods whose process exited; marks started pods ready once `/readyz` answers.
    pub async fn refresh(&mut self) {
        self.running.retain_mut(|r| match &mut r.handle {
            Handle::Process(child) => matches!(child.try_wait(), Ok(None)),
            Handle::Task { task, .. } => !task.is_finished(),
        });
        for r in self.running.iter_mut().filter(|r| !r.pod.ready) {
            r.pod.ready = probe_ready(r.pod.addr).await;
        }
    }

    /// Brings the pods in line with the wanted Deployments.
    pub async fn apply(&mut self, wanted: &[Wanted]) -> Vec<PodError> {
        let plan = plan(wanted, &self.pods());
        let mut errors = Vec::new();
        for name in plan.stop {
            self.stop(&name).await;
        }
        for i in plan.start {
            if let Some(w) = wanted.get(i) {
                match self.start(w).await {
                    Ok(r) => self.running.push(r),
                    Err(e) => errors.push(e),
                }
            }
        }
        errors
    }

    async fn start(&self, w: &Wanted) -> Result<Running, PodError> {
        let name = format!(
            "{}-{:x}-{}",
            w.workload,
            w.template & 0xff_ffff,
            random_suffix(5)
        );
        let version = sampleapp::version_from_image(&w.image);
        let (addr, handle) = match &self.launcher {
            Launcher::Process { program, args } => {
                let mut child = Command::new(program)
                    .args(args)
                    .args([
                        "--port",
                        "0",
                        "--app-version",
                        &version,
                        "--hostname",
                        &name,
                    ])
                    .envs(w.env.iter().map(|(k, v)| (k, v)))
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|source| PodError::Spawn {
                        program: program.display().to_string(),
                        source,
                    })?;
                let stdout = child
                    .stdout
                    .take()
                    .ok_or_else(|| PodError::NoPort(name.clone()))?;
                let mut line = String::new();
                let read = tokio::time::timeout(
                    Duration::from_secs(10),
                    BufReader::new(stdout).read_line(&mut line),
                )
                .await;
                let addr = line
                    .trim()
                    .strip_prefix("listening on ")
                    .and_then(|a| a.parse::<SocketAddr>().ok());
                match (read, addr) {
                    (Ok(Ok(_)), Some(addr)) => (addr, Handle::Process(child)),
                    _ => {
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                        return Err(PodError::NoPort(name));
                    }
                }
            }
            Launcher::InProcess => {
                let env: BTreeMap<String, String> = w.env.iter().cloned().collect();
                let config = SampleAppConfig::from_env(&version, &name, |k| env.get(k).cloned())?;
                let (listener, addr) =
                    sampleapp::bind(0).await.map_err(|source| PodError::Bind {
                        pod: name.clone(),
                        source,
                    })?;
                let (stop, stopped) = oneshot::channel::<()>();
                let task = tokio::spawn(async move {
                    let _ = sampleapp::serve(listener, config, async move {
                        let _ = stopped.await;
                    })
                    .await;
                });
                (addr, Handle::Task { stop, task })
            }
        };
        let pid = match &handle {
            Handle::Process(c) => c.id(),
            Handle::Task { .. } => None,
        };
        Ok(Running {
            pod: Pod {
                name,
                namespace: w.namespace.clone(),
                workload: w.workload.clone(),
                labels: w.labels.clone(),
                addr,
                version,
                template: w.template,
                ready: false,
                pid,
            },
            handle,
        })
    }

    async fn stop(&mut self, name: &str) {
        let Some(i) = self.running.iter().position(|r| r.pod.name == name) else {
            return;
        };
        let r = self.running.swap_remove(i);
        stop_handle(r.handle).await;
    }

    /// Stops every pod (waits for the processes to exit).
    pub async fn stop_all(&mut self) {
        for r in std::mem::take(&mut self.running) {
            stop_handle(r.handle).await;
        }
    }
}

async fn stop_handle(handle: Handle) {
    match handle {
        Handle::Process(mut child) => {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        Handle::Task { stop, task } => {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(name: &str, image: &str, replicas: u64) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"replicas": replicas, "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image,
                    "env": [{"name": "SAMPLE_APP_ERROR_PERCENT", "value": "10"},
                            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}
            }}
        })
    }

    fn pod(w: &Wanted, name: &str, template: u64, ready: bool) -> Pod {
        Pod {
            name: name.into(),
            namespace: w.namespace.clone(),
            workload: w.workload.clone(),
            labels: w.labels.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            version: "1".into(),
            template,
            ready,
            pid: None,
        }
    }

    #[test]
    fn only_sample_app_images_with_literal_env() {
        let ds = [
            deployment("backend", "ghcr.io/stefanprodan/podinfo:5.0.0", 2),
            deployment("other", "nginx:1.25", 1),
        ];
        let w = wanted(&ds, &["podinfo".to_string()]);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].replicas, 2);
        assert_eq!(
            w[0].env,
            vec![("SAMPLE_APP_ERROR_PERCENT".to_string(), "10".to_string())]
        );
        assert_eq!(w[0].labels.get("app").map(String::as_str), Some("backend"));
    }

    #[test]
    fn scaling_and_surge_rollout() {
        let ds = [deployment("backend", "podinfo:5.0.0", 2)];
        let w = wanted(&ds, &["podinfo".to_string()]);
        let t = w[0].template;
        // Scale up from nothing.
        assert_eq!(plan(&w, &[]).start, vec![0, 0]);
        // Scale down: the not-ready extra goes first.
        let running = [
            pod(&w[0], "a", t, true),
            pod(&w[0], "b", t, false),
            pod(&w[0], "c", t, true),
        ];
        assert_eq!(plan(&w, &running).stop, vec!["b".to_string()]);
        // New template: old pods stay until the new ones are ready.
        let rolling = [
            pod(&w[0], "old1", t ^ 1, true),
            pod(&w[0], "new1", t, true),
            pod(&w[0], "new2", t, false),
        ];
        assert_eq!(plan(&w, &rolling), Plan::default());
        let rolled = [
            pod(&w[0], "old1", t ^ 1, true),
            pod(&w[0], "new1", t, true),
            pod(&w[0], "new2", t, true),
        ];
        assert_eq!(plan(&w, &rolled).stop, vec!["old1".to_string()]);
        let key = ("prod".to_string(), "backend".to_string());
        assert_eq!(rollout_ready(&w, &rolling), vec![(key.clone(), false)]);
        assert_eq!(rollout_ready(&w, &rolled), vec![(key, true)]);
        // Deployment gone or scaled to zero.
        assert_eq!(plan(&[], &rolled).stop.len(), 3);
        let zero = wanted(
            &[deployment("backend", "podinfo:5.0.0", 0)],
            &["podinfo".to_string()],
        );
        assert_eq!(plan(&zero, &rolled[1..]).stop.len(), 2);
    }

    #[tokio::test]
    async fn in_process_pods_start_get_ready_and_stop() {
        let ds = [deployment("backend", "podinfo:6.0.1", 2)];
        let w = wanted(&ds, &["podinfo".to_string()]);
        let mut set = PodSet::new(Launcher::InProcess);
        assert!(set.apply(&w).await.is_empty());
        set.refresh().await;
        let pods = set.pods();
        assert_eq!(pods.len(), 2);
        assert!(pods.iter().all(|p| p.ready && p.version == "6.0.1"));
        set.apply(&[]).await;
        assert!(set.pods().is_empty());
        assert!(!probe_ready(pods[0].addr).await);
    }
}
