//! a new revision mid-analysis restarts it; a controller restart
//! mid-analysis neither repeats nor skips a step.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_revision_mid_analysis_restarts_it() {
    guarded(async {
        let (cluster, _prom, hooks, ctrl, rec) =
            initialized_scene(json!({"maxWeight": 40}), json!({})).await;
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_for("canary weight 20", Duration::from_secs(10), || async {
            (cluster.vs_weights("podinfo").await == Some((80, 20))).then_some(())
        })
        .await;
        let t0 = Instant::now();
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.2")
            .await;
        wait_for("restart event", Duration::from_secs(5), || async {
            hooks
                .event_messages()
                .iter()
                .any(|m| m == "New revision detected! Restarting analysis for podinfo.test")
                .then_some(())
        })
        .await;
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(20)).await;
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.2"),
            "the newest revision was promoted"
        );
        let weights = rec.weights();
        let restart = weights
            .iter()
            .position(|w| *w == (80, 20))
            .expect("reached 20");
        // After the restart the weights start again from zero and climb to 40.
        let after: Vec<(i64, i64)> = weights[restart + 1..].to_vec();
        assert_eq!(
            after,
            [(100, 0), (90, 10), (80, 20), (70, 30), (60, 40), (100, 0)],
            "weights {weights:?}"
        );
        hooks
            .wait_events_in_order(&[
                "Advance podinfo.test canary weight 20",
                "New revision detected! Restarting analysis for podinfo.test",
                "Advance podinfo.test canary weight 10",
                "Advance podinfo.test canary weight 40",
                "Promotion completed! Scaling down podinfo.test",
            ])
            .await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_restart_mid_analysis() {
    guarded(async {
        let (cluster, prom, hooks, ctrl, rec) =
            initialized_scene(json!({"maxWeight": 50, "interval": "2s"}), json!({})).await;
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_for("canary weight 20", Duration::from_secs(10), || async {
            (cluster.vs_weights("podinfo").await == Some((80, 20))).then_some(())
        })
        .await;
        ctrl.stop().await.unwrap();
        let ctrl = Controller::start(&cluster, &prom, &[]);
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(30)).await;
        let weights = rec.weights();
        assert_eq!(
            weights,
            [
                (100, 0),
                (90, 10),
                (80, 20),
                (70, 30),
                (60, 40),
                (50, 50),
                (100, 0)
            ],
            "no repeated or skipped step: {weights:?}"
        );
        let advances: Vec<String> = hooks
            .event_messages()
            .into_iter()
            .filter(|m| m.starts_with("Advance podinfo.test canary weight"))
            .collect();
        assert_eq!(
            advances,
            (1..=5)
                .map(|i| format!("Advance podinfo.test canary weight {}", i * 10))
                .collect::<Vec<_>>()
        );
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}
