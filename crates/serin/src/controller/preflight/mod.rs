//! Serin's query pre-flight in the run (docs/operations.md, "Query pre-flight"): at
//! initialisation and before the first traffic step of a run, every metric query is run once for
//! the primary ([`crate::metrics::preflight`]). The result is the `MetricsReady` condition. While
//! a query errors or returns no series, the run holds at weight 0 (no iteration, no failed
//! check; the next attempt one interval later, like any held step) and, one progress deadline
//! after the first failure, rolls back as a progress deadline does.
//!
//! The hold starts at the condition's `lastTransitionTime` (False since), a field Flagger's
//! CRDs keep, so a restarted controller resumes the same deadline.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::alerts::Cause;
use super::scheduler::{Backends, SchedulerError, Tick};
use super::status::whole_seconds;
use crate::api::decision::{CheckRecord, Verdict as CheckVerdict};
use crate::api::status::{CanaryCondition, ConditionStatus, METRICS_READY_CONDITION};
use crate::api::{Canary, CanaryStatus, Provider};
use crate::metrics::compare::hold_expired;
use crate::metrics::preflight::Finding;

/// The condition's reason when every query answers.
pub const ANSWERED_REASON: &str = "QueriesAnswered";
/// The condition's reason from the start of a run until its pre-flight.
pub const PENDING_REASON: &str = "Pending";
const ANSWERED_MESSAGE: &str = "every metric query answers for the primary";
const PENDING_MESSAGE: &str =
    "the metric queries are run for the primary before the first traffic step";

/// Whether the canary gets a pre-flight: it has metrics, runs its analysis, did not opt out
/// (`analysis.preflight: false`), and has a primary (Knative canaries have none).
pub fn applies(canary: &Canary, provider: &Provider) -> bool {
    !canary.spec.skip_analysis()
        && *provider != Provider::Knative
        && canary
            .spec
            .analysis()
            .is_some_and(|a| a.preflight() && !a.metrics().is_empty())
}

/// What the run does after a pre-flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every query answers: the condition turns True, the run goes on.
    Proceed,
    /// A query does not answer: hold at weight 0. `announce`: the failure is new (or another
    /// one than last time), so it gets its Warning event.
    Hold { announce: bool },
    /// Still failing one progress deadline after the first failure: roll back.
    Expired,
}

/// Decides from the pre-flight's failure message (`None`: every query answered), the current
/// `MetricsReady` condition, `progressDeadlineSeconds` and the time.
pub fn decide(
    failure: Option<&str>,
    current: Option<&CanaryCondition>,
    deadline_seconds: i32,
    now: Timestamp,
) -> Verdict {
    let Some(message) = failure else {
        return Verdict::Proceed;
    };
    let failing = current.filter(|c| c.status == ConditionStatus::False);
    let Some(since) = failing.and_then(|c| c.last_transition_time.as_ref()) else {
        return Verdict::Hold { announce: true };
    };
    if hold_expired(since.0, deadline_seconds, now) {
        return Verdict::Expired;
    }
    Verdict::Hold {
        announce: failing.and_then(|c| c.message.as_deref()) != Some(message),
    }
}

/// Sets the `MetricsReady` condition; the transition time is kept while its status stays the
/// same, nothing changes when status, reason and message are the same.
pub fn set_condition(
    status: &mut CanaryStatus,
    value: ConditionStatus,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let time = Time(whole_seconds(now));
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let mut condition = CanaryCondition {
        condition_type: METRICS_READY_CONDITION.to_string(),
        status: value,
        last_update_time: Some(time.clone()),
        last_transition_time: Some(time),
        reason: reason.to_string(),
        message: Some(message.to_string()),
    };
    match conditions
        .iter_mut()
        .find(|c| c.condition_type == METRICS_READY_CONDITION)
    {
        Some(old) => {
            if old.status == value && old.reason == reason && old.message == condition.message {
                return;
            }
            if old.status == value {
                condition.last_transition_time = old.last_transition_time.clone();
            }
            *old = condition;
        }
        None => conditions.push(condition),
    }
}

/// The condition for a pre-flight result.
fn record(status: &mut CanaryStatus, found: Option<(&Finding, &str)>, now: Timestamp) {
    match found {
        None => set_condition(
            status,
            ConditionStatus::True,
            ANSWERED_REASON,
            ANSWERED_MESSAGE,
            now,
        ),
        Some((f, message)) => set_condition(
            status,
            ConditionStatus::False,
            f.problem.reason(),
            message,
            now,
        ),
    }
}

impl Tick<'_> {
    fn preflight_applies(&self) -> bool {
        applies(&self.canary, &self.provider)
    }

    /// The text of a failed pre-flight: the finding, and what the run does about it.
    fn hold_message(&self, f: &Finding) -> String {
        format!(
            "{}; the canary gets no traffic until every query answers (progress deadline {}s)",
            f.message(),
            self.canary.spec.progress_deadline_seconds()
        )
    }

    /// At initialisation: the pre-flight's result goes into the working status (written by
    /// the `Initialized` write); returns the Warning to record after the initialisation
    /// events when a query does not answer.
    pub(super) async fn init_preflight(&mut self) -> Option<String> {
        if !self.preflight_applies() {
            return None;
        }
        let found = self.s.ports.metrics.preflight(&self.canary).await.err();
        let message = found.as_ref().map(|f| self.hold_message(f));
        let mut status = self.status();
        let found = found.as_ref().zip(message.as_deref());
        record(&mut status, found, self.now);
        self.canary.status = Some(status);
        message
    }

    /// At the start of a run (working status, written by the `Progressing` write): the
    /// condition waits for this run's pre-flight.
    pub(super) fn reset_preflight(&mut self) {
        if !self.preflight_applies() {
            return;
        }
        let mut status = self.status();
        set_condition(
            &mut status,
            ConditionStatus::Unknown,
            PENDING_REASON,
            PENDING_MESSAGE,
            self.now,
        );
        self.canary.status = Some(status);
    }

    /// Before the first traffic step: whether the run may take it. Runs the pre-flight unless
    /// this run's already passed; on failure holds (status written, Warning once per
    /// finding) or, after the progress deadline, rolls back.
    pub(super) async fn preflight_allows(&mut self, b: &Backends) -> Result<bool, SchedulerError> {
        if !self.preflight_applies() {
            return Ok(true);
        }
        let mut status = self.status();
        let current = status.condition(METRICS_READY_CONDITION).cloned();
        if current
            .as_ref()
            .is_some_and(|c| c.status == ConditionStatus::True)
        {
            return Ok(true);
        }
        let found = self.s.ports.metrics.preflight(&self.canary).await.err();
        let message = found.as_ref().map(|f| self.hold_message(f));
        let deadline = self.canary.spec.progress_deadline_seconds();
        let now = self.now;
        let found = found.as_ref().zip(message.as_deref());
        match decide(message.as_deref(), current.as_ref(), deadline, now) {
            Verdict::Proceed => {
                record(&mut status, None, now);
                self.canary.status = Some(status);
                Ok(true)
            }
            Verdict::Hold { announce } => {
                if let Some((f, _)) = found {
                    self.record_checks(&[CheckRecord {
                        name: f.metric.clone(),
                        provider: f.provider.clone(),
                        query: f.query.clone(),
                        verdict: CheckVerdict::Held,
                        message: Some(f.message()),
                        ..Default::default()
                    }]);
                }
                self.write_status(|s| record(s, found, now)).await?;
                if announce && let Some(m) = &message {
                    self.warn(m).await;
                }
                Ok(false)
            }
            Verdict::Expired => {
                let reason = format!(
                    "the query pre-flight still fails after the progress deadline: {}",
                    found.map(|(f, _)| f.message()).unwrap_or_default()
                );
                self.warn(&reason).await;
                self.rollback(b, Cause::ProgressDeadline(&reason)).await?;
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests;
