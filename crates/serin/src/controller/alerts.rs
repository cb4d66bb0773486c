//! Which failures of a run are alerted, with which text and severity. Flagger
//! (`pkg/controller/scheduler.go`) alerts on the failed-checks threshold, a rollback webhook
//! and a failed promotion only; its progress-deadline alert is unreachable and a failing
//! pre-rollout hook only makes an event (fluxcd/flagger#1663). Serin alerts on each of them,
//! once per failure: the scheduler describes what happened with a [`Failure`], [`decide`] picks
//! the alert, and the [`Alerter`](super::ports::Alerter) port sends it to the Canary's
//! `analysis.alerts` providers (filtered by their severity) or to the global notifier.

use super::events;
use super::scheduler::Tick;
use crate::api::analysis::AlertSeverity;

/// What went wrong, as the scheduler saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure<'a> {
    /// A pre-rollout hook failed. `failed_checks` is the run's count before this failure.
    PreRollout {
        canary: &'a str,
        hook: &'a str,
        reason: &'a str,
        failed_checks: i32,
        threshold: i32,
        muted: bool,
    },
    /// The run was rolled back and is now Failed.
    RolledBack { canary: &'a str, cause: Cause<'a> },
    /// The primary broke during the promotion; the run is now Failed with all traffic on the
    /// canary.
    PromotionFailed { reason: &'a str },
}

/// Why a run was rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause<'a> {
    /// The failed checks reached the analysis threshold.
    Threshold { failed_checks: i32 },
    /// A rollback webhook signalled a rollback.
    RollbackHook,
    /// The canary (or the primary, before the promotion) did not become ready within the
    /// progress deadline.
    ProgressDeadline(&'a str),
    /// The routes showed a rollback whose status write was lost: its first attempt never
    /// reached Failed, so it never alerted.
    Resumed,
    /// Serin: `kubectl serin abort`, by this user.
    Aborted { by: &'a str },
}

/// One alert to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub message: String,
    pub severity: AlertSeverity,
}

impl Alert {
    fn new(message: String, severity: AlertSeverity) -> Self {
        Self { message, severity }
    }
}

/// The alert a failure raises, if any.
///
/// * A pre-rollout hook: one warning at the first failed check of the run (the hook is retried
///   every interval, and each retry would page again); the rollback at the threshold sends the
///   error alert. A hook with `muteAlert` stays quiet.
/// * A rollback: an error alert, except for a rollback webhook (a person asked for it: warn,
///   as Flagger).
/// * A failed promotion: an error alert.
pub fn decide(failure: &Failure) -> Option<Alert> {
    match failure {
        Failure::PreRollout {
            canary,
            hook,
            reason,
            failed_checks,
            threshold,
            muted,
        } => (*failed_checks == 0 && !muted).then(|| {
            Alert::new(
                format!(
                    "Pre-rollout check {hook} of {canary} failed: {reason}. It is retried every \
                     interval; the canary is rolled back after {threshold} failed checks."
                ),
                AlertSeverity::Warn,
            )
        }),
        Failure::RolledBack { canary, cause } => Some(match cause {
            Cause::Threshold { failed_checks } => Alert::new(
                events::alert::threshold_reached(*failed_checks),
                AlertSeverity::Error,
            ),
            Cause::RollbackHook => {
                Alert::new(events::alert::MANUAL_ROLLBACK.into(), AlertSeverity::Warn)
            }
            Cause::ProgressDeadline(reason) => Alert::new(
                format!("Progress deadline exceeded, {canary} rolled back: {reason}"),
                AlertSeverity::Error,
            ),
            Cause::Resumed => Alert::new(
                format!(
                    "Canary {canary} rolled back: an interrupted rollback was finished, see \
                     the Canary's events for its reason"
                ),
                AlertSeverity::Error,
            ),
            Cause::Aborted { by } => Alert::new(
                super::actions::aborted_alert(canary, by),
                AlertSeverity::Warn,
            ),
        }),
        Failure::PromotionFailed { reason } => Some(Alert::new(
            events::alert::promotion_failed(reason),
            AlertSeverity::Error,
        )),
    }
}

impl Tick<'_> {
    /// Sends the alert `failure` raises, if any (Flagger sends failure alerts without the
    /// Target / routing fields).
    pub(super) async fn alert_failure(&self, failure: Failure<'_>) {
        if let Some(alert) = decide(&failure) {
            self.alert(&alert.message, false, alert.severity).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pre_rollout(failed_checks: i32, muted: bool) -> Failure<'static> {
        Failure::PreRollout {
            canary: "podinfo.test",
            hook: "smoke",
            reason: "HTTP 500",
            failed_checks,
            threshold: 3,
            muted,
        }
    }

    #[test]
    fn pre_rollout_alerts_only_at_the_first_failed_check() {
        let first = decide(&pre_rollout(0, false)).unwrap();
        assert_eq!(first.severity, AlertSeverity::Warn);
        assert_eq!(
            first.message,
            "Pre-rollout check smoke of podinfo.test failed: HTTP 500. It is retried every \
             interval; the canary is rolled back after 3 failed checks."
        );
        assert_eq!(decide(&pre_rollout(1, false)), None);
        assert_eq!(decide(&pre_rollout(2, false)), None);
        assert_eq!(decide(&pre_rollout(0, true)), None, "muteAlert");
    }

    #[test]
    fn rollbacks_alert_with_their_cause() {
        let rolled = |cause| {
            decide(&Failure::RolledBack {
                canary: "podinfo.test",
                cause,
            })
            .unwrap()
        };
        let threshold = rolled(Cause::Threshold { failed_checks: 2 });
        assert_eq!(
            (threshold.message.as_str(), threshold.severity),
            ("Failed checks threshold reached 2", AlertSeverity::Error)
        );
        let hook = rolled(Cause::RollbackHook);
        assert_eq!(
            (hook.message.as_str(), hook.severity),
            ("Rolling back manual webhook invoked", AlertSeverity::Warn)
        );
        let deadline = rolled(Cause::ProgressDeadline(
            "deployment \"podinfo\" exceeded its progress deadline",
        ));
        assert_eq!(
            (deadline.message.as_str(), deadline.severity),
            (
                "Progress deadline exceeded, podinfo.test rolled back: deployment \"podinfo\" \
                 exceeded its progress deadline",
                AlertSeverity::Error
            )
        );
        assert_eq!(rolled(Cause::Resumed).severity, AlertSeverity::Error);
    }

    #[test]
    fn failed_promotion_is_an_error() {
        let alert = decide(&Failure::PromotionFailed { reason: "gone" }).unwrap();
        assert_eq!(
            (alert.message.as_str(), alert.severity),
            (
                "Promotion failed, primary not ready: gone",
                AlertSeverity::Error
            )
        );
    }
}
