//! The traffic decisions of a run: the strategy step of an analysed tick (Flagger's
//! `runCanary`, `runAB`, `runBlueGreen`, with `stepWeights` through
//! [`CanaryAnalysis::next_step_weight`]) and the promotion's traffic shift
//! (`runPromotionTrafficShift`, `stepWeightPromotion`), with their weight arithmetic.

use super::super::events;
use super::strategy;
use crate::api::{CanaryAnalysis, CanaryPhase, Provider, Strategy};
use crate::router::Routes;

/// What the analysed tick's strategy step does once the checks passed.
#[derive(Clone, Debug, PartialEq)]
pub enum Advance {
    /// The canary strategy's next step weight is zero: nothing moves.
    Hold,
    /// Canary strategy: move to `routes`, record the canary weight, Normal `event`. `log` first
    /// for a mirror step.
    Weight {
        routes: Routes,
        log: Option<String>,
        event: String,
    },
    /// A/B testing or blue/green: one more iteration (`iterations`), setting `routes` first
    /// when traffic moves (`log` first when set), Normal `event`.
    Iterate {
        routes: Option<Routes>,
        log: Option<&'static str>,
        iterations: i32,
        event: String,
    },
    /// The analysis is complete: behind the confirm-promotion gate, `then`.
    Complete(Complete),
}

/// What a complete analysis does once confirm-promotion passed.
#[derive(Clone, Debug, PartialEq)]
pub enum Complete {
    /// Promote: phase Promoting, the template copied to the primary.
    Promote,
    /// Blue/green's last iteration: all traffic to the canary when routed (Normal `event`
    /// first, the canary weight recorded), then the iteration counted.
    LastIteration {
        event: Option<&'static str>,
        routes: Option<Routes>,
        iterations: i32,
    },
    /// A/B with more iterations done than the analysis asks for: nothing.
    Nothing,
}

/// The strategy step, and whether confirm-traffic-increase gates it.
#[derive(Clone, Debug, PartialEq)]
pub struct StrategyStep {
    /// The confirm-traffic-increase webhooks must pass first (canary strategy only).
    pub traffic_gate: bool,
    pub advance: Advance,
}

/// Whether the canary strategy mirrors traffic before its first weight step.
pub fn canary_mirror(provider: &Provider, analysis: &CanaryAnalysis) -> bool {
    analysis.mirror() && provider.supports_canary_mirroring()
}

/// Whether this is the first analysed tick of the run: nothing on the canary yet, so the
/// pre-rollout webhooks run instead of the checks.
pub fn first_step(
    provider: &Provider,
    analysis: &CanaryAnalysis,
    routes: Routes,
    iterations: i32,
) -> bool {
    routes.canary == 0 && iterations == 0 && !(canary_mirror(provider, analysis) && routes.mirrored)
}

/// The Warnings the kubernetes provider gives for what it cannot do (Flagger's step 28).
pub fn provider_warnings(provider: &Provider, analysis: &CanaryAnalysis) -> Vec<&'static str> {
    let mut warnings = Vec::new();
    if *provider == Provider::Kubernetes {
        if analysis.strategy() == Strategy::AbTesting {
            warnings.push(events::AB_NOT_SUPPORTED_KUBERNETES);
        }
        if analysis.iterations() < 1 {
            warnings.push(events::PROGRESSIVE_NOT_SUPPORTED_KUBERNETES);
            warnings.push(events::SETTING_ITERATIONS_10);
        }
    }
    warnings
}

/// The iterations of the run (blue/green with the kubernetes provider: at least 10).
pub fn iterations(provider: &Provider, analysis: &CanaryAnalysis) -> i32 {
    let n = analysis.iterations();
    if *provider == Provider::Kubernetes && n < 1 {
        10
    } else {
        n
    }
}

/// The strategy step of an analysed tick in `phase` with `done` iterations and the current
/// `routes` (Flagger's step 29).
pub fn advance(
    key: &str,
    provider: &Provider,
    analysis: &CanaryAnalysis,
    phase: CanaryPhase,
    routes: Routes,
    done: i32,
) -> StrategyStep {
    let ungated = |advance| StrategyStep {
        traffic_gate: false,
        advance,
    };
    match strategy(provider, analysis) {
        Strategy::AbTesting => ungated(ab_testing(key, provider, analysis, done)),
        Strategy::BlueGreen => ungated(blue_green(key, provider, analysis, routes, done)),
        Strategy::Canary => {
            let step = analysis.next_step_weight(routes.canary);
            if step <= 0 {
                return ungated(Advance::Hold);
            }
            // Not for a mirrored step (no user traffic moves) nor once the analysis waits for
            // its promotion.
            let traffic_gate = !(routes.mirrored
                || phase.is_promoting()
                || phase == CanaryPhase::WaitingPromotion);
            StrategyStep {
                traffic_gate,
                advance: canary(key, provider, analysis, routes, step),
            }
        }
    }
}

/// Canary strategy: one weight step (after a mirror step when mirroring), or promotion once
/// the max weight is reached.
fn canary(
    key: &str,
    provider: &Provider,
    analysis: &CanaryAnalysis,
    routes: Routes,
    step: i32,
) -> Advance {
    if routes.canary >= analysis.max_weight() {
        return Advance::Complete(Complete::Promote);
    }
    let (next, log) = if canary_mirror(provider, analysis) && routes.canary == 0 {
        let next = if routes.mirrored {
            add_to_canary(Routes::new(100, 0, false), step)
        } else {
            Routes::new(100, 0, true)
        };
        let log = format!(
            "Running mirror step {}/{}/{}",
            next.primary, next.canary, next.mirrored
        );
        (next, Some(log))
    } else {
        (add_to_canary(routes, step), None)
    };
    Advance::Weight {
        routes: next,
        log,
        event: events::advance_weight(key, next.canary),
    }
}

/// A/B testing: iterations with the matched traffic on the canary, then promotion.
fn ab_testing(key: &str, provider: &Provider, analysis: &CanaryAnalysis, done: i32) -> Advance {
    let n = iterations(provider, analysis);
    if n > done {
        let next = done.saturating_add(1);
        return Advance::Iterate {
            routes: Some(Routes::new(0, 100, false)),
            log: None,
            iterations: next,
            event: events::advance_iteration(key, next, n),
        };
    }
    Advance::Complete(if n == done {
        Complete::Promote
    } else {
        Complete::Nothing
    })
}

/// Blue/green: iterations on the primary (mirrored when supported), one iteration with all
/// traffic on the canary, then promotion.
fn blue_green(
    key: &str,
    provider: &Provider,
    analysis: &CanaryAnalysis,
    routes: Routes,
    done: i32,
) -> Advance {
    let n = iterations(provider, analysis);
    let routed = *provider != Provider::Kubernetes;
    let mirror = routed && analysis.mirror() && provider.supports_blue_green_mirroring();
    let next = done.saturating_add(1);
    if n > done {
        let start_mirroring = mirror && !routes.mirrored;
        return Advance::Iterate {
            routes: start_mirroring.then(|| Routes::new(100, 0, true)),
            log: start_mirroring.then_some("Start traffic mirroring"),
            iterations: next,
            event: events::advance_iteration(key, next, n),
        };
    }
    if n == done {
        let event = if mirror {
            events::STOP_MIRRORING
        } else {
            events::ROUTING_ALL_TO_CANARY
        };
        return Advance::Complete(Complete::LastIteration {
            event: routed.then_some(event),
            routes: routed.then(|| Routes::new(0, 100, false)),
            iterations: next,
        });
    }
    Advance::Complete(Complete::Promote)
}

/// The promotion's traffic shift, once the primary runs the new revision and is ready.
#[derive(Clone, Debug, PartialEq)]
pub enum Shift {
    /// No traffic to move (the kubernetes provider, or nothing left on the canary; Flagger
    /// would stay in Promoting forever in the latter case): phase Finalising.
    Finalise,
    /// No `stepWeightPromotion`: Normal `event`, all traffic to the primary, Finalising.
    AllToPrimary { event: &'static str },
    /// One `stepWeightPromotion` step to `routes`, Normal `event`; then Finalising when all
    /// traffic is on the primary, else the canary weight recorded.
    Step {
        routes: Routes,
        event: String,
        finalise: bool,
    },
}

/// Flagger's `runPromotionTrafficShift` from the current `routes`.
pub fn shift(key: &str, provider: &Provider, analysis: &CanaryAnalysis, routes: Routes) -> Shift {
    if *provider == Provider::Kubernetes {
        return Shift::Finalise;
    }
    let step = analysis.step_weight_promotion();
    if step <= 0 {
        return Shift::AllToPrimary {
            event: events::ROUTING_ALL_TO_PRIMARY,
        };
    }
    if routes.canary <= 0 {
        return Shift::Finalise;
    }
    let next = add_to_primary(routes, step);
    Shift::Step {
        routes: next,
        event: events::advance_primary_weight(key, next.primary),
        finalise: next.primary >= 100,
    }
}

/// A weight in percent: clamped to 0–100.
fn percent(weight: i32) -> i32 {
    weight.clamp(0, 100)
}

/// One canary step: `step` percent moves from the primary to the canary (floor 0, cap 100, as
/// Flagger's `runCanary`), with saturating arithmetic so that no spec or route value can wrap.
pub fn add_to_canary(routes: Routes, step: i32) -> Routes {
    let step = percent(step);
    Routes::new(
        percent(routes.primary.saturating_sub(step)),
        percent(routes.canary.saturating_add(step)),
        false,
    )
}

/// One promotion step: `step` percent moves back from the canary to the primary.
pub fn add_to_primary(routes: Routes, step: i32) -> Routes {
    let step = percent(step);
    Routes::new(
        percent(routes.primary.saturating_add(step)),
        percent(routes.canary.saturating_sub(step)),
        false,
    )
}

#[cfg(test)]
mod arithmetic_tests {
    use super::*;

    #[test]
    fn canary_steps_stay_within_0_and_100() {
        assert_eq!(
            add_to_canary(Routes::new(100, 0, false), 20),
            Routes::new(80, 20, false)
        );
        assert_eq!(
            add_to_canary(Routes::new(90, 10, true), 20),
            Routes::new(70, 30, false)
        );
        // stepWeight = maxWeight = 2147483647 (an older CRD without bounds): one step to 100.
        assert_eq!(
            add_to_canary(Routes::new(100, 0, false), i32::MAX),
            Routes::new(0, 100, false)
        );
        assert_eq!(
            add_to_canary(Routes::new(2, 98, false), i32::MAX),
            Routes::new(0, 100, false)
        );
        // Routes edited by hand into nonsense are brought back into range.
        assert_eq!(
            add_to_canary(Routes::new(i32::MIN, i32::MAX, false), 10),
            Routes::new(0, 100, false)
        );
        assert_eq!(
            add_to_canary(Routes::new(100, 0, false), i32::MIN),
            Routes::new(100, 0, false)
        );
    }

    #[test]
    fn promotion_steps_stay_within_0_and_100() {
        assert_eq!(
            add_to_primary(Routes::new(50, 50, false), 20),
            Routes::new(70, 30, false)
        );
        // stepWeightPromotion: 2147483647 ended with primary weight -2147483579 before.
        assert_eq!(
            add_to_primary(Routes::new(50, 50, false), i32::MAX),
            Routes::new(100, 0, false)
        );
        assert_eq!(
            add_to_primary(Routes::new(i32::MAX, i32::MIN, false), i32::MAX),
            Routes::new(100, 0, false)
        );
    }

    #[test]
    fn every_step_sums_to_100_from_a_valid_split() {
        for canary in 0..=100 {
            for step in [0, 1, 7, 33, 50, 99, 100, 101, i32::MAX, -1, i32::MIN] {
                let routes = Routes::new(100 - canary, canary, false);
                for next in [add_to_canary(routes, step), add_to_primary(routes, step)] {
                    assert_eq!(next.primary + next.canary, 100, "{routes:?} {step}");
                    assert!((0..=100).contains(&next.canary));
                }
            }
        }
    }
}
