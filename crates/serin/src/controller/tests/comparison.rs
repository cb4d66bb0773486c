//! Comparison checks (Serin only): verdicts become Normal events, an inconclusive comparison
//! holds the step until the progress deadline, then counts as a failed check.

use super::*;

async fn progressing() -> World {
    let w = World::new(canary(Some(progressive()), serde_json::json!({})));
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    assert_eq!(w.phase(), CanaryPhase::Progressing);
    w.tick().await;
    assert_eq!(w.status().canary_weight, 10);
    w
}

const HOLD: &str = "Hold podinfo.test advancement latency comparison inconclusive: too few samples (canary 3, primary 40, at least 10 needed)";

fn inconclusive(w: &World) {
    *lock(&w.metrics.default) = Err(FailedCheck {
        message: HOLD.into(),
        error: false,
        inconclusive: true,
        checks: Vec::new(),
        held: false,
        verdicts: Vec::new(),
    });
}

#[tokio::test]
async fn pass_verdicts_are_normal_events() {
    let w = progressing().await;
    let verdict = "podinfo.test latency canary not worse than primary: mann-whitney U=800 p=0.5";
    *lock(&w.metrics.default) = Ok(Measured {
        values: vec![("latency".into(), 0.01)],
        verdicts: vec![verdict.into()],
        checks: Vec::new(),
    });
    w.clear();
    w.tick().await;
    assert_eq!(w.status().canary_weight, 20);
    assert!(
        w.messages().contains(&verdict.to_string()),
        "{:?}",
        w.messages()
    );
    assert!(w.warnings().is_empty());
}

#[tokio::test]
async fn verdicts_of_passed_comparisons_are_kept_when_a_later_check_fails() {
    let w = progressing().await;
    let passed = "podinfo.test errors canary not worse than primary: proportion difference=0 lower bound=-0.01 (95% confidence), effect 0, allowed 0.01, events counted canary 200 primary 600 (min 50)";
    let failed = "Halt podinfo.test advancement latency canary worse than primary: mann-whitney U=144 p=5.134e-6 (alpha 0.05), effect 172.3, allowed 10, samples canary 12 primary 12 (min 10)";
    *lock(&w.metrics.default) = Err(FailedCheck {
        message: failed.into(),
        error: false,
        held: false,
        inconclusive: false,
        verdicts: vec![passed.into()],
        checks: Vec::new(),
    });
    w.clear();
    w.tick().await;
    assert_eq!(w.messages(), vec![passed.to_string(), failed.to_string()]);
    assert_eq!(w.warnings(), vec![failed.to_string()]);
    assert_eq!(w.status().failed_checks, 1);
}

#[tokio::test]
async fn inconclusive_holds_until_the_progress_deadline() {
    let w = progressing().await;
    inconclusive(&w);
    // The default progress deadline is 600 s: the first held step and nine more.
    for _ in 0..10 {
        w.clear();
        w.tick().await;
        assert_eq!(w.messages(), vec![HOLD.to_string()]);
        assert!(w.warnings().is_empty());
        let s = w.status();
        assert_eq!((s.canary_weight, s.failed_checks), (10, 0), "held");
    }
    let first_hold = Timestamp::from_second(START + 2 * 60).unwrap();
    assert_eq!(
        w.status().comparison_held_since.map(|t| t.0),
        Some(first_hold),
        "the hold's start is in the status"
    );
    // The next is 600 s after the first hold: the hold counts as a failed check.
    w.clear();
    w.tick().await;
    assert_eq!(w.warnings(), vec![HOLD.to_string()]);
    assert_eq!(w.status().failed_checks, 1);
    assert_eq!(w.status().comparison_held_since, None, "the hold ended");
    assert_eq!(w.status().canary_weight, 10);
    // Enough samples again: the run goes on.
    w.pass_metrics();
    w.tick().await;
    assert_eq!(w.status().canary_weight, 20);
}

#[tokio::test]
async fn a_hold_keeps_its_start_across_a_controller_restart() {
    let mut w = progressing().await;
    inconclusive(&w);
    for _ in 0..5 {
        w.tick().await;
    }
    assert_eq!(w.status().failed_checks, 0);
    w.restart();
    // The new scheduler reads the hold's start from the status: the deadline comes on the same
    // step as without the restart (the eleventh), not 600 s after the restart.
    for _ in 0..5 {
        w.clear();
        w.tick().await;
        assert_eq!(w.messages(), vec![HOLD.to_string()]);
    }
    w.clear();
    w.tick().await;
    assert_eq!(w.warnings(), vec![HOLD.to_string()]);
    assert_eq!(w.status().failed_checks, 1);
}

#[tokio::test]
async fn a_canary_that_never_gets_samples_is_rolled_back() {
    let w = progressing().await;
    inconclusive(&w);
    let ticks = w.tick_until(CanaryPhase::Failed, 40).await;
    // Two holds of eleven steps each reach threshold 2, and the next step rolls back.
    assert_eq!(ticks, 23);
}
