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
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::knative::{self, KnativeModel};
use crate::ops::{self, Sub, WriteOpts};
use crate::store::{EventType, Store, name_of, namespace_of, now_rfc3339, obj_key, uid_of};

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

#[derive(Debug)]
struct Rollout {
    template: u64,
    replicas: i64,
    started: Instant,
    base_ready: i64,
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

fn hash_of(v: Option<&Value>) -> u64 {
    let mut h = DefaultHasher::new();
    v.map(Value::to_string).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn condition(
    prev: &[Value],
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
    let old = prev
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_));
    let same = |k: &str, v: &str| old.and_then(|c| c.get(k)).and_then(Value::as_str) == Some(v);
    let keep = |k: &str| {
        old.and_then(|c| c.get(k))
            .cloned()
            .unwrap_or_else(|| json!(now))
    };
    let (update, transition) = if same("status", status) && same("reason", reason) {
        (keep("lastUpdateTime"), keep("lastTransitionTime"))
    } else if same("status", status) {
        (json!(now), keep("lastTransitionTime"))
    } else {
        (json!(now), json!(now))
    };
    json!({"type": type_, "status": status, "lastUpdateTime": update, "lastTransitionTime": transition,
        "reason": reason, "message": message})
}

fn put_nonzero(m: &mut serde_json::Map<String, Value>, k: &str, v: i64) {
    if v != 0 {
        m.insert(k.to_string(), json!(v));
    }
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

/// What the Deployment and DaemonSet controllers (and the kubelet) would write as status, given
/// when each workload's current rollout started. Holds one small record per workload (by uid);
/// call [`StatusModel::retain`] with the workloads that still exist.
#[derive(Debug, Default)]
pub struct StatusModel {
    rollouts: HashMap<String, Rollout>,
}

impl StatusModel {
    /// Forgets the workloads whose uid `keep` rejects.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.rollouts.retain(|uid, _| keep(uid));
    }

    /// Forgets one workload.
    pub fn forget(&mut self, uid: &str) {
        self.rollouts.remove(uid);
    }

    /// The status `o` (a Deployment, or a DaemonSet when `kind` is `DaemonSet`, as JSON)
    /// should have at `now` under `script`; `default_delay` is the ready delay when the script
    /// has none. A new pod template or replica count starts a new rollout at `now`.
    pub fn status(
        &mut self,
        kind: &str,
        o: &Value,
        script: &Script,
        default_delay: Duration,
        now: Instant,
    ) -> Value {
        workload_status(self, kind, o, script, default_delay, now)
    }
}

fn workload_status(
    model: &mut StatusModel,
    kind: &str,
    o: &Value,
    script: &Script,
    default_delay: Duration,
    now: Instant,
) -> Value {
    let name = name_of(o);
    let daemonset = kind == "DaemonSet";
    let desired = if daemonset {
        1
    } else {
        o.pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
    };
    let generation = o
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let template = hash_of(o.pointer("/spec/template"));
    let delay = script.ready_delay.unwrap_or(default_delay);
    let current_ready = if daemonset {
        o.pointer("/status/numberReady")
    } else {
        o.pointer("/status/readyReplicas")
    }
    .and_then(Value::as_i64)
    .unwrap_or(0);
    let r = model
        .rollouts
        .entry(uid_of(o).to_string())
        .or_insert(Rollout {
            template,
            replicas: desired,
            started: now,
            base_ready: 0,
        });
    if r.template != template {
        *r = Rollout {
            template,
            replicas: desired,
            started: now,
            base_ready: 0,
        };
    } else if r.replicas != desired {
        *r = Rollout {
            template,
            replicas: desired,
            started: now,
            base_ready: current_ready.min(desired),
        };
    }
    let elapsed = now.saturating_duration_since(r.started);
    let base = r.base_ready.min(desired);
    let steps = |step: Duration, from: Duration| -> i64 {
        let ms = step.as_millis().max(1);
        i64::try_from(elapsed.saturating_sub(from).as_millis() / ms).unwrap_or(i64::MAX)
    };
    let (ready, updated) = match &script.behaviour {
        Behaviour::Normal => (if elapsed >= delay { desired } else { base }, desired),
        Behaviour::NeverReady => (0, desired),
        Behaviour::ReadyThenUnready { unready_after } => {
            let ready = if elapsed >= delay + *unready_after {
                0
            } else if elapsed >= delay {
                desired
            } else {
                base
            };
            (ready, desired)
        }
        Behaviour::SlowRollout { step } => {
            let updated = desired.min(1 + steps(*step, Duration::ZERO));
            let ready = if elapsed >= delay {
                updated.min(base.max(1 + steps(*step, delay)))
            } else {
                base
            };
            (ready, updated)
        }
    };
    let ts = now_rfc3339();
    let prev: Vec<Value> = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut status = serde_json::Map::new();
    status.insert("observedGeneration".into(), json!(generation));
    if daemonset {
        status.insert("currentNumberScheduled".into(), json!(1));
        status.insert("desiredNumberScheduled".into(), json!(1));
        status.insert("numberMisscheduled".into(), json!(0));
        status.insert("numberReady".into(), json!(ready));
        put_nonzero(&mut status, "numberAvailable", ready);
        put_nonzero(&mut status, "updatedNumberScheduled", updated);
        put_nonzero(&mut status, "numberUnavailable", desired - ready);
        return Value::Object(status);
    }
    put_nonzero(&mut status, "replicas", desired);
    put_nonzero(&mut status, "updatedReplicas", updated);
    put_nonzero(&mut status, "readyReplicas", ready);
    put_nonzero(&mut status, "availableReplicas", ready);
    put_nonzero(&mut status, "unavailableReplicas", desired - ready);
    let rs = format!("{name}-{:x}", template & 0xff_ffff_ffff);
    let deadline = o
        .pointer("/spec/progressDeadlineSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(600);
    let exceeded = ready < desired && elapsed > Duration::from_secs(deadline);
    let available = if ready >= desired {
        condition(
            &prev,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &ts,
        )
    } else {
        condition(
            &prev,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &ts,
        )
    };
    let progressing = if exceeded {
        condition(
            &prev,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            &format!("ReplicaSet \"{rs}\" has timed out progressing."),
            &ts,
        )
    } else if ready >= desired && updated >= desired {
        condition(
            &prev,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs}\" has successfully progressed."),
            &ts,
        )
    } else {
        condition(
            &prev,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs}\" is progressing."),
            &ts,
        )
    };
    status.insert("conditions".into(), json!([available, progressing]));
    Value::Object(status)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn deploy(replicas: i64, annotations: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "d", "uid": "u1", "generation": 2, "annotations": annotations},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 1, "template": {"spec": {}}}})
    }

    fn state() -> State {
        State {
            default_delay: Duration::from_millis(100),
            enabled: true,
            scripts: HashMap::new(),
            model: StatusModel::default(),
            knative: KnativeModel::default(),
            watch: Watchlist::default(),
        }
    }

    #[test]
    fn settled_workloads_are_skipped_until_they_or_their_script_change() {
        let sim = Simulator::new(Duration::ZERO);
        let mut st = Store::new(1000);
        let def = st.registry.by_key("apps/deployments").unwrap();
        st.put(&def, deploy(2, json!({})));
        let get = |st: &Store| st.get("apps/deployments", "d", "web").unwrap().clone();
        let pending = |sim: &Simulator| {
            sim.lock()
                .watch
                .pending
                .contains(&("apps/deployments".to_string(), "d/web".to_string()))
        };

        // The object was stored without the API's defaults, which the first status write adds
        // (a new template hash): a few ticks until it is stable.
        for _ in 0..5 {
            sim.tick(&mut st);
        }
        assert_eq!(get(&st)["status"]["readyReplicas"], 2);
        assert!(!pending(&sim), "ready and unchanged: final");
        let rv = st.current_rv();
        sim.tick(&mut st);
        assert_eq!(st.current_rv(), rv, "no write while settled");
        let mut touched = get(&st);
        touched["metadata"]["labels"] = json!({"a": "b"});
        st.put(&def, touched);
        sim.tick(&mut st);
        assert!(!pending(&sim), "computed again, still final");
        assert_eq!(st.current_rv(), rv + 1, "no status write for a label");

        // A script applies at once, although the object did not change.
        sim.script(
            "Deployment",
            "d",
            "web",
            Script {
                ready_delay: None,
                behaviour: Behaviour::NeverReady,
            },
        );
        sim.tick(&mut st);
        assert!(get(&st)["status"].get("readyReplicas").is_none());
        sim.clear_script("Deployment", "d", "web");
        sim.tick(&mut st);
        sim.tick(&mut st);
        assert_eq!(get(&st)["status"]["readyReplicas"], 2);
        assert!(!pending(&sim));

        // A new spec is a new version: computed again.
        let mut scaled = get(&st);
        scaled["spec"]["replicas"] = json!(3);
        st.put(&def, scaled);
        sim.tick(&mut st);
        assert_eq!(get(&st)["status"]["readyReplicas"], 3);

        // A log compacted past the last tick cannot say what changed: every workload is
        // looked at again.
        sim.tick(&mut st);
        let mut scaled = get(&st);
        scaled["spec"]["replicas"] = json!(4);
        st.put(&def, scaled);
        st.compact();
        sim.tick(&mut st);
        assert_eq!(get(&st)["status"]["readyReplicas"], 4);
    }

    #[test]
    fn a_deleted_workload_is_forgotten_and_its_successor_rolls_out_anew() {
        let sim = Simulator::new(Duration::from_secs(3600));
        let mut st = Store::new(1000);
        let def = st.registry.by_key("apps/deployments").unwrap();
        st.put(
            &def,
            deploy(2, json!({"devcluster.serin.dev/ready-delay-ms": "0"})),
        );
        for _ in 0..3 {
            sim.tick(&mut st);
        }
        let get = |st: &Store| st.get("apps/deployments", "d", "web").cloned();
        assert_eq!(get(&st).unwrap()["status"]["readyReplicas"], 2);
        assert_eq!(sim.lock().model.rollouts.len(), 1);

        st.remove(&def, "d", "web");
        sim.tick(&mut st);
        assert!(
            sim.lock().model.rollouts.is_empty(),
            "the rollout is forgotten"
        );
        assert!(sim.lock().watch.pending.is_empty());

        // Same name, new uid, the cluster's default delay (an hour): not ready yet.
        let mut again = deploy(2, json!({}));
        again["metadata"]["uid"] = json!("u2");
        st.put(&def, again);
        sim.tick(&mut st);
        let status = &get(&st).unwrap()["status"];
        assert_eq!(status["replicas"], 2);
        assert!(status.get("readyReplicas").is_none());
        assert!(sim.lock().model.rollouts.contains_key("u2"));
    }

    #[test]
    fn ready_after_delay_and_deadline() {
        let mut s = state();
        let t0 = Instant::now();
        let d = deploy(3, json!({}));
        let st = compute(&mut s, "Deployment", &d, t0);
        assert_eq!(st["observedGeneration"], 2);
        assert!(st.get("readyReplicas").is_none());
        assert_eq!(st["unavailableReplicas"], 3);
        let st = compute(&mut s, "Deployment", &d, t0 + Duration::from_millis(150));
        assert_eq!(st["availableReplicas"], 3);
        assert_eq!(st["conditions"][1]["reason"], "NewReplicaSetAvailable");
        let never = deploy(2, json!({ANNOTATION_BEHAVIOUR: "never-ready"}));
        let mut s = state();
        compute(&mut s, "Deployment", &never, t0);
        let st = compute(
            &mut s,
            "Deployment",
            &never,
            t0 + Duration::from_millis(1500),
        );
        assert_eq!(st["conditions"][1]["reason"], "ProgressDeadlineExceeded");
        assert!(
            Script::from_annotations(&deploy(1, json!({ANNOTATION_BEHAVIOUR: "bogus"}))).is_err()
        );
    }

    #[test]
    fn ready_then_unready_and_slow() {
        let mut s = state();
        let t0 = Instant::now();
        let d = deploy(
            2,
            json!({ANNOTATION_BEHAVIOUR: "ready-then-unready", ANNOTATION_UNREADY_AFTER: "200"}),
        );
        compute(&mut s, "Deployment", &d, t0);
        assert_eq!(
            compute(&mut s, "Deployment", &d, t0 + Duration::from_millis(150))["readyReplicas"],
            2
        );
        assert!(
            compute(&mut s, "Deployment", &d, t0 + Duration::from_millis(350))
                .get("readyReplicas")
                .is_none()
        );
        let mut s = state();
        let slow = deploy(
            3,
            json!({ANNOTATION_BEHAVIOUR: "slow-rollout", ANNOTATION_STEP: "100", ANNOTATION_READY_DELAY: "0"}),
        );
        assert_eq!(
            compute(&mut s, "Deployment", &slow, t0)["updatedReplicas"],
            1
        );
        let mid = compute(&mut s, "Deployment", &slow, t0 + Duration::from_millis(120));
        assert_eq!(
            (
                mid["updatedReplicas"].as_i64(),
                mid["readyReplicas"].as_i64()
            ),
            (Some(2), Some(2))
        );
        assert_eq!(
            compute(&mut s, "Deployment", &slow, t0 + Duration::from_millis(500))["readyReplicas"],
            3
        );
    }
}
