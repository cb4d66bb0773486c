//! Restart safety: a scheduler rebuilt from the persisted status alone neither repeats nor
//! skips a step, and traffic never stays routed differently from what the status says.

use super::*;

/// What a run leaves behind, for comparisons.
#[derive(Debug, PartialEq)]
struct Trace {
    messages: Vec<String>,
    routes: Vec<Routes>,
    hooks: Vec<(String, CanaryPhase)>,
    writes: Vec<(CanaryPhase, i32, i32, i32)>,
    metric_runs: usize,
}

fn trace(w: &World) -> Trace {
    Trace {
        messages: w.messages(),
        routes: lock(&w.router.history).clone(),
        hooks: w.hook_calls(),
        writes: lock(&w.store.writes)
            .iter()
            .map(|s| (s.phase, s.canary_weight, s.iterations, s.failed_checks))
            .collect(),
        metric_runs: w.metrics.runs.load(Ordering::SeqCst),
    }
}

/// A run with every kind of tick: pre-rollout, analysis, a failed check, a held traffic
/// increase, a held promotion, promotion by steps, finalisation.
async fn scripted_run(restart_every_time: bool) -> Trace {
    let analysis = serde_json::json!({"interval": "1m", "threshold": 3, "maxWeight": 30,
    "stepWeight": 10, "stepWeightPromotion": 20,
    "webhooks": [
        hook("pre", "pre-rollout"),
        hook("more", "confirm-traffic-increase"),
        hook("approve", "confirm-promotion"),
        hook("post", "post-rollout"),
    ]});
    let mut w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.reconcile().await;
    w.push("rev2");
    let mut step = 0;
    loop {
        step += 1;
        match step {
            3 => w.fail_metrics("Halt podinfo.test advancement error-rate 3.00 > 1"),
            4 => w.pass_metrics(),
            5 => w.fail_hook("more", "Forbidden"),
            6 => w.pass_hook("more"),
            7 => w.fail_hook("approve", "Forbidden"),
            9 => w.pass_hook("approve"),
            _ => {}
        }
        if restart_every_time {
            w.restart();
        }
        // A watch event a few seconds in must change nothing.
        w.clock.advance(Duration::from_secs(7));
        w.reconcile().await;
        if restart_every_time {
            w.restart();
        }
        w.clock.advance(INTERVAL - Duration::from_secs(7));
        w.reconcile().await;
        if w.phase() == CanaryPhase::Succeeded || step > 30 {
            break;
        }
    }
    assert_eq!(w.phase(), CanaryPhase::Succeeded);
    trace(&w)
}

#[tokio::test]
async fn restarting_before_every_reconcile_changes_nothing() {
    let uninterrupted = scripted_run(false).await;
    let restarted = scripted_run(true).await;
    assert_eq!(uninterrupted, restarted);
    // And the run is the one expected.
    let weights: Vec<i32> = uninterrupted.routes.iter().map(|r| r.canary).collect();
    assert_eq!(weights, vec![10, 20, 30, 10, 0]);
    assert!(uninterrupted.messages.contains(
        &"Halt podinfo.test advancement waiting for promotion approval approve".to_string()
    ));
}

#[tokio::test]
async fn crash_between_routes_and_status_is_repaired() {
    let mut w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 10);
    // The next step sets the routes, then its status write fails and the process dies.
    w.store.fail_writes.store(1, Ordering::SeqCst);
    w.clock.advance(INTERVAL);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!(w.routes().canary, 20);
    assert_eq!(w.status().canary_weight, 10);
    w.restart();
    w.clear();
    w.clock.advance(Duration::from_secs(2));
    w.reconcile().await;
    assert_eq!(
        w.status().canary_weight,
        20,
        "the status follows the routes"
    );
    assert_eq!(w.messages(), vec!["Advance podinfo.test canary weight 20"]);
    // The recorded step gets its full interval before the next one.
    w.restart();
    w.clock.advance(INTERVAL - Duration::from_secs(1));
    w.reconcile().await;
    assert_eq!(w.status().canary_weight, 20);
    w.clock.advance(Duration::from_secs(1));
    w.reconcile().await;
    assert_eq!(w.status().canary_weight, 30);
    let weights: Vec<i32> = lock(&w.router.history).iter().map(|r| r.canary).collect();
    assert_eq!(weights, vec![10, 20, 30], "no step repeated or skipped");
}

#[tokio::test]
async fn crash_during_promotion_steps_is_repaired() {
    let analysis = serde_json::json!({"interval": "1m", "maxWeight": 50, "stepWeight": 50,
        "stepWeightPromotion": 20});
    let mut w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick_until(CanaryPhase::Promoting, 5).await;
    w.store.fail_writes.store(1, Ordering::SeqCst);
    w.clock.advance(INTERVAL);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!(w.routes(), Routes::new(70, 30, false));
    w.restart();
    w.reconcile().await;
    assert_eq!(w.status().canary_weight, 30);
    w.tick().await;
    w.tick().await;
    assert_eq!(w.phase(), CanaryPhase::Finalising);
    let primary: Vec<i32> = lock(&w.router.history).iter().map(|r| r.primary).collect();
    assert_eq!(primary, vec![50, 70, 90, 100]);
}

/// Issue 19: the primary ran the new version while the analysis went on, because the template
/// was copied before the phase was written. Now a lost Promoting write leaves the primary
/// untouched, and the analysis goes on over the old primary as it should.
#[tokio::test]
async fn lost_promoting_write_leaves_the_primary_untouched() {
    let analysis = serde_json::json!({"interval": "1m", "maxWeight": 10, "stepWeight": 10});
    let mut w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    w.store.fail_writes.store(1, Ordering::SeqCst);
    w.clock.advance(INTERVAL);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    assert_eq!(lock(&w.target.0).promotions, 0, "nothing copied");
    assert_eq!(lock(&w.target.0).primary_hash.as_deref(), Some("rev1"));
    w.restart();
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Promoting);
    assert_eq!(lock(&w.target.0).promotions, 1);
    assert_eq!(lock(&w.target.0).primary_hash.as_deref(), Some("rev2"));
    w.tick_until(CanaryPhase::Succeeded, 3).await;
}

/// Once the phase says Promoting the analysis never comes back, even when the copy itself
/// failed (with or without a restart in between): the Promoting ticks copy again.
#[tokio::test]
async fn failed_copy_is_retried_while_promoting_and_the_analysis_never_resumes() {
    for restart in [false, true] {
        let analysis = serde_json::json!({"interval": "1m", "maxWeight": 10, "stepWeight": 10,
            "threshold": 1});
        let mut w = World::new(canary(Some(analysis), serde_json::json!({})));
        w.initialized().await;
        w.push("rev2");
        w.reconcile().await;
        w.tick().await;
        lock(&w.target.0).fail_promotions = 1;
        w.tick().await;
        assert_eq!(w.phase(), CanaryPhase::Promoting);
        assert_eq!(lock(&w.target.0).primary_hash.as_deref(), Some("rev1"));
        let runs = w.metrics.runs.load(Ordering::SeqCst);
        // A failing metric would roll back an analysis with threshold 1: it must not run.
        w.fail_metrics("Halt podinfo.test advancement error-rate 3.00 > 1");
        if restart {
            w.restart();
        }
        w.tick_until(CanaryPhase::Succeeded, 4).await;
        assert_eq!(lock(&w.target.0).primary_hash.as_deref(), Some("rev2"));
        assert_eq!(lock(&w.target.0).promotions, 1);
        assert_eq!(w.metrics.runs.load(Ordering::SeqCst), runs, "no analysis");
    }
}

/// Issue 19: after a rollback whose Failed write was lost, an event said "Advance <canary>
/// canary weight 0" and the analysis went on. The next reconcile finishes the rollback.
#[tokio::test]
async fn lost_rollback_write_finishes_the_rollback() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    w.tick().await;
    assert_eq!(w.status().canary_weight, 20);
    w.fail_metrics("Halt podinfo.test advancement error-rate 3.00 > 1");
    w.tick().await;
    w.tick().await;
    assert_eq!(w.status().failed_checks, 2);
    // The rollback sets the routes, then its status write fails.
    w.store.fail_writes.store(1, Ordering::SeqCst);
    w.clock.advance(INTERVAL);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!(w.routes(), Routes::new(100, 0, false));
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    w.clear();
    // The retry after the back-off.
    w.clock.advance(Duration::from_secs(1));
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Failed);
    assert_eq!(w.status().canary_weight, 0);
    assert!(
        w.messages().iter().all(|m| !m.contains("canary weight")),
        "{:?}",
        w.messages()
    );
}

/// Issue 19: status.canaryWeight disagreed with the routes for minutes. A lost weight write is
/// recorded at the next reconcile even while the primary is not ready.
#[tokio::test]
async fn lost_step_write_is_recorded_at_the_next_reconcile_whatever_the_readiness() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    w.store.fail_writes.store(1, Ordering::SeqCst);
    w.clock.advance(INTERVAL);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!((w.routes().canary, w.status().canary_weight), (20, 10));
    w.set_primary_ready(Ready::Waiting("podinfo-primary.test not ready".into()));
    w.clock.advance(Duration::from_secs(1));
    w.reconcile().await;
    assert_eq!(w.status().canary_weight, w.routes().canary);
}

#[tokio::test]
async fn failed_status_write_is_retried_without_losing_the_step() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.store.fail_writes.store(1, Ordering::SeqCst);
    assert!(w.try_reconcile().await.is_err());
    assert_eq!(w.phase(), CanaryPhase::Initialized);
    // The caller backs off and retries: the new revision is handled then.
    w.clock.advance(Duration::from_secs(5));
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
}
