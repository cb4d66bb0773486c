//! The decisions, table by table: each row is what a tick observed and the step it must take.
//! No fakes: the inputs are plain values.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::traffic::{self, Advance, Complete, Shift, StrategyStep};
use super::*;
use crate::api::provider::GatewayApiVersion;

const KEY: &str = "podinfo.test";
const TARGET: &str = "podinfo.test";

fn analysis(spec: serde_json::Value) -> CanaryAnalysis {
    serde_json::from_value(spec).unwrap()
}

/// A canary analysis: 10 % steps up to 50 %, two failed checks tolerated.
fn canary_analysis() -> CanaryAnalysis {
    analysis(json!({"interval": "1m", "threshold": 2, "stepWeight": 10, "maxWeight": 50}))
}

/// What a tick observed, as owned values; [`Case::observed`] lends them to the decisions.
#[derive(Clone)]
struct Case {
    phase: CanaryPhase,
    canary_weight: i32,
    failed_checks: i32,
    due: bool,
    changed: bool,
    skip: bool,
    provider: Provider,
    analysis: CanaryAnalysis,
    routes: Option<Routes>,
    primary: Option<Readiness>,
    canary: Option<Readiness>,
    rollback_hook: Option<bool>,
}

/// A canary analysis at 10 % with one failed check, due, everything observed and fine.
fn progressing() -> Case {
    Case {
        phase: CanaryPhase::Progressing,
        canary_weight: 10,
        failed_checks: 1,
        due: true,
        changed: false,
        skip: false,
        provider: Provider::Istio,
        analysis: canary_analysis(),
        routes: Some(Routes::new(90, 10, false)),
        primary: Some(Readiness::Ready),
        canary: Some(Readiness::Ready),
        rollback_hook: Some(false),
    }
}

impl Case {
    fn observed(&self) -> Observed<'_> {
        Observed {
            key: KEY,
            target_key: TARGET,
            phase: self.phase,
            canary_weight: self.canary_weight,
            failed_checks: self.failed_checks,
            due: self.due,
            changed: self.changed,
            skip: self.skip,
            provider: &self.provider,
            analysis: &self.analysis,
            routes: self.routes,
            primary: self.primary.clone(),
            canary: self.canary.clone(),
            rollback_hook: self.rollback_hook,
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Case)) -> Self {
        change(&mut self);
        self
    }

    fn phase(self, phase: CanaryPhase) -> Self {
        self.with(|c| c.phase = phase)
    }

    fn routes(self, primary: i32, canary: i32) -> Self {
        self.with(|c| c.routes = Some(Routes::new(primary, canary, false)))
    }
}

fn stuck(message: &str) -> Option<Readiness> {
    Some(Readiness::Stuck(message.to_string()))
}

fn not_yet(message: &str) -> Option<Readiness> {
    Some(Readiness::NotYet(message.to_string()))
}

#[test]
fn next_steps() {
    use CanaryPhase as P;
    let deadline = "podinfo.test progress deadline exceeded";
    let rows: Vec<(&str, Case, Step)> = vec![
        (
            "at rest without a new revision: nothing to do",
            progressing()
                .phase(P::Initialized)
                .with(|c| c.routes = None),
            Step::Idle,
        ),
        (
            "Failed stays Failed until a new revision",
            progressing().phase(P::Failed).with(|c| c.routes = None),
            Step::Idle,
        ),
        (
            "a new revision: the routes are read first",
            progressing()
                .phase(P::Succeeded)
                .with(|c| (c.changed, c.routes, c.primary) = (true, None, None)),
            Step::Observe(Probe::Routes),
        ),
        (
            "then the primary's readiness",
            progressing()
                .phase(P::Succeeded)
                .with(|c| (c.changed, c.primary) = (true, None)),
            Step::Observe(Probe::Primary),
        ),
        (
            "restart on a new revision at rest: the run starts",
            progressing().phase(P::Succeeded).with(|c| c.changed = true),
            Step::StartRun,
        ),
        (
            "a run waiting for confirm-rollout asks again",
            progressing().phase(P::Waiting),
            Step::StartRun,
        ),
        (
            "skipped analysis: the primary is not checked",
            progressing()
                .phase(P::Initialized)
                .with(|c| (c.changed, c.skip, c.primary) = (true, true, None)),
            Step::StartRun,
        ),
        (
            "restart: a new revision mid-analysis",
            progressing().with(|c| c.changed = true),
            Step::Restart {
                event: "New revision detected! Restarting analysis for podinfo.test".into(),
            },
        ),
        (
            "restart while waiting for promotion",
            progressing()
                .phase(P::WaitingPromotion)
                .with(|c| c.changed = true),
            Step::Restart {
                event: "New revision detected! Restarting analysis for podinfo.test".into(),
            },
        ),
        (
            "a new revision while promoting does not restart",
            progressing()
                .phase(P::Finalising)
                .with(|c| c.changed = true),
            Step::Finalise,
        ),
        (
            "not due: wait for the interval",
            progressing().with(|c| c.due = false),
            Step::Wait,
        ),
        (
            "weight repair: a step whose status write was lost",
            progressing().routes(80, 20),
            Step::RepairWeight {
                weight: 20,
                log: "Recording canary weight 20 found on the routes (status said 10)".into(),
                event: "Advance podinfo.test canary weight 20".into(),
            },
        ),
        (
            "weight repair waits for the interval",
            progressing().routes(80, 20).with(|c| c.due = false),
            Step::Wait,
        ),
        (
            "weight repair of a stepWeightPromotion step",
            progressing().phase(P::Promoting).routes(70, 30).with(|c| {
                c.canary_weight = 50;
                c.analysis.step_weight_promotion = Some(20);
            }),
            Step::RepairWeight {
                weight: 30,
                log: "Recording canary weight 30 found on the routes (status said 50)".into(),
                event: "Advance podinfo.test primary weight 70".into(),
            },
        ),
        (
            "no weight repair for A/B routes",
            progressing()
                .routes(0, 100)
                .with(|c| c.analysis = ab_analysis()),
            Step::Analyse {
                routes: Routes::new(0, 100, false),
            },
        ),
        (
            "a rollback whose Failed write was lost is finished",
            progressing().routes(100, 0).with(|c| c.canary_weight = 30),
            Step::FinishRollback {
                log: "Finishing the rollback found on the routes (status said canary weight 30)"
                    .into(),
            },
        ),
        (
            "primary not ready yet: wait",
            progressing().with(|c| c.primary = not_yet("primary not ready")),
            Step::NotReady {
                warning: "primary not ready".into(),
                then: Unready::Wait,
            },
        ),
        (
            "progress-deadline rollback: the primary",
            progressing().with(|c| c.primary = stuck(deadline)),
            Step::NotReady {
                warning: deadline.into(),
                then: Unready::Rollback(Rollback::ProgressDeadline(deadline.into())),
            },
        ),
        (
            "a primary stuck while promoting is a failed promotion",
            progressing()
                .phase(P::Promoting)
                .with(|c| c.primary = stuck(deadline)),
            Step::NotReady {
                warning: deadline.into(),
                then: Unready::FailedPromotion(deadline.into()),
            },
        ),
        (
            "an analysis step checks the canary",
            progressing().with(|c| c.canary = None),
            Step::Observe(Probe::Canary),
        ),
        (
            "canary not ready yet: wait",
            progressing().with(|c| c.canary = not_yet("canary not ready")),
            Step::NotReady {
                warning: "canary not ready".into(),
                then: Unready::Wait,
            },
        ),
        (
            "progress-deadline rollback: the canary",
            progressing().with(|c| c.canary = stuck(deadline)),
            Step::NotReady {
                warning: deadline.into(),
                then: Unready::Rollback(Rollback::ProgressDeadline(deadline.into())),
            },
        ),
        (
            "skipped analysis promotes at once",
            progressing().with(|c| c.skip = true),
            Step::PromoteWithoutAnalysis,
        ),
        (
            "the rollback webhooks are asked while analysing",
            progressing().with(|c| c.rollback_hook = None),
            Step::Observe(Probe::RollbackHooks),
        ),
        (
            "a rollback webhook rolls back",
            progressing().with(|c| c.rollback_hook = Some(true)),
            Step::Rollback {
                warning: Some("Rolling back podinfo.test manual webhook invoked".into()),
                rollback: Rollback::Hook,
            },
        ),
        (
            "promotion: the rollback webhooks are not asked",
            progressing()
                .phase(P::Promoting)
                .with(|c| c.rollback_hook = None),
            Step::Promote(Shift::AllToPrimary {
                event: "Routing all traffic to primary",
            }),
        ),
        (
            "finalise",
            progressing().phase(P::Finalising),
            Step::Finalise,
        ),
        (
            "threshold rollback",
            progressing().with(|c| c.failed_checks = 2),
            Step::Rollback {
                warning: None,
                rollback: Rollback::Threshold { failed_checks: 2 },
            },
        ),
        (
            "threshold rollback while waiting for promotion",
            progressing()
                .phase(P::WaitingPromotion)
                .with(|c| c.failed_checks = 5),
            Step::Rollback {
                warning: None,
                rollback: Rollback::Threshold { failed_checks: 5 },
            },
        ),
        (
            "below the threshold: analyse",
            progressing(),
            Step::Analyse {
                routes: Routes::new(90, 10, false),
            },
        ),
    ];
    for (name, case, step) in rows {
        assert_eq!(next(&case.observed()).step, step, "{name}");
    }
}

#[test]
fn the_phase_gauge_is_set_once_the_primary_passed_or_at_rest() {
    use CanaryPhase as P;
    let rows = [
        (progressing().phase(P::Initialized), true),
        (progressing().with(|c| c.routes = None), false),
        (progressing().with(|c| c.primary = None), false),
        (progressing().with(|c| c.primary = stuck("x")), false),
        (progressing().routes(80, 20), false),
        (progressing().with(|c| c.skip = true), true),
        (progressing().with(|c| c.due = false), true),
        (progressing(), true),
    ];
    for (case, gauge) in rows {
        let decision = next(&case.observed());
        assert_eq!(decision.phase_gauge, gauge, "{:?}", decision.step);
    }
}

fn ab_analysis() -> CanaryAnalysis {
    analysis(json!({
        "threshold": 2,
        "iterations": 3,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}]
    }))
}

fn blue_green_analysis(mirror: bool) -> CanaryAnalysis {
    analysis(json!({"threshold": 2, "iterations": 2, "mirror": mirror}))
}

fn weight(routes: Routes, event: &str) -> Advance {
    Advance::Weight {
        routes,
        log: None,
        event: event.into(),
    }
}

fn gated(advance: Advance) -> StrategyStep {
    StrategyStep {
        traffic_gate: true,
        advance,
    }
}

fn ungated(advance: Advance) -> StrategyStep {
    StrategyStep {
        traffic_gate: false,
        advance,
    }
}

fn iterate(routes: Option<Routes>, log: Option<&'static str>, n: i32, event: &str) -> Advance {
    Advance::Iterate {
        routes,
        log,
        iterations: n,
        event: event.into(),
    }
}

#[test]
fn strategy_steps() {
    use CanaryPhase as P;
    let r = |p, c| Routes::new(p, c, false);
    let step_weights = analysis(json!({"stepWeights": [5, 20, 60]}));
    let mirror = analysis(json!({"stepWeight": 10, "maxWeight": 50, "mirror": true}));
    let istio = Provider::Istio;
    let linkerd = Provider::Linkerd;
    let gateway = Provider::GatewayApi(GatewayApiVersion::V1);
    let kubernetes = Provider::Kubernetes;
    // (name, provider, analysis, phase, routes, iterations done, expected)
    let rows: Vec<(
        &str,
        &Provider,
        CanaryAnalysis,
        P,
        Routes,
        i32,
        StrategyStep,
    )> = vec![
        (
            "canary: one step",
            &istio,
            canary_analysis(),
            P::Progressing,
            r(90, 10),
            0,
            gated(weight(r(80, 20), "Advance podinfo.test canary weight 20")),
        ),
        (
            "canary: the max weight promotes",
            &istio,
            canary_analysis(),
            P::Progressing,
            r(50, 50),
            0,
            gated(Advance::Complete(Complete::Promote)),
        ),
        (
            "canary: no confirm-traffic-increase while waiting for promotion",
            &istio,
            canary_analysis(),
            P::WaitingPromotion,
            r(50, 50),
            0,
            ungated(Advance::Complete(Complete::Promote)),
        ),
        (
            "canary: no step weight holds",
            &istio,
            analysis(json!({"maxWeight": 50})),
            P::Progressing,
            r(90, 10),
            0,
            ungated(Advance::Hold),
        ),
        (
            "stepWeights: the first step",
            &istio,
            step_weights.clone(),
            P::Progressing,
            r(100, 0),
            0,
            gated(weight(r(95, 5), "Advance podinfo.test canary weight 5")),
        ),
        (
            "stepWeights: from one to the next",
            &istio,
            step_weights.clone(),
            P::Progressing,
            r(80, 20),
            0,
            gated(weight(r(40, 60), "Advance podinfo.test canary weight 60")),
        ),
        (
            "stepWeights: the last one promotes",
            &istio,
            step_weights,
            P::Progressing,
            r(40, 60),
            0,
            gated(Advance::Complete(Complete::Promote)),
        ),
        (
            "mirroring: the mirror step first",
            &istio,
            mirror.clone(),
            P::Progressing,
            r(100, 0),
            0,
            gated(Advance::Weight {
                routes: Routes::new(100, 0, true),
                log: Some("Running mirror step 100/0/true".into()),
                event: "Advance podinfo.test canary weight 0".into(),
            }),
        ),
        (
            "mirroring: then the first weight, without the traffic gate",
            &istio,
            mirror.clone(),
            P::Progressing,
            Routes::new(100, 0, true),
            0,
            ungated(Advance::Weight {
                routes: r(90, 10),
                log: Some("Running mirror step 90/10/false".into()),
                event: "Advance podinfo.test canary weight 10".into(),
            }),
        ),
        (
            "mirroring where the router cannot: plain steps",
            &linkerd,
            mirror,
            P::Progressing,
            r(100, 0),
            0,
            gated(weight(r(90, 10), "Advance podinfo.test canary weight 10")),
        ),
        (
            "A/B: an iteration",
            &istio,
            ab_analysis(),
            P::Progressing,
            r(0, 100),
            1,
            ungated(iterate(
                Some(r(0, 100)),
                None,
                2,
                "Advance podinfo.test canary iteration 2/3",
            )),
        ),
        (
            "A/B: the last iteration done promotes",
            &istio,
            ab_analysis(),
            P::Progressing,
            r(0, 100),
            3,
            ungated(Advance::Complete(Complete::Promote)),
        ),
        (
            "A/B: more iterations done than asked",
            &istio,
            ab_analysis(),
            P::Progressing,
            r(0, 100),
            4,
            ungated(Advance::Complete(Complete::Nothing)),
        ),
        (
            "blue/green: an iteration on the primary",
            &istio,
            blue_green_analysis(false),
            P::Progressing,
            r(100, 0),
            0,
            ungated(iterate(
                None,
                None,
                1,
                "Advance podinfo.test canary iteration 1/2",
            )),
        ),
        (
            "blue/green: mirroring starts",
            &gateway,
            blue_green_analysis(true),
            P::Progressing,
            r(100, 0),
            0,
            ungated(iterate(
                Some(Routes::new(100, 0, true)),
                Some("Start traffic mirroring"),
                1,
                "Advance podinfo.test canary iteration 1/2",
            )),
        ),
        (
            "blue/green: mirrored already",
            &gateway,
            blue_green_analysis(true),
            P::Progressing,
            Routes::new(100, 0, true),
            1,
            ungated(iterate(
                None,
                None,
                2,
                "Advance podinfo.test canary iteration 2/2",
            )),
        ),
        (
            "blue/green: the last iteration moves all traffic to the canary",
            &istio,
            blue_green_analysis(false),
            P::Progressing,
            r(100, 0),
            2,
            ungated(Advance::Complete(Complete::LastIteration {
                event: Some("Routing all traffic to canary"),
                routes: Some(r(0, 100)),
                iterations: 3,
            })),
        ),
        (
            "blue/green: the last iteration stops mirroring",
            &gateway,
            blue_green_analysis(true),
            P::Progressing,
            Routes::new(100, 0, true),
            2,
            ungated(Advance::Complete(Complete::LastIteration {
                event: Some("Stop traffic mirroring and route all traffic to canary"),
                routes: Some(r(0, 100)),
                iterations: 3,
            })),
        ),
        (
            "blue/green: then promotion",
            &istio,
            blue_green_analysis(false),
            P::Progressing,
            r(0, 100),
            3,
            ungated(Advance::Complete(Complete::Promote)),
        ),
        (
            "kubernetes: blue/green with 10 iterations by default",
            &kubernetes,
            canary_analysis(),
            P::Progressing,
            r(100, 0),
            0,
            ungated(iterate(
                None,
                None,
                1,
                "Advance podinfo.test canary iteration 1/10",
            )),
        ),
        (
            "kubernetes: the last iteration moves no traffic",
            &kubernetes,
            canary_analysis(),
            P::Progressing,
            r(100, 0),
            10,
            ungated(Advance::Complete(Complete::LastIteration {
                event: None,
                routes: None,
                iterations: 11,
            })),
        ),
    ];
    for (name, provider, analysis, phase, routes, done, expected) in rows {
        let got = traffic::advance(KEY, provider, &analysis, phase, routes, done);
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn promotion_shifts() {
    let r = |p, c| Routes::new(p, c, false);
    let by = |step: i32| analysis(json!({"stepWeightPromotion": step}));
    let rows = [
        (
            "kubernetes",
            Provider::Kubernetes,
            by(20),
            r(0, 100),
            Shift::Finalise,
        ),
        (
            "all at once",
            Provider::Istio,
            by(0),
            r(50, 50),
            Shift::AllToPrimary {
                event: "Routing all traffic to primary",
            },
        ),
        (
            "one step",
            Provider::Istio,
            by(20),
            r(50, 50),
            Shift::Step {
                routes: r(70, 30),
                event: "Advance podinfo.test primary weight 70".into(),
                finalise: false,
            },
        ),
        (
            "the last step finalises",
            Provider::Istio,
            by(40),
            r(70, 30),
            Shift::Step {
                routes: r(100, 0),
                event: "Advance podinfo.test primary weight 100".into(),
                finalise: true,
            },
        ),
        (
            "nothing left on the canary",
            Provider::Istio,
            by(20),
            r(100, 0),
            Shift::Finalise,
        ),
    ];
    for (name, provider, analysis, routes, shift) in rows {
        assert_eq!(
            traffic::shift(KEY, &provider, &analysis, routes),
            shift,
            "{name}"
        );
    }
}

#[test]
fn the_first_step_runs_the_pre_rollout_hooks() {
    let plain = canary_analysis();
    let mirror = analysis(json!({"stepWeight": 10, "mirror": true}));
    let rows = [
        (&plain, Routes::new(100, 0, false), 0, true),
        (&plain, Routes::new(90, 10, false), 0, false),
        (&plain, Routes::new(100, 0, false), 1, false),
        (&mirror, Routes::new(100, 0, false), 0, true),
        (&mirror, Routes::new(100, 0, true), 0, false),
    ];
    for (analysis, routes, done, first) in rows {
        assert_eq!(
            traffic::first_step(&Provider::Istio, analysis, routes, done),
            first,
            "{routes:?} {done}"
        );
    }
}

#[test]
fn kubernetes_warns_about_what_it_cannot_do() {
    let k = Provider::Kubernetes;
    assert_eq!(
        traffic::provider_warnings(&k, &canary_analysis()),
        [
            events::PROGRESSIVE_NOT_SUPPORTED_KUBERNETES,
            events::SETTING_ITERATIONS_10
        ]
    );
    assert_eq!(
        traffic::provider_warnings(&k, &ab_analysis()),
        [events::AB_NOT_SUPPORTED_KUBERNETES]
    );
    assert!(traffic::provider_warnings(&k, &blue_green_analysis(false)).is_empty());
    assert!(traffic::provider_warnings(&Provider::Istio, &canary_analysis()).is_empty());
}

#[test]
fn the_threshold_warning() {
    let a = canary_analysis();
    assert_eq!(threshold_warning(KEY, 1, &a), None);
    assert_eq!(
        threshold_warning(KEY, 2, &a).as_deref(),
        Some(events::threshold_reached(KEY, 2).as_str())
    );
}
