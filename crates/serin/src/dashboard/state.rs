//! The dashboard's in-memory view: the controller's Canary cache (shared, never copied) plus a
//! short history per Canary that the cache does not keep: the traffic weight over time, every
//! metric check's value and threshold range of the run, and the events Serin recorded.
//!
//! Everything is bounded per Canary ([`MAX_WEIGHT_POINTS`], [`MAX_METRIC_POINTS`],
//! [`MAX_EVENTS`] of at most [`MAX_EVENT_CHARS`] characters), so 10,000 Canaries with full
//! histories stay in the tens of megabytes. History is dropped with its Canary.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::api::decision::{Decision, Verdict};
use crate::api::status::CanaryStatus;
use crate::api::{Canary, CanaryPhase};
use crate::controller::ports::EventKind;
use crate::k8s::packed::PackedStore;

/// Weight points kept per Canary (one per change of weight or phase).
pub const MAX_WEIGHT_POINTS: usize = 120;
/// Metric check results kept per Canary (all metrics together; the oldest go first).
pub const MAX_METRIC_POINTS: usize = 240;
/// Events kept per Canary.
pub const MAX_EVENTS: usize = 30;
/// Longest event message kept (characters).
pub const MAX_EVENT_CHARS: usize = 256;
/// Changes buffered per live page; a page that falls further behind reloads the list.
const CHANGES_BUFFER: usize = 1024;

/// What changed, for the live pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The Canary `namespace/name` changed (status, spec, history or events).
    Updated(String),
    /// The Canary `namespace/name` is gone.
    Removed(String),
    /// The watch listed every Canary again: reload the list.
    Resync,
}

/// One point of the weight plot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightPoint {
    /// Unix time in milliseconds (the status' `lastTransitionTime`).
    pub t: i64,
    pub weight: i32,
    pub phase: CanaryPhase,
}

/// One metric check of an analysis tick.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricPoint {
    /// Unix time in milliseconds of the tick.
    pub t: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub verdict: Verdict,
}

/// One event Serin recorded on the Canary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventEntry {
    /// Unix time in milliseconds.
    pub t: i64,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub message: String,
}

/// The row of a Canary in the list.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `namespace/name`.
    pub key: String,
    pub namespace: String,
    pub name: String,
    /// `Deployment/podinfo`.
    pub target: String,
    pub phase: CanaryPhase,
    pub canary_weight: i32,
    pub failed_checks: i32,
    pub iterations: i32,
    /// Unix time in milliseconds of the last status change, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<i64>,
}

/// The values of one metric over the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricSeries {
    pub name: String,
    pub points: Vec<MetricPoint>,
}

/// Everything the page shows about one Canary.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    /// The run's top weight (`analysis.maxWeight`, the last of `stepWeights`, 100 without an
    /// analysis): the top of the weight plot.
    pub max_weight: i32,
    /// `analysis.threshold`: failed checks that roll back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i32>,
    pub weights: Vec<WeightPoint>,
    pub metrics: Vec<MetricSeries>,
    pub events: Vec<EventEntry>,
    /// `status.decisions` as the controller wrote it (it holds no secrets).
    pub decisions: Vec<Decision>,
}

#[derive(Default)]
struct History {
    phase: Option<CanaryPhase>,
    weights: VecDeque<WeightPoint>,
    metrics: VecDeque<(Arc<str>, MetricPoint)>,
    events: VecDeque<EventEntry>,
    /// Time of the newest decision turned into metric points.
    last_decision: Option<i64>,
}

impl History {
    /// Follows `canary`'s status: a new run starts a new plot; a new weight or phase is a point;
    /// new decisions add their checks.
    fn follow(&mut self, canary: &Canary, now: i64) {
        let default = CanaryStatus::default();
        let status = canary.status.as_ref().unwrap_or(&default);
        let phase = status.phase;
        if self.phase.is_some_and(|p| !p.is_running()) && phase.is_running() {
            self.weights.clear();
            self.metrics.clear();
        }
        self.phase = Some(phase);
        let t = status.last_transition_time.as_ref().map_or(now, millis);
        let last = self.weights.back().map(|p| (p.weight, p.phase));
        if last != Some((status.canary_weight, phase)) {
            push_bounded(
                &mut self.weights,
                WeightPoint {
                    t,
                    weight: status.canary_weight,
                    phase,
                },
                MAX_WEIGHT_POINTS,
            );
        }
        for decision in status.decisions.as_deref().unwrap_or(&[]) {
            // Ticks are at least a second apart and their times are whole seconds: one time is
            // one tick. The controller may write a tick's entry again within the tick (replacing
            // it); its checks then replace those kept.
            let t = millis(&decision.time);
            match self.last_decision {
                Some(last) if t < last => continue,
                Some(last) if t == last => {
                    while self.metrics.back().is_some_and(|(_, p)| p.t == t) {
                        self.metrics.pop_back();
                    }
                }
                _ => {}
            }
            self.last_decision = Some(t);
            for check in &decision.checks {
                let point = MetricPoint {
                    t,
                    value: check.value.filter(|v| v.is_finite()),
                    min: check.min,
                    max: check.max,
                    verdict: check.verdict,
                };
                let name = self
                    .metrics
                    .iter()
                    .find(|(n, _)| **n == *check.name)
                    .map_or_else(|| Arc::from(check.name.as_str()), |(n, _)| n.clone());
                push_bounded(&mut self.metrics, (name, point), MAX_METRIC_POINTS);
            }
        }
    }

    fn series(&self) -> Vec<MetricSeries> {
        let mut out: Vec<MetricSeries> = Vec::new();
        for (name, point) in &self.metrics {
            match out.iter_mut().find(|s| *s.name == **name) {
                Some(series) => series.points.push(point.clone()),
                None => out.push(MetricSeries {
                    name: name.to_string(),
                    points: vec![point.clone()],
                }),
            }
        }
        out
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, max: usize) {
    queue.push_back(item);
    while queue.len() > max {
        queue.pop_front();
    }
}

fn millis(time: &Time) -> i64 {
    time.0.as_millisecond()
}

fn now_millis() -> i64 {
    Timestamp::now().as_millisecond()
}

/// `namespace/name` of a Canary.
pub fn key_of(canary: &Canary) -> String {
    format!(
        "{}/{}",
        canary.namespace().unwrap_or_default(),
        canary.name_any()
    )
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// The shared view: the Canary cache, the histories and the change feed of the live pages.
pub struct View {
    store: OnceLock<PackedStore<Canary>>,
    histories: Mutex<HashMap<String, History>>,
    changes: broadcast::Sender<Change>,
}

impl Default for View {
    fn default() -> Self {
        Self::new()
    }
}

impl View {
    pub fn new() -> Self {
        Self {
            store: OnceLock::new(),
            histories: Mutex::new(HashMap::new()),
            changes: broadcast::channel(CHANGES_BUFFER).0,
        }
    }

    fn histories(&self) -> MutexGuard<'_, HashMap<String, History>> {
        self.histories.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, change: Change) {
        // No live page is not an error.
        let _ = self.changes.send(change);
    }

    /// The change feed of one live page.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Attaches the controller's Canary cache (the first one wins).
    pub fn attach(&self, store: PackedStore<Canary>) {
        let _ = self.store.set(store);
    }

    /// A Canary was added or changed (the cache already holds this version).
    pub fn applied(&self, canary: &Canary) {
        let key = key_of(canary);
        self.histories()
            .entry(key.clone())
            .or_default()
            .follow(canary, now_millis());
        self.notify(Change::Updated(key));
    }

    /// A Canary was deleted: its history goes, and with it that of any Canary the cache no
    /// longer holds (e.g. events recorded while it was being deleted).
    pub fn deleted(&self, canary: &Canary) {
        let key = key_of(canary);
        self.histories().remove(&key);
        self.prune();
        self.notify(Change::Removed(key));
    }

    /// The watch listed every Canary again (after a start or a lost watch).
    pub fn relisted(&self) {
        self.prune();
        self.notify(Change::Resync);
    }

    /// Keeps only the histories of Canaries in the cache.
    fn prune(&self) {
        let Some(store) = self.store.get() else {
            return;
        };
        let live: HashSet<String> = store
            .list()
            .into_iter()
            .map(|c| format!("{}/{}", c.namespace, c.name))
            .collect();
        self.histories().retain(|k, _| live.contains(k));
    }

    /// Serin recorded an event on `canary`.
    pub fn event(&self, canary: &Canary, kind: EventKind, message: &str) {
        let key = key_of(canary);
        let entry = EventEntry {
            t: now_millis(),
            event_type: kind.event_type(),
            message: cut(message, MAX_EVENT_CHARS),
        };
        push_bounded(
            &mut self.histories().entry(key.clone()).or_default().events,
            entry,
            MAX_EVENTS,
        );
        self.notify(Change::Updated(key));
    }

    fn canary(&self, namespace: &str, name: &str) -> Option<Arc<Canary>> {
        self.store
            .get()?
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// Every Canary in the cache, by namespace and name.
    pub fn list(&self) -> Vec<Summary> {
        let Some(store) = self.store.get() else {
            return Vec::new();
        };
        let mut out: Vec<Summary> = store.state().iter().map(|c| summary(c)).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// The row of `namespace/name`, if the cache holds it.
    pub fn summary(&self, key: &str) -> Option<Summary> {
        let (namespace, name) = key.split_once('/')?;
        self.canary(namespace, name).map(|c| summary(&c))
    }

    /// Everything about `namespace/name`, if the cache holds it.
    pub fn detail(&self, namespace: &str, name: &str) -> Option<Detail> {
        let canary = self.canary(namespace, name)?;
        let analysis = canary.spec.analysis();
        let histories = self.histories();
        let history = histories.get(&key_of(&canary));
        Some(Detail {
            summary: summary(&canary),
            max_weight: analysis.map_or(100, |a| a.max_weight()),
            threshold: analysis.and_then(|a| a.threshold),
            weights: history.map_or_else(Vec::new, |h| h.weights.iter().cloned().collect()),
            metrics: history.map_or_else(Vec::new, History::series),
            events: history.map_or_else(Vec::new, |h| h.events.iter().cloned().collect()),
            decisions: canary
                .status
                .as_ref()
                .and_then(|s| s.decisions.clone())
                .unwrap_or_default(),
        })
    }

    /// Canaries with a history (for tests of the bounds).
    pub fn histories_len(&self) -> usize {
        self.histories().len()
    }
}

fn summary(canary: &Canary) -> Summary {
    let default = CanaryStatus::default();
    let status = canary.status.as_ref().unwrap_or(&default);
    let target = &canary.spec.target_ref;
    Summary {
        key: key_of(canary),
        namespace: canary.namespace().unwrap_or_default(),
        name: canary.name_any(),
        target: format!("{}/{}", target.kind, target.name),
        phase: status.phase,
        canary_weight: status.canary_weight,
        failed_checks: status.failed_checks,
        iterations: status.iterations,
        last_transition_time: status.last_transition_time.as_ref().map(millis),
    }
}
