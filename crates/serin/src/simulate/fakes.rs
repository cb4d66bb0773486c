//! In-memory ports for the simulation: a fake clock, the Canary in memory, scripted webhooks
//! and metrics, and workloads and routers that do what they are told at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;

use super::script::Timeline;
use crate::api::analysis::{AlertSeverity, BuiltinMetric, CanaryMetric};
use crate::api::comparison::Statistic;
use crate::api::decision::Decision;
use crate::api::{Canary, CanaryPhase, CanaryStatus, CanaryWebhook, Provider, Strategy};
use crate::controller::finalizer::FINALIZER;
use crate::controller::ports::*;
use crate::controller::webhook::{HookPayload, HookResponse, WebhookError};
use crate::metrics::analysis::{canary_id, custom_verdict, duration_verdict, success_rate_verdict};
use crate::metrics::compare::verdict_message;
use crate::router::{Router, RouterError, Routes};
use crate::stats::{self, Counts, Outcome};
use crate::workload::{
    Revision, ScalerReconciler, TargetController, TargetMetadata, WorkloadError,
};

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Simulated time, starting at `start`.
pub struct FakeClock {
    pub start: Timestamp,
    pub now: Mutex<Timestamp>,
}

impl FakeClock {
    pub fn elapsed(&self) -> Duration {
        let now = *lock(&self.now);
        Duration::from_secs(u64::try_from(now.as_second() - self.start.as_second()).unwrap_or(0))
    }
    pub fn advance(&self, d: Duration) {
        let mut t = lock(&self.now);
        *t = t.saturating_add(d).unwrap_or(*t);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *lock(&self.now)
    }
}

/// The Canary object.
#[derive(Default)]
pub struct Store(pub Mutex<Option<Canary>>);

#[async_trait]
impl StatusStore for Store {
    async fn get(&self, _ns: &str, _name: &str) -> Result<Option<Canary>, PortError> {
        Ok(lock(&self.0).clone())
    }
    async fn write_status(
        &self,
        _c: &Canary,
        status: &CanaryStatus,
    ) -> Result<Option<Canary>, PortError> {
        let mut stored = lock(&self.0);
        if let Some(c) = stored.as_mut() {
            c.status = Some(status.clone());
        }
        Ok(stored.clone())
    }
    async fn set_finalizer(&self, _c: &Canary, present: bool) -> Result<Option<Canary>, PortError> {
        let mut stored = lock(&self.0);
        if let Some(c) = stored.as_mut() {
            let list = c.metadata.finalizers.get_or_insert_with(Vec::new);
            list.retain(|f| f != FINALIZER);
            if present {
                list.push(FINALIZER.to_string());
            }
        }
        Ok(stored.clone())
    }
}

/// Events, with the simulated time they were recorded at.
pub struct Events {
    pub clock: Arc<FakeClock>,
    pub log: Mutex<Vec<(Duration, EventKind, String)>>,
}

#[async_trait]
impl EventSink for Events {
    async fn publish(&self, _c: &Canary, kind: EventKind, message: &str) {
        lock(&self.log).push((self.clock.elapsed(), kind, message.to_string()));
    }
}

/// Webhooks answer from the script.
pub struct Webhooks {
    pub clock: Arc<FakeClock>,
    pub script: Arc<Timeline>,
}

#[async_trait]
impl WebhookClient for Webhooks {
    async fn post(
        &self,
        hook: &CanaryWebhook,
        _p: &HookPayload,
    ) -> Result<HookResponse, WebhookError> {
        match self.script.webhook(&hook.name, self.clock.elapsed()) {
            Some(answer) if !answer.ok => Err(WebhookError::Rejected {
                status: 403,
                message: answer.message.clone().unwrap_or_else(|| "rejected".into()),
            }),
            _ => Ok(HookResponse {
                status: 200,
                body: String::new(),
            }),
        }
    }
}

/// The metric checks, judged by Serin's own verdict functions on scripted values.
pub struct Metrics {
    pub clock: Arc<FakeClock>,
    pub script: Arc<Timeline>,
}

impl Metrics {
    fn check(
        &self,
        canary: &Canary,
        metric: &CanaryMetric,
        out: &mut Measured,
    ) -> Result<(), FailedCheck> {
        let id = canary_id(canary);
        let warn = |message: String| FailedCheck {
            message,
            error: false,
            held: false,
            inconclusive: false,
            checks: Vec::new(),
            verdicts: Vec::new(),
        };
        let point = self.script.metric(&metric.name, self.clock.elapsed());
        if let Some(c) = &metric.compare {
            let canary_values = point.and_then(|p| p.canary.clone()).unwrap_or_default();
            let primary_values = point.and_then(|p| p.primary.clone()).unwrap_or_default();
            let settings = c.settings();
            let judgement = match c.statistic() {
                Some(Statistic::Proportion) => {
                    let counts = |v: &[f64]| Counts {
                        events: v.first().copied().unwrap_or(0.0),
                        total: v.get(1).copied().unwrap_or(0.0),
                    };
                    stats::compare_proportions(
                        counts(&canary_values),
                        counts(&primary_values),
                        &settings,
                    )
                }
                _ => {
                    let flip = |v: Vec<f64>| -> Vec<f64> {
                        if c.lower_is_worse() {
                            v.into_iter().map(|x| -x).collect()
                        } else {
                            v
                        }
                    };
                    stats::compare_samples(&flip(canary_values), &flip(primary_values), &settings)
                }
            };
            let Some(j) = judgement else {
                return Err(FailedCheck {
                    message: format!(
                        "Metric comparison failed for {}: the scripted values are not usable numbers",
                        metric.name
                    ),
                    error: true,
                    held: false,
                    inconclusive: false,
                    checks: Vec::new(),
                    verdicts: Vec::new(),
                });
            };
            let message = verdict_message(&id, &metric.name, &j);
            let value = j.relative_effect().unwrap_or(j.effect);
            return match j.outcome {
                Outcome::Pass => {
                    out.values.push((metric.name.clone(), value));
                    out.verdicts.push(message);
                    Ok(())
                }
                Outcome::Fail => Err(warn(message)),
                Outcome::Inconclusive => Err(FailedCheck {
                    inconclusive: true,
                    ..warn(message)
                }),
            };
        }
        let Some(value) = point.and_then(|p| p.value) else {
            return Err(warn(format!(
                "Halt advancement no values found for metric: {}",
                metric.name
            )));
        };
        out.values.push((metric.name.clone(), value));
        let builtin = if metric.template_ref.is_some() || metric.has_query() {
            None
        } else {
            metric.builtin()
        };
        let verdict = match builtin {
            Some(BuiltinMetric::RequestSuccessRate) => success_rate_verdict(&id, metric, value),
            Some(BuiltinMetric::RequestDuration) => duration_verdict(
                &id,
                metric,
                Duration::from_secs_f64((value / 1000.0).max(0.0)),
            ),
            None => custom_verdict(&id, metric, value),
        };
        verdict.map_or(Ok(()), |m| Err(warn(m)))
    }
}

#[async_trait]
impl MetricChecks for Metrics {
    async fn check_providers(&self, _c: &Canary) -> Result<(), String> {
        Ok(())
    }
    /// The scripted values are the canary's; the simulated primary serves traffic, so every
    /// query answers for it.
    async fn preflight(&self, _c: &Canary) -> Result<(), Finding> {
        Ok(())
    }
    async fn run_checks(&self, canary: &Canary) -> Result<Measured, FailedCheck> {
        let mut out = Measured::default();
        let Some(analysis) = canary.spec.analysis() else {
            return Ok(out);
        };
        // Flagger's order: built-in and inline checks, then templates.
        let metrics = analysis.metrics();
        let ordered = metrics
            .iter()
            .filter(|m| m.template_ref.is_none())
            .chain(metrics.iter().filter(|m| m.template_ref.is_some()));
        for metric in ordered {
            self.check(canary, metric, &mut out)
                .map_err(|failed| FailedCheck {
                    verdicts: std::mem::take(&mut out.verdicts),
                    ..failed
                })?;
        }
        Ok(out)
    }
}

/// Alerts are already in the events; the simulation ignores them.
pub struct Quiet;

#[async_trait]
impl Alerter for Quiet {
    async fn alert(&self, _c: &Canary, _m: &str, _meta: bool, _s: AlertSeverity) {}
}

impl Recorder for Quiet {
    fn set_status(&self, _c: &Canary, _p: CanaryPhase) {}
    fn set_weight(&self, _c: &Canary, _p: i32, _w: i32) {}
    fn inc_successes(&self, _c: &Canary, _s: Strategy, _a: AnalysisStatus) {}
    fn inc_failures(&self, _c: &Canary, _s: Strategy, _a: AnalysisStatus) {}
    fn observe_duration(&self, _c: &Canary, _d: Duration) {}
    fn set_metric_value(&self, _c: &Canary, _m: &str, _v: f64) {}
    fn observe_step_delay(&self, _c: &Canary, _d: Duration) {}
    fn record_decision(&self, _c: &Canary, _d: &Decision) {}
}

/// The target workload: always ready; its revision follows the script.
pub struct Target {
    pub revision: Mutex<String>,
}

#[async_trait]
impl TargetController for Target {
    async fn metadata(&self, _c: &Canary) -> Result<TargetMetadata, WorkloadError> {
        Ok(TargetMetadata {
            label: "app".into(),
            label_value: "app".into(),
            ports: BTreeMap::new(),
        })
    }
    async fn initialize(&self, _c: &Canary, _wait: bool) -> Result<(), WorkloadError> {
        Ok(())
    }
    async fn promote(&self, _c: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }
    async fn is_primary_ready(&self, _c: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }
    async fn is_canary_ready(&self, _c: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }
    async fn revision(&self, _c: &Canary) -> Result<Revision, WorkloadError> {
        Ok(Revision {
            spec_hash: lock(&self.revision).clone(),
            tracked_configs: BTreeMap::new(),
        })
    }
    async fn scale_to_zero(&self, _c: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }
    async fn scale_from_zero(&self, _c: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }
    async fn finalize(&self, _c: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }
}

/// Routes as set.
#[derive(Default)]
pub struct Traffic(pub Mutex<Option<Routes>>);

#[async_trait]
impl Router for Traffic {
    async fn reconcile(&self, _c: &Canary) -> Result<(), RouterError> {
        lock(&self.0).get_or_insert(Routes::new(100, 0, false));
        Ok(())
    }
    async fn set_routes(
        &self,
        _c: &Canary,
        _s: &mut CanaryStatus,
        routes: Routes,
    ) -> Result<(), RouterError> {
        *lock(&self.0) = Some(routes);
        Ok(())
    }
    async fn get_routes(&self, _c: &Canary) -> Result<Routes, RouterError> {
        Ok(lock(&self.0).unwrap_or(Routes::new(100, 0, false)))
    }
    async fn finalize(&self, _c: &Canary) -> Result<(), RouterError> {
        Ok(())
    }
}

pub struct NoOp;

#[async_trait]
impl ScalerReconciler for NoOp {
    async fn reconcile_primary(&self, _c: &Canary, _init: bool) -> Result<(), WorkloadError> {
        Ok(())
    }
    async fn pause_target(&self, _c: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }
    async fn resume_target(&self, _c: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }
}

#[async_trait]
impl ServiceRouter for NoOp {
    async fn initialize(&self, _c: &Canary, _m: &TargetMetadata) -> Result<(), RouterError> {
        Ok(())
    }
    async fn reconcile(&self, _c: &Canary, _m: &TargetMetadata) -> Result<(), RouterError> {
        Ok(())
    }
    async fn finalize(&self, _c: &Canary) -> Result<(), RouterError> {
        Ok(())
    }
}

pub struct Workloads {
    pub target: Arc<Target>,
    pub traffic: Arc<Traffic>,
    pub noop: Arc<NoOp>,
}

impl Backends for Workloads {
    fn target(&self, _c: &Canary) -> Result<Arc<dyn TargetController>, PortError> {
        Ok(self.target.clone())
    }
    fn scaler(&self, c: &Canary) -> Result<Option<Arc<dyn ScalerReconciler>>, PortError> {
        Ok(c.spec
            .autoscaler_ref
            .as_ref()
            .map(|_| self.noop.clone() as Arc<dyn ScalerReconciler>))
    }
    fn services(&self, _c: &Canary) -> Option<Arc<dyn ServiceRouter>> {
        Some(self.noop.clone())
    }
    fn router(&self, _c: &Canary, _p: &Provider) -> Result<Arc<dyn Router>, PortError> {
        Ok(self.traffic.clone())
    }
}
