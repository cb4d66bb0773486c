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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::api::decision::{CheckRecord, DecisionStep, Verdict};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn a_decision_exports_each_check_under_the_canary_name() {
        let canary: Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}}
        }))
        .unwrap();
        let check = |name: &str, value, min, max| CheckRecord {
            name: name.into(),
            value,
            min,
            max,
            verdict: Verdict::Pass,
            ..Default::default()
        };
        let decision = Decision {
            time: Time(Timestamp::UNIX_EPOCH),
            phase: CanaryPhase::Progressing,
            canary_weight: 10,
            iterations: 0,
            failed_checks: 0,
            checks: vec![
                check("request-success-rate", Some(99.5), Some(99.0), None),
                check("request-duration", Some(120.0), None, Some(500.0)),
            ],
            webhooks: Vec::new(),
            step: DecisionStep::default(),
        };
        let inner = Recorder::new();
        RecorderPort::new(inner.clone()).record_decision(&canary, &decision);
        let text = inner.encode().unwrap();
        for line in [
            r#"serin_canary_check_value{name="web",namespace="prod",check="request-success-rate"} 99.5"#,
            r#"serin_canary_check_threshold_min{name="web",namespace="prod",check="request-success-rate"} 99.0"#,
            r#"serin_canary_check_value{name="web",namespace="prod",check="request-duration"} 120.0"#,
            r#"serin_canary_check_threshold_max{name="web",namespace="prod",check="request-duration"} 500.0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
