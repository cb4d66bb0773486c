//! Status writers (Flagger's `SyncStatus`, `SetStatusPhase`, `SetStatusWeight`,
//! `SetStatusIterations`, `SetStatusFailedChecks`), the `Promoted` condition and revision
//! comparison (Flagger's `pkg/canary/status.go`, `ComputeHash` in `pkg/canary/spec.go` and
//! `hasCanaryRevisionChanged` in `pkg/controller/scheduler.go`).
//!
//! Every write sets `lastTransitionTime` to the current time truncated to whole seconds (the
//! precision the API server keeps), so the in-memory status equals the persisted one. That time
//! is the fence of the analysis clock: the next analysis step is due one interval after it.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::scheduler::{SchedulerError, Tick};
use crate::api::request::RequestOutcome;
use crate::api::status::{CanaryCondition, PROMOTED_CONDITION};
use crate::api::{CanaryPhase, CanaryStatus};
use crate::workload::Revision;

/// Flagger's `HasTargetChanged`: a never-synced status, or a hash different from the last
/// applied one, except that going back to the promoted revision is not a change (manual
/// rollback rule).
pub fn has_target_changed(status: &CanaryStatus, revision: &Revision) -> bool {
    let last_applied = status.last_applied_spec.as_deref().unwrap_or("");
    if last_applied.is_empty() {
        return true;
    }
    if status.last_promoted_spec.as_deref() == Some(revision.spec_hash.as_str()) {
        return false;
    }
    revision.spec_hash != last_applied
}

/// Flagger's `HaveDependenciesChanged`: the tracked ConfigMaps/Secrets differ from the status.
pub fn have_configs_changed(status: &CanaryStatus, revision: &Revision) -> bool {
    match &status.tracked_configs {
        None => !revision.tracked_configs.is_empty(),
        Some(tracked) => *tracked != revision.tracked_configs,
    }
}

/// The tracked config whose checksum differs from the status, as Flagger's log line names it
/// (`configmap podinfo-config` for the key `configmap/podinfo-config`): only when the status
/// tracks as many configs as the revision (Flagger's `HaveDependenciesChanged` reports other
/// changes without naming a config).
pub fn changed_config(status: &CanaryStatus, revision: &Revision) -> Option<String> {
    let tracked = status.tracked_configs.as_ref()?;
    if tracked.len() != revision.tracked_configs.len() {
        return None;
    }
    revision
        .tracked_configs
        .iter()
        .find(|(key, sum)| tracked.get(*key) != Some(*sum))
        .map(|(key, _)| key.replacen('/', " ", 1))
}

/// Whether `revision` is a new revision for the analysis (target or configs changed).
pub fn revision_changed(status: &CanaryStatus, revision: &Revision) -> bool {
    has_target_changed(status, revision) || have_configs_changed(status, revision)
}

/// Whether the status describes a different revision at all (ignoring the manual-rollback
/// rule): what a Failed canary refreshes without starting an analysis.
pub fn revision_differs(status: &CanaryStatus, revision: &Revision) -> bool {
    status.last_applied_spec.as_deref() != Some(revision.spec_hash.as_str())
        || have_configs_changed(status, revision)
}

/// `now` truncated to whole seconds.
pub fn whole_seconds(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// `from + duration`, saturating.
pub fn add(from: Timestamp, duration: Duration) -> Timestamp {
    from.saturating_add(duration).unwrap_or(from)
}

/// `to - from`, or `None` when `to` is before `from`.
pub fn elapsed(from: Timestamp, to: Timestamp) -> Option<Duration> {
    Duration::try_from(to.duration_since(from)).ok()
}

/// Sets the `Promoted` condition for `status.phase`: replaced only if its status or reason
/// changed; the transition time is kept while the status value stays the same.
pub fn set_promoted_condition(status: &mut CanaryStatus, kind: &str, now: Timestamp) {
    let (condition_status, message) = status.phase.promoted_condition(kind);
    let reason = status.phase.as_str().to_string();
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let current = conditions
        .iter()
        .position(|c| c.condition_type == PROMOTED_CONDITION);
    let time = Time(whole_seconds(now));
    let mut condition = CanaryCondition {
        condition_type: PROMOTED_CONDITION.to_string(),
        status: condition_status,
        last_update_time: Some(time.clone()),
        last_transition_time: Some(time),
        reason,
        message: Some(message),
    };
    match current {
        Some(i) => {
            let old = &conditions[i];
            if old.status == condition.status && old.reason == condition.reason {
                return;
            }
            if old.status == condition.status {
                condition.last_transition_time = old.last_transition_time.clone();
            }
            conditions[i] = condition;
        }
        None => conditions.push(condition),
    }
}

/// `SetStatusPhase`'s effect on the counters: weight and iterations are zeroed outside a run.
/// Unlike Flagger, `WaitingPromotion` keeps both (Flagger zeroes the weight although traffic
/// stays at the max weight, and sets iterations to N−1, which repeats the last iteration).
pub fn apply_phase(status: &mut CanaryStatus, phase: CanaryPhase) {
    status.phase = phase;
    // Finalising: all traffic is back on the primary.
    if !phase.is_running() || phase == CanaryPhase::Finalising {
        status.canary_weight = 0;
        status.iterations = 0;
    }
    if phase.is_settled() {
        status.last_promoted_spec = status.last_applied_spec.clone();
    }
}

/// `SyncStatus`'s effect: phase and counters, plus the revision identity.
pub fn apply_sync(
    status: &mut CanaryStatus,
    phase: CanaryPhase,
    weight: i32,
    iterations: i32,
    failed_checks: i32,
    revision: &Revision,
) {
    status.phase = phase;
    status.canary_weight = weight;
    status.iterations = iterations;
    status.failed_checks = failed_checks;
    status.comparison_held_since = None;
    // Serin: a run that starts, restarts or ends otherwise ends a promotion waiting at its gate.
    if let Some(r) = status.last_request.as_mut()
        && r.outcome == RequestOutcome::Waiting
    {
        r.outcome = RequestOutcome::Superseded;
    }
    status.last_applied_spec = Some(revision.spec_hash.clone());
    if phase == CanaryPhase::Initialized {
        status.last_promoted_spec = Some(revision.spec_hash.clone());
    }
    status.tracked_configs = if revision.tracked_configs.is_empty() {
        None
    } else {
        Some(revision.tracked_configs.clone())
    };
}

impl Tick<'_> {
    /// The working copy of the status.
    pub(super) fn status(&self) -> CanaryStatus {
        self.canary.status.clone().unwrap_or_default()
    }

    pub(super) fn phase(&self) -> CanaryPhase {
        self.canary
            .status
            .as_ref()
            .map(|s| s.phase)
            .unwrap_or_default()
    }

    /// Applies `change`, stamps the time and the condition, persists, and keeps the result as
    /// the working copy.
    pub(super) async fn write_status(
        &mut self,
        change: impl FnOnce(&mut CanaryStatus),
    ) -> Result<(), SchedulerError> {
        let mut status = self.status();
        change(&mut status);
        status.last_transition_time = Some(Time(whole_seconds(self.now)));
        set_promoted_condition(&mut status, &self.kind, self.now);
        let decision = self.store_record(&mut status);
        // The store is given the Canary as last stored: this one with the stored status in
        // place of the one the tick has been changing, swapped in for the call rather than a
        // copy of the whole object (its spec and managed fields) made for each write.
        let changing = std::mem::replace(&mut self.canary.status, self.stored.clone());
        let written = self.s.ports.store.write_status(&self.canary, &status).await;
        self.canary.status = changing;
        if let Some(written) = written? {
            // What the next write is compared with and conditioned on.
            self.stored = written.status;
            self.canary.metadata.resource_version = written.metadata.resource_version;
            self.canary.metadata.managed_fields = written.metadata.managed_fields;
        }
        self.canary.status = Some(status);
        self.wrote = true;
        if let Some(decision) = decision {
            self.s
                .ports
                .recorder
                .record_decision(&self.canary, &decision);
        }
        Ok(())
    }

    /// `SyncStatus`: phase and counters, and the current revision identity.
    pub(super) async fn sync_status(
        &mut self,
        phase: CanaryPhase,
        weight: i32,
        iterations: i32,
        failed_checks: i32,
        revision: &Revision,
    ) -> Result<(), SchedulerError> {
        self.write_status(|s| apply_sync(s, phase, weight, iterations, failed_checks, revision))
            .await
    }

    pub(super) async fn set_phase(&mut self, phase: CanaryPhase) -> Result<(), SchedulerError> {
        self.write_status(|s| apply_phase(s, phase)).await
    }

    pub(super) async fn set_weight(&mut self, weight: i32) -> Result<(), SchedulerError> {
        self.write_status(|s| s.canary_weight = weight).await
    }

    /// `SetStatusIterations`; `weight` also records the canary weight when the iteration moved
    /// traffic (blue/green's last iteration).
    pub(super) async fn set_iterations(
        &mut self,
        iterations: i32,
        weight: Option<i32>,
    ) -> Result<(), SchedulerError> {
        self.write_status(|s| {
            s.iterations = iterations;
            if let Some(w) = weight {
                s.canary_weight = w;
            }
        })
        .await
    }

    pub(super) async fn set_failed_checks(&mut self, n: i32) -> Result<(), SchedulerError> {
        self.write_status(|s| s.failed_checks = n).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::status::ConditionStatus;

    fn rev(hash: &str, configs: &[(&str, &str)]) -> Revision {
        Revision {
            spec_hash: hash.into(),
            tracked_configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn target_change_rules() {
        let mut s = CanaryStatus::default();
        assert!(has_target_changed(&s, &rev("a", &[])), "never synced");
        s.last_applied_spec = Some("a".into());
        s.last_promoted_spec = Some("a".into());
        assert!(!has_target_changed(&s, &rev("a", &[])));
        assert!(has_target_changed(&s, &rev("b", &[])));
        s.last_applied_spec = Some("b".into());
        assert!(
            !has_target_changed(&s, &rev("a", &[])),
            "back to the promoted revision is a manual rollback"
        );
        assert!(revision_differs(&s, &rev("a", &[])));
    }

    #[test]
    fn changed_config_is_named_as_in_flaggers_log() {
        let mut s = CanaryStatus::default();
        let changed = rev("a", &[("configmap/podinfo-config", "2"), ("secret/s", "1")]);
        assert_eq!(changed_config(&s, &changed), None, "nothing tracked yet");
        s.tracked_configs = Some(BTreeMap::from([
            ("configmap/podinfo-config".into(), "1".into()),
            ("secret/s".into(), "1".into()),
        ]));
        assert_eq!(
            changed_config(&s, &changed).as_deref(),
            Some("configmap podinfo-config")
        );
        assert_eq!(
            changed_config(
                &s,
                &rev("a", &[("configmap/podinfo-config", "1"), ("secret/s", "1")])
            ),
            None
        );
        assert_eq!(
            changed_config(&s, &rev("a", &[("secret/s", "1")])),
            None,
            "a config added or removed is not named"
        );
    }

    #[test]
    fn config_change_rules() {
        let mut s = CanaryStatus::default();
        assert!(!have_configs_changed(&s, &rev("a", &[])));
        assert!(have_configs_changed(&s, &rev("a", &[("configmap/x", "1")])));
        s.tracked_configs = Some(BTreeMap::from([("configmap/x".into(), "1".into())]));
        assert!(!have_configs_changed(
            &s,
            &rev("a", &[("configmap/x", "1")])
        ));
        assert!(have_configs_changed(&s, &rev("a", &[("configmap/x", "2")])));
        assert!(have_configs_changed(
            &s,
            &rev("a", &[("configmap/x", "1"), ("secret/y", "1")])
        ));
    }

    #[test]
    fn condition_keeps_transition_time_while_status_is_unchanged() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut s = CanaryStatus {
            phase: CanaryPhase::Progressing,
            ..Default::default()
        };
        set_promoted_condition(&mut s, "Deployment", t0);
        s.phase = CanaryPhase::Promoting;
        set_promoted_condition(&mut s, "Deployment", t1);
        let c = s.promoted_condition().unwrap();
        assert_eq!(c.reason, "Promoting");
        assert_eq!(c.status, ConditionStatus::Unknown);
        assert_eq!(c.last_transition_time, Some(Time(t0)));
        assert_eq!(c.last_update_time, Some(Time(t1)));
        s.phase = CanaryPhase::Succeeded;
        set_promoted_condition(&mut s, "Deployment", t1);
        let c = s.promoted_condition().unwrap();
        assert_eq!(c.status, ConditionStatus::True);
        assert_eq!(c.last_transition_time, Some(Time(t1)));
        assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn phase_counters() {
        let mut s = CanaryStatus {
            phase: CanaryPhase::Progressing,
            canary_weight: 50,
            iterations: 3,
            last_applied_spec: Some("b".into()),
            last_promoted_spec: Some("a".into()),
            ..Default::default()
        };
        apply_phase(&mut s, CanaryPhase::WaitingPromotion);
        assert_eq!((s.canary_weight, s.iterations), (50, 3));
        apply_phase(&mut s, CanaryPhase::Promoting);
        assert_eq!((s.canary_weight, s.iterations), (50, 3));
        apply_phase(&mut s, CanaryPhase::Finalising);
        assert_eq!((s.canary_weight, s.iterations), (0, 0));
        assert_eq!(s.last_promoted_spec.as_deref(), Some("a"));
        apply_phase(&mut s, CanaryPhase::Succeeded);
        assert_eq!(s.last_promoted_spec.as_deref(), Some("b"));
    }
}
