//! Building the decision record (`status.decisions`, [`crate::api::decision`]): a [`Draft`]
//! collects what one analysis tick saw (metric checks, webhook answers) and, at each status
//! write of the tick, turns the status before and after into the tick's [`Decision`]. All pure:
//! the scheduler feeds it, the status store persists the result.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::scheduler::Tick;
use super::status::whole_seconds;
use super::webhook::{HookResponse, WebhookError};
use crate::api::analysis::CanaryAnalysis;
use crate::api::decision::{
    CheckRecord, Decision, DecisionStep, MAX_DECISIONS, MAX_ENTRIES, MAX_RECORD_BYTES, StepAction,
    WebhookRecord, clean_message,
};
use crate::api::request::{RequestAction, RequestOutcome};
use crate::api::{CanaryPhase, CanaryStatus, CanaryWebhook};

/// What one tick has seen so far.
#[derive(Clone, Debug)]
pub struct Draft {
    at: Timestamp,
    before: CanaryStatus,
    checks: Vec<CheckRecord>,
    webhooks: Vec<WebhookRecord>,
    /// Whether a status write of this tick already holds the tick's entry (later writes
    /// replace it).
    stored: bool,
}

impl Draft {
    /// A tick at `at` starting from `before`.
    pub fn new(at: Timestamp, before: CanaryStatus) -> Self {
        Self {
            at,
            before,
            checks: Vec::new(),
            webhooks: Vec::new(),
            stored: false,
        }
    }

    /// The metric checks of the tick.
    pub fn checks(&mut self, checks: Vec<CheckRecord>) {
        self.checks = checks;
        self.checks.truncate(MAX_ENTRIES);
    }

    /// One webhook call and its answer. Neither the URL nor the metadata is kept; metadata
    /// values quoted in the answer are redacted.
    pub fn webhook(&mut self, hook: &CanaryWebhook, answer: &Result<HookResponse, WebhookError>) {
        if self.webhooks.len() >= MAX_ENTRIES {
            return;
        }
        let secrets: Vec<&str> = hook
            .metadata
            .iter()
            .flatten()
            .map(|(_, v)| v.as_str())
            .collect();
        let hook_type = match hook.hook_type() {
            Ok(t) => t.as_str().to_string(),
            Err(_) => hook.hook_type.clone().unwrap_or_default(),
        };
        let (status_code, ok, text) = match answer {
            Ok(r) => (Some(r.status), true, r.body.clone()),
            Err(WebhookError::Rejected { status, message }) => {
                (Some(*status), false, message.clone())
            }
            Err(e) => (None, false, e.to_string()),
        };
        let message = Some(clean_message(&text, &secrets)).filter(|m| !m.is_empty());
        self.webhooks.push(WebhookRecord {
            name: hook.name.clone(),
            hook_type,
            status_code,
            ok,
            message,
        });
    }

    /// Puts the tick's entry into `after` (the status about to be written): appended the first
    /// time, replaced by later writes of the same tick; the list stays bounded.
    pub fn store(&mut self, after: &mut CanaryStatus, analysis: &CanaryAnalysis) -> Decision {
        let decision = Decision {
            time: Time(whole_seconds(self.at)),
            phase: after.phase,
            canary_weight: after.canary_weight,
            iterations: after.iterations,
            failed_checks: after.failed_checks,
            checks: self.checks.clone(),
            webhooks: self.webhooks.clone(),
            step: step_between(&self.before, after, analysis),
        };
        let list = after.decisions.get_or_insert_with(Vec::new);
        if self.stored && !list.is_empty() {
            list.pop();
        }
        list.push(decision.clone());
        bound(list);
        self.stored = true;
        decision
    }
}

/// Drops the oldest entries beyond [`MAX_DECISIONS`] or [`MAX_RECORD_BYTES`] (the newest entry
/// always stays).
pub fn bound(list: &mut Vec<Decision>) {
    if list.len() > MAX_DECISIONS {
        list.drain(..list.len() - MAX_DECISIONS);
    }
    while list.len() > 1 && serde_json::to_vec(list).map_or(0, |v| v.len()) > MAX_RECORD_BYTES {
        list.remove(0);
    }
}

/// The step from `before` to `after`, by what changed (phase first, then the counters).
pub fn step_between(
    before: &CanaryStatus,
    after: &CanaryStatus,
    analysis: &CanaryAnalysis,
) -> DecisionStep {
    let step = |action, summary: String| DecisionStep { action, summary };
    let (w0, w1) = (before.canary_weight, after.canary_weight);
    if let Some(asked) = requested_step(before, after) {
        return asked;
    }
    if after.phase != before.phase {
        match after.phase {
            CanaryPhase::Failed => {
                let failed = before.failed_checks.max(after.failed_checks);
                let summary = if failed >= analysis.threshold() {
                    format!(
                        "rolled back after {failed} failed check(s): all traffic to the primary"
                    )
                } else {
                    // A progress deadline, a rollback webhook or a failed promotion: the
                    // events say which.
                    format!("rolled back: canary weight {w0} → {w1}")
                };
                return step(StepAction::Rollback, summary);
            }
            CanaryPhase::WaitingPromotion => {
                return step(
                    StepAction::WaitPromotion,
                    "analysis passed, waiting for confirm-promotion".to_string(),
                );
            }
            CanaryPhase::Promoting => {
                return step(
                    StepAction::Promote,
                    "analysis passed: copying the canary to the primary".to_string(),
                );
            }
            CanaryPhase::Finalising => {
                return step(
                    StepAction::Finalise,
                    "all traffic on the primary, scaling the canary down".to_string(),
                );
            }
            CanaryPhase::Succeeded => {
                return step(StepAction::Succeed, "promotion finished".to_string());
            }
            _ => {}
        }
    }
    if after.failed_checks > before.failed_checks {
        return step(
            StepAction::FailedCheck,
            format!(
                "failed checks {} → {} (rollback at {})",
                before.failed_checks,
                after.failed_checks,
                analysis.threshold()
            ),
        );
    }
    if after.phase == CanaryPhase::Promoting && w1 != w0 {
        return step(
            StepAction::ShiftToPrimary,
            format!("primary weight {} → {}", 100 - w0, 100 - w1),
        );
    }
    if w1 > w0 {
        return step(
            StepAction::Advance,
            format!("canary weight {w0} → {w1} (max {})", analysis.max_weight()),
        );
    }
    if after.iterations > before.iterations {
        return step(
            StepAction::Iterate,
            format!(
                "iteration {} → {} of {}",
                before.iterations,
                after.iterations,
                analysis.iterations()
            ),
        );
    }
    step(StepAction::Hold, format!("held at canary weight {w1}"))
}

/// Serin: the step of a tick that carried out a `kubectl serin` promote or abort (the request
/// recorded in `status.lastRequest` by this tick).
fn requested_step(before: &CanaryStatus, after: &CanaryStatus) -> Option<DecisionStep> {
    let r = after.last_request.as_ref()?;
    if before.last_request.as_ref() == Some(r) {
        return None;
    }
    let by = if r.by.is_empty() {
        "an unnamed user"
    } else {
        &r.by
    };
    let asked = |what: &str| format!("{what} requested by {by} via kubectl serin");
    let (action, summary) = match (r.action?, r.outcome, after.phase) {
        (RequestAction::Promote, RequestOutcome::Done, CanaryPhase::Promoting) => (
            StepAction::Promote,
            format!("{}: copying the canary to the primary", asked("promotion")),
        ),
        (RequestAction::Promote, RequestOutcome::Waiting, _) => (
            StepAction::WaitPromotion,
            format!("{}, waiting for confirm-promotion", asked("promotion")),
        ),
        (RequestAction::Abort, RequestOutcome::Done, CanaryPhase::Failed) => (
            StepAction::Rollback,
            format!("rolled back: {}", asked("abort")),
        ),
        _ => return None,
    };
    Some(DecisionStep { action, summary })
}

/// The tick's side: the scheduler starts a draft once a tick decides a step, and feeds it.
impl Tick<'_> {
    fn draft(&self) -> std::sync::MutexGuard<'_, Option<Draft>> {
        self.draft.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts recording this tick.
    pub(super) fn start_record(&self) {
        *self.draft() = Some(Draft::new(self.now, self.status()));
    }

    pub(super) fn record_webhook(
        &self,
        hook: &CanaryWebhook,
        answer: &Result<HookResponse, WebhookError>,
    ) {
        if let Some(d) = self.draft().as_mut() {
            d.webhook(hook, answer);
        }
    }

    pub(super) fn record_checks(&self, checks: &[CheckRecord]) {
        if let Some(d) = self.draft().as_mut() {
            d.checks(checks.to_vec());
        }
    }

    /// Puts the tick's entry into `status` (about to be written), if the tick is recorded.
    pub(super) fn store_record(&self, status: &mut CanaryStatus) -> Option<Decision> {
        let analysis = self.analysis();
        self.draft().as_mut().map(|d| d.store(status, &analysis))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn status(phase: CanaryPhase, weight: i32, iterations: i32, failed: i32) -> CanaryStatus {
        CanaryStatus {
            phase,
            canary_weight: weight,
            iterations,
            failed_checks: failed,
            ..Default::default()
        }
    }

    fn analysis() -> CanaryAnalysis {
        serde_json::from_value(serde_json::json!({
            "threshold": 3, "maxWeight": 50, "stepWeight": 10, "iterations": 4
        }))
        .unwrap()
    }

    #[test]
    fn steps_follow_what_changed() {
        use CanaryPhase::*;
        let a = analysis();
        let cases = [
            (
                status(Progressing, 10, 0, 0),
                status(Progressing, 20, 0, 0),
                StepAction::Advance,
                "canary weight 10 → 20 (max 50)",
            ),
            (
                status(Progressing, 0, 1, 0),
                status(Progressing, 0, 2, 0),
                StepAction::Iterate,
                "iteration 1 → 2 of 4",
            ),
            (
                status(Progressing, 20, 0, 1),
                status(Progressing, 20, 0, 2),
                StepAction::FailedCheck,
                "failed checks 1 → 2 (rollback at 3)",
            ),
            (
                status(Progressing, 20, 0, 3),
                status(Failed, 0, 0, 0),
                StepAction::Rollback,
                "rolled back after 3 failed check(s): all traffic to the primary",
            ),
            (
                status(Progressing, 30, 0, 1),
                status(Failed, 0, 0, 0),
                StepAction::Rollback,
                "rolled back: canary weight 30 → 0",
            ),
            (
                status(Progressing, 50, 0, 0),
                status(Promoting, 50, 0, 0),
                StepAction::Promote,
                "analysis passed: copying the canary to the primary",
            ),
            (
                status(Promoting, 50, 0, 0),
                status(Promoting, 30, 0, 0),
                StepAction::ShiftToPrimary,
                "primary weight 50 → 70",
            ),
            (
                status(Promoting, 10, 0, 0),
                status(Finalising, 0, 0, 0),
                StepAction::Finalise,
                "all traffic on the primary, scaling the canary down",
            ),
            (
                status(Progressing, 20, 0, 0),
                status(Progressing, 20, 0, 0),
                StepAction::Hold,
                "held at canary weight 20",
            ),
        ];
        for (before, after, action, summary) in cases {
            let step = step_between(&before, &after, &a);
            assert_eq!(
                (step.action, step.summary.as_str()),
                (action, summary),
                "{before:?} → {after:?}"
            );
        }
    }

    #[test]
    fn later_writes_of_a_tick_replace_its_entry() {
        let a = analysis();
        let t = Timestamp::from_second(1_000).unwrap();
        let mut d = Draft::new(t, status(CanaryPhase::Progressing, 40, 0, 0));
        let mut after = status(CanaryPhase::Progressing, 50, 0, 0);
        d.store(&mut after, &a);
        after.phase = CanaryPhase::Promoting;
        let decision = d.store(&mut after, &a);
        let list = after.decisions.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0], decision);
        assert_eq!(decision.step.action, StepAction::Promote);
    }

    #[test]
    fn the_record_stays_within_its_byte_budget() {
        let big = CheckRecord {
            name: "x".into(),
            query: Some("q".repeat(crate::api::decision::MAX_QUERY_CHARS)),
            ..Default::default()
        };
        let decision = Decision {
            time: Time(Timestamp::UNIX_EPOCH),
            phase: CanaryPhase::Progressing,
            canary_weight: 0,
            iterations: 0,
            failed_checks: 0,
            checks: vec![big; MAX_ENTRIES],
            webhooks: Vec::new(),
            step: DecisionStep::default(),
        };
        let mut list = vec![decision; MAX_DECISIONS];
        bound(&mut list);
        assert!(list.len() < MAX_DECISIONS);
        assert!(serde_json::to_vec(&list).unwrap().len() <= MAX_RECORD_BYTES);
    }
}
