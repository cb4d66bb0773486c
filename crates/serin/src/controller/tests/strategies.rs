//! Happy paths of every strategy, with the event sequences users see.

use super::*;

#[tokio::test]
async fn initialization() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.reconcile().await;
    assert_eq!(
        w.messages(),
        vec![
            "all the metrics providers are available!",
            "Initialization done! podinfo.test",
        ]
    );
    let s = w.status();
    assert_eq!(s.phase, CanaryPhase::Initialized);
    assert_eq!(s.last_applied_spec.as_deref(), Some("rev1"));
    assert_eq!(s.last_promoted_spec.as_deref(), Some("rev1"));
    assert_eq!(
        s.promoted_condition().unwrap().message.as_deref(),
        Some("Deployment initialization completed.")
    );
    // First sight wrote Initializing, then Initialized.
    let phases: Vec<_> = lock(&w.store.writes).iter().map(|s| s.phase).collect();
    assert_eq!(
        phases,
        vec![CanaryPhase::Initializing, CanaryPhase::Initialized]
    );
    {
        let t = lock(&w.target.0);
        assert!(!t.scaled_up, "the target is scaled to zero");
        assert_eq!(t.init_waits, vec![true], "init waits for the primary");
    }
    assert_eq!(w.routes(), Routes::new(100, 0, false));
    assert_eq!(
        w.alerts(),
        vec!["New Deployment detected, initialization completed."]
    );
    assert_eq!(*lock(&w.recorder.status), Some(1));
    // Idle ticks do nothing visible.
    w.clear();
    w.tick().await;
    w.tick().await;
    assert!(w.messages().is_empty(), "{:?}", w.messages());
}

#[tokio::test]
async fn init_waits_for_the_primary() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.set_primary_ready(Ready::Waiting(
        "podinfo-primary.test not ready: waiting for rollout to finish: observed deployment generation less than desired generation".into(),
    ));
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Initializing);
    w.set_primary_ready(Ready::Yes);
    // Not before the interval (the failed attempt is remembered).
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Initializing);
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Initialized);
    assert_eq!(
        w.messages(),
        vec![
            "all the metrics providers are available!",
            "podinfo-primary.test not ready: waiting for rollout to finish: observed deployment generation less than desired generation",
            "all the metrics providers are available!",
            "Initialization done! podinfo.test",
        ]
    );
}

/// The sequence of seed 001 (`kubectl describe canary/podinfo`), and Flagger's tick count:
/// weights 10…50 on ticks 1–5, promotion on tick 6, Finalising on tick 7, Succeeded on tick 8.
#[tokio::test]
async fn canary_promotion() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("acceptance-test", "pre-rollout")]);
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert!(lock(&w.target.0).scaled_up);
    let mut weights = vec![];
    for _ in 0..5 {
        w.tick().await;
        weights.push(w.status().canary_weight);
    }
    assert_eq!(weights, vec![10, 20, 30, 40, 50]);
    assert_eq!(w.routes(), Routes::new(50, 50, false));
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Promoting);
    assert_eq!(lock(&w.target.0).primary_hash.as_deref(), Some("rev2"));
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Finalising);
    assert_eq!(w.routes(), Routes::new(100, 0, false));
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Succeeded);
    assert_eq!(
        w.messages(),
        vec![
            "New revision detected! Scaling up podinfo.test",
            "Starting canary analysis for podinfo.test",
            "Pre-rollout check acceptance-test passed",
            "Advance podinfo.test canary weight 10",
            "Advance podinfo.test canary weight 20",
            "Advance podinfo.test canary weight 30",
            "Advance podinfo.test canary weight 40",
            "Advance podinfo.test canary weight 50",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Routing all traffic to primary",
            "Promotion completed! Scaling down podinfo.test",
        ]
    );
    let s = w.status();
    assert_eq!(s.last_promoted_spec.as_deref(), Some("rev2"));
    assert_eq!((s.canary_weight, s.iterations, s.failed_checks), (0, 0, 0));
    assert!(!lock(&w.target.0).scaled_up);
    assert_eq!(
        *lock(&w.recorder.successes),
        vec![(Strategy::Canary, AnalysisStatus::Completed)]
    );
    assert_eq!(
        w.alerts(),
        vec![
            "New revision detected, progressing canary analysis.",
            "Canary analysis completed successfully, promotion finished.",
        ]
    );
    // Metrics ran on the analysed ticks: weights 20..50 and the promotion tick.
    assert_eq!(w.metrics.runs.load(Ordering::SeqCst), 5);
    assert_eq!(
        lock(&w.recorder.metric_values).get("request-success-rate"),
        Some(&99.5)
    );
}

#[tokio::test]
async fn step_weights() {
    let analysis =
        serde_json::json!({"interval": "1m", "threshold": 2, "stepWeights": [1, 10, 50]});
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    let n = w.tick_until(CanaryPhase::Succeeded, 20).await;
    assert_eq!(n, 6);
    let weights: Vec<i32> = lock(&w.router.history).iter().map(|r| r.canary).collect();
    assert_eq!(weights, vec![1, 10, 50, 0]);
}

#[tokio::test]
async fn step_weight_promotion() {
    let analysis = serde_json::json!({"interval": "1m", "maxWeight": 50, "stepWeight": 25,
        "stepWeightPromotion": 20});
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick_until(CanaryPhase::Promoting, 10).await;
    w.clear();
    let mut seen = vec![];
    while w.phase() == CanaryPhase::Promoting {
        w.tick().await;
        seen.push((w.phase(), w.status().canary_weight, w.routes().primary));
    }
    assert_eq!(
        seen,
        vec![
            (CanaryPhase::Promoting, 30, 70),
            (CanaryPhase::Promoting, 10, 90),
            (CanaryPhase::Finalising, 0, 100),
        ]
    );
    assert_eq!(
        w.messages(),
        vec![
            "Advance podinfo.test primary weight 70",
            "Advance podinfo.test primary weight 90",
            "Advance podinfo.test primary weight 100",
        ]
    );
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Succeeded);
}

#[tokio::test]
async fn mirror_step_then_weights() {
    let analysis =
        serde_json::json!({"interval": "1m", "maxWeight": 20, "stepWeight": 10, "mirror": true});
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.routes(), Routes::new(100, 0, true), "a pure mirror step");
    assert_eq!(w.metrics.runs.load(Ordering::SeqCst), 0);
    w.tick().await;
    assert_eq!(
        w.metrics.runs.load(Ordering::SeqCst),
        1,
        "mirrored traffic analysed"
    );
    assert_eq!(w.routes(), Routes::new(90, 10, false));
    w.tick().await;
    assert_eq!(w.routes(), Routes::new(80, 20, false));
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Promoting);
    assert_eq!(
        w.messages(),
        vec![
            "New revision detected! Scaling up podinfo.test",
            "Starting canary analysis for podinfo.test",
            "Advance podinfo.test canary weight 0",
            "Advance podinfo.test canary weight 10",
            "Advance podinfo.test canary weight 20",
            "Copying podinfo.test template spec to podinfo-primary.test",
        ]
    );
}

/// Flagger stalls at weight 0 when the router cannot mirror; Serin ignores `mirror` there.
#[tokio::test]
async fn mirror_is_ignored_where_the_router_cannot_mirror() {
    let analysis =
        serde_json::json!({"interval": "1m", "maxWeight": 20, "stepWeight": 10, "mirror": true});
    let w = World::new(canary(
        Some(analysis),
        serde_json::json!({"provider": "nginx"}),
    ));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.routes(), Routes::new(90, 10, false));
}

/// Seed 000: A/B testing with `jq .msg`.
#[tokio::test]
async fn ab_testing() {
    let analysis = serde_json::json!({"interval": "1m", "threshold": 2, "iterations": 3,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}]});
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.routes(), Routes::new(0, 100, false));
    assert_eq!(w.status().iterations, 1);
    let n = w.tick_until(CanaryPhase::Succeeded, 20).await;
    assert_eq!(n, 5, "iterations 2, 3, promote, finalise, succeed");
    assert_eq!(
        w.messages(),
        vec![
            "New revision detected! Scaling up podinfo.test",
            "Starting canary analysis for podinfo.test",
            "Advance podinfo.test canary iteration 1/3",
            "Advance podinfo.test canary iteration 2/3",
            "Advance podinfo.test canary iteration 3/3",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Routing all traffic to primary",
            "Promotion completed! Scaling down podinfo.test",
        ]
    );
    assert_eq!(
        *lock(&w.recorder.successes),
        vec![(Strategy::AbTesting, AnalysisStatus::Completed)]
    );
}

#[tokio::test]
async fn blue_green_with_mirroring() {
    let analysis = serde_json::json!({"interval": "1m", "iterations": 2, "mirror": true,
        "mirrorWeight": 50});
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.routes(), Routes::new(100, 0, true));
    w.tick().await;
    assert_eq!(w.routes(), Routes::new(100, 0, true));
    w.tick().await;
    assert_eq!(w.routes(), Routes::new(0, 100, false));
    let s = w.status();
    assert_eq!(
        (s.iterations, s.canary_weight),
        (3, 100),
        "status says where traffic is"
    );
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Promoting);
    w.tick_until(CanaryPhase::Succeeded, 3).await;
    assert_eq!(
        w.messages(),
        vec![
            "New revision detected! Scaling up podinfo.test",
            "Starting canary analysis for podinfo.test",
            "Advance podinfo.test canary iteration 1/2",
            "Advance podinfo.test canary iteration 2/2",
            "Stop traffic mirroring and route all traffic to canary",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Routing all traffic to primary",
            "Promotion completed! Scaling down podinfo.test",
        ]
    );
}

#[tokio::test]
async fn blue_green_without_mirroring() {
    let analysis = serde_json::json!({"interval": "1m", "iterations": 1});
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.routes(), Routes::new(100, 0, false));
    w.tick().await;
    assert!(
        w.messages()
            .contains(&"Routing all traffic to canary".to_string())
    );
    assert_eq!(w.routes(), Routes::new(0, 100, false));
    w.tick_until(CanaryPhase::Succeeded, 4).await;
}

#[tokio::test]
async fn kubernetes_provider_runs_blue_green_without_routing() {
    let w = World::new(canary(
        Some(progressive()),
        serde_json::json!({"provider": "kubernetes"}),
    ));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(
        w.messages()[1..],
        [
            "Starting canary analysis for podinfo.test",
            "Progressive traffic is not supported when using the kubernetes provider",
            "Setting canaryAnalysis.iterations: 10",
            "Advance podinfo.test canary iteration 1/10",
        ]
    );
    w.tick_until(CanaryPhase::Succeeded, 20).await;
    assert!(lock(&w.router.history).is_empty(), "no routing");
    assert!(
        w.messages()
            .contains(&"Advance podinfo.test canary iteration 10/10".to_string())
    );
    assert_eq!(
        *lock(&w.recorder.successes),
        vec![(Strategy::BlueGreen, AnalysisStatus::Completed)]
    );
}

#[tokio::test]
async fn skip_analysis() {
    let w = World::new(canary(
        Some(progressive()),
        serde_json::json!({"skipAnalysis": true}),
    ));
    w.reconcile().await;
    assert_eq!(w.messages(), vec!["Initialization done! podinfo.test"]);
    assert_eq!(lock(&w.target.0).init_waits, vec![false]);
    w.clear();
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Succeeded);
    assert_eq!(
        w.messages(),
        vec![
            "New revision detected! Scaling up podinfo.test",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Promotion completed! Canary analysis was skipped for podinfo.test",
        ]
    );
    assert_eq!(lock(&w.target.0).primary_hash.as_deref(), Some("rev2"));
    assert!(!lock(&w.target.0).scaled_up);
    assert_eq!(
        *lock(&w.recorder.successes),
        vec![(Strategy::Canary, AnalysisStatus::Skipped)]
    );
    assert_eq!(
        w.alerts().last().map(String::as_str),
        Some("Canary analysis was skipped, promotion finished.")
    );
    assert_eq!(w.metrics.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn skip_analysis_switched_on_mid_run_promotes_at_the_next_tick() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 20);
    w.edit(|c| c.spec.skip_analysis = Some(true));
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Succeeded);
    assert_eq!(w.routes(), Routes::new(100, 0, false));
}

#[tokio::test]
async fn autoscaler_is_reconciled_paused_and_resumed() {
    let w = World::new(canary(
        Some(progressive()),
        serde_json::json!({"autoscalerRef": {"apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler", "name": "podinfo"}}),
    ));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick_until(CanaryPhase::Succeeded, 20).await;
    let calls = lock(&w.scaler.0).clone();
    assert_eq!(calls[0..2], ["reconcile_primary(true)", "pause"]);
    assert!(calls.contains(&"resume".to_string()));
    assert!(calls.contains(&"reconcile_primary(false)".to_string()));
    assert_eq!(calls.last().map(String::as_str), Some("pause"));
}
