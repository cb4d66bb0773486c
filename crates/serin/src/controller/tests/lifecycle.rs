//! The two clocks, revision detection, suspend, and the finalizer.

use super::*;
use crate::controller::scheduler::{Attempt, Trigger, trigger};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(START + seconds).unwrap()
}

fn rev(hash: &str) -> Revision {
    Revision {
        spec_hash: hash.into(),
        tracked_configs: BTreeMap::new(),
    }
}

fn status(phase: CanaryPhase, applied: &str, written: i64) -> CanaryStatus {
    CanaryStatus {
        phase,
        last_applied_spec: Some(applied.into()),
        last_promoted_spec: Some("rev1".into()),
        last_transition_time: Some(Time(at(written))),
        ..Default::default()
    }
}

#[test]
fn trigger_steps_are_fenced_by_the_last_status_write() {
    let s = status(CanaryPhase::Progressing, "rev2", 0);
    let r = rev("rev2");
    assert_eq!(
        trigger(&s, Some(&r), INTERVAL, at(59), None),
        Trigger::NotDue {
            after: Duration::from_secs(1)
        }
    );
    assert_eq!(trigger(&s, Some(&r), INTERVAL, at(60), None), Trigger::Due);
    // A failed attempt (no status write) also waits an interval.
    let last = Attempt {
        at: at(70),
        revision: Some(r.clone()),
    };
    assert_eq!(
        trigger(&s, Some(&r), INTERVAL, at(100), Some(&last)),
        Trigger::NotDue {
            after: Duration::from_secs(30)
        }
    );
    // Idle phases have no step fence: only the attempt spacing.
    let idle = status(CanaryPhase::Succeeded, "rev2", 0);
    assert_eq!(
        trigger(&idle, Some(&r), INTERVAL, at(1), None),
        Trigger::Due
    );
}

#[test]
fn trigger_reacts_to_new_revisions_at_once_but_once() {
    let r3 = rev("rev3");
    for phase in [
        CanaryPhase::Initialized,
        CanaryPhase::Succeeded,
        CanaryPhase::Failed,
        CanaryPhase::Progressing,
        CanaryPhase::WaitingPromotion,
    ] {
        let s = status(phase, "rev2", 0);
        let last = Attempt {
            at: at(1),
            revision: Some(rev("rev2")),
        };
        assert_eq!(
            trigger(&s, Some(&r3), INTERVAL, at(2), Some(&last)),
            Trigger::Revision,
            "{phase}"
        );
        let seen = Attempt {
            at: at(1),
            revision: Some(r3.clone()),
        };
        assert!(matches!(
            trigger(&s, Some(&r3), INTERVAL, at(2), Some(&seen)),
            Trigger::NotDue { .. }
        ));
    }
    // Promoting and Waiting pick new revisions up later (Flagger's rules).
    for phase in [
        CanaryPhase::Promoting,
        CanaryPhase::Finalising,
        CanaryPhase::Waiting,
    ] {
        let s = status(phase, "rev2", 0);
        assert!(matches!(
            trigger(&s, Some(&r3), INTERVAL, at(2), None),
            Trigger::NotDue { .. }
        ));
    }
    // Going back to the promoted revision is not new, except that Failed refreshes it.
    let r1 = rev("rev1");
    assert!(matches!(
        trigger(
            &status(CanaryPhase::Progressing, "rev2", 0),
            Some(&r1),
            INTERVAL,
            at(2),
            None
        ),
        Trigger::NotDue { .. }
    ));
    assert_eq!(
        trigger(
            &status(CanaryPhase::Failed, "rev2", 0),
            Some(&r1),
            INTERVAL,
            at(2),
            None
        ),
        Trigger::Revision
    );
}

#[tokio::test]
async fn new_revision_is_detected_without_waiting_for_the_interval() {
    let w = World::new(canary(
        Some(serde_json::json!({"interval": "10m", "stepWeight": 10})),
        serde_json::json!({}),
    ));
    w.initialized().await;
    w.clock.advance(Duration::from_secs(1));
    w.push("rev2");
    let next = w.reconcile().await;
    assert_eq!(
        w.messages(),
        vec!["New revision detected! Scaling up podinfo.test"]
    );
    assert_eq!(next.requeue_after, Duration::from_secs(600));
    // The analysis starts one interval later, not on the next watch event.
    w.clock.advance(Duration::from_secs(599));
    w.reconcile().await;
    assert_eq!(w.status().canary_weight, 0);
    w.clock.advance(Duration::from_secs(1));
    w.reconcile().await;
    assert_eq!(w.status().canary_weight, 10);
}

#[tokio::test]
async fn config_changes_are_new_revisions() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    lock(&w.target.0)
        .configs
        .insert("configmap/podinfo-config".into(), "a1".into());
    w.initialized().await;
    assert_eq!(
        w.status().tracked_configs,
        Some(BTreeMap::from([(
            "configmap/podinfo-config".to_string(),
            "a1".to_string()
        )]))
    );
    lock(&w.target.0)
        .configs
        .insert("configmap/podinfo-config".into(), "b2".into());
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
}

#[tokio::test]
async fn extra_reconciles_are_harmless() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    let before = (w.status(), w.messages(), w.hook_calls());
    for _ in 0..5 {
        w.reconcile().await;
    }
    w.clock.advance(INTERVAL - Duration::from_secs(1));
    let next = w.reconcile().await;
    assert_eq!(next.requeue_after, Duration::from_secs(1));
    assert_eq!((w.status(), w.messages(), w.hook_calls()), before);
    w.clock.advance(Duration::from_secs(1));
    w.reconcile().await;
    assert_eq!(w.status().canary_weight, 20);
}

#[tokio::test]
async fn new_revision_mid_run_restarts_the_analysis() {
    let mut analysis = progressive();
    analysis["webhooks"] = serde_json::json!([hook("approve", "confirm-rollout")]);
    let w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    w.tick().await;
    w.tick().await;
    w.fail_metrics("Halt podinfo.test advancement error-rate 31.00 > 1");
    w.tick().await;
    assert_eq!(
        (w.status().canary_weight, w.status().failed_checks),
        (30, 1)
    );
    w.pass_metrics();
    w.clear();
    w.clock.advance(Duration::from_secs(5));
    w.push("rev3");
    w.reconcile().await;
    assert_eq!(
        w.messages(),
        vec!["New revision detected! Restarting analysis for podinfo.test"]
    );
    assert!(w.hook_calls().is_empty(), "no confirm-rollout on a restart");
    let s = w.status();
    assert_eq!(s.phase, CanaryPhase::Progressing);
    assert_eq!((s.canary_weight, s.failed_checks, s.iterations), (0, 0, 0));
    assert_eq!(s.last_applied_spec.as_deref(), Some("rev3"));
    assert_eq!(w.routes(), Routes::new(100, 0, false));
    w.tick().await;
    assert_eq!(
        w.messages()[1..],
        [
            "Starting canary analysis for podinfo.test",
            "Advance podinfo.test canary weight 10"
        ]
    );
}

#[tokio::test]
async fn suspend_pauses_everything() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    w.edit(|c| c.spec.suspend = Some(true));
    w.clear();
    w.tick().await;
    w.reconcile().await;
    w.push("rev3");
    w.reconcile().await;
    w.tick().await;
    assert_eq!(
        w.messages(),
        vec![
            "skipping canary run as object is suspended",
            "skipping canary run as object is suspended",
        ]
    );
    assert_eq!(w.status().canary_weight, 10);
    w.edit(|c| c.spec.suspend = None);
    w.reconcile().await;
    assert_eq!(
        w.messages().last().map(String::as_str),
        Some("New revision detected! Restarting analysis for podinfo.test")
    );
}

#[tokio::test]
async fn finalizer_reverts_on_deletion() {
    let w = World::new(canary(
        Some(progressive()),
        serde_json::json!({"revertOnDeletion": true}),
    ));
    w.initialized().await;
    assert!(super::super::finalizer::has_finalizer(&w.object()));
    w.set_canary_ready(Ready::Waiting("waiting for rollout to finish".into()));
    w.edit(|c| c.metadata.deletion_timestamp = Some(Time(at(5))));
    let next = w.reconcile().await;
    assert_eq!(next.requeue_after, Duration::from_secs(3));
    assert_eq!(w.phase(), CanaryPhase::Terminating);
    assert!(lock(&w.target.0).finalized);
    assert!(!w.gone(), "waits for the target");
    w.set_canary_ready(Ready::Yes);
    w.reconcile().await;
    assert!(w.gone(), "finalizer removed");
    assert_eq!(
        w.messages(),
        vec![
            "Terminating canary podinfo.test",
            "Terminated canary podinfo.test"
        ]
    );
    assert_eq!(w.router.finalized.load(Ordering::SeqCst), 1);
    assert_eq!(
        lock(&w.services.0).last().map(String::as_str),
        Some("finalize")
    );
}

#[tokio::test]
async fn finalizer_is_removed_when_revert_is_switched_off() {
    let w = World::new(canary(
        Some(progressive()),
        serde_json::json!({"revertOnDeletion": true}),
    ));
    w.initialized().await;
    w.edit(|c| c.spec.revert_on_deletion = Some(false));
    w.reconcile().await;
    assert!(!super::super::finalizer::has_finalizer(&w.object()));
    w.edit(|c| c.metadata.deletion_timestamp = Some(Time(at(5))));
    w.reconcile().await;
    assert!(!lock(&w.target.0).finalized, "no revert without the option");
}

#[tokio::test]
async fn step_delays_are_observed_for_due_steps_of_a_run_only() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.initialized().await;
    // Idle reconciles and the revision tick are not analysis steps.
    w.reconcile().await;
    w.push("rev2");
    w.reconcile().await;
    assert!(lock(&w.recorder.step_delays).is_empty());
    // A step started on time, and one started 3 s late.
    w.tick().await;
    w.clock.advance(INTERVAL + Duration::from_secs(3));
    w.reconcile().await;
    assert_eq!(
        *lock(&w.recorder.step_delays),
        vec![Duration::ZERO, Duration::from_secs(3)]
    );
    // Extra reconciles before the next step is due observe nothing.
    w.reconcile().await;
    assert_eq!(lock(&w.recorder.step_delays).len(), 2);
}

/// The store is given the Canary as last stored: the status the tick has been changing is
/// swapped out for the call (and back in after it), and a failed write leaves the stored one as
/// it was for the next write. Here the router puts a session-affinity cookie into the working
/// status and the store prunes the decision record (as Flagger's CRD does), so the status the
/// tick goes on with differs from the stored one.
#[tokio::test]
async fn every_status_write_is_given_the_status_as_last_stored() {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.store.prune_decisions.store(true, Ordering::SeqCst);
    w.router.cookies.store(true, Ordering::SeqCst);
    w.reconcile().await;
    w.push("rev2");
    for _ in 0..4 {
        w.tick().await;
    }
    w.store.fail_writes.store(1, Ordering::SeqCst);
    w.clock.advance(INTERVAL);
    assert!(w.try_reconcile().await.is_err());
    for _ in 0..30 {
        w.tick().await;
        if w.phase() == CanaryPhase::Succeeded {
            break;
        }
    }
    assert_eq!(w.phase(), CanaryPhase::Succeeded);
    let given = lock(&w.store.given).clone();
    let writes = lock(&w.store.writes).clone();
    assert!(given.iter().any(|(_, ok)| !ok), "one write failed");
    let mut stored = None;
    let mut written = writes.iter();
    for (i, (status, ok)) in given.iter().enumerate() {
        assert_eq!(status, &stored, "write {i} was given another status");
        if *ok {
            stored = written.next().cloned();
        }
    }
    assert!(written.next().is_none());
    assert!(
        writes.iter().any(|s| s.session_affinity_cookie.is_some()),
        "the cookie was persisted"
    );
}

/// Status writes per reconcile over a whole run and over a rollback: one at most, but for the
/// first sight (Initializing, then Initialized) — the write before the work of a tick that
/// records where the run stands.
#[tokio::test]
async fn every_tick_of_a_run_writes_the_status_once_at_most() {
    async fn writes_per_tick(w: &World, until: CanaryPhase) -> Vec<(CanaryPhase, usize)> {
        let mut seen = Vec::new();
        for _ in 0..30 {
            let before = lock(&w.store.writes).len();
            w.tick().await;
            let after = lock(&w.store.writes).len();
            seen.push((w.phase(), after - before));
            if w.phase() == until {
                return seen;
            }
        }
        panic!("not {until} after 30 ticks: {seen:?}");
    }
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.reconcile().await;
    assert_eq!(lock(&w.store.writes).len(), 2, "Initializing, Initialized");
    w.push("rev2");
    let run = writes_per_tick(&w, CanaryPhase::Succeeded).await;
    assert!(run.iter().all(|(_, n)| *n <= 1), "{run:?}");
    assert!(run.len() > 5, "{run:?}");

    w.push("rev3");
    w.tick().await;
    w.fail_metrics("error rate too high");
    let rollback = writes_per_tick(&w, CanaryPhase::Failed).await;
    assert!(rollback.iter().all(|(_, n)| *n <= 1), "{rollback:?}");
}
