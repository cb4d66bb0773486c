//! What a run of the metric checks that did not pass does to an analysed tick (Flagger's
//! `runAnalysis` in `pkg/controller/scheduler_metrics.go`, with Serin's holds): hold the step,
//! or count a failed check.

use super::super::ports::{EventKind, FailedCheck};

/// A run of the checks that did not pass, as the decision takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unpassed {
    /// Serin's own inputs could not be read: not evidence against the canary.
    pub held: bool,
    /// Serin: a comparison had too few samples.
    pub inconclusive: bool,
    /// The failure is an error (Error event rather than Warning).
    pub error: bool,
    /// Whether an inconclusive comparison still holds the step (its hold has not lasted the
    /// progress deadline); `None` until looked at.
    pub holding: Option<bool>,
}

impl From<&FailedCheck> for Unpassed {
    fn from(failed: &FailedCheck) -> Self {
        Unpassed {
            held: failed.held,
            inconclusive: failed.inconclusive,
            error: failed.error,
            holding: None,
        }
    }
}

/// What the failure does to the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Hold the step (Warning with the failure), retry at the next interval; no failed check.
    Hold,
    /// Look whether the inconclusive comparison still holds the step, then judge again.
    AskHold,
    /// Serin: keep holding like a closed gate (Normal event with the failure).
    KeepHolding,
    /// A failed check: the hold ends, an event of `kind` with the failure, the count goes up.
    Count { kind: EventKind },
}

/// Judges a run of the checks that did not pass.
pub fn judge(failure: Unpassed) -> Judgement {
    if failure.held {
        return Judgement::Hold;
    }
    if failure.inconclusive {
        match failure.holding {
            None => return Judgement::AskHold,
            Some(true) => return Judgement::KeepHolding,
            Some(false) => {}
        }
    }
    let kind = if failure.error {
        EventKind::Error
    } else {
        EventKind::Warning
    };
    Judgement::Count { kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpassed(held: bool, inconclusive: bool, error: bool, holding: Option<bool>) -> Unpassed {
        Unpassed {
            held,
            inconclusive,
            error,
            holding,
        }
    }

    #[test]
    fn judgements() {
        use Judgement::*;
        let warning = Count {
            kind: EventKind::Warning,
        };
        let error = Count {
            kind: EventKind::Error,
        };
        let rows = [
            (
                "a failed check",
                unpassed(false, false, false, None),
                warning,
            ),
            (
                "a check in error",
                unpassed(false, false, true, None),
                error,
            ),
            (
                "Serin's inputs unreadable",
                unpassed(true, false, true, None),
                Hold,
            ),
            (
                "too few samples",
                unpassed(false, true, false, None),
                AskHold,
            ),
            (
                "too few samples within the deadline",
                unpassed(false, true, false, Some(true)),
                KeepHolding,
            ),
            (
                "too few samples past the deadline",
                unpassed(false, true, false, Some(false)),
                warning,
            ),
            (
                "an erring comparison past the deadline",
                unpassed(false, true, true, Some(false)),
                error,
            ),
        ];
        for (name, failure, judgement) in rows {
            assert_eq!(judge(failure), judgement, "{name}");
        }
    }
}
