//! `kubectl serin` requests through the scheduler: promote (with and without the
//! confirm-promotion gate, forced), abort, retry, pause and resume, refusals, and that each
//! request is applied once, also across a restart.

use super::*;
use crate::api::request::{PAUSE_ANNOTATION, REQUEST_ANNOTATION, RequestOutcome};

fn ask(w: &World, id: &str, action: &str, force: bool) {
    let value = serde_json::json!({"id": id, "action": action, "by": "alice", "force": force});
    w.edit(|c| {
        c.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(REQUEST_ANNOTATION.into(), value.to_string());
    });
}

fn pause(w: &World, on: bool) {
    w.edit(|c| {
        let a = c.metadata.annotations.get_or_insert_with(Default::default);
        if on {
            a.insert(PAUSE_ANNOTATION.into(), r#"{"by":"alice"}"#.into());
        } else {
            a.remove(PAUSE_ANNOTATION);
        }
    });
}

fn outcome(w: &World) -> Option<(String, RequestOutcome)> {
    w.status().last_request.map(|r| (r.id, r.outcome))
}

/// A run at canary weight 20 (interval 1m, maxWeight 50, stepWeight 10).
async fn at_weight_20(analysis: serde_json::Value) -> World {
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 20, "{:?}", w.messages());
    w.clear();
    w
}

#[tokio::test]
async fn promote_skips_the_rest_of_the_analysis() {
    let mut w = at_weight_20(progressive()).await;
    ask(&w, "r-1", "promote", false);
    // At once, not one interval later.
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Promoting);
    assert_eq!(lock(&w.target.0).promotions, 1);
    assert_eq!(
        w.messages(),
        vec![
            "Promotion requested by alice via kubectl serin: skipping the rest of the analysis of podinfo.test",
            "Copying podinfo.test template spec to podinfo-primary.test",
        ]
    );
    assert_eq!(outcome(&w), Some(("r-1".into(), RequestOutcome::Done)));
    // A restarted controller does not apply it again.
    w.restart();
    w.tick_until(CanaryPhase::Succeeded, 5).await;
    let count = |text: &str| w.messages().iter().filter(|m| m.contains(text)).count();
    assert_eq!(count("requested by"), 1, "{:?}", w.messages());
    assert_eq!(count("Copying"), 1, "{:?}", w.messages());
    assert_eq!(w.routes(), Routes::new(100, 0, false));
}

#[tokio::test]
async fn promote_honours_the_confirm_promotion_gate() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("gate", "confirm-promotion")]);
    let w = at_weight_20(analysis).await;
    w.fail_hook("gate", "Forbidden");
    ask(&w, "r-1", "promote", false);
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::WaitingPromotion);
    assert_eq!(outcome(&w), Some(("r-1".into(), RequestOutcome::Waiting)));
    // Waiting at the gate: no step, no metric check, the request announced once.
    w.tick().await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 20);
    assert_eq!(
        w.messages(),
        vec![
            "Promotion requested by alice via kubectl serin: skipping the rest of the analysis of podinfo.test",
            "Halt podinfo.test advancement waiting for promotion approval gate",
        ]
    );
    assert_eq!(
        w.hook_calls().iter().filter(|(n, _)| n == "gate").count(),
        3
    );
    w.pass_hook("gate");
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Promoting);
    assert_eq!(outcome(&w), Some(("r-1".into(), RequestOutcome::Done)));
    // The decision record has the request's steps, with the gate's answers.
    let record = w.status().decisions.unwrap();
    let steps: Vec<(&str, &str)> = record
        .iter()
        .rev()
        .take(2)
        .map(|d| (d.step.action.as_str(), d.step.summary.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (
                "promote",
                "promotion requested by alice via kubectl serin: copying the canary to the primary"
            ),
            (
                "waitPromotion",
                "promotion requested by alice via kubectl serin, waiting for confirm-promotion"
            ),
        ]
    );
    let gate = &record.last().unwrap().webhooks;
    assert_eq!(gate.len(), 1);
    assert!(gate[0].ok);
}

#[tokio::test]
async fn forced_promote_passes_the_closed_gate() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("gate", "confirm-promotion")]);
    let w = at_weight_20(analysis).await;
    w.fail_hook("gate", "Forbidden");
    ask(&w, "r-1", "promote", true);
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Promoting);
    assert!(w.hook_calls().is_empty(), "{:?}", w.hook_calls());
    assert_eq!(
        w.messages()[0],
        "Promotion past the confirm-promotion gate requested by alice via kubectl serin: skipping the rest of the analysis of podinfo.test"
    );
}

#[tokio::test]
async fn a_new_revision_supersedes_a_promotion_waiting_at_the_gate() {
    for pruned in [false, true] {
        let mut analysis = progressive();
        analysis["webhooks"] = serde_json::json!([hook("gate", "confirm-promotion")]);
        let w = at_weight_20(analysis).await;
        w.store
            .prune_requests
            .store(pruned, std::sync::atomic::Ordering::SeqCst);
        w.fail_hook("gate", "Forbidden");
        ask(&w, "r-1", "promote", false);
        w.reconcile().await;
        if !pruned {
            assert_eq!(outcome(&w), Some(("r-1".into(), RequestOutcome::Waiting)));
        }
        w.push("rev3");
        w.reconcile().await;
        assert_eq!(w.phase(), CanaryPhase::Progressing);
        assert_eq!(w.status().canary_weight, 0);
        if !pruned {
            assert_eq!(
                outcome(&w),
                Some(("r-1".into(), RequestOutcome::Superseded))
            );
        }
        w.pass_hook("gate");
        w.tick().await;
        assert_eq!(
            (w.phase(), w.status().canary_weight),
            (CanaryPhase::Progressing, 10),
            "rev3 is analysed (pruned: {pruned})"
        );
    }
}

#[tokio::test]
async fn abort_rolls_back_now() {
    let w = at_weight_20(progressive()).await;
    ask(&w, "r-1", "abort", false);
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    assert_eq!(w.routes(), Routes::new(100, 0, false));
    assert!(!lock(&w.target.0).scaled_up);
    assert_eq!(
        w.warnings(),
        vec![
            "Abort requested by alice via kubectl serin: rolling back podinfo.test",
            "Canary failed! Scaling down podinfo.test",
        ]
    );
    assert_eq!(
        w.alerts(),
        vec!["Canary podinfo.test rolled back: abort requested by alice via kubectl serin"]
    );
    assert_eq!(outcome(&w), Some(("r-1".into(), RequestOutcome::Done)));
    let last = w.status().decisions.unwrap().pop().unwrap();
    assert_eq!(
        (last.step.action.as_str(), last.step.summary.as_str()),
        (
            "rollback",
            "rolled back: abort requested by alice via kubectl serin"
        )
    );
    w.clear();
    w.tick().await;
    assert!(w.messages().is_empty(), "{:?}", w.messages());
}

#[tokio::test]
async fn requests_that_make_no_sense_are_refused_once() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.initialized().await;
    ask(&w, "r-1", "promote", false);
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Initialized);
    assert_eq!(
        w.warnings(),
        vec![
            "Promotion requested by alice via kubectl serin ignored: podinfo.test has no analysis in progress (phase Initialized)"
        ]
    );
    let last = w.status().last_request.unwrap();
    assert_eq!(last.outcome, RequestOutcome::Refused);
    assert_eq!(
        last.message.as_deref(),
        Some("podinfo.test has no analysis in progress (phase Initialized)")
    );
    w.tick().await;
    w.tick().await;
    assert_eq!(w.warnings().len(), 1, "{:?}", w.warnings());
    // An annotation that is not a request is said so, once.
    w.edit(|c| {
        c.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(REQUEST_ANNOTATION.into(), "promote".into());
    });
    w.clear();
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.warnings().len(), 1, "{:?}", w.warnings());
    assert!(
        w.warnings()[0]
            .starts_with("Request ignored: serin.dev/request is not a kubectl serin request: "),
        "{:?}",
        w.warnings()
    );
}

#[tokio::test]
async fn pause_holds_the_run_until_resumed() {
    let w = at_weight_20(progressive()).await;
    pause(&w, true);
    w.reconcile().await;
    assert_eq!(
        w.messages(),
        vec![
            "podinfo.test paused by alice via kubectl serin: no step, no check and no weight change until it is resumed"
        ]
    );
    assert_eq!(w.status().paused.unwrap().by, "alice");
    // Failing checks, an unready canary past its deadline: nothing counts while paused.
    w.fail_metrics("Halt podinfo.test advancement success rate 50.00% < 99%");
    w.set_canary_ready(Ready::Failed("exceeded its progress deadline".into()));
    for _ in 0..5 {
        w.tick().await;
    }
    let s = w.status();
    assert_eq!(
        (s.phase, s.canary_weight, s.failed_checks),
        (CanaryPhase::Progressing, 20, 0)
    );
    assert_eq!(w.routes(), Routes::new(80, 20, false));
    assert_eq!(w.messages().len(), 1, "{:?}", w.messages());
    // A promotion is refused while paused; an abort would not be.
    ask(&w, "r-1", "promote", false);
    w.reconcile().await;
    assert_eq!(
        w.warnings(),
        vec![
            "Promotion requested by alice via kubectl serin ignored: podinfo.test is paused: resume it first"
        ]
    );
    // Resumed by kubectl serin resume: the annotation goes and a resume request names who.
    w.set_canary_ready(Ready::Yes);
    w.pass_metrics();
    pause(&w, false);
    ask(&w, "r-2", "resume", false);
    w.clear();
    w.reconcile().await;
    assert_eq!(
        w.messages(),
        vec!["Resume requested by alice via kubectl serin: podinfo.test carries on"]
    );
    assert!(w.status().paused.is_none());
    assert_eq!(
        w.status().canary_weight,
        20,
        "the next step one interval later"
    );
    w.tick().await;
    assert_eq!(w.status().canary_weight, 30);
}

#[tokio::test]
async fn a_pause_removed_by_hand_ends_too() {
    let w = at_weight_20(progressive()).await;
    pause(&w, true);
    w.reconcile().await;
    pause(&w, false);
    w.clear();
    w.reconcile().await;
    assert_eq!(
        w.messages(),
        vec!["podinfo.test resumed: the serin.dev/paused annotation was removed"]
    );
    w.tick().await;
    assert_eq!(w.status().canary_weight, 30);
}

#[tokio::test]
async fn retry_runs_a_failed_revision_again() {
    let w = at_weight_20(progressive()).await;
    w.fail_metrics("Halt podinfo.test advancement success rate 50.00% < 99%");
    w.tick_until(CanaryPhase::Failed, 5).await;
    w.pass_metrics();
    // A Failed canary waits for a new revision...
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    // ...or for a retry.
    ask(&w, "r-1", "retry", false);
    w.clear();
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert!(lock(&w.target.0).scaled_up);
    let s = w.status();
    assert_eq!((s.canary_weight, s.failed_checks), (0, 0));
    assert_eq!(
        w.messages(),
        vec![
            "Retry requested by alice via kubectl serin: analysing podinfo.test again from the start",
            "New revision detected! Scaling up podinfo.test",
        ]
    );
    w.tick_until(CanaryPhase::Succeeded, 12).await;
    assert_eq!(lock(&w.target.0).primary_hash.as_deref(), Some("rev2"));
}

#[tokio::test]
async fn a_canary_without_annotations_never_writes_request_fields() {
    let w = at_weight_20(progressive()).await;
    w.tick_until(CanaryPhase::Succeeded, 10).await;
    let writes = lock(&w.store.writes).clone();
    assert!(
        writes
            .iter()
            .all(|s| s.last_request.is_none() && s.paused.is_none())
    );
}

/// Flagger's CRDs prune `status.lastRequest` and `status.paused`: the running controller still
/// handles each request once and keeps a pause without repeating itself.
#[tokio::test]
async fn without_the_status_fields_requests_are_still_handled_once() {
    let w = at_weight_20(progressive()).await;
    w.store
        .prune_requests
        .store(true, std::sync::atomic::Ordering::SeqCst);
    w.fail_metrics("Halt podinfo.test advancement success rate 50.00% < 99%");
    ask(&w, "r-1", "abort", false);
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    assert!(w.status().last_request.is_none(), "pruned");
    // A retry runs once: the run fails again and stays Failed.
    ask(&w, "r-2", "retry", false);
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    w.tick_until(CanaryPhase::Failed, 6).await;
    for _ in 0..4 {
        w.tick().await;
    }
    assert_eq!(w.phase(), CanaryPhase::Failed);
    let count = |text: &str| w.messages().iter().filter(|m| m.contains(text)).count();
    assert_eq!(count("Retry requested"), 1, "{:?}", w.messages());
    assert_eq!(count("Abort requested"), 1, "{:?}", w.messages());
    assert_eq!(count("ignored"), 0, "{:?}", w.messages());
    // A pause is announced once and holds.
    pause(&w, true);
    w.reconcile().await;
    w.tick().await;
    w.tick().await;
    assert_eq!(count("paused by"), 1, "{:?}", w.messages());
}

#[tokio::test]
async fn an_action_that_fails_before_its_status_write_is_tried_again() {
    let w = at_weight_20(progressive()).await;
    ask(&w, "r-1", "abort", false);
    // The rollback's status write fails: nothing persisted, the request stays.
    w.store
        .fail_writes
        .store(1, std::sync::atomic::Ordering::SeqCst);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert!(w.status().last_request.is_none());
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    assert_eq!(outcome(&w), Some(("r-1".into(), RequestOutcome::Done)));
}
