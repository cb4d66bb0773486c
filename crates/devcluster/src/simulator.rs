//! The workload simulator: plays the Deployment and DaemonSet controllers (and the kubelet) by
//! writing realistic status after a readiness delay, with scripted per-object behaviour, and
//! Knative Serving's controller for Knative Services when their CRD is installed
//! (see [`crate::knative`]).
//!
//! Scripts come from the test API ([`Simulator::script`]) or from annotations on the object:
//! `devcluster.serin.dev/ready-delay-ms`, `devcluster.serin.dev/behaviour`
//! (`never-ready`, `ready-then-unready`, `slow-rollout`), `devcluster.serin.dev/unready-after-ms`
//! and `devcluster.serin.dev/step-ms`. Pods and ReplicaSets are not generated.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::knative::{self, KnativeModel};
use crate::ops::{self, Sub, WriteOpts};
use crate::store::{EventType, Store, name_of, namespace_of, obj_key, uid_of};

mod model;

pub use model::StatusModel;

pub const ANNOTATION_BEHAVIOUR: &str = "devcluster.serin.dev/behaviour";
pub const ANNOTATION_READY_DELAY: &str = "devcluster.serin.dev/ready-delay-ms";
pub const ANNOTATION_UNREADY_AFTER: &str = "devcluster.serin.dev/unready-after-ms";
pub const ANNOTATION_STEP: &str = "devcluster.serin.dev/step-ms";

/// An unknown behaviour name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimulatorError {
    #[error("unknown behaviour {0:?} (normal, never-ready, ready-then-unready, slow-rollout)")]
    Behaviour(String),
}

/// How a workload's pods behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// All replicas ready after the delay.
    Normal,
    /// No replica ever becomes ready (ProgressDeadlineExceeded after the deadline).
    NeverReady,
    /// Ready after the delay, then unready `unready_after` later.
    ReadyThenUnready { unready_after: Duration },
    /// One more replica is updated and becomes ready every `step`.
    SlowRollout { step: Duration },
}

/// A per-object script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// None: the cluster's default delay.
    pub ready_delay: Option<Duration>,
    pub behaviour: Behaviour,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            ready_delay: None,
            behaviour: Behaviour::Normal,
        }
    }
}

fn ms_annotation(o: &Value, key: &str) -> Option<Duration> {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

impl Script {
    /// The script written in an object's annotations, if any.
    pub fn from_annotations(o: &Value) -> Result<Option<Self>, SimulatorError> {
        let behaviour = o
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ANNOTATION_BEHAVIOUR))
            .and_then(Value::as_str);
        let delay = ms_annotation(o, ANNOTATION_READY_DELAY);
        if behaviour.is_none() && delay.is_none() {
            return Ok(None);
        }
        let behaviour = match behaviour.unwrap_or("normal") {
            "normal" => Behaviour::Normal,
            "never-ready" => Behaviour::NeverReady,
            "ready-then-unready" => Behaviour::ReadyThenUnready {
                unready_after: ms_annotation(o, ANNOTATION_UNREADY_AFTER)
                    .unwrap_or(Duration::from_secs(1)),
            },
            "slow-rollout" => Behaviour::SlowRollout {
                step: ms_annotation(o, ANNOTATION_STEP).unwrap_or(Duration::from_secs(1)),
            },
            other => return Err(SimulatorError::Behaviour(other.to_string())),
        };
        Ok(Some(Self {
            ready_delay: delay,
            behaviour,
        }))
    }
}

/// The store keys of the simulated workloads, in the order a tick writes them.
const WORKLOADS: [&str; 2] = ["apps/deployments", "apps/daemonsets"];

/// Which workloads a tick looks at. One whose stored status is final (its rollout is complete
/// and nothing about it depends on time any more) is left alone until it changes; the store's
/// event log says which workloads changed since the last tick. So a tick costs what changed and
/// what is still rolling out, not every stored workload (at 20,000 Deployments a scan of all of
/// them held the store's lock for about 100 ms a tick).
#[derive(Debug, Default)]
struct Watchlist {
    /// Workloads to look at on the next tick: store key (`group/plural`) and `ns/name`.
    pending: BTreeSet<(String, String)>,
    /// The store's resourceVersion when the last tick read the event log. None: look at every
    /// workload on the next tick (at start, after a script or the default delay changed).
    seen: Option<u64>,
}

impl Watchlist {
    /// Takes in the workload changes logged since the last tick (a deleted workload's rollout
    /// is forgotten). False when the log cannot tell: never read, or compacted past the last
    /// tick; then every workload must be looked at.
    fn follow(&mut self, st: &Store, model: &mut StatusModel) -> bool {
        let Some(seen) = self.seen else {
            return false;
        };
        let Ok(changes) = st.changes_since(seen) else {
            return false;
        };
        for ev in changes.filter(|ev| WORKLOADS.contains(&ev.res.as_str())) {
            let key = (
                ev.res.clone(),
                obj_key(namespace_of(&ev.object), name_of(&ev.object)),
            );
            if ev.etype == EventType::Deleted {
                model.forget(uid_of(&ev.object));
                self.pending.remove(&key);
            } else {
                self.pending.insert(key);
            }
        }
        true
    }

    /// Every stored workload becomes pending; the rollouts of workloads that no longer exist
    /// are forgotten.
    fn rescan(&mut self, st: &Store, model: &mut StatusModel) {
        self.pending.clear();
        let mut uids = HashSet::new();
        for res in WORKLOADS {
            for (key, o) in st.list(res, None, None) {
                uids.insert(uid_of(o).to_string());
                self.pending.insert((res.to_string(), key.clone()));
            }
        }
        model.retain(|uid| uids.contains(uid));
    }
}

#[derive(Debug)]
struct State {
    default_delay: Duration,
    enabled: bool,
    scripts: HashMap<String, Script>,
    model: StatusModel,
    knative: KnativeModel,
    watch: Watchlist,
}

/// Simulator controls of one dev cluster.
#[derive(Debug)]
pub struct Simulator {
    state: Mutex<State>,
}

fn script_key(kind: &str, ns: &str, name: &str) -> String {
    format!("{kind}/{ns}/{name}")
}

impl Simulator {
    pub fn new(default_delay: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                default_delay,
                enabled: true,
                scripts: HashMap::new(),
                model: StatusModel::default(),
                knative: KnativeModel::default(),
                watch: Watchlist::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The delay after which replicas of a new rollout become ready.
    pub fn set_default_ready_delay(&self, d: Duration) {
        let mut state = self.lock();
        state.default_delay = d;
        state.watch.seen = None;
    }

    /// Stops (false) or resumes (true) writing workload status.
    pub fn set_enabled(&self, enabled: bool) {
        self.lock().enabled = enabled;
    }

    /// Scripts one workload; `kind` is `Deployment` or `DaemonSet`. Overrides annotations.
    pub fn script(&self, kind: &str, namespace: &str, name: &str, script: Script) {
        let mut state = self.lock();
        state
            .scripts
            .insert(script_key(kind, namespace, name), script);
        state.watch.seen = None;
    }

    pub fn clear_script(&self, kind: &str, namespace: &str, name: &str) {
        let mut state = self.lock();
        state.scripts.remove(&script_key(kind, namespace, name));
        state.watch.seen = None;
    }

    /// Writes the status every simulated workload should have now.
    pub(crate) fn tick(&self, st: &mut Store) {
        let mut state = self.lock();
        if !state.enabled {
            return;
        }
        let now = Instant::now();
        let state = &mut *state;
        if !state.watch.follow(st, &mut state.model) {
            state.watch.rescan(st, &mut state.model);
        }
        // The simulator's own writes below come back through the log on the next tick; the
        // workloads they touch are still pending then anyway.
        state.watch.seen = Some(st.current_rv());
        for res in WORKLOADS {
            let Some(def) = st.registry.by_key(res) else {
                continue;
            };
            let keys: Vec<(String, String)> = state
                .watch
                .pending
                .iter()
                .filter(|(r, _)| r == res)
                .cloned()
                .collect();
            // Only the objects whose status moves are taken out of the store (shared, not copied).
            let mut changed = Vec::new();
            for key in keys {
                let stored = key
                    .1
                    .split_once('/')
                    .and_then(|(ns, name)| st.get_shared(res, ns, name));
                let Some(o) = stored else {
                    state.watch.pending.remove(&key);
                    continue;
                };
                let status = compute(state, &def.kind, o, now);
                if o.get("status") != Some(&status) {
                    changed.push((o.clone(), status));
                } else if is_final_in(state, &def.kind, o, &status) {
                    state.watch.pending.remove(&key);
                }
            }
            for (o, status) in changed {
                let _ = ops::finish_update(
                    st,
                    &def,
                    &o,
                    json!({"status": status}),
                    Sub::Status,
                    &WriteOpts::default(),
                );
            }
        }
        emulate_knative(&mut state.knative, st);
    }
}

/// Writes the status Knative would give each Knative Service (none while the CRD is not
/// installed).
fn emulate_knative(model: &mut KnativeModel, st: &mut Store) {
    let Some(def) = st.registry.by_key(knative::SERVICES_KEY) else {
        return;
    };
    let revisions = st.registry.by_key(knative::REVISIONS_KEY);
    let mut seen = HashSet::new();
    let mut changed: Vec<(Value, Value)> = Vec::new();
    let mut missing: Vec<Value> = Vec::new();
    for (_, o) in st.list(knative::SERVICES_KEY, None, None) {
        seen.insert(uid_of(o).to_string());
        if o.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let status = model.status(o);
        let latest = status["latestCreatedRevisionName"]
            .as_str()
            .unwrap_or_default();
        if revisions.is_some()
            && st
                .get(knative::REVISIONS_KEY, namespace_of(o), latest)
                .is_none()
        {
            missing.push(knative::revision_object(o, latest));
        }
        if o.get("status") != Some(&status) {
            changed.push((o.clone(), status));
        }
    }
    if let Some(rdef) = &revisions {
        for revision in missing {
            let ns = namespace_of(&revision).to_string();
            let created = ops::create(
                st,
                rdef,
                rdef.preferred_version(),
                &ns,
                revision,
                &WriteOpts::default(),
            );
            if let Ok(created) = created {
                let _ = ops::finish_update(
                    st,
                    rdef,
                    &created,
                    json!({"status": knative::revision_status()}),
                    Sub::Status,
                    &WriteOpts::default(),
                );
            }
        }
    }
    for (o, status) in changed {
        let _ = ops::finish_update(
            st,
            &def,
            &o,
            json!({"status": status}),
            Sub::Status,
            &WriteOpts::default(),
        );
    }
    model.retain(|uid| seen.contains(uid));
}

/// The script that applies to a workload: the test API's, else its annotations', else the
/// default.
fn script_of(state: &State, kind: &str, o: &Value) -> Script {
    state
        .scripts
        .get(&script_key(kind, namespace_of(o), name_of(o)))
        .cloned()
        .or_else(|| Script::from_annotations(o).ok().flatten())
        .unwrap_or_default()
}

fn is_final_in(state: &State, kind: &str, o: &Value, status: &Value) -> bool {
    is_final(kind, o, status, &script_of(state, kind, o))
}

/// Whether `status` (computed for `o` under `script`) can no longer change with time: every
/// replica updated and ready, and a script that does not turn them unready later.
pub fn is_final(kind: &str, o: &Value, status: &Value, script: &Script) -> bool {
    if matches!(script.behaviour, Behaviour::ReadyThenUnready { .. }) {
        return false;
    }
    let n = |k: &str| status.get(k).and_then(Value::as_i64).unwrap_or(0);
    if kind == "DaemonSet" {
        return n("numberReady") >= 1 && n("updatedNumberScheduled") >= 1;
    }
    let desired = o
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    n("readyReplicas") >= desired && n("updatedReplicas") >= desired
}

fn compute(state: &mut State, kind: &str, o: &Value, now: Instant) -> Value {
    let script = script_of(state, kind, o);
    let delay = state.default_delay;
    state.model.status(kind, o, &script, delay, now)
}

#[cfg(test)]
mod tests;
