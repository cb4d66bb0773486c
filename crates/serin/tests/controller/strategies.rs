//! A/B testing and blue/green runs with the Istio router.

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ab_testing_run() {
    guarded(async {
        let (cluster, _prom, hooks, ctrl, _rec) = initialized_scene(
            json!({
                "maxWeight": null, "stepWeight": null, "iterations": 3,
                "match": [{"headers": {"x-canary": {"exact": "insider"}}}]
            }),
            json!({}),
        )
        .await;
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        // During the iterations, matched traffic goes to the canary, the rest to the primary.
        let canary_weight = |route: &Value| -> Option<i64> {
            route["route"]
                .as_array()?
                .iter()
                .find(|r| r.pointer("/destination/host") == Some(&Value::from("podinfo-canary")))?
                .get("weight")
                .and_then(Value::as_i64)
        };
        let vs = wait_for(
            "A/B route on the canary",
            Duration::from_secs(10),
            || async {
                let vs = cluster
                    .virtual_services()
                    .get("podinfo")
                    .await
                    .unwrap()
                    .data;
                let http = vs.pointer("/spec/http")?.as_array()?.clone();
                (http.len() == 2 && canary_weight(&http[0]) == Some(100)).then_some(http)
            },
        )
        .await;
        assert_eq!(
            vs[0].pointer("/match/0/headers/x-canary/exact"),
            Some(&Value::from("insider")),
            "{vs:#?}"
        );
        // The default route has the primary as its only destination (as in Flagger, whatever
        // weight it carries, a single destination gets all the unmatched traffic).
        let default_hosts: Vec<&Value> = vs[1]["route"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r.pointer("/destination/host"))
            .collect();
        assert_eq!(default_hosts, [&Value::from("podinfo-primary")]);

        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(20)).await;
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.1")
        );
        hooks
            .wait_events_in_order(&[
                "Starting canary analysis for podinfo.test",
                "Advance podinfo.test canary iteration 1/3",
                "Advance podinfo.test canary iteration 2/3",
                "Advance podinfo.test canary iteration 3/3",
                "Copying podinfo.test template spec to podinfo-primary.test",
                "Routing all traffic to primary",
                "Promotion completed! Scaling down podinfo.test",
            ])
            .await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blue_green_run() {
    guarded(async {
        let (cluster, _prom, hooks, ctrl, rec) = initialized_scene(
            json!({"maxWeight": null, "stepWeight": null, "iterations": 2}),
            json!({}),
        )
        .await;
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(20)).await;
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.1")
        );
        hooks
            .wait_events_in_order(&[
                "Starting canary analysis for podinfo.test",
                "Advance podinfo.test canary iteration 1/2",
                "Advance podinfo.test canary iteration 2/2",
                "Routing all traffic to canary",
                "Copying podinfo.test template spec to podinfo-primary.test",
                "Routing all traffic to primary",
                "Promotion completed! Scaling down podinfo.test",
            ])
            .await;
        // All traffic switches to the green (canary) pods, then back to the promoted primary.
        assert_eq!(rec.weights(), [(100, 0), (0, 100), (100, 0)]);
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}
