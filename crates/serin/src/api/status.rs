//! `status` of a Canary: phase, counters, revision hashes and the `Promoted` condition.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The analysis phase (`status.phase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CanaryPhase {
    /// Not yet seen by the controller.
    #[default]
    #[serde(rename = "")]
    Empty,
    Initializing,
    Initialized,
    Waiting,
    Progressing,
    WaitingPromotion,
    Promoting,
    Finalising,
    Succeeded,
    Failed,
    Terminating,
    Terminated,
}

impl CanaryPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryPhase::Empty => "",
            CanaryPhase::Initializing => "Initializing",
            CanaryPhase::Initialized => "Initialized",
            CanaryPhase::Waiting => "Waiting",
            CanaryPhase::Progressing => "Progressing",
            CanaryPhase::WaitingPromotion => "WaitingPromotion",
            CanaryPhase::Promoting => "Promoting",
            CanaryPhase::Finalising => "Finalising",
            CanaryPhase::Succeeded => "Succeeded",
            CanaryPhase::Failed => "Failed",
            CanaryPhase::Terminating => "Terminating",
            CanaryPhase::Terminated => "Terminated",
        }
    }

    /// Phases in which a run is under way: analysis steps are due once per interval. A run
    /// waits at its confirm-rollout gate ([`CanaryPhase::Waiting`]), then
    /// [`is_started`](Self::is_started).
    pub fn is_running(self) -> bool {
        self == CanaryPhase::Waiting || self.is_started()
    }

    /// Phases of a run past its confirm-rollout gate: analysing or promoting.
    pub fn is_started(self) -> bool {
        self.is_analysing() || self.is_promoting()
    }

    /// Phases in which the canary is analysed: steps, failed-check threshold, rollback hooks,
    /// and a new revision restarts the analysis.
    pub fn is_analysing(self) -> bool {
        matches!(
            self,
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
        )
    }

    /// Phases after the analysis, while the primary takes over: the primary runs the new
    /// revision, so a broken primary is a failed promotion, not a rollback.
    pub fn is_promoting(self) -> bool {
        matches!(self, CanaryPhase::Promoting | CanaryPhase::Finalising)
    }

    /// Phases before the controller set up the primary.
    pub fn is_initializing(self) -> bool {
        matches!(self, CanaryPhase::Empty | CanaryPhase::Initializing)
    }

    /// Phases at rest with the primary promoted: the applied revision is the promoted one.
    pub fn is_settled(self) -> bool {
        matches!(self, CanaryPhase::Initialized | CanaryPhase::Succeeded)
    }

    /// The value of Flagger's `flagger_canary_status` gauge: 0 Progressing, 2 Failed, 1 otherwise.
    pub fn status_gauge(self) -> i64 {
        match self {
            CanaryPhase::Progressing => 0,
            CanaryPhase::Failed => 2,
            _ => 1,
        }
    }

    /// The `Promoted` condition's status and message for this phase (`kind` is the target kind).
    pub fn promoted_condition(self, kind: &str) -> (ConditionStatus, String) {
        use ConditionStatus::{False, True, Unknown};
        match self {
            CanaryPhase::Initialized => (True, format!("{kind} initialization completed.")),
            CanaryPhase::Waiting | CanaryPhase::WaitingPromotion => {
                (Unknown, "Waiting for approval.".to_string())
            }
            CanaryPhase::Progressing => (
                Unknown,
                "New revision detected, progressing canary analysis.".to_string(),
            ),
            CanaryPhase::Promoting => (
                Unknown,
                "Canary analysis completed, starting primary rolling update.".to_string(),
            ),
            CanaryPhase::Finalising => (
                Unknown,
                "Canary analysis completed, routing all traffic to primary.".to_string(),
            ),
            CanaryPhase::Succeeded => (
                True,
                "Canary analysis completed successfully, promotion finished.".to_string(),
            ),
            CanaryPhase::Failed => (
                False,
                format!("Canary analysis failed, {kind} scaled to zero."),
            ),
            CanaryPhase::Terminating => (
                Unknown,
                "Canary is being deleted, reverting the target.".to_string(),
            ),
            CanaryPhase::Terminated => (Unknown, "Canary deleted, target reverted.".to_string()),
            CanaryPhase::Empty | CanaryPhase::Initializing => (
                Unknown,
                format!("New {kind} detected, starting initialization."),
            ),
        }
    }
}

impl fmt::Display for CanaryPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

/// The only condition type Flagger writes.
pub const PROMOTED_CONDITION: &str = "Promoted";

/// Serin's condition: whether every metric query of the analysis answers for the primary (the
/// query pre-flight, docs/operations.md).
pub const METRICS_READY_CONDITION: &str = "MetricsReady";

/// `status.conditions[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryCondition {
    /// Type of this condition (`Promoted`; Serin also writes `MetricsReady`).
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The phase that set this condition (`MetricsReady`: what the query pre-flight found).
    #[serde(default)]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `status` of a Canary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// Analysis phase of this canary.
    #[serde(default)]
    pub phase: CanaryPhase,
    /// Failed checks of the current run.
    #[serde(default)]
    pub failed_checks: i32,
    /// Traffic weight routed to the canary.
    #[serde(default)]
    pub canary_weight: i32,
    /// Iterations of the current run (A/B testing, blue/green).
    #[serde(default)]
    pub iterations: i32,
    /// Session affinity cookie of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_cookie: Option<String>,
    /// Primary session affinity cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_session_affinity_cookie: Option<String>,
    /// Session affinity cookie of the previous run (expired on clients at the next run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_affinity_cookie: Option<String>,
    /// Checksums of the ConfigMaps and Secrets the target uses (`configmap/<name>`,
    /// `secret/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked_configs: Option<BTreeMap<String, String>>,
    /// Hash of the target revision at the last status sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,
    /// Hash of the revision last promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,
    /// Change fence of the canary target (kept for compatibility; not used by Serin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tracked_revision: Option<String>,
    /// Time of the last status write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Status conditions (`Promoted`; Serin's `MetricsReady`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<CanaryCondition>>,
    /// Serin only: the decision record of the last analysis ticks (docs/operations.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<super::decision::Decision>>,
    /// Serin: when the current step began holding on inconclusive comparisons (too few
    /// samples); cleared once the step is judged. Flagger's CRDs drop it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison_held_since: Option<Time>,
    /// Serin only: the last `kubectl serin` request the controller handled (promote, abort,
    /// retry, resume), so that none is applied twice. Flagger's CRDs drop it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request: Option<super::request::HandledRequest>,
    /// Serin only: set while the canary is paused (`kubectl serin pause`). Flagger's CRDs
    /// drop it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<super::request::PauseStatus>,
}

impl CanaryStatus {
    /// The `Promoted` condition, if any.
    pub fn promoted_condition(&self) -> Option<&CanaryCondition> {
        self.condition(PROMOTED_CONDITION)
    }

    /// The condition of type `condition_type`, if any.
    pub fn condition(&self, condition_type: &str) -> Option<&CanaryCondition> {
        self.conditions
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .find(|c| c.condition_type == condition_type)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn phase_sets() {
        use CanaryPhase as P;
        // phase: running, started, analysing, promoting, initializing, settled
        let table = [
            (P::Empty, [false, false, false, false, true, false]),
            (P::Initializing, [false, false, false, false, true, false]),
            (P::Initialized, [false, false, false, false, false, true]),
            (P::Waiting, [true, false, false, false, false, false]),
            (P::Progressing, [true, true, true, false, false, false]),
            (P::WaitingPromotion, [true, true, true, false, false, false]),
            (P::Promoting, [true, true, false, true, false, false]),
            (P::Finalising, [true, true, false, true, false, false]),
            (P::Succeeded, [false, false, false, false, false, true]),
            (P::Failed, [false, false, false, false, false, false]),
            (P::Terminating, [false, false, false, false, false, false]),
            (P::Terminated, [false, false, false, false, false, false]),
        ];
        for (phase, sets) in table {
            let got = [
                phase.is_running(),
                phase.is_started(),
                phase.is_analysing(),
                phase.is_promoting(),
                phase.is_initializing(),
                phase.is_settled(),
            ];
            assert_eq!(got, sets, "{phase:?}");
        }
    }

    #[test]
    fn phases_serialize_as_flagger_writes_them() {
        assert_eq!(
            serde_json::to_value(CanaryPhase::Empty).unwrap(),
            serde_json::json!("")
        );
        assert_eq!(
            serde_json::to_value(CanaryPhase::WaitingPromotion).unwrap(),
            serde_json::json!("WaitingPromotion")
        );
        let status: CanaryStatus =
            serde_json::from_value(serde_json::json!({"phase": "Finalising"})).unwrap();
        assert_eq!(status.phase, CanaryPhase::Finalising);
    }

    #[test]
    fn counters_are_always_written() {
        let v = serde_json::to_value(CanaryStatus::default()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"phase": "", "failedChecks": 0, "canaryWeight": 0, "iterations": 0})
        );
    }

    #[test]
    fn condition_texts() {
        assert_eq!(
            CanaryPhase::Initialized.promoted_condition("Deployment"),
            (
                ConditionStatus::True,
                "Deployment initialization completed.".to_string()
            )
        );
        assert_eq!(
            CanaryPhase::Failed.promoted_condition("DaemonSet").1,
            "Canary analysis failed, DaemonSet scaled to zero."
        );
    }
}
