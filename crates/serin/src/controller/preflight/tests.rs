#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;

use super::*;
use crate::api::CanaryPhase;
use crate::controller::tests::{World, canary};
use crate::metrics::preflight::Problem;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn failing_since(second: i64, message: &str) -> CanaryCondition {
    CanaryCondition {
        condition_type: METRICS_READY_CONDITION.into(),
        status: ConditionStatus::False,
        last_update_time: Some(Time(at(second))),
        last_transition_time: Some(Time(at(second))),
        reason: "NoValues".into(),
        message: Some(message.into()),
    }
}

#[test]
fn passing_proceeds_whatever_the_condition() {
    let old = failing_since(1_000, "x");
    assert_eq!(decide(None, None, 60, at(1_000)), Verdict::Proceed);
    assert_eq!(decide(None, Some(&old), 60, at(9_000)), Verdict::Proceed);
}

#[test]
fn a_failure_holds_announced_once_until_the_deadline() {
    assert_eq!(
        decide(Some("x"), None, 60, at(1_000)),
        Verdict::Hold { announce: true }
    );
    let pending = CanaryCondition {
        status: ConditionStatus::Unknown,
        ..failing_since(500, "earlier run")
    };
    assert_eq!(
        decide(Some("x"), Some(&pending), 60, at(1_000)),
        Verdict::Hold { announce: true },
        "a condition that is not False starts a new hold"
    );
    let failing = failing_since(1_000, "x");
    assert_eq!(
        decide(Some("x"), Some(&failing), 60, at(1_059)),
        Verdict::Hold { announce: false }
    );
    assert_eq!(
        decide(Some("y"), Some(&failing), 60, at(1_030)),
        Verdict::Hold { announce: true },
        "another finding is announced, the deadline runs on"
    );
    assert_eq!(
        decide(Some("y"), Some(&failing), 60, at(1_060)),
        Verdict::Expired
    );
}

#[test]
fn condition_keeps_its_transition_time_while_failing() {
    let mut s = CanaryStatus::default();
    set_condition(&mut s, ConditionStatus::False, "NoValues", "a", at(100));
    set_condition(&mut s, ConditionStatus::False, "NoValues", "b", at(200));
    let c = s.condition(METRICS_READY_CONDITION).unwrap();
    assert_eq!(c.last_transition_time, Some(Time(at(100))));
    assert_eq!(c.last_update_time, Some(Time(at(200))));
    assert_eq!(c.message.as_deref(), Some("b"));
    set_condition(
        &mut s,
        ConditionStatus::True,
        ANSWERED_REASON,
        "ok",
        at(300),
    );
    let c = s.condition(METRICS_READY_CONDITION).unwrap();
    assert_eq!(c.last_transition_time, Some(Time(at(300))));
    assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
}

#[test]
fn who_gets_a_preflight() {
    let with = |analysis: serde_json::Value, extra: serde_json::Value| {
        applies(&canary(Some(analysis), extra), &Provider::Istio)
    };
    let metrics =
        serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]);
    assert!(with(
        serde_json::json!({"metrics": metrics}),
        serde_json::json!({})
    ));
    assert!(
        !with(serde_json::json!({}), serde_json::json!({})),
        "no metrics"
    );
    assert!(!with(
        serde_json::json!({"metrics": metrics, "preflight": false}),
        serde_json::json!({})
    ));
    assert!(!with(
        serde_json::json!({"metrics": metrics}),
        serde_json::json!({"skipAnalysis": true})
    ));
    let c = canary(
        Some(serde_json::json!({"metrics": metrics})),
        serde_json::json!({}),
    );
    assert!(!applies(&c, &Provider::Knative), "no primary to query");
}

const NO_VALUES: &str = "Query pre-flight: metric error-rate (prometheus) returned no values for the primary podinfo-primary.test; likely cause: no traffic yet: podinfo-primary.test received no requests in the last 1m; query: errors{workload=\"podinfo-primary\"}; the canary gets no traffic until every query answers (progress deadline 120s)";

fn finding() -> Finding {
    Finding {
        metric: "error-rate".into(),
        provider: "prometheus".into(),
        query: Some("errors{workload=\"podinfo-primary\"}".into()),
        problem: Problem::NoValues,
        cause: "no traffic yet: podinfo-primary.test received no requests in the last 1m".into(),
        primary: "podinfo-primary.test".into(),
    }
}

fn with_metrics() -> World {
    let analysis = serde_json::json!({
        "interval": "1m", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
        "metrics": [{"name": "error-rate", "templateRef": {"name": "error-rate"},
                     "thresholdRange": {"max": 1}}]
    });
    World::new(canary(
        Some(analysis),
        serde_json::json!({"progressDeadlineSeconds": 120}),
    ))
}

fn metrics_ready(w: &World) -> CanaryCondition {
    w.status()
        .condition(METRICS_READY_CONDITION)
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn initialisation_reports_without_holding() {
    let w = with_metrics();
    w.metrics
        .preflights
        .lock()
        .unwrap()
        .push_back(Err(finding()));
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Initialized);
    assert_eq!(w.warnings(), vec![NO_VALUES.to_string()]);
    assert_eq!(
        w.messages().last().map(String::as_str),
        Some(NO_VALUES),
        "after the initialisation events"
    );
    let c = metrics_ready(&w);
    assert_eq!(
        (c.status, c.reason.as_str()),
        (ConditionStatus::False, "NoValues")
    );
}

#[tokio::test]
async fn the_run_holds_at_weight_0_then_proceeds_when_the_queries_answer() {
    let w = with_metrics();
    w.initialized().await;
    assert_eq!(metrics_ready(&w).status, ConditionStatus::True);
    w.push("rev2");
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert_eq!(metrics_ready(&w).reason, PENDING_REASON);

    // Two held ticks (the progress deadline, 120 s, would end the third).
    for _ in 0..2 {
        w.metrics
            .preflights
            .lock()
            .unwrap()
            .push_back(Err(finding()));
    }
    w.clear();
    for _ in 0..2 {
        w.tick().await;
    }
    assert_eq!(
        w.warnings(),
        vec![NO_VALUES.to_string()],
        "one Warning event"
    );
    let s = w.status();
    assert_eq!(
        (s.phase, s.canary_weight, s.iterations, s.failed_checks),
        (CanaryPhase::Progressing, 0, 0, 0)
    );
    assert!(
        w.router.history.lock().unwrap().is_empty(),
        "no route was set"
    );
    assert!(
        !w.messages()
            .iter()
            .any(|m| m.starts_with("Starting canary analysis"))
    );
    let c = metrics_ready(&w);
    assert_eq!(c.status, ConditionStatus::False);
    assert_eq!(c.message.as_deref(), Some(NO_VALUES));
    let held = s.decisions.unwrap().last().cloned().unwrap();
    assert_eq!(held.checks[0].verdict, CheckVerdict::Held);
    assert_eq!(held.step.summary, "held at canary weight 0");

    // The template is fixed: the queries answer, the run goes on and runs no further
    // pre-flight.
    w.clear();
    w.tick().await;
    assert_eq!(w.status().canary_weight, 10);
    assert_eq!(metrics_ready(&w).status, ConditionStatus::True);
    assert!(w.warnings().is_empty());
    let runs = w.metrics.preflight_runs.load(Ordering::SeqCst);
    w.tick().await;
    assert_eq!(w.status().canary_weight, 20);
    assert_eq!(w.metrics.preflight_runs.load(Ordering::SeqCst), runs);
}

#[tokio::test]
async fn still_failing_after_the_progress_deadline_rolls_back() {
    let w = with_metrics();
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    for _ in 0..10 {
        w.metrics
            .preflights
            .lock()
            .unwrap()
            .push_back(Err(finding()));
    }
    // Held at 1, 2 and 3 intervals: the third is 120 s after the first failure.
    for _ in 0..2 {
        w.tick().await;
        assert_eq!(w.phase(), CanaryPhase::Progressing);
    }
    w.clear();
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    let reason = format!(
        "the query pre-flight still fails after the progress deadline: {}",
        finding().message()
    );
    assert_eq!(w.warnings()[0], reason);
    assert!(
        w.alerts().contains(&format!(
            "Progress deadline exceeded, podinfo.test rolled back: {reason}"
        )),
        "{:?}",
        w.alerts()
    );
    assert_eq!(w.routes(), crate::router::Routes::new(100, 0, false));
}

#[tokio::test]
async fn a_restarted_controller_keeps_the_deadline_of_the_first_failure() {
    let mut w = with_metrics();
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    for _ in 0..10 {
        w.metrics
            .preflights
            .lock()
            .unwrap()
            .push_back(Err(finding()));
    }
    w.tick().await;
    w.restart();
    w.clear();
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert!(
        w.warnings().is_empty(),
        "the same finding is not announced again"
    );
    w.tick().await;
    assert_eq!(
        w.phase(),
        CanaryPhase::Failed,
        "120 s after the first failure"
    );
}

#[tokio::test]
async fn opting_out_runs_no_preflight() {
    let w = with_metrics();
    w.edit(|c| {
        if let Some(a) = c.spec.analysis.as_mut() {
            a.preflight = Some(false);
        }
    });
    w.metrics
        .preflights
        .lock()
        .unwrap()
        .push_back(Err(finding()));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 10);
    assert_eq!(w.metrics.preflight_runs.load(Ordering::SeqCst), 0);
    assert!(w.status().condition(METRICS_READY_CONDITION).is_none());
}
