//! `serin simulate-workloads`: the dev cluster's workload simulator against any API server.
//!
//! A control plane without nodes (a bare kube-apiserver, or one whose controller-manager runs
//! without the Deployment and DaemonSet controllers) never writes workload status, so nothing
//! ever becomes ready. This command plays those controllers and the kubelet, like kwok does:
//! it watches Deployments and DaemonSets and writes the status they would get
//! (`observedGeneration`, replica counts, `Available`/`Progressing` conditions) after the
//! ready delay, with the same per-object annotations as the dev cluster
//! (`devcluster.serin.dev/behaviour`, `.../ready-delay-ms`, ...). The status itself is computed
//! by [`devcluster::StatusModel`], the dev cluster's own simulator logic. Knative Services
//! (when their CRD is installed) get the status of the dev cluster's small Knative emulation,
//! [`devcluster::KnativeModel`]: a revision per template (a `Ready` Revision object when that
//! CRD is installed), `Ready`, and resolved traffic.
//!
//! Ownership rule: a workload is simulated only when it is in the selected namespaces and
//! matches the label selector (all when none are given), and no other field manager has
//! written its status (see [`may_simulate`]). So on a cluster where the real controllers run,
//! their workloads are left alone.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use devcluster::{KnativeModel, Script, StatusModel};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::watch;

use crate::api::apis::knative::{KnativeRevision, KnativeService};

/// The kind name [`Simulation::decide`] takes for Knative Services.
pub const KNATIVE_SERVICE: &str = "KnativeService";

/// The field manager of every status write; objects whose status another manager wrote are
/// not simulated.
pub const FIELD_MANAGER: &str = "serin-simulate-workloads";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Kubeconfig of the API server to write workload status to.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Only workloads in this namespace (repeatable; all namespaces when not given).
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Only workloads matching this label selector (e.g. `app=podinfo`).
    #[arg(long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Delay after which the replicas of a new rollout become ready.
    #[arg(long, default_value_t = 500)]
    pub ready_delay_ms: u64,
    /// How often the status of every simulated workload is computed again.
    #[arg(long, default_value_t = 100)]
    pub tick_ms: u64,
}

/// What can stop the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("error reading kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("error creating the Kubernetes client: {0}")]
    Client(String),
    #[error("a {kind} is not valid JSON: {message}")]
    Object { kind: &'static str, message: String },
}

/// Whether the simulator may write the status of `o`: it is in `namespaces` (any when empty)
/// and no field manager other than [`FIELD_MANAGER`] has written its status subresource.
/// (The label selector is applied by the watch itself.)
pub fn may_simulate(o: &Value, namespaces: &[String]) -> bool {
    let ns = o
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !namespaces.is_empty() && !namespaces.iter().any(|n| n == ns) {
        return false;
    }
    let entries = o
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    !entries.iter().any(|e| {
        e.get("subresource").and_then(Value::as_str) == Some("status")
            && e.get("manager").and_then(Value::as_str) != Some(FIELD_MANAGER)
    })
}

/// What one tick decided for one workload.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Leave it alone (not ours, or its status is already right).
    Skip,
    /// Write this status.
    Write(Value),
}

/// The decisions of the simulator across ticks: the shared [`StatusModel`], plus what it
/// wrote last per workload so that a server's re-encoding of a status never causes a loop of
/// writes.
#[derive(Debug, Default)]
pub struct Simulation {
    model: StatusModel,
    knative: KnativeModel,
    /// uid → (resourceVersion, status) of the last write, or of the last final status seen.
    known: HashMap<String, (String, Value)>,
    /// `<service uid>/<name>` of the Knative Revisions known to exist (by the Service's uid: a
    /// Service deleted and created again makes its revisions again).
    revisions: HashSet<String>,
    seen: HashSet<String>,
}

fn text<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl Simulation {
    /// Decides for `o` (a Deployment or, with `kind` `DaemonSet` or [`KNATIVE_SERVICE`], a
    /// DaemonSet or a Knative Service) at `now`.
    pub fn decide(
        &mut self,
        kind: &str,
        o: &Value,
        namespaces: &[String],
        default_delay: Duration,
        now: Instant,
    ) -> Decision {
        let uid = text(o, "/metadata/uid").to_string();
        self.seen.insert(uid.clone());
        if !may_simulate(o, namespaces) || o.pointer("/metadata/deletionTimestamp").is_some() {
            return Decision::Skip;
        }
        let rv = text(o, "/metadata/resourceVersion").to_string();
        // An unknown behaviour name is treated as `normal` (the dev cluster does the same).
        let script = Script::from_annotations(o)
            .ok()
            .flatten()
            .unwrap_or_default();
        let (status, is_final) = if kind == KNATIVE_SERVICE {
            (self.knative.status(o), true)
        } else {
            let status = self.model.status(kind, o, &script, default_delay, now);
            let is_final = devcluster::simulator::is_final(kind, o, &status, &script);
            (status, is_final)
        };
        let unchanged = match self.known.get(&uid) {
            Some((known_rv, known_status)) => *known_rv == rv && *known_status == status,
            None => false,
        };
        if unchanged || o.get("status") == Some(&status) {
            if is_final {
                self.known.insert(uid, (rv, status));
            }
            return Decision::Skip;
        }
        Decision::Write(status)
    }

    /// The Revision a Knative Service's status names that is not known to exist yet.
    pub fn revision_to_create(&self, service: &Value) -> Option<String> {
        let name = text(service, "/status/latestCreatedRevisionName");
        let key = format!("{}/{name}", text(service, "/metadata/uid"));
        (!name.is_empty() && !self.revisions.contains(&key)).then(|| name.to_string())
    }

    /// Records that the Revision `name` of `service` exists.
    pub fn revision_exists(&mut self, service: &Value, name: &str) {
        let key = format!("{}/{name}", text(service, "/metadata/uid"));
        self.revisions.insert(key);
    }

    /// Records that `status` was written and the object now has `rv`.
    pub fn written(&mut self, uid: &str, rv: String, status: Value) {
        self.known.insert(uid.to_string(), (rv, status));
    }

    /// Ends a tick: forgets the workloads not seen in it.
    pub fn end_tick(&mut self) {
        let seen = std::mem::take(&mut self.seen);
        self.model.retain(|uid| seen.contains(uid));
        self.knative.retain(|uid| seen.contains(uid));
        self.known.retain(|uid, _| seen.contains(uid));
    }
}

/// One watched kind in one namespace (or all).
struct Watched {
    kind: &'static str,
    client: Client,
    ar: ApiResource,
    store: Store<DynamicObject>,
}

async fn client_from(path: &Path) -> Result<Client, SimulateError> {
    let fail = |message: String| SimulateError::Kubeconfig {
        path: path.display().to_string(),
        message,
    };
    let kc = Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(e.to_string()))?;
    Client::try_from(config).map_err(|e| SimulateError::Client(e.to_string()))
}

fn watch_kind(
    client: &Client,
    kind: &'static str,
    ar: &ApiResource,
    namespace: Option<&str>,
    selector: Option<&str>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Watched {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    };
    let mut config = watcher::Config::default();
    if let Some(s) = selector {
        config = config.labels(s);
    }
    let writer = reflector::store::Writer::new(ar.clone());
    let store = writer.as_reader();
    let stream = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .touched_objects();
    tasks.push(tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                // The Knative CRD is optional: until it is installed its watch fails quietly.
                Err(e) if kind == KNATIVE_SERVICE => tracing::debug!(kind, "watch error: {e}"),
                Err(e) => tracing::warn!(kind, "watch error: {e}"),
                Ok(_) => {}
            }
        }
    }));
    Watched {
        kind,
        client: client.clone(),
        ar: ar.clone(),
        store,
    }
}

/// Simulates workloads through `client` until `stop` turns true.
pub async fn simulate(
    client: Client,
    args: &Args,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SimulateError> {
    let mut tasks = Vec::new();
    let mut watched = Vec::new();
    let kinds: [(&'static str, ApiResource); 3] = [
        ("Deployment", ApiResource::erase::<Deployment>(&())),
        ("DaemonSet", ApiResource::erase::<DaemonSet>(&())),
        (KNATIVE_SERVICE, ApiResource::erase::<KnativeService>(&())),
    ];
    let namespaces: Vec<Option<&str>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    for (kind, ar) in &kinds {
        for ns in &namespaces {
            watched.push(watch_kind(
                &client,
                kind,
                ar,
                *ns,
                args.selector.as_deref(),
                &mut tasks,
            ));
        }
    }
    let delay = Duration::from_millis(args.ready_delay_ms);
    let tick = Duration::from_millis(args.tick_ms.max(10));
    let mut sim = Simulation::default();
    let result = loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break Ok(()),
            () = tokio::time::sleep(tick) => {}
        }
        if let Err(e) = tick_once(&mut sim, &watched, &args.namespaces, delay).await {
            break Err(e);
        }
    };
    for t in tasks {
        t.abort();
    }
    result
}

async fn tick_once(
    sim: &mut Simulation,
    watched: &[Watched],
    namespaces: &[String],
    delay: Duration,
) -> Result<(), SimulateError> {
    let now = Instant::now();
    for w in watched {
        for obj in w.store.state() {
            let o = serde_json::to_value(Arc::as_ref(&obj)).map_err(|e| SimulateError::Object {
                kind: w.kind,
                message: e.to_string(),
            })?;
            if w.kind == KNATIVE_SERVICE
                && may_simulate(&o, namespaces)
                && let Some(name) = sim.revision_to_create(&o)
                && ensure_revision(w, &o, &name).await
            {
                sim.revision_exists(&o, &name);
            }
            let Decision::Write(status) = sim.decide(w.kind, &o, namespaces, delay, now) else {
                continue;
            };
            write_status(sim, w, o, status).await;
        }
    }
    sim.end_tick();
    Ok(())
}

/// Creates the `Ready` Revision `name` of the Knative Service `service` unless it exists; true
/// when it exists afterwards. Errors (no Revision CRD, ...) are logged and retried next tick.
async fn ensure_revision(w: &Watched, service: &Value, name: &str) -> bool {
    let ns = text(service, "/metadata/namespace");
    let ar = ApiResource::erase::<KnativeRevision>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(w.client.clone(), ns, &ar);
    match api.get_opt(name).await {
        // A leftover of a deleted Service of the same name is not this Service's revision: wait
        // for the garbage collector, then make it.
        Ok(Some(existing)) => {
            let uid = text(service, "/metadata/uid");
            return !existing
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "Service" && o.uid != uid);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!("Revision {ns}/{name}: {e}");
            return false;
        }
    }
    let body: DynamicObject =
        match serde_json::from_value(devcluster::knative::revision_object(service, name)) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("Revision {ns}/{name}: {e}");
                return false;
            }
        };
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    let mut created = match api.create(&pp, &body).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("creating Revision {ns}/{name}: {e}");
            return false;
        }
    };
    created.data["status"] = devcluster::knative::revision_status();
    match api.replace_status(name, &pp, &created).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("writing the status of Revision {ns}/{name}: {e}");
            false
        }
    }
}

/// Replaces the status of `o`; a conflict (someone wrote it meanwhile) is retried at the next
/// tick from the watched copy, other errors are logged.
async fn write_status(sim: &mut Simulation, w: &Watched, mut o: Value, status: Value) {
    let name = text(&o, "/metadata/name").to_string();
    let ns = text(&o, "/metadata/namespace").to_string();
    let uid = text(&o, "/metadata/uid").to_string();
    o["status"] = status.clone();
    let body: DynamicObject = match serde_json::from_value(o) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(kind = w.kind, "{ns}/{name}: {e}");
            return;
        }
    };
    let api: Api<DynamicObject> = Api::namespaced_with(w.client.clone(), &ns, &w.ar);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    match api.replace_status(&name, &pp, &body).await {
        Ok(written) => {
            let rv = written.metadata.resource_version.unwrap_or_default();
            tracing::debug!(kind = w.kind, "{ns}/{name}: status written");
            sim.written(&uid, rv, status);
        }
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
        Err(e) => tracing::warn!(kind = w.kind, "{ns}/{name}: writing status: {e}"),
    }
}

pub fn run(args: &Args) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serin simulate-workloads: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let client = match client_from(&args.kubeconfig).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("serin simulate-workloads: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            let _ = tx.send(true);
        });
        eprintln!("serin simulate-workloads: writing workload status (Ctrl-C stops)");
        match simulate(client, args, rx).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("serin simulate-workloads: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn deploy(managed: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "d", "uid": "u1", "generation": 1,
                "resourceVersion": "5", "managedFields": managed},
               "spec": {"replicas": 2, "template": {"spec": {}}}})
    }

    #[test]
    fn status_written_by_another_manager_is_not_ours() {
        let apply = json!([{"manager": "kubectl", "operation": "Apply"}]);
        assert!(may_simulate(&deploy(apply), &[]));
        let ours = json!([{"manager": FIELD_MANAGER, "subresource": "status"}]);
        assert!(may_simulate(&deploy(ours), &[]));
        let theirs = json!([{"manager": "kube-controller-manager", "subresource": "status"}]);
        assert!(!may_simulate(&deploy(theirs), &[]));
        assert!(!may_simulate(&deploy(json!([])), &["other".to_string()]));
        assert!(may_simulate(&deploy(json!([])), &["d".to_string()]));
    }

    #[test]
    fn writes_until_ready_then_stays_quiet() {
        let mut sim = Simulation::default();
        let t0 = Instant::now();
        let d = deploy(json!([]));
        let delay = Duration::from_millis(100);
        let Decision::Write(first) = sim.decide("Deployment", &d, &[], delay, t0) else {
            panic!("a new Deployment gets status");
        };
        assert_eq!(first["observedGeneration"], 1);
        assert!(first.get("readyReplicas").is_none());
        sim.written("u1", "6".into(), first.clone());
        sim.end_tick();
        // The server answered with rv 6; the same status is not written again.
        let mut d6 = d.clone();
        d6["metadata"]["resourceVersion"] = json!("6");
        d6["status"] = first;
        assert_eq!(
            sim.decide(
                "Deployment",
                &d6,
                &[],
                delay,
                t0 + Duration::from_millis(10)
            ),
            Decision::Skip
        );
        let Decision::Write(ready) = sim.decide(
            "Deployment",
            &d6,
            &[],
            delay,
            t0 + Duration::from_millis(150),
        ) else {
            panic!("ready after the delay");
        };
        assert_eq!(ready["readyReplicas"], 2);
        assert_eq!(ready["conditions"][1]["reason"], "NewReplicaSetAvailable");
    }

    #[test]
    fn a_server_re_encoding_does_not_loop() {
        let mut sim = Simulation::default();
        let t0 = Instant::now();
        let d = deploy(json!([]));
        let Decision::Write(status) = sim.decide("Deployment", &d, &[], Duration::ZERO, t0) else {
            panic!("status expected");
        };
        sim.written("u1", "9".into(), status);
        // The stored copy differs (e.g. the server dropped a field) but nothing changed since
        // our write: no second write.
        let mut stored = d.clone();
        stored["metadata"]["resourceVersion"] = json!("9");
        stored["status"] = json!({"observedGeneration": 1});
        assert_eq!(
            sim.decide("Deployment", &stored, &[], Duration::ZERO, t0),
            Decision::Skip
        );
    }

    #[test]
    fn knative_services_get_a_revision_and_resolved_traffic() {
        let mut sim = Simulation::default();
        let svc = json!({"metadata": {"name": "podinfo", "namespace": "d", "uid": "k1", "generation": 1,
                "resourceVersion": "3"},
               "spec": {"template": {"spec": {"containers": [{"image": "podinfo:6.0.0"}]}}}});
        let t0 = Instant::now();
        let Decision::Write(status) = sim.decide(KNATIVE_SERVICE, &svc, &[], Duration::ZERO, t0)
        else {
            panic!("a new Knative Service gets status");
        };
        assert_eq!(status["latestReadyRevisionName"], "podinfo-00001");
        assert_eq!(status["traffic"][0]["revisionName"], "podinfo-00001");
        sim.written("k1", "4".into(), status.clone());
        let mut stored = svc.clone();
        stored["metadata"]["resourceVersion"] = json!("4");
        stored["status"] = status;
        assert_eq!(
            sim.decide(KNATIVE_SERVICE, &stored, &[], Duration::ZERO, t0),
            Decision::Skip
        );
    }

    #[test]
    fn foreign_workloads_are_skipped() {
        let mut sim = Simulation::default();
        let theirs =
            deploy(json!([{"manager": "kube-controller-manager", "subresource": "status"}]));
        assert_eq!(
            sim.decide("Deployment", &theirs, &[], Duration::ZERO, Instant::now()),
            Decision::Skip
        );
    }
}
