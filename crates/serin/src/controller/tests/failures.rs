//! Failure paths: threshold, rollback webhook, progress deadline, failed promotion, hooks that
//! fail, readiness.

use super::*;

async fn progressing(analysis: serde_json::Value) -> World {
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    w
}

fn assert_rolled_back(w: &World) {
    let s = w.status();
    assert_eq!(s.phase, CanaryPhase::Failed);
    assert_eq!((s.canary_weight, s.iterations, s.failed_checks), (0, 0, 0));
    assert_eq!(w.routes(), Routes::new(100, 0, false));
    assert!(!lock(&w.target.0).scaled_up, "canary scaled to zero");
    assert_eq!(*lock(&w.recorder.status), Some(2));
    assert_eq!(lock(&w.recorder.failures).len(), 1);
    assert_eq!(
        s.promoted_condition().unwrap().message.as_deref(),
        Some("Canary analysis failed, Deployment scaled to zero.")
    );
}

/// Seed 000's failed A/B run, with the canary strategy.
#[tokio::test]
async fn failed_checks_threshold_rolls_back() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("notify", "post-rollout")]);
    let w = progressing(analysis).await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 10);
    w.fail_metrics("Halt podinfo.test advancement request-success-rate 31.00% < 99%");
    w.tick().await;
    assert_eq!(w.status().failed_checks, 1);
    assert_eq!(w.status().canary_weight, 10, "no advance on a failed check");
    w.tick().await;
    assert_eq!(w.status().failed_checks, 2);
    w.clear();
    w.tick().await;
    assert_rolled_back(&w);
    assert_eq!(
        w.messages(),
        vec![
            "Rolling back podinfo.test failed checks threshold reached 2",
            "Canary failed! Scaling down podinfo.test",
            "Post-rollout check notify passed",
        ]
    );
    assert_eq!(
        w.alerts(),
        vec!["Failed checks threshold reached 2".to_string()]
    );
    assert_eq!(lock(&w.alerter.0)[0].2, AlertSeverity::Error);
    assert_eq!(
        w.hook_calls(),
        vec![("notify".to_string(), CanaryPhase::Failed)]
    );
    // Failed stays Failed, quietly.
    w.clear();
    w.tick().await;
    w.tick().await;
    assert!(w.messages().is_empty(), "{:?}", w.messages());
    assert_eq!(w.phase(), CanaryPhase::Failed);
}

#[tokio::test]
async fn metric_query_errors_are_error_events() {
    let w = progressing(progressive()).await;
    w.tick().await;
    lock(&w.metrics.queue).push_back(Err(FailedCheck {
        message: "Metric query failed for error-rate: connection refused".into(),
        error: true,
        held: false,
        inconclusive: false,
        checks: Vec::new(),
        verdicts: Vec::new(),
    }));
    w.clear();
    w.tick().await;
    assert_eq!(
        *lock(&w.events.0),
        vec![(
            EventKind::Error,
            "Metric query failed for error-rate: connection refused".to_string()
        )]
    );
    assert_eq!(w.status().failed_checks, 1);
}

/// A MetricTemplate that cannot be read because the API server failed is not evidence against
/// the canary: the step is held (no weight change, no failed check) and the next tick goes on.
#[tokio::test]
async fn held_checks_are_not_failed_checks() {
    let w = progressing(progressive()).await;
    w.tick().await;
    let weight = w.status().canary_weight;
    let message = "Halt advancement: metric template latency.test cannot be read, retrying at the next interval (not counted as a failed check): the API server answered HTTP 500 Internal Server Error";
    for _ in 0..3 {
        lock(&w.metrics.queue).push_back(Err(FailedCheck {
            message: message.into(),
            error: false,
            held: true,
            inconclusive: false,
            checks: Vec::new(),
            verdicts: Vec::new(),
        }));
    }
    w.clear();
    for _ in 0..3 {
        w.tick().await;
    }
    assert_eq!(
        *lock(&w.events.0),
        vec![(EventKind::Warning, message.to_string()); 3]
    );
    assert_eq!(w.status().failed_checks, 0);
    assert_eq!(w.status().canary_weight, weight);
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    w.tick().await;
    assert!(w.status().canary_weight > weight);
    assert_eq!(w.status().failed_checks, 0);
}

#[tokio::test]
async fn rollback_webhook() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("manual", "rollback")]);
    let w = progressing(analysis).await;
    w.fail_hook("manual", "Forbidden");
    w.tick().await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 20);
    assert_eq!(
        w.messages()
            .iter()
            .filter(|m| *m == "Rollback hook manual not signaling a rollback")
            .count(),
        2
    );
    w.pass_hook("manual");
    w.clear();
    w.tick().await;
    assert_rolled_back(&w);
    assert_eq!(
        w.messages(),
        vec![
            "Rollback check manual passed",
            "Rolling back podinfo.test manual webhook invoked",
            "Canary failed! Scaling down podinfo.test",
        ]
    );
    assert_eq!(
        w.alerts(),
        vec!["Rolling back manual webhook invoked".to_string()]
    );
    assert_eq!(
        w.hook_calls(),
        vec![("manual".to_string(), CanaryPhase::Progressing)]
    );
}

#[tokio::test]
async fn canary_progress_deadline_rolls_back() {
    let w = progressing(progressive()).await;
    w.set_canary_ready(Ready::Waiting(
        "canary deployment podinfo.test not ready: waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available".into(),
    ));
    w.tick().await;
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert_eq!(w.status().failed_checks, 0, "waiting is not a failed check");
    assert_eq!(w.status().canary_weight, 0);
    w.set_canary_ready(Ready::Failed(
        "canary deployment podinfo.test not ready: deployment \"podinfo\" exceeded its progress deadline".into(),
    ));
    w.clear();
    w.tick().await;
    assert_rolled_back(&w);
    assert_eq!(
        w.warnings(),
        vec![
            "canary deployment podinfo.test not ready: deployment \"podinfo\" exceeded its progress deadline",
            "Canary failed! Scaling down podinfo.test",
        ]
    );
}

#[tokio::test]
async fn failed_promotion_routes_everything_to_the_canary() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("notify", "post-rollout")]);
    let w = progressing(analysis).await;
    w.tick_until(CanaryPhase::Promoting, 10).await;
    w.set_primary_ready(Ready::Waiting(
        "podinfo-primary.test not ready: waiting for rollout to finish: 1 of 2 updated replicas are available".into(),
    ));
    w.tick().await;
    assert_eq!(
        w.phase(),
        CanaryPhase::Promoting,
        "waits for the primary rollout"
    );
    w.set_primary_ready(Ready::Failed(
        "podinfo-primary.test not ready: deployment \"podinfo-primary\" exceeded its progress deadline".into(),
    ));
    w.clear();
    w.tick().await;
    let s = w.status();
    assert_eq!((s.phase, s.canary_weight), (CanaryPhase::Failed, 100));
    assert_eq!(w.routes(), Routes::new(0, 100, false));
    assert!(lock(&w.target.0).scaled_up, "the canary keeps serving");
    assert_eq!(
        w.messages(),
        vec![
            "podinfo-primary.test not ready: deployment \"podinfo-primary\" exceeded its progress deadline",
            "Promotion of podinfo.test failed, primary not ready: podinfo-primary.test not ready: deployment \"podinfo-primary\" exceeded its progress deadline",
            "Post-rollout check notify passed",
        ]
    );
    assert_eq!(
        w.alerts(),
        vec!["Promotion failed, primary not ready: podinfo-primary.test not ready: deployment \"podinfo-primary\" exceeded its progress deadline".to_string()]
    );
    assert_eq!(lock(&w.recorder.failures).len(), 1);
}

#[tokio::test]
async fn primary_failing_during_the_run_rolls_back() {
    let w = progressing(progressive()).await;
    w.tick().await;
    w.set_primary_ready(Ready::Failed(
        "podinfo-primary.test not ready: deployment \"podinfo-primary\" exceeded its progress deadline".into(),
    ));
    w.tick().await;
    assert_rolled_back(&w);
}

#[tokio::test]
async fn pre_rollout_failures_count_and_roll_back() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("acceptance-test", "pre-rollout")]);
    let w = progressing(analysis).await;
    w.fail_hook("acceptance-test", "command failed: exit status 1");
    w.clear();
    w.tick().await;
    w.tick().await;
    w.tick().await;
    assert_eq!(
        w.messages(),
        vec![
            "Starting canary analysis for podinfo.test",
            "Halt podinfo.test advancement pre-rollout check acceptance-test failed command failed: exit status 1",
            "Starting canary analysis for podinfo.test",
            "Halt podinfo.test advancement pre-rollout check acceptance-test failed command failed: exit status 1",
            "Rolling back podinfo.test failed checks threshold reached 2",
            "Canary failed! Scaling down podinfo.test",
        ]
    );
    assert_rolled_back(&w);
    assert_eq!(w.metrics.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rollout_hook_failure_is_a_failed_check() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([
        {"name": "load-test", "url": "http://hooks/load-test"}
    ]);
    let w = progressing(analysis).await;
    w.tick().await;
    w.fail_hook(
        "load-test",
        "POST http://hooks/load-test giving up after 1 attempt(s)",
    );
    w.clear();
    w.tick().await;
    assert_eq!(
        w.messages(),
        vec![
            "Halt podinfo.test advancement external check load-test failed POST http://hooks/load-test giving up after 1 attempt(s)"
        ]
    );
    assert_eq!(w.status().failed_checks, 1);
    assert_eq!(
        w.metrics.runs.load(Ordering::SeqCst),
        0,
        "no metrics after a failed hook"
    );
    // The hook recovers: the run goes on (failed checks are kept for the run).
    w.pass_hook("load-test");
    w.tick().await;
    let s = w.status();
    assert_eq!((s.canary_weight, s.failed_checks), (20, 1));
}

#[tokio::test]
async fn post_rollout_failure_is_only_reported() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([
        hook("notify", "post-rollout"),
        hook("second", "post-rollout")
    ]);
    let w = progressing(analysis).await;
    w.fail_hook("notify", "Bad Gateway");
    w.tick_until(CanaryPhase::Succeeded, 20).await;
    let last: Vec<String> = w.messages().into_iter().rev().take(2).collect();
    assert_eq!(
        last,
        vec![
            "Promotion completed! Scaling down podinfo.test",
            "Post-rollout hook notify failed Bad Gateway",
        ]
    );
    assert!(
        !w.hook_calls().iter().any(|(h, _)| h == "second"),
        "the first failure short-circuits"
    );
}

#[tokio::test]
async fn threshold_in_waiting_promotion_still_rolls_back() {
    let mut analysis =
        serde_json::json!({"interval": "1m", "threshold": 1, "maxWeight": 20, "stepWeight": 10});
    analysis["webhooks"] = serde_json::json!([hook("approve", "confirm-promotion")]);
    let w = progressing(analysis).await;
    w.fail_hook("approve", "Forbidden");
    w.tick_until(CanaryPhase::WaitingPromotion, 5).await;
    w.fail_metrics("Halt podinfo.test advancement error-rate 31.00 > 1");
    w.tick().await;
    assert_eq!(w.status().failed_checks, 1);
    w.tick().await;
    assert_rolled_back(&w);
}

#[tokio::test]
async fn failed_canary_retries_the_same_revision_after_a_revert() {
    // Flagger's lifecycle test: promote A, push B (fails), revert to A (no analysis), push B
    // again: analysed again.
    let w = progressing(progressive()).await;
    w.tick_until(CanaryPhase::Succeeded, 20).await;
    w.push("rev3");
    w.reconcile().await;
    w.fail_metrics("Halt podinfo.test advancement error-rate 31.00 > 1");
    w.tick_until(CanaryPhase::Failed, 10).await;
    w.pass_metrics();
    w.clear();
    w.push("rev2");
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    assert!(
        w.messages().is_empty(),
        "a revert is no new revision: {:?}",
        w.messages()
    );
    assert_eq!(w.status().last_applied_spec.as_deref(), Some("rev2"));
    w.push("rev3");
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert_eq!(
        w.messages(),
        vec!["New revision detected! Scaling up podinfo.test"]
    );
}
