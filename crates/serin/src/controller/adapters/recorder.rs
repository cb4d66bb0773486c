//! The [`Recorder`] port over Serin's Prometheus registry ([`crate::metrics::recorder`]).

use std::time::Duration;

use crate::api::decision::Decision;
use crate::api::{Canary, CanaryPhase, Strategy};
use crate::controller::ports::{AnalysisStatus, Recorder as RecorderPortTrait};
use crate::metrics::recorder::Recorder;

/// Adapts [`Recorder`] (label values as strings) to the scheduler's port (Canaries and phases).
#[derive(Clone, Debug)]
pub struct RecorderPort {
    inner: Recorder,
}

impl RecorderPort {
    pub fn new(inner: Recorder) -> Self {
        Self { inner }
    }
}

fn target(canary: &Canary) -> (&str, &str) {
    (
        canary.spec.target_ref.name.as_str(),
        canary.metadata.namespace.as_deref().unwrap_or_default(),
    )
}

impl RecorderPortTrait for RecorderPort {
    fn set_status(&self, canary: &Canary, phase: CanaryPhase) {
        let (name, ns) = target(canary);
        self.inner.set_status(name, ns, phase.status_gauge());
    }

    fn set_weight(&self, canary: &Canary, primary: i32, canary_weight: i32) {
        let (name, ns) = target(canary);
        self.inner.set_weight(
            &format!("{name}-primary"),
            name,
            ns,
            i64::from(primary),
            i64::from(canary_weight),
        );
    }

    fn inc_successes(&self, canary: &Canary, strategy: Strategy, status: AnalysisStatus) {
        let (name, ns) = target(canary);
        self.inner
            .inc_successes(name, ns, strategy.as_str(), status.as_str());
    }

    fn inc_failures(&self, canary: &Canary, strategy: Strategy, status: AnalysisStatus) {
        let (name, ns) = target(canary);
        self.inner
            .inc_failures(name, ns, strategy.as_str(), status.as_str());
    }

    fn observe_duration(&self, canary: &Canary, duration: Duration) {
        let (name, ns) = target(canary);
        self.inner
            .observe_duration(name, ns, duration.as_secs_f64());
    }

    fn set_metric_value(&self, canary: &Canary, metric: &str, value: f64) {
        let (name, ns) = target(canary);
        self.inner.set_metric_analysis(name, ns, metric, value);
    }

    fn observe_step_delay(&self, _canary: &Canary, delay: Duration) {
        self.inner.observe_step_delay(delay.as_secs_f64());
    }

    fn record_decision(&self, canary: &Canary, decision: &Decision) {
        let name = canary.metadata.name.as_deref().unwrap_or_default();
        let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
        for check in &decision.checks {
            self.inner
                .set_check(name, ns, &check.name, check.value, check.min, check.max);
        }
    }
}
