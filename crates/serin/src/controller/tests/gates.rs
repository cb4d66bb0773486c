//! Webhook gating per type, payload phases, event webhooks.

use super::*;
use crate::controller::webhook::checksum;

async fn initialized(analysis: serde_json::Value) -> World {
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w
}

#[tokio::test]
async fn confirm_rollout_holds_the_run_in_waiting() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([
        hook("approve", "confirm-rollout"),
        hook("manual", "rollback"),
    ]);
    let w = initialized(analysis).await;
    w.fail_hook("approve", "Forbidden");
    w.push("rev2");
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Waiting);
    assert!(!lock(&w.target.0).scaled_up, "not scaled up while waiting");
    w.tick().await;
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Waiting);
    assert_eq!(
        w.messages(),
        vec!["Halt podinfo.test advancement waiting for approval approve"],
        "warned once"
    );
    assert_eq!(
        w.alerts(),
        vec!["Canary is waiting for approval.".to_string()]
    );
    // Payload phase: the current phase; rollback hooks are not polled while Waiting (Flagger).
    assert_eq!(
        w.hook_calls(),
        vec![
            ("approve".to_string(), CanaryPhase::Initialized),
            ("approve".to_string(), CanaryPhase::Waiting),
            ("approve".to_string(), CanaryPhase::Waiting),
        ]
    );
    w.pass_hook("approve");
    w.clear();
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert!(lock(&w.target.0).scaled_up);
    assert_eq!(
        w.messages(),
        vec![
            "Confirm-rollout check approve passed",
            "New revision detected! Scaling up podinfo.test",
        ]
    );
    assert_eq!(w.status().last_applied_spec.as_deref(), Some("rev2"));
}

#[tokio::test]
async fn muted_confirm_rollout_does_not_alert() {
    let mut analysis = progressive();
    let mut gate = hook("approve", "confirm-rollout");
    gate["muteAlert"] = serde_json::json!(true);
    analysis["webhooks"] = serde_json::json!([gate]);
    let w = initialized(analysis).await;
    w.fail_hook("approve", "Forbidden");
    w.push("rev2");
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Waiting);
    assert!(w.alerts().is_empty());
}

#[tokio::test]
async fn confirm_traffic_increase_holds_the_weight() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("more", "confirm-traffic-increase")]);
    let w = initialized(analysis).await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 10);
    w.fail_hook("more", "Forbidden");
    w.clear();
    w.tick().await;
    w.tick().await;
    let s = w.status();
    assert_eq!((s.canary_weight, s.failed_checks), (10, 0));
    assert_eq!(
        w.warnings(),
        vec![
            "Halt podinfo.test advancement waiting for traffic increase approval more",
            "Halt podinfo.test advancement waiting for traffic increase approval more",
        ],
        "warned every tick"
    );
    assert_eq!(w.alerts().len(), 2);
    assert_eq!(
        w.metrics.runs.load(Ordering::SeqCst),
        2,
        "analysis keeps running"
    );
    w.pass_hook("more");
    w.clear();
    w.tick().await;
    assert_eq!(w.status().canary_weight, 20);
    assert_eq!(
        w.messages(),
        vec![
            "Confirm-traffic-increase check more passed",
            "Advance podinfo.test canary weight 20",
        ]
    );
}

#[tokio::test]
async fn confirm_traffic_increase_also_gates_promotion_at_max_weight() {
    let mut analysis = serde_json::json!({"interval": "1m", "maxWeight": 10, "stepWeight": 10});
    analysis["webhooks"] = serde_json::json!([hook("more", "confirm-traffic-increase")]);
    let w = initialized(analysis).await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 10);
    w.fail_hook("more", "Forbidden");
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    w.pass_hook("more");
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Promoting);
}

#[tokio::test]
async fn confirm_promotion_waits_with_the_analysis_running() {
    let mut analysis = serde_json::json!({"interval": "1m", "maxWeight": 20, "stepWeight": 10});
    analysis["webhooks"] = serde_json::json!([hook("approve", "confirm-promotion")]);
    let w = initialized(analysis).await;
    w.fail_hook("approve", "Forbidden");
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    w.tick().await;
    w.clear();
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::WaitingPromotion);
    let s = w.status();
    assert_eq!(
        s.canary_weight, 20,
        "the status keeps the weight traffic is at"
    );
    assert_eq!(w.routes(), Routes::new(80, 20, false));
    let runs = w.metrics.runs.load(Ordering::SeqCst);
    w.tick().await;
    w.tick().await;
    assert_eq!(w.metrics.runs.load(Ordering::SeqCst), runs + 2);
    assert_eq!(w.phase(), CanaryPhase::WaitingPromotion);
    assert_eq!(
        w.messages(),
        vec!["Halt podinfo.test advancement waiting for promotion approval approve"],
        "warned once"
    );
    assert_eq!(
        w.alerts(),
        vec!["Canary promotion is waiting for approval.".to_string()]
    );
    assert!(
        w.hook_calls()
            .iter()
            .all(|c| *c == ("approve".to_string(), CanaryPhase::Progressing))
    );
    w.pass_hook("approve");
    w.clear();
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Promoting);
    assert_eq!(
        w.messages(),
        vec![
            "Confirm-promotion check approve passed",
            "Copying podinfo.test template spec to podinfo-primary.test",
        ]
    );
}

#[tokio::test]
async fn confirm_promotion_in_ab_testing_does_not_repeat_iterations() {
    let analysis = serde_json::json!({"interval": "1m", "iterations": 2,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}],
        "webhooks": [hook("approve", "confirm-promotion")]});
    let w = initialized(analysis).await;
    w.fail_hook("approve", "Forbidden");
    w.push("rev2");
    w.reconcile().await;
    w.tick_until(CanaryPhase::WaitingPromotion, 5).await;
    w.tick().await;
    w.tick().await;
    let iterations: Vec<_> = w
        .messages()
        .into_iter()
        .filter(|m| m.contains("canary iteration"))
        .collect();
    assert_eq!(
        iterations,
        vec![
            "Advance podinfo.test canary iteration 1/2",
            "Advance podinfo.test canary iteration 2/2",
        ]
    );
    w.pass_hook("approve");
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Promoting);
}

/// Every hook type once, with the payload phase Flagger sends.
#[tokio::test]
async fn payload_phase_per_hook_type() {
    let analysis = serde_json::json!({"interval": "1m", "maxWeight": 20, "stepWeight": 10,
    "webhooks": [
        hook("c-rollout", "confirm-rollout"),
        hook("pre", "pre-rollout"),
        {"name": "load", "url": "http://hooks/load", "metadata": {"cmd": "hey -z 1m"}},
        hook("c-traffic", "confirm-traffic-increase"),
        hook("c-promotion", "confirm-promotion"),
        hook("post", "post-rollout"),
        hook("rb", "rollback"),
    ]});
    let w = initialized(analysis).await;
    w.fail_hook("rb", "not now");
    w.push("rev2");
    w.reconcile().await;
    w.tick_until(CanaryPhase::Succeeded, 20).await;
    let calls = w.hook_calls();
    let phases = |name: &str| -> Vec<CanaryPhase> {
        let mut p: Vec<_> = calls
            .iter()
            .filter(|(h, _)| h == name)
            .map(|(_, p)| *p)
            .collect();
        p.dedup();
        p
    };
    use CanaryPhase::*;
    assert_eq!(phases("c-rollout"), vec![Initialized]);
    assert_eq!(phases("pre"), vec![Progressing]);
    assert_eq!(phases("load"), vec![Progressing]);
    assert_eq!(phases("c-traffic"), vec![Progressing]);
    assert_eq!(phases("c-promotion"), vec![Progressing]);
    assert_eq!(phases("post"), vec![Succeeded]);
    assert_eq!(phases("rb"), vec![Progressing]);
    // Order within the first analysis tick: rollback, pre-rollout, confirm-traffic-increase.
    let names: Vec<&str> = calls.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(names[..4], ["c-rollout", "rb", "pre", "c-traffic"]);
    // Then: rollback, rollout hooks, confirm-traffic-increase.
    assert_eq!(names[4..7], ["rb", "load", "c-traffic"]);
    let webhook_calls = lock(&w.webhooks.calls);
    let (_, load) = webhook_calls
        .iter()
        .find(|(h, _)| h.name == "load")
        .unwrap();
    let json = serde_json::to_value(load).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"name": "podinfo", "namespace": "test", "phase": "Progressing",
            "checksum": checksum(&w.status()), "metadata": {"cmd": "hey -z 1m"}})
    );
    let checksums: std::collections::BTreeSet<_> = webhook_calls[1..]
        .iter()
        .map(|(_, p)| p.checksum.clone())
        .collect();
    assert_eq!(checksums.len(), 1, "one revision, one checksum");
}

#[tokio::test]
async fn event_webhooks_receive_every_event() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([
        {"name": "audit", "type": "event", "url": "http://hooks/audit",
         "metadata": {"team": "web", "eventType": "spoofed"}}
    ]);
    let w = initialized(analysis).await;
    w.push("rev2");
    w.reconcile().await;
    let calls = lock(&w.webhooks.calls).clone();
    assert_eq!(calls.len(), 1);
    let (hook, payload) = &calls[0];
    assert_eq!(hook.name, "audit");
    assert_eq!(payload.phase, CanaryPhase::Progressing);
    let ts = (START * 1000).to_string();
    assert_eq!(
        payload.metadata,
        BTreeMap::from([
            (
                "eventMessage".to_string(),
                "New revision detected! Scaling up podinfo.test".to_string()
            ),
            ("eventType".to_string(), "Normal".to_string()),
            ("timestamp".to_string(), ts),
            ("team".to_string(), "web".to_string()),
        ])
    );
}

#[tokio::test]
async fn failure_events_carry_the_failed_phase() {
    let mut analysis = progressive();
    analysis["threshold"] = serde_json::json!(1);
    analysis["webhooks"] = serde_json::json!([hook("audit", "event")]);
    let w = initialized(analysis).await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    w.fail_metrics("Halt podinfo.test advancement error-rate 31.00 > 1");
    w.tick().await;
    w.clear();
    w.tick().await;
    let calls = lock(&w.webhooks.calls).clone();
    let events: Vec<(String, String, CanaryPhase)> = calls
        .iter()
        .map(|(_, p)| {
            (
                p.metadata["eventMessage"].clone(),
                p.metadata["eventType"].clone(),
                p.phase,
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            (
                "Rolling back podinfo.test failed checks threshold reached 1".to_string(),
                "Warning".to_string(),
                CanaryPhase::Progressing
            ),
            (
                "Canary failed! Scaling down podinfo.test".to_string(),
                "Warning".to_string(),
                CanaryPhase::Failed
            ),
        ]
    );
}

#[tokio::test]
async fn global_event_webhook_when_the_canary_has_none() {
    let config = SchedulerConfig {
        event_webhook: Some("http://events.example/hook".into()),
        ..Default::default()
    };
    let w = World::with_config(canary(Some(progressive()), serde_json::json!({})), config);
    w.reconcile().await;
    let calls = lock(&w.webhooks.calls).clone();
    let sent: Vec<(String, String, String)> = calls
        .iter()
        .map(|(h, p)| {
            (
                h.name.clone(),
                h.url.clone(),
                p.metadata["eventMessage"].clone(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            (
                "events".to_string(),
                "http://events.example/hook".to_string(),
                "all the metrics providers are available!".to_string()
            ),
            (
                "events".to_string(),
                "http://events.example/hook".to_string(),
                "Initialization done! podinfo.test".to_string()
            ),
        ]
    );
}
