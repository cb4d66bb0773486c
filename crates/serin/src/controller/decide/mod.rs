//! The decisions of a tick, without I/O: Flagger's `advanceCanary` (`pkg/controller/scheduler.go`)
//! from its step 14 on, and the strategy steps of `runCanary`, `runAB`, `runBlueGreen` and
//! `runPromotionTrafficShift`.
//!
//! [`next`] takes what the tick has [`Observed`] and returns the next [`Step`], with the texts of
//! its events and the status it writes. When a decision needs something the tick has not looked
//! at yet (the routes, a workload's readiness, the rollback webhooks), the step is
//! [`Step::Observe`]: the tick looks, fills the answer in and asks again. So the tick reads
//! exactly what it read before, in the same order, and only carries steps out; every decision
//! is a pure function of its inputs, tested by tables in `tests.rs`.
//!
//! * [`checks`]: what the metric checks of an analysed tick come to.
//! * [`traffic`]: the strategy step of an analysed tick and the promotion traffic shift.

pub mod checks;
pub mod traffic;

#[cfg(test)]
mod tests;

use super::events;
use crate::api::{CanaryAnalysis, CanaryPhase, Provider, Strategy};
use crate::router::Routes;

/// A workload's readiness as the tick found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not ready yet; waiting may fix it (the message is the Warning event).
    NotYet(String),
    /// It will not become ready: the progress deadline has passed.
    Stuck(String),
}

/// What the tick knows when it decides. The `Option`s are `None` until observed.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// `<name>.<namespace>`, for the event texts.
    pub key: &'a str,
    /// `<target>.<namespace>`, for the event texts.
    pub target_key: &'a str,
    pub phase: CanaryPhase,
    /// `status.canaryWeight`.
    pub canary_weight: i32,
    /// `status.failedChecks`.
    pub failed_checks: i32,
    /// The analysis interval has passed (rather than a new revision making the tick run early).
    pub due: bool,
    /// The target has a new revision for the analysis (Flagger's `hasCanaryRevisionChanged`).
    pub changed: bool,
    /// `spec.skipAnalysis` (or no analysis at all).
    pub skip: bool,
    pub provider: &'a Provider,
    pub analysis: &'a CanaryAnalysis,
    /// The routes the router reports: the source of truth for the weights.
    pub routes: Option<Routes>,
    pub primary: Option<Readiness>,
    pub canary: Option<Readiness>,
    /// Whether a rollback webhook signalled a rollback.
    pub rollback_hook: Option<bool>,
}

/// What the tick has to look at before it can decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The current routes (also the weight gauges).
    Routes,
    /// The primary's readiness (in Promoting: its rollout).
    Primary,
    /// The canary's readiness. From here on the tick decides an analysis step and keeps a
    /// decision record.
    Canary,
    /// The rollback webhooks.
    RollbackHooks,
}

/// Why a run is rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollback {
    /// The failed checks reached the threshold.
    Threshold { failed_checks: i32 },
    /// A rollback webhook signalled it.
    Hook,
    /// A workload missed its progress deadline (the readiness error's text).
    ProgressDeadline(String),
    /// The routes show a rollback whose status write was lost.
    Resumed,
}

impl Rollback {
    /// The cause as the alerts name it.
    pub fn cause(&self) -> super::alerts::Cause<'_> {
        use super::alerts::Cause;
        match self {
            Rollback::Threshold { failed_checks } => Cause::Threshold {
                failed_checks: *failed_checks,
            },
            Rollback::Hook => Cause::RollbackHook,
            Rollback::ProgressDeadline(reason) => Cause::ProgressDeadline(reason),
            Rollback::Resumed => Cause::Resumed,
        }
    }
}

/// What follows a workload that is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unready {
    /// Try again next tick.
    Wait,
    /// Roll the run back.
    Rollback(Rollback),
    /// The primary broke while it was being promoted (Flagger's `handleFailedPromotion`): all
    /// traffic to the canary, Failed.
    FailedPromotion(String),
}

/// The next thing a tick does.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Outside a run and no new revision: nothing to do.
    Idle,
    /// Look at this, then decide again.
    Observe(Probe),
    /// The routes show a rollback whose `Failed` write was lost: finish it (`log` first).
    FinishRollback { log: String },
    /// The routes show a weight step whose status write was lost: record `weight` (`log`,
    /// then the step's Normal `event` again). The next step comes one interval later.
    RepairWeight {
        weight: i32,
        log: String,
        event: String,
    },
    /// A workload is not ready: Warning `warning`, then `then`.
    NotReady { warning: String, then: Unready },
    /// A new revision of a canary at rest (or one waiting at confirm-rollout): the run starts
    /// behind the confirm-rollout gate (Flagger's `checkCanaryStatus`).
    StartRun,
    /// A new revision in the middle of the analysis: Normal `event`, all traffic to the
    /// primary, phase Progressing with the counters zeroed and the new revision recorded.
    Restart { event: String },
    /// The run is under way but its next step is not due yet.
    Wait,
    /// `skipAnalysis`: promote and finish at once.
    PromoteWithoutAnalysis,
    /// Roll back: Warning `warning` first when set.
    Rollback {
        warning: Option<String>,
        rollback: Rollback,
    },
    /// Phase Promoting: make sure the template is copied and the primary autoscaler updated,
    /// then shift traffic back to the primary.
    Promote(traffic::Shift),
    /// Phase Finalising: scale the canary down, Succeeded.
    Finalise,
    /// Run the analysis, then the strategy step ([`traffic::advance`]) from `routes`.
    Analyse { routes: Routes },
}

/// A step, and whether the phase's status gauge is set before it (Flagger sets it once the
/// primary passed its readiness check, and when the canary is idle).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub step: Step,
    pub phase_gauge: bool,
}

/// The deployment strategy: the kubernetes provider can only do blue/green.
pub fn strategy(provider: &Provider, analysis: &CanaryAnalysis) -> Strategy {
    if *provider == Provider::Kubernetes {
        Strategy::BlueGreen
    } else {
        analysis.strategy()
    }
}

/// The next step of a tick (Flagger's `advanceCanary`, steps 14 to 26).
pub fn next(o: &Observed) -> Decision {
    let early = |step| Decision {
        step,
        phase_gauge: false,
    };
    // 14. Nothing to do outside a run without a new revision.
    if !o.phase.is_running() && !o.changed {
        return Decision {
            step: Step::Idle,
            phase_gauge: true,
        };
    }
    // 17. The routes are read before the readiness checks, so that a status write lost after
    // a route change is recorded at the very next reconcile, whatever the workloads' state.
    let Some(routes) = o.routes else {
        return early(Step::Observe(Probe::Routes));
    };
    if o.due && interrupted_rollback(o, routes) {
        return early(Step::FinishRollback {
            log: format!(
                "Finishing the rollback found on the routes (status said canary weight {})",
                o.canary_weight
            ),
        });
    }
    if o.due && needs_repair(o, routes) {
        let event = if o.phase == CanaryPhase::Promoting {
            events::advance_primary_weight(o.key, routes.primary)
        } else {
            events::advance_weight(o.key, routes.canary)
        };
        return early(Step::RepairWeight {
            weight: routes.canary,
            log: format!(
                "Recording canary weight {} found on the routes (status said {})",
                routes.canary, o.canary_weight
            ),
            event,
        });
    }
    // 16. Primary readiness (in Promoting this waits for the primary rollout).
    if !o.skip {
        match &o.primary {
            None => return early(Step::Observe(Probe::Primary)),
            Some(Readiness::Ready) => {}
            Some(Readiness::NotYet(warning)) => {
                return early(Step::NotReady {
                    warning: warning.clone(),
                    then: Unready::Wait,
                });
            }
            Some(Readiness::Stuck(warning)) => {
                let then = if o.phase.is_promoting() {
                    Unready::FailedPromotion(warning.clone())
                } else {
                    Unready::Rollback(Rollback::ProgressDeadline(warning.clone()))
                };
                return early(Step::NotReady {
                    warning: warning.clone(),
                    then,
                });
            }
        }
    }
    Decision {
        step: after_primary(o, routes),
        phase_gauge: true,
    }
}

/// Steps 18 to 26, once the primary is ready (or the analysis skipped).
fn after_primary(o: &Observed, routes: Routes) -> Step {
    // 18. A new revision of a canary at rest, or a run waiting for confirm-rollout.
    if !o.phase.is_started() {
        return Step::StartRun;
    }
    // 19. A new revision mid-analysis restarts it.
    if o.phase.is_analysing() && o.changed {
        return Step::Restart {
            event: events::restarting_analysis(o.target_key),
        };
    }
    if !o.due {
        return Step::Wait;
    }
    // 20. Canary readiness.
    match &o.canary {
        None => return Step::Observe(Probe::Canary),
        Some(Readiness::Ready) => {}
        Some(Readiness::NotYet(warning)) => {
            return Step::NotReady {
                warning: warning.clone(),
                then: Unready::Wait,
            };
        }
        Some(Readiness::Stuck(warning)) => {
            return Step::NotReady {
                warning: warning.clone(),
                then: Unready::Rollback(Rollback::ProgressDeadline(warning.clone())),
            };
        }
    }
    // 21. Skipped analysis promotes at once.
    if o.skip {
        return Step::PromoteWithoutAnalysis;
    }
    // 22. Rollback webhooks, while analysing.
    if o.phase.is_analysing() {
        match o.rollback_hook {
            None => return Step::Observe(Probe::RollbackHooks),
            Some(true) => {
                return Step::Rollback {
                    warning: Some(events::rolling_back_manual(o.key)),
                    rollback: Rollback::Hook,
                };
            }
            Some(false) => {}
        }
    }
    // 23. Promoting: traffic back to the primary.
    if o.phase == CanaryPhase::Promoting {
        return Step::Promote(traffic::shift(o.key, o.provider, o.analysis, routes));
    }
    // 24. Finalising.
    if o.phase == CanaryPhase::Finalising {
        return Step::Finalise;
    }
    // 25. Failed-check threshold.
    if o.failed_checks >= o.analysis.threshold() {
        return Step::Rollback {
            warning: None,
            rollback: Rollback::Threshold {
                failed_checks: o.failed_checks,
            },
        };
    }
    // 26-29.
    Step::Analyse { routes }
}

/// Whether the routes show a weight step the status has not recorded. Only where weights are
/// the state of the run: the canary strategy's steps, and the promotion steps of
/// `stepWeightPromotion` (A/B routes are described by iterations, and routers differ in the
/// weight they report for them).
fn needs_repair(o: &Observed, routes: Routes) -> bool {
    let strategy = strategy(o.provider, o.analysis);
    let weighted = if o.phase.is_analysing() {
        strategy == Strategy::Canary
    } else if o.phase == CanaryPhase::Promoting {
        strategy != Strategy::AbTesting && o.analysis.step_weight_promotion() > 0
    } else {
        false
    };
    weighted && routes.canary != o.canary_weight
}

/// Whether the routes show a rollback the status has not recorded: the canary strategy's steps
/// only raise the canary weight during the analysis, so all traffic back on the primary (not
/// mirrored) while the status holds a weight comes from a rollback whose `Failed` write was
/// lost (or from the routing object being recreated; either way the canary is no longer being
/// tested).
fn interrupted_rollback(o: &Observed, routes: Routes) -> bool {
    o.phase.is_analysing()
        && strategy(o.provider, o.analysis) == Strategy::Canary
        && routes.canary == 0
        && !routes.mirrored
        && o.canary_weight > 0
}

/// The Warning a rollback starts with when the failed checks reached the threshold.
pub fn threshold_warning(
    key: &str,
    failed_checks: i32,
    analysis: &CanaryAnalysis,
) -> Option<String> {
    (failed_checks >= analysis.threshold()).then(|| events::threshold_reached(key, failed_checks))
}
