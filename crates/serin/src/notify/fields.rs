//! Alert messages and fields as Flagger sends them (`alert` and `alertMetadata` in Flagger's
//! `pkg/controller/events.go`).

use super::{Alert, Field, Severity};

/// What the controller reports. Each event has Flagger's message text, severity and whether the
/// canary's metadata fields are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertEvent {
    /// `New <Kind> detected, initialization completed.` (info, with metadata).
    Initialized { kind: String },
    /// `New revision detected, progressing canary analysis.` (info, with metadata).
    NewRevision,
    /// `Canary is waiting for approval.` (warn; skip it when the hook has `muteAlert`).
    WaitingForApproval,
    /// `Canary traffic increase is waiting for approval.` (warn; `muteAlert` applies).
    TrafficIncreaseWaitingForApproval,
    /// `Canary promotion is waiting for approval.` (warn; `muteAlert` applies).
    PromotionWaitingForApproval,
    /// `Rolling back manual webhook invoked` (warn).
    ManualRollback,
    /// `Failed checks threshold reached <n>` (error).
    FailedChecksThreshold { failed_checks: u32 },
    /// `Promotion failed, primary not ready: <err>` (error).
    PromotionFailed { reason: String },
    /// `Canary analysis completed successfully, promotion finished.` (info).
    Succeeded,
    /// `Canary analysis was skipped, promotion finished.` (info).
    Skipped,
    /// `Progress deadline exceeded <err>` (error).
    ProgressDeadlineExceeded { reason: String },
}

impl AlertEvent {
    pub fn message(&self) -> String {
        match self {
            AlertEvent::Initialized { kind } => {
                format!("New {kind} detected, initialization completed.")
            }
            AlertEvent::NewRevision => "New revision detected, progressing canary analysis.".into(),
            AlertEvent::WaitingForApproval => "Canary is waiting for approval.".into(),
            AlertEvent::TrafficIncreaseWaitingForApproval => {
                "Canary traffic increase is waiting for approval.".into()
            }
            AlertEvent::PromotionWaitingForApproval => {
                "Canary promotion is waiting for approval.".into()
            }
            AlertEvent::ManualRollback => "Rolling back manual webhook invoked".into(),
            AlertEvent::FailedChecksThreshold { failed_checks } => {
                format!("Failed checks threshold reached {failed_checks}")
            }
            AlertEvent::PromotionFailed { reason } => {
                format!("Promotion failed, primary not ready: {reason}")
            }
            AlertEvent::Succeeded => {
                "Canary analysis completed successfully, promotion finished.".into()
            }
            AlertEvent::Skipped => "Canary analysis was skipped, promotion finished.".into(),
            AlertEvent::ProgressDeadlineExceeded { reason } => {
                format!("Progress deadline exceeded {reason}")
            }
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            AlertEvent::Initialized { .. }
            | AlertEvent::NewRevision
            | AlertEvent::Succeeded
            | AlertEvent::Skipped => Severity::Info,
            AlertEvent::WaitingForApproval
            | AlertEvent::TrafficIncreaseWaitingForApproval
            | AlertEvent::PromotionWaitingForApproval
            | AlertEvent::ManualRollback => Severity::Warn,
            AlertEvent::FailedChecksThreshold { .. }
            | AlertEvent::PromotionFailed { .. }
            | AlertEvent::ProgressDeadlineExceeded { .. } => Severity::Error,
        }
    }

    /// Whether Flagger attaches the canary metadata fields (Target, threshold, …).
    pub fn with_metadata(&self) -> bool {
        matches!(
            self,
            AlertEvent::Initialized { .. } | AlertEvent::NewRevision
        )
    }
}

/// The canary settings shown in alerts. Plain values: the caller reads them from the Canary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertMetadata {
    /// `spec.targetRef.kind` (`Deployment`, `DaemonSet`, `Service`).
    pub kind: String,
    /// `spec.targetRef.name`.
    pub target: String,
    pub namespace: String,
    /// Effective `analysis.threshold` (1 when unset or ≤ 0).
    pub threshold: i64,
    /// Effective `spec.progressDeadlineSeconds` (600 when unset).
    pub progress_deadline_seconds: i64,
    /// `analysis.stepWeight` (0 or absent = unset).
    pub step_weight: Option<u32>,
    /// `analysis.stepWeights`.
    pub step_weights: Vec<u32>,
    /// `analysis.maxWeight` as written (absent = unset).
    pub max_weight: Option<u32>,
    /// Whether `analysis.match` is non-empty.
    pub has_match: bool,
    /// `analysis.iterations` (0 or absent = unset).
    pub iterations: Option<u32>,
}

impl AlertMetadata {
    /// `Traffic routing` value, or `None` when no strategy setting is present. Flagger's order:
    /// stepWeight, stepWeights, match, iterations.
    ///
    /// Deviation: Flagger prints the raw `maxWeight` (so `max: 0` when it is unset, and the
    /// ignored value with `stepWeights`); Serin prints the effective maximum: `maxWeight`
    /// (default 100) with `stepWeight`, `min(100, last step)` with `stepWeights`.
    pub fn traffic_routing(&self) -> Option<String> {
        let step_weight = self.step_weight.filter(|w| *w > 0);
        if let Some(step) = step_weight {
            let max = self.max_weight.filter(|m| *m > 0).unwrap_or(100);
            return Some(format!("Weight step: {step} max: {max}"));
        }
        if let Some(last) = self.step_weights.last() {
            let steps = self
                .step_weights
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let max = (*last).min(100);
            return Some(format!("Weight steps: {steps} max: {max}"));
        }
        if self.has_match {
            return Some("A/B Testing".to_owned());
        }
        if self.iterations.is_some_and(|i| i > 0) {
            return Some("Blue/Green".to_owned());
        }
        None
    }
}

/// The ordered alert fields: `Cluster` (when a cluster name is set, on every alert), then, when
/// `metadata` is given, `Target` = `<Kind>/<target>.<ns>`, `Failed checks threshold`,
/// `Progress deadline` = `<n>s` and `Traffic routing` (when a strategy setting is present).
pub fn alert_fields(cluster_name: Option<&str>, metadata: Option<&AlertMetadata>) -> Vec<Field> {
    let mut fields = Vec::new();
    if let Some(cluster) = cluster_name.filter(|c| !c.is_empty()) {
        fields.push(Field::new("Cluster", cluster));
    }
    if let Some(m) = metadata {
        fields.push(Field::new(
            "Target",
            format!("{}/{}.{}", m.kind, m.target, m.namespace),
        ));
        fields.push(Field::new(
            "Failed checks threshold",
            m.threshold.to_string(),
        ));
        fields.push(Field::new(
            "Progress deadline",
            format!("{}s", m.progress_deadline_seconds),
        ));
        if let Some(routing) = m.traffic_routing() {
            fields.push(Field::new("Traffic routing", routing));
        }
    }
    fields
}

impl Alert {
    /// The alert Flagger sends for `event` about canary `<canary>.<namespace>`: message,
    /// severity and fields (`metadata` is attached only for events that carry it).
    pub fn for_event(
        canary: &str,
        namespace: &str,
        event: &AlertEvent,
        cluster_name: Option<&str>,
        metadata: &AlertMetadata,
    ) -> Alert {
        let metadata = event.with_metadata().then_some(metadata);
        Alert {
            canary: canary.to_owned(),
            namespace: namespace.to_owned(),
            message: event.message(),
            fields: alert_fields(cluster_name, metadata),
            severity: event.severity(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn meta() -> AlertMetadata {
        AlertMetadata {
            kind: "Deployment".into(),
            target: "podinfo".into(),
            namespace: "test".into(),
            threshold: 5,
            progress_deadline_seconds: 60,
            ..Default::default()
        }
    }

    fn pairs(fields: &[Field]) -> Vec<(&str, &str)> {
        fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
            .collect()
    }

    #[test]
    fn fields_in_flagger_order() {
        let m = AlertMetadata {
            step_weight: Some(10),
            max_weight: Some(50),
            ..meta()
        };
        assert_eq!(
            pairs(&alert_fields(Some("prod-eu"), Some(&m))),
            [
                ("Cluster", "prod-eu"),
                ("Target", "Deployment/podinfo.test"),
                ("Failed checks threshold", "5"),
                ("Progress deadline", "60s"),
                ("Traffic routing", "Weight step: 10 max: 50"),
            ]
        );
        // Without a cluster name and without metadata: no fields at all.
        assert!(alert_fields(None, None).is_empty());
        assert!(alert_fields(Some(""), None).is_empty());
        assert_eq!(pairs(&alert_fields(Some("c"), None)), [("Cluster", "c")]);
    }

    #[test]
    fn traffic_routing_variants() {
        let cases = [
            (
                AlertMetadata {
                    step_weight: Some(5),
                    ..meta()
                },
                Some("Weight step: 5 max: 100"),
            ),
            (
                AlertMetadata {
                    step_weights: vec![1, 5, 10, 80],
                    max_weight: Some(30),
                    ..meta()
                },
                Some("Weight steps: 1,5,10,80 max: 80"),
            ),
            (
                AlertMetadata {
                    has_match: true,
                    iterations: Some(10),
                    ..meta()
                },
                Some("A/B Testing"),
            ),
            (
                AlertMetadata {
                    iterations: Some(10),
                    ..meta()
                },
                Some("Blue/Green"),
            ),
            (
                AlertMetadata {
                    step_weight: Some(0),
                    iterations: Some(0),
                    ..meta()
                },
                None,
            ),
        ];
        for (m, want) in cases {
            assert_eq!(m.traffic_routing().as_deref(), want, "{m:?}");
        }
        // No routing field when nothing is set.
        assert_eq!(alert_fields(None, Some(&meta())).len(), 3);
    }

    #[test]
    fn events_have_flagger_messages_and_severities() {
        let cases = [
            (
                AlertEvent::Initialized {
                    kind: "Deployment".into(),
                },
                "New Deployment detected, initialization completed.",
                Severity::Info,
                true,
            ),
            (
                AlertEvent::NewRevision,
                "New revision detected, progressing canary analysis.",
                Severity::Info,
                true,
            ),
            (
                AlertEvent::WaitingForApproval,
                "Canary is waiting for approval.",
                Severity::Warn,
                false,
            ),
            (
                AlertEvent::TrafficIncreaseWaitingForApproval,
                "Canary traffic increase is waiting for approval.",
                Severity::Warn,
                false,
            ),
            (
                AlertEvent::PromotionWaitingForApproval,
                "Canary promotion is waiting for approval.",
                Severity::Warn,
                false,
            ),
            (
                AlertEvent::ManualRollback,
                "Rolling back manual webhook invoked",
                Severity::Warn,
                false,
            ),
            (
                AlertEvent::FailedChecksThreshold { failed_checks: 5 },
                "Failed checks threshold reached 5",
                Severity::Error,
                false,
            ),
            (
                AlertEvent::PromotionFailed {
                    reason: "deployment podinfo-primary.test not ready".into(),
                },
                "Promotion failed, primary not ready: deployment podinfo-primary.test not ready",
                Severity::Error,
                false,
            ),
            (
                AlertEvent::Succeeded,
                "Canary analysis completed successfully, promotion finished.",
                Severity::Info,
                false,
            ),
            (
                AlertEvent::Skipped,
                "Canary analysis was skipped, promotion finished.",
                Severity::Info,
                false,
            ),
            (
                AlertEvent::ProgressDeadlineExceeded {
                    reason: "timeout".into(),
                },
                "Progress deadline exceeded timeout",
                Severity::Error,
                false,
            ),
        ];
        for (event, message, severity, metadata) in cases {
            assert_eq!(event.message(), message);
            assert_eq!(event.severity(), severity, "{message}");
            assert_eq!(event.with_metadata(), metadata, "{message}");
            let alert = Alert::for_event("podinfo", "test", &event, Some("c1"), &meta());
            assert_eq!(alert.message, message);
            assert_eq!(alert.severity, severity);
            assert_eq!(alert.fields[0], Field::new("Cluster", "c1"));
            assert_eq!(
                alert.fields.len(),
                if metadata { 4 } else { 1 },
                "{message}"
            );
            assert_eq!(alert.subject(), "podinfo.test");
        }
    }
}
