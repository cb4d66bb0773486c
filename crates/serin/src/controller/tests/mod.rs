//! Scheduler tests on in-memory fakes with a fake clock.
#![allow(clippy::unwrap_used)]

mod alerts;
mod comparison;
mod decisions;
mod failures;
mod gates;
mod http;
mod lifecycle;
mod requests;
mod restart;
mod strategies;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::ports::*;
use super::scheduler::{Next, Scheduler, SchedulerConfig, SchedulerError};
use super::webhook::{HookPayload, HookResponse, WebhookError};
use crate::api::analysis::AlertSeverity;
use crate::api::{Canary, CanaryPhase, CanaryStatus, CanaryWebhook, Provider, Strategy};
use crate::router::{Router, RouterError, Routes};
use crate::workload::{
    Revision, ScalerReconciler, TargetController, TargetMetadata, WorkloadError,
};

/// A lock that ignores poisoning (a failed assertion elsewhere must not cascade).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct FakeClock(Mutex<Timestamp>);

impl FakeClock {
    fn advance(&self, d: Duration) {
        let mut t = lock(&self.0);
        *t = t.saturating_add(d).unwrap();
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *lock(&self.0)
    }
}

#[derive(Default)]
pub struct FakeStore {
    canary: Mutex<Option<Canary>>,
    pub writes: Mutex<Vec<CanaryStatus>>,
    /// The status of the Canary each status write was given (the one it replaces), and
    /// whether the write succeeded.
    pub given: Mutex<Vec<(Option<CanaryStatus>, bool)>>,
    /// Fail this many of the next status writes.
    pub fail_writes: AtomicUsize,
    /// Drop Serin's request fields on write, as an API server with Flagger's CRDs does.
    pub prune_requests: std::sync::atomic::AtomicBool,
    /// Drop Serin's decision record on write, as an API server with Flagger's CRDs does.
    pub prune_decisions: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl StatusStore for FakeStore {
    async fn get(&self, _ns: &str, _name: &str) -> Result<Option<Canary>, PortError> {
        Ok(lock(&self.canary).clone())
    }
    async fn write_status(
        &self,
        c: &Canary,
        status: &CanaryStatus,
    ) -> Result<Option<Canary>, PortError> {
        let fail = self
            .fail_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        lock(&self.given).push((c.status.clone(), !fail));
        if fail {
            return Err(PortError::api(
                "canary status update error",
                kube::Error::Service("the server is gone".into()),
            ));
        }
        let mut status = status.clone();
        if self.prune_requests.load(Ordering::SeqCst) {
            status.last_request = None;
            status.paused = None;
        }
        if self.prune_decisions.load(Ordering::SeqCst) {
            status.decisions = None;
        }
        if let Some(c) = lock(&self.canary).as_mut() {
            c.status = Some(status.clone());
        }
        lock(&self.writes).push(status);
        Ok(lock(&self.canary).clone())
    }
    async fn set_finalizer(&self, _c: &Canary, present: bool) -> Result<Option<Canary>, PortError> {
        let mut guard = lock(&self.canary);
        let Some(c) = guard.as_mut() else {
            return Ok(None);
        };
        let list = c.metadata.finalizers.get_or_insert_with(Vec::new);
        list.retain(|f| f != super::finalizer::FINALIZER);
        if present {
            list.push(super::finalizer::FINALIZER.to_string());
        }
        if list.is_empty() && c.metadata.deletion_timestamp.is_some() {
            *guard = None;
        }
        Ok(guard.clone())
    }
}

#[derive(Default)]
pub struct FakeEvents(pub Mutex<Vec<(EventKind, String)>>);

#[async_trait]
impl EventSink for FakeEvents {
    async fn publish(&self, _c: &Canary, kind: EventKind, message: &str) {
        lock(&self.0).push((kind, message.to_string()));
    }
}

#[derive(Default)]
pub struct FakeWebhooks {
    /// Hook name → error text while the hook fails.
    pub failing: Mutex<HashMap<String, String>>,
    pub calls: Mutex<Vec<(CanaryWebhook, HookPayload)>>,
}

#[async_trait]
impl WebhookClient for FakeWebhooks {
    async fn post(
        &self,
        hook: &CanaryWebhook,
        payload: &HookPayload,
    ) -> Result<HookResponse, WebhookError> {
        lock(&self.calls).push((hook.clone(), payload.clone()));
        match lock(&self.failing).get(&hook.name) {
            Some(msg) => Err(WebhookError::Rejected {
                status: 403,
                message: msg.clone(),
            }),
            None => Ok(HookResponse {
                status: 200,
                body: "ok".into(),
            }),
        }
    }
}

type CheckResult = Result<Measured, FailedCheck>;

pub struct FakeMetrics {
    pub providers: Mutex<Result<(), String>>,
    /// Results of the next checks; when empty, `default` answers.
    pub queue: Mutex<VecDeque<CheckResult>>,
    pub default: Mutex<CheckResult>,
    pub runs: AtomicUsize,
    /// Results of the next query pre-flights; when empty, every query answers.
    pub preflights: Mutex<VecDeque<Result<(), Finding>>>,
    pub preflight_runs: AtomicUsize,
}

impl Default for FakeMetrics {
    fn default() -> Self {
        Self {
            providers: Mutex::new(Ok(())),
            queue: Mutex::new(VecDeque::new()),
            default: Mutex::new(Ok(vec![("request-success-rate".into(), 99.5)].into())),
            runs: AtomicUsize::new(0),
            preflights: Mutex::new(VecDeque::new()),
            preflight_runs: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl MetricChecks for FakeMetrics {
    async fn check_providers(&self, _c: &Canary) -> Result<(), String> {
        lock(&self.providers).clone()
    }
    async fn run_checks(&self, _c: &Canary) -> Result<Measured, FailedCheck> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match lock(&self.queue).pop_front() {
            Some(r) => r,
            None => lock(&self.default).clone(),
        }
    }
    async fn preflight(&self, _c: &Canary) -> Result<(), Finding> {
        self.preflight_runs.fetch_add(1, Ordering::SeqCst);
        lock(&self.preflights).pop_front().unwrap_or(Ok(()))
    }
}

#[derive(Default)]
pub struct FakeAlerter(pub Mutex<Vec<(String, bool, AlertSeverity)>>);

#[async_trait]
impl Alerter for FakeAlerter {
    async fn alert(&self, _c: &Canary, message: &str, meta: bool, severity: AlertSeverity) {
        lock(&self.0).push((message.to_string(), meta, severity));
    }
}

#[derive(Default)]
pub struct FakeRecorder {
    pub status: Mutex<Option<i64>>,
    pub weights: Mutex<Option<(i32, i32)>>,
    pub successes: Mutex<Vec<(Strategy, AnalysisStatus)>>,
    pub failures: Mutex<Vec<(Strategy, AnalysisStatus)>>,
    pub durations: AtomicUsize,
    pub metric_values: Mutex<BTreeMap<String, f64>>,
    pub step_delays: Mutex<Vec<Duration>>,
    pub decisions: Mutex<Vec<crate::api::decision::Decision>>,
}

impl Recorder for FakeRecorder {
    fn set_status(&self, _c: &Canary, phase: CanaryPhase) {
        *lock(&self.status) = Some(phase.status_gauge());
    }
    fn set_weight(&self, _c: &Canary, primary: i32, canary: i32) {
        *lock(&self.weights) = Some((primary, canary));
    }
    fn inc_successes(&self, _c: &Canary, strategy: Strategy, status: AnalysisStatus) {
        lock(&self.successes).push((strategy, status));
    }
    fn inc_failures(&self, _c: &Canary, strategy: Strategy, status: AnalysisStatus) {
        lock(&self.failures).push((strategy, status));
    }
    fn observe_duration(&self, _c: &Canary, _d: Duration) {
        self.durations.fetch_add(1, Ordering::SeqCst);
    }
    fn set_metric_value(&self, _c: &Canary, metric: &str, value: f64) {
        lock(&self.metric_values).insert(metric.to_string(), value);
    }
    fn observe_step_delay(&self, _c: &Canary, delay: Duration) {
        lock(&self.step_delays).push(delay);
    }
    fn record_decision(&self, _c: &Canary, decision: &crate::api::decision::Decision) {
        lock(&self.decisions).push(decision.clone());
    }
}

/// Readiness a fake workload reports.
#[derive(Clone, Debug)]
pub enum Ready {
    Yes,
    Waiting(String),
    Failed(String),
}

impl Ready {
    fn check(&self) -> Result<(), WorkloadError> {
        match self {
            Ready::Yes => Ok(()),
            Ready::Waiting(m) => Err(WorkloadError::NotReady(m.clone())),
            Ready::Failed(m) => Err(WorkloadError::Failed(m.clone())),
        }
    }
}

pub struct TargetState {
    pub spec_hash: String,
    pub configs: BTreeMap<String, String>,
    pub primary_hash: Option<String>,
    pub scaled_up: bool,
    pub primary_ready: Ready,
    pub canary_ready: Ready,
    pub init_waits: Vec<bool>,
    pub promotions: usize,
    /// Fail this many of the next promotions (nothing copied).
    pub fail_promotions: usize,
    pub finalized: bool,
}

pub struct FakeTarget(pub Mutex<TargetState>);

impl Default for FakeTarget {
    fn default() -> Self {
        Self(Mutex::new(TargetState {
            spec_hash: "rev1".into(),
            configs: BTreeMap::new(),
            primary_hash: None,
            scaled_up: true,
            primary_ready: Ready::Yes,
            canary_ready: Ready::Yes,
            init_waits: Vec::new(),
            promotions: 0,
            fail_promotions: 0,
            finalized: false,
        }))
    }
}

#[async_trait]
impl TargetController for FakeTarget {
    async fn metadata(&self, _c: &Canary) -> Result<TargetMetadata, WorkloadError> {
        Ok(TargetMetadata {
            label: "app".into(),
            label_value: "podinfo".into(),
            ports: BTreeMap::new(),
        })
    }
    async fn initialize(&self, _c: &Canary, wait: bool) -> Result<(), WorkloadError> {
        let mut s = lock(&self.0);
        s.init_waits.push(wait);
        if s.primary_hash.is_none() {
            s.primary_hash = Some(s.spec_hash.clone());
        }
        if wait {
            return s.primary_ready.check();
        }
        Ok(())
    }
    async fn promote(&self, _c: &Canary) -> Result<(), WorkloadError> {
        let mut s = lock(&self.0);
        if s.fail_promotions > 0 {
            s.fail_promotions -= 1;
            return Err(WorkloadError::NotReady(
                "updating deployment podinfo-primary.test template spec failed".into(),
            ));
        }
        s.primary_hash = Some(s.spec_hash.clone());
        s.promotions += 1;
        Ok(())
    }
    async fn is_primary_ready(&self, _c: &Canary) -> Result<(), WorkloadError> {
        lock(&self.0).primary_ready.check()
    }
    async fn is_canary_ready(&self, _c: &Canary) -> Result<(), WorkloadError> {
        lock(&self.0).canary_ready.check()
    }
    async fn revision(&self, _c: &Canary) -> Result<Revision, WorkloadError> {
        let s = lock(&self.0);
        Ok(Revision {
            spec_hash: s.spec_hash.clone(),
            tracked_configs: s.configs.clone(),
        })
    }
    async fn scale_to_zero(&self, _c: &Canary) -> Result<(), WorkloadError> {
        lock(&self.0).scaled_up = false;
        Ok(())
    }
    async fn scale_from_zero(&self, _c: &Canary) -> Result<(), WorkloadError> {
        lock(&self.0).scaled_up = true;
        Ok(())
    }
    async fn finalize(&self, _c: &Canary) -> Result<(), WorkloadError> {
        let mut s = lock(&self.0);
        s.finalized = true;
        s.scaled_up = true;
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeRouter {
    pub routes: Mutex<Routes>,
    /// Every `set_routes`, in order.
    pub history: Mutex<Vec<Routes>>,
    pub reconciles: AtomicUsize,
    pub finalized: AtomicUsize,
    /// Give the canary a session-affinity cookie in the working status when it first gets
    /// traffic, as the routers do with `sessionAffinity` (persisted by the next status write).
    pub cookies: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Router for FakeRouter {
    async fn reconcile(&self, _c: &Canary) -> Result<(), RouterError> {
        // Creates the routing object with 100/0 on first use, like Flagger's routers.
        if self.reconciles.fetch_add(1, Ordering::SeqCst) == 0 {
            *lock(&self.routes) = Routes::new(100, 0, false);
        }
        Ok(())
    }
    async fn set_routes(
        &self,
        _c: &Canary,
        s: &mut CanaryStatus,
        routes: Routes,
    ) -> Result<(), RouterError> {
        if self.cookies.load(Ordering::SeqCst)
            && routes.canary > 0
            && s.session_affinity_cookie.is_none()
        {
            s.session_affinity_cookie = Some("serin-canary-cookie".into());
        }
        *lock(&self.routes) = routes;
        lock(&self.history).push(routes);
        Ok(())
    }
    async fn get_routes(&self, _c: &Canary) -> Result<Routes, RouterError> {
        Ok(*lock(&self.routes))
    }
    async fn finalize(&self, _c: &Canary) -> Result<(), RouterError> {
        self.finalized.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeCalls(pub Mutex<Vec<String>>);

#[async_trait]
impl ScalerReconciler for FakeCalls {
    async fn reconcile_primary(&self, _c: &Canary, init: bool) -> Result<(), WorkloadError> {
        lock(&self.0).push(format!("reconcile_primary({init})"));
        Ok(())
    }
    async fn pause_target(&self, _c: &Canary) -> Result<(), WorkloadError> {
        lock(&self.0).push("pause".into());
        Ok(())
    }
    async fn resume_target(&self, _c: &Canary) -> Result<(), WorkloadError> {
        lock(&self.0).push("resume".into());
        Ok(())
    }
}

#[async_trait]
impl ServiceRouter for FakeCalls {
    async fn initialize(&self, _c: &Canary, _m: &TargetMetadata) -> Result<(), RouterError> {
        lock(&self.0).push("initialize".into());
        Ok(())
    }
    async fn reconcile(&self, _c: &Canary, _m: &TargetMetadata) -> Result<(), RouterError> {
        lock(&self.0).push("reconcile".into());
        Ok(())
    }
    async fn finalize(&self, _c: &Canary) -> Result<(), RouterError> {
        lock(&self.0).push("finalize".into());
        Ok(())
    }
}

pub struct FakeBackends {
    target: Arc<FakeTarget>,
    router: Arc<FakeRouter>,
    scaler: Arc<FakeCalls>,
    services: Arc<FakeCalls>,
}

impl Backends for FakeBackends {
    fn target(&self, _c: &Canary) -> Result<Arc<dyn TargetController>, PortError> {
        Ok(self.target.clone())
    }
    fn scaler(&self, c: &Canary) -> Result<Option<Arc<dyn ScalerReconciler>>, PortError> {
        Ok(c.spec
            .autoscaler_ref
            .as_ref()
            .map(|_| self.scaler.clone() as Arc<dyn ScalerReconciler>))
    }
    fn services(&self, _c: &Canary) -> Option<Arc<dyn ServiceRouter>> {
        Some(self.services.clone())
    }
    fn router(&self, _c: &Canary, _p: &Provider) -> Result<Arc<dyn Router>, PortError> {
        Ok(self.router.clone())
    }
}

/// The fakes, a scheduler over them, and helpers to drive it.
pub struct World {
    pub clock: Arc<FakeClock>,
    pub store: Arc<FakeStore>,
    pub events: Arc<FakeEvents>,
    pub webhooks: Arc<FakeWebhooks>,
    pub metrics: Arc<FakeMetrics>,
    pub alerter: Arc<FakeAlerter>,
    pub recorder: Arc<FakeRecorder>,
    pub target: Arc<FakeTarget>,
    pub router: Arc<FakeRouter>,
    pub scaler: Arc<FakeCalls>,
    pub services: Arc<FakeCalls>,
    pub config: SchedulerConfig,
    /// The webhook client the scheduler uses (the fake unless a test swaps it).
    pub client: Arc<dyn WebhookClient>,
    pub scheduler: Scheduler,
}

/// 2026-01-01T00:00:00Z.
pub const START: i64 = 1_767_225_600;

/// A Canary `podinfo` in namespace `test` with the given `spec.analysis` (None: no analysis).
pub fn canary(analysis: Option<serde_json::Value>, extra: serde_json::Value) -> Canary {
    let mut spec = serde_json::json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
    });
    if let Some(a) = analysis {
        spec["analysis"] = a;
    }
    if let serde_json::Value::Object(m) = extra {
        for (k, v) in m {
            spec[k] = v;
        }
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "u-1"},
        "spec": spec,
    }))
    .unwrap()
}

/// The canary analysis most tests use: interval 1m, threshold 2, stepWeight 10, maxWeight 50.
pub fn progressive() -> serde_json::Value {
    serde_json::json!({"interval": "1m", "threshold": 2, "maxWeight": 50, "stepWeight": 10})
}

pub fn hook(name: &str, hook_type: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "type": hook_type, "url": format!("http://hooks/{name}")})
}

pub const INTERVAL: Duration = Duration::from_secs(60);

impl World {
    pub fn new(canary: Canary) -> Self {
        Self::with_config(canary, SchedulerConfig::default())
    }

    pub fn with_config(canary: Canary, config: SchedulerConfig) -> Self {
        let clock = Arc::new(FakeClock(Mutex::new(
            Timestamp::from_second(START).unwrap(),
        )));
        let store = Arc::new(FakeStore::default());
        *lock(&store.canary) = Some(canary);
        let target = Arc::new(FakeTarget::default());
        let router = Arc::new(FakeRouter::default());
        let scaler = Arc::new(FakeCalls::default());
        let services = Arc::new(FakeCalls::default());
        let events = Arc::new(FakeEvents::default());
        let webhooks = Arc::new(FakeWebhooks::default());
        let metrics = Arc::new(FakeMetrics::default());
        let alerter = Arc::new(FakeAlerter::default());
        let recorder = Arc::new(FakeRecorder::default());
        let mut world = Self {
            scheduler: Scheduler::new(Self::dummy_ports(&clock), config.clone()),
            clock,
            store,
            events,
            metrics,
            alerter,
            recorder,
            target,
            router,
            scaler,
            services,
            config,
            client: webhooks.clone(),
            webhooks,
        };
        world.restart();
        world
    }

    fn dummy_ports(clock: &Arc<FakeClock>) -> Ports {
        let target = Arc::new(FakeTarget::default());
        Ports {
            clock: clock.clone(),
            events: Arc::new(FakeEvents::default()),
            store: Arc::new(FakeStore::default()),
            webhooks: Arc::new(FakeWebhooks::default()),
            metrics: Arc::new(FakeMetrics::default()),
            alerter: Arc::new(FakeAlerter::default()),
            recorder: Arc::new(FakeRecorder::default()),
            backends: Arc::new(FakeBackends {
                target,
                router: Arc::new(FakeRouter::default()),
                scaler: Arc::new(FakeCalls::default()),
                services: Arc::new(FakeCalls::default()),
            }),
        }
    }

    /// A new scheduler over the same fakes: what a restarted controller sees.
    pub fn restart(&mut self) {
        let ports = Ports {
            clock: self.clock.clone(),
            events: self.events.clone(),
            store: self.store.clone(),
            webhooks: self.client.clone(),
            metrics: self.metrics.clone(),
            alerter: self.alerter.clone(),
            recorder: self.recorder.clone(),
            backends: Arc::new(FakeBackends {
                target: self.target.clone(),
                router: self.router.clone(),
                scaler: self.scaler.clone(),
                services: self.services.clone(),
            }),
        };
        self.scheduler = Scheduler::new(ports, self.config.clone());
    }

    pub fn object(&self) -> Canary {
        lock(&self.store.canary).clone().unwrap()
    }

    pub fn gone(&self) -> bool {
        lock(&self.store.canary).is_none()
    }

    pub fn edit(&self, f: impl FnOnce(&mut Canary)) {
        f(lock(&self.store.canary).as_mut().unwrap());
    }

    pub fn status(&self) -> CanaryStatus {
        self.object().status.unwrap_or_default()
    }

    pub fn phase(&self) -> CanaryPhase {
        self.status().phase
    }

    pub async fn reconcile(&self) -> Next {
        self.try_reconcile().await.unwrap()
    }

    pub async fn try_reconcile(&self) -> Result<Next, SchedulerError> {
        let key = self.object();
        self.scheduler.reconcile(&key).await
    }

    /// Advances the clock by one interval and reconciles.
    pub async fn tick(&self) -> Next {
        self.clock.advance(INTERVAL);
        self.reconcile().await
    }

    /// Ticks until `phase` (at most `max` ticks); returns the number of ticks.
    pub async fn tick_until(&self, phase: CanaryPhase, max: usize) -> usize {
        for n in 1..=max {
            self.tick().await;
            if self.phase() == phase {
                return n;
            }
        }
        panic!(
            "not {phase} after {max} ticks: {:?}\n{:#?}",
            self.phase(),
            self.messages()
        );
    }

    /// Initialises the canary and clears what that recorded.
    pub async fn initialized(&self) {
        self.reconcile().await;
        assert_eq!(
            self.phase(),
            CanaryPhase::Initialized,
            "{:?}",
            self.messages()
        );
        self.clear();
    }

    /// A new revision of the target.
    pub fn push(&self, hash: &str) {
        lock(&self.target.0).spec_hash = hash.into();
    }

    pub fn messages(&self) -> Vec<String> {
        lock(&self.events.0)
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    pub fn warnings(&self) -> Vec<String> {
        lock(&self.events.0)
            .iter()
            .filter(|(k, _)| *k != EventKind::Normal)
            .map(|(_, m)| m.clone())
            .collect()
    }

    pub fn clear(&self) {
        lock(&self.events.0).clear();
        lock(&self.webhooks.calls).clear();
        lock(&self.alerter.0).clear();
    }

    pub fn routes(&self) -> Routes {
        *lock(&self.router.routes)
    }

    pub fn fail_hook(&self, name: &str, message: &str) {
        lock(&self.webhooks.failing).insert(name.into(), message.into());
    }

    pub fn pass_hook(&self, name: &str) {
        lock(&self.webhooks.failing).remove(name);
    }

    /// `(hook name, payload phase)` of every webhook call.
    pub fn hook_calls(&self) -> Vec<(String, CanaryPhase)> {
        lock(&self.webhooks.calls)
            .iter()
            .map(|(h, p)| (h.name.clone(), p.phase))
            .collect()
    }

    pub fn alerts(&self) -> Vec<String> {
        lock(&self.alerter.0)
            .iter()
            .map(|(m, _, _)| m.clone())
            .collect()
    }

    pub fn fail_metrics(&self, message: &str) {
        *lock(&self.metrics.default) = Err(FailedCheck {
            message: message.into(),
            error: false,
            held: false,
            inconclusive: false,
            checks: Vec::new(),
            verdicts: Vec::new(),
        });
    }

    pub fn pass_metrics(&self) {
        *lock(&self.metrics.default) = Ok(Measured::default());
    }

    pub fn set_primary_ready(&self, r: Ready) {
        lock(&self.target.0).primary_ready = r;
    }

    pub fn set_canary_ready(&self, r: Ready) {
        lock(&self.target.0).canary_ready = r;
    }
}
