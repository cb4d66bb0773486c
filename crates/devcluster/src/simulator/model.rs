//! The status model: what the Deployment and DaemonSet controllers (and the kubelet) would write
//! as a workload's status, from when its current rollout started and its script.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Behaviour, Script};
use crate::store::{name_of, now_rfc3339, uid_of};

#[derive(Debug)]
pub(super) struct Rollout {
    template: u64,
    replicas: i64,
    started: Instant,
    base_ready: i64,
}

/// A hash of `v`'s JSON text, written straight into the hasher (no string in between).
fn hash_of(v: Option<&Value>) -> u64 {
    struct Hashing(DefaultHasher);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(DefaultHasher::new());
    if let Some(v) = v {
        // Writing a `Value` cannot fail, and this writer does not either.
        let _ = serde_json::to_writer(&mut h, v);
    }
    h.0.finish()
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
    // Built key by key: `json!` would serialise the two times into copies of themselves.
    let text = |s: &str| Value::String(s.to_string());
    Value::Object(serde_json::Map::from_iter([
        ("type".to_string(), text(type_)),
        ("status".to_string(), text(status)),
        ("lastUpdateTime".to_string(), update),
        ("lastTransitionTime".to_string(), transition),
        ("reason".to_string(), text(reason)),
        ("message".to_string(), text(message)),
    ]))
}

fn put_nonzero(m: &mut serde_json::Map<String, Value>, k: &str, v: i64) {
    if v != 0 {
        m.insert(k.to_string(), json!(v));
    }
}

/// What the Deployment and DaemonSet controllers (and the kubelet) would write as status, given
/// when each workload's current rollout started. Holds one small record per workload (by uid);
/// call [`StatusModel::retain`] with the workloads that still exist.
#[derive(Debug, Default)]
pub struct StatusModel {
    pub(super) rollouts: HashMap<String, Rollout>,
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
    status.insert(
        "conditions".into(),
        Value::Array(vec![available, progressing]),
    );
    Value::Object(status)
}
