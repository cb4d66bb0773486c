//! Alerts for every failure of a run (issue 15): a pre-rollout hook, the progress deadline, a
//! failed promotion and a rollback for another reason than the analysis each send one alert
//! with the severity of `controller::alerts`, and a rollback retried after an error does not
//! send it again.

use super::*;

async fn progressing(analysis: serde_json::Value) -> World {
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    w.clear();
    w
}

/// Every alert sent: message and severity.
fn sent(w: &World) -> Vec<(String, AlertSeverity)> {
    lock(&w.alerter.0)
        .iter()
        .map(|(m, _, s)| (m.clone(), *s))
        .collect()
}

const PRE_ROLLOUT_ALERT: &str = "Pre-rollout check acceptance-test of podinfo.test failed: \
    command failed: exit status 1. It is retried every interval; the canary is rolled back \
    after 3 failed checks.";

#[tokio::test]
async fn a_failing_pre_rollout_hook_alerts_once_then_the_rollback_alerts() {
    let mut analysis = progressive();
    analysis["threshold"] = serde_json::json!(3);
    analysis["webhooks"] = serde_json::json!([hook("acceptance-test", "pre-rollout")]);
    let w = progressing(analysis).await;
    w.fail_hook("acceptance-test", "command failed: exit status 1");
    for _ in 0..3 {
        w.tick().await;
    }
    assert_eq!(w.status().failed_checks, 3);
    assert_eq!(
        sent(&w),
        vec![(PRE_ROLLOUT_ALERT.to_string(), AlertSeverity::Warn)],
        "three failed checks, one alert"
    );
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    assert_eq!(
        sent(&w),
        vec![
            (PRE_ROLLOUT_ALERT.to_string(), AlertSeverity::Warn),
            (
                "Failed checks threshold reached 3".to_string(),
                AlertSeverity::Error
            ),
        ]
    );
    w.tick().await;
    assert_eq!(sent(&w).len(), 2, "a Failed canary stays quiet");
}

#[tokio::test]
async fn a_pre_rollout_failure_whose_count_is_lost_alerts_once() {
    let mut analysis = progressive();
    analysis["threshold"] = serde_json::json!(3);
    analysis["webhooks"] = serde_json::json!([hook("acceptance-test", "pre-rollout")]);
    let w = progressing(analysis).await;
    w.fail_hook("acceptance-test", "command failed: exit status 1");
    w.store.fail_writes.store(1, Ordering::SeqCst);
    w.clock.advance(INTERVAL);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!(w.status().failed_checks, 0);
    assert!(sent(&w).is_empty(), "{:?}", sent(&w));
    w.tick().await;
    w.tick().await;
    assert_eq!(w.status().failed_checks, 2);
    assert_eq!(
        sent(&w),
        vec![(PRE_ROLLOUT_ALERT.to_string(), AlertSeverity::Warn)]
    );
}

#[tokio::test]
async fn a_muted_pre_rollout_hook_only_alerts_the_rollback() {
    let mut analysis = progressive();
    let mut gate = hook("acceptance-test", "pre-rollout");
    gate["muteAlert"] = serde_json::json!(true);
    analysis["webhooks"] = serde_json::json!([gate]);
    let w = progressing(analysis).await;
    w.fail_hook("acceptance-test", "command failed: exit status 1");
    w.tick_until(CanaryPhase::Failed, 5).await;
    assert_eq!(
        sent(&w),
        vec![(
            "Failed checks threshold reached 2".to_string(),
            AlertSeverity::Error
        )]
    );
}

#[tokio::test]
async fn a_pre_rollout_hook_that_recovers_sends_nothing_more() {
    let mut analysis = progressive();
    analysis["threshold"] = serde_json::json!(3);
    analysis["webhooks"] = serde_json::json!([hook("acceptance-test", "pre-rollout")]);
    let w = progressing(analysis).await;
    w.fail_hook("acceptance-test", "command failed: exit status 1");
    w.tick().await;
    w.pass_hook("acceptance-test");
    w.tick_until(CanaryPhase::Succeeded, 20).await;
    assert_eq!(
        sent(&w),
        vec![
            (PRE_ROLLOUT_ALERT.to_string(), AlertSeverity::Warn),
            (
                crate::controller::events::alert::SUCCEEDED.to_string(),
                AlertSeverity::Info
            ),
        ]
    );
}

const CANARY_DEADLINE: &str = "canary deployment podinfo.test not ready: deployment \"podinfo\" exceeded its progress deadline";

#[tokio::test]
async fn the_canary_progress_deadline_alerts_once() {
    let w = progressing(progressive()).await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 10);
    w.set_canary_ready(Ready::Failed(CANARY_DEADLINE.into()));
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    w.tick().await;
    assert_eq!(
        sent(&w),
        vec![(
            format!("Progress deadline exceeded, podinfo.test rolled back: {CANARY_DEADLINE}"),
            AlertSeverity::Error
        )]
    );
}

#[tokio::test]
async fn a_deadline_rollback_retried_after_a_lost_write_alerts_once() {
    let w = progressing(progressive()).await;
    w.set_canary_ready(Ready::Failed(CANARY_DEADLINE.into()));
    // The Failed write is lost: the run is not Failed yet, nothing is alerted.
    w.store.fail_writes.store(1, Ordering::SeqCst);
    w.clock.advance(INTERVAL);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert!(sent(&w).is_empty(), "{:?}", sent(&w));
    // The next tick finds the deadline again and finishes the rollback.
    w.tick().await;
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    assert_eq!(
        sent(&w),
        vec![(
            format!("Progress deadline exceeded, podinfo.test rolled back: {CANARY_DEADLINE}"),
            AlertSeverity::Error
        )]
    );
}

#[tokio::test]
async fn an_interrupted_rollback_alerts_when_it_is_finished() {
    let w = progressing(progressive()).await;
    w.tick().await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 20);
    w.set_canary_ready(Ready::Failed(CANARY_DEADLINE.into()));
    w.store.fail_writes.store(1, Ordering::SeqCst);
    w.clock.advance(INTERVAL);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!(w.routes(), Routes::new(100, 0, false));
    assert!(sent(&w).is_empty());
    // The routes show the rollback; the next tick finishes it without knowing its reason.
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    w.tick().await;
    assert_eq!(
        sent(&w),
        vec![(
            "Canary podinfo.test rolled back: an interrupted rollback was finished, see the \
             Canary's events for its reason"
                .to_string(),
            AlertSeverity::Error
        )]
    );
}

#[tokio::test]
async fn the_primary_progress_deadline_during_the_analysis_alerts() {
    let w = progressing(progressive()).await;
    w.tick().await;
    let reason = "podinfo-primary.test not ready: deployment \"podinfo-primary\" exceeded its progress deadline";
    w.set_primary_ready(Ready::Failed(reason.into()));
    w.tick().await;
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    assert_eq!(
        sent(&w),
        vec![(
            format!("Progress deadline exceeded, podinfo.test rolled back: {reason}"),
            AlertSeverity::Error
        )]
    );
}

#[tokio::test]
async fn a_failed_promotion_retried_after_a_lost_write_alerts_once() {
    let w = progressing(progressive()).await;
    w.tick_until(CanaryPhase::Promoting, 10).await;
    w.clear();
    let reason = "podinfo-primary.test not ready: deployment \"podinfo-primary\" exceeded its progress deadline";
    w.set_primary_ready(Ready::Failed(reason.into()));
    w.store.fail_writes.store(1, Ordering::SeqCst);
    w.clock.advance(INTERVAL);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!(w.phase(), CanaryPhase::Promoting);
    assert!(sent(&w).is_empty(), "{:?}", sent(&w));
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    w.tick().await;
    assert_eq!(
        sent(&w),
        vec![(
            format!("Promotion failed, primary not ready: {reason}"),
            AlertSeverity::Error
        )]
    );
}

#[tokio::test]
async fn a_rollback_webhook_alerts_once_as_a_warning() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("abort", "rollback")]);
    let w = progressing(analysis).await;
    w.fail_hook("abort", "not now");
    w.tick().await;
    assert!(sent(&w).is_empty(), "a hook that does not signal is quiet");
    w.pass_hook("abort");
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    w.tick().await;
    assert_eq!(
        sent(&w),
        vec![(
            "Rolling back manual webhook invoked".to_string(),
            AlertSeverity::Warn
        )]
    );
}
