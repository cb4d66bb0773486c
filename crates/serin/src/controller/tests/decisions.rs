//! The decision record: every analysis tick leaves an entry in `status.decisions` with its
//! checks, webhook answers and step; the list is bounded; secrets stay out.

use super::*;
use crate::api::decision::{CheckRecord, MAX_DECISIONS, StepAction, Verdict};

fn check(name: &str, value: f64, verdict: Verdict) -> CheckRecord {
    CheckRecord {
        name: name.into(),
        provider: "prometheus".into(),
        query: Some(format!("sum(rate({name}[1m]))")),
        value: Some(value),
        max: Some(1.0),
        verdict,
        ..Default::default()
    }
}

fn decisions(w: &World) -> Vec<crate::api::decision::Decision> {
    w.status().decisions.unwrap_or_default()
}

async fn progressing(analysis: serde_json::Value) -> World {
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert!(
        decisions(&w).is_empty(),
        "starting a run is not an analysis tick"
    );
    w
}

#[tokio::test]
async fn every_analysis_tick_records_checks_webhooks_and_step() {
    let mut analysis = progressive();
    analysis["webhooks"] =
        serde_json::json!([hook("smoke", "pre-rollout"), hook("load", "rollout")]);
    let w = progressing(analysis).await;

    // First tick: pre-rollout hook, first step.
    w.tick().await;
    let d = decisions(&w);
    assert_eq!(d.len(), 1);
    let first = &d[0];
    assert_eq!(first.time, Time(w.clock.now()));
    assert_eq!(first.step.action, StepAction::Advance);
    assert_eq!(first.step.summary, "canary weight 0 → 10 (max 50)");
    assert_eq!(first.canary_weight, 10);
    assert!(first.checks.is_empty());
    assert_eq!(first.webhooks.len(), 1);
    assert_eq!(first.webhooks[0].name, "smoke");
    assert_eq!(first.webhooks[0].hook_type, "pre-rollout");
    assert_eq!(first.webhooks[0].status_code, Some(200));
    assert!(first.webhooks[0].ok);
    assert_eq!(first.webhooks[0].message.as_deref(), Some("ok"));

    // Second tick: rollout hook and the checks, next step.
    *lock(&w.metrics.default) = Ok(Measured {
        values: vec![("error-rate".into(), 0.2)],
        verdicts: Vec::new(),
        checks: vec![check("error-rate", 0.2, Verdict::Pass)],
    });
    w.tick().await;
    let d = decisions(&w);
    assert_eq!(d.len(), 2);
    assert_eq!(d[1].checks, vec![check("error-rate", 0.2, Verdict::Pass)]);
    assert_eq!(d[1].webhooks[0].hook_type, "rollout");
    assert_eq!(d[1].step.summary, "canary weight 10 → 20 (max 50)");
    assert_eq!(lock(&w.recorder.decisions).last(), Some(&d[1]));

    // A failed check is counted, then the threshold rolls back.
    let mut failed = check("error-rate", 3.0, Verdict::Fail);
    failed.message = Some("Halt podinfo.test advancement error-rate 3.00 > 1".into());
    *lock(&w.metrics.default) = Err(FailedCheck {
        message: "Halt podinfo.test advancement error-rate 3.00 > 1".into(),
        error: false,
        held: false,
        inconclusive: false,
        checks: vec![failed.clone()],
        verdicts: Vec::new(),
    });
    w.tick().await;
    let last = decisions(&w).pop().unwrap();
    assert_eq!(last.step.action, StepAction::FailedCheck);
    assert_eq!(last.step.summary, "failed checks 0 → 1 (rollback at 2)");
    assert_eq!(last.checks, vec![failed]);
    assert_eq!((last.canary_weight, last.failed_checks), (20, 1));
    w.tick().await;
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    let last = decisions(&w).pop().unwrap();
    assert_eq!(last.step.action, StepAction::Rollback);
    assert_eq!(last.phase, CanaryPhase::Failed);
    assert_eq!(
        last.step.summary,
        "rolled back after 2 failed check(s): all traffic to the primary"
    );
    // Ticks of a finished run record nothing more.
    let n = decisions(&w).len();
    w.tick().await;
    assert_eq!(decisions(&w).len(), n);
}

#[tokio::test]
async fn held_ticks_and_promotion_are_recorded() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("gate", "confirm-promotion")]);
    analysis["maxWeight"] = serde_json::json!(10);
    let w = progressing(analysis).await;
    w.fail_hook("gate", "not yet");
    w.tick().await; // 0 → 10
    w.tick().await; // max weight: confirm-promotion closed
    let last = decisions(&w).pop().unwrap();
    assert_eq!(last.step.action, StepAction::WaitPromotion);
    let gate = last.webhooks.last().unwrap();
    assert_eq!((gate.status_code, gate.ok), (Some(403), false));
    assert_eq!(gate.message.as_deref(), Some("not yet"));
    w.tick().await;
    assert_eq!(decisions(&w).pop().unwrap().step.action, StepAction::Hold);
    w.pass_hook("gate");
    w.tick().await;
    assert_eq!(
        decisions(&w).pop().unwrap().step.action,
        StepAction::Promote
    );
    w.tick_until(CanaryPhase::Succeeded, 5).await;
    let actions: Vec<StepAction> = decisions(&w).iter().map(|d| d.step.action).collect();
    assert_eq!(
        actions[actions.len() - 2..],
        [StepAction::Finalise, StepAction::Succeed]
    );
}

#[tokio::test]
async fn the_record_keeps_the_last_ticks_only() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("more", "confirm-traffic-increase")]);
    let w = progressing(analysis).await;
    w.fail_hook("more", "closed");
    for _ in 0..MAX_DECISIONS + 5 {
        w.tick().await;
    }
    let d = decisions(&w);
    assert_eq!(d.len(), MAX_DECISIONS);
    assert_eq!(d.last().unwrap().time, Time(w.clock.now()));
    assert!(d.iter().all(|x| x.step.action == StepAction::Hold));
    assert!(d.windows(2).all(|p| p[0].time.0 < p[1].time.0));
}

#[tokio::test]
async fn webhook_urls_and_metadata_stay_out_of_the_record() {
    let mut analysis = progressive();
    let mut gate = hook("gate", "confirm-traffic-increase");
    gate["url"] = serde_json::json!("http://gate.example:8080/hooks/T0/XYZSECRET?token=abc123");
    gate["metadata"] = serde_json::json!({"authorization": "Bearer s3cr3t-token"});
    analysis["webhooks"] = serde_json::json!([gate]);
    let w = progressing(analysis).await;
    w.fail_hook(
        "gate",
        "denied for Bearer s3cr3t-token at http://gate.example:8080/hooks/T0/XYZSECRET?token=abc123",
    );
    w.tick().await;
    let record = serde_json::to_string(&w.status().decisions).unwrap();
    for secret in ["s3cr3t", "XYZSECRET", "abc123", "/hooks"] {
        assert!(!record.contains(secret), "{secret} in {record}");
    }
    let gate = &decisions(&w)[0].webhooks[0];
    assert_eq!(
        gate.message.as_deref(),
        Some("denied for [redacted] at http://gate.example:8080")
    );
}

#[tokio::test]
async fn a_progress_deadline_rollback_is_recorded() {
    let w = progressing(progressive()).await;
    w.tick().await;
    w.set_canary_ready(Ready::Waiting("waiting for rollout".into()));
    w.tick().await;
    assert_eq!(
        decisions(&w).len(),
        1,
        "a tick that waits for readiness writes nothing"
    );
    w.set_canary_ready(Ready::Failed("progress deadline exceeded".into()));
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    let last = decisions(&w).pop().unwrap();
    assert_eq!(last.step.action, StepAction::Rollback);
    assert_eq!(last.step.summary, "rolled back: canary weight 10 → 0");
    assert!(last.checks.is_empty());
}
