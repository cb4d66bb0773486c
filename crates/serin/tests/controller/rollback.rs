//! rollbacks (failed metric checks, rollback webhook).

use std::time::Duration;

use crate::support::*;
use kube::api::PostParams;
use serde_json::json;
use serin::api::alert_provider::AlertProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_when_prometheus_reports_errors() {
    guarded(async {
        let (cluster, prom, hooks, ctrl, rec) = initialized_scene(
            json!({
                "alerts": [{"name": "on-call", "severity": "error", "providerRef": {"name": "on-call"}}]
            }),
            json!({}),
        )
        .await;
        let provider: AlertProvider = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider",
            "metadata": {"name": "on-call", "namespace": NS},
            "spec": {"type": "slack", "channel": "on-call", "address": format!("{}/slack", hooks.url)}
        }))
        .unwrap();
        kube::Api::<AlertProvider>::namespaced(cluster.client.clone(), NS)
            .create(&PostParams::default(), &provider)
            .await
            .unwrap();

        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        // Let the canary take its first step, then make it fail.
        wait_for("canary weight 10", Duration::from_secs(10), || async {
            (cluster.vs_weights("podinfo").await == Some((90, 10))).then_some(())
        })
        .await;
        prom.set(50.0, 100.0);
        wait_phase(&cluster, "podinfo", "Failed", Duration::from_secs(15)).await;

        assert_eq!(cluster.vs_weights("podinfo").await, Some((100, 0)));
        wait_for("target scaled to zero", Duration::from_secs(5), || async {
            (cluster.replicas("podinfo").await == Some(0)).then_some(())
        })
        .await;
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.0"),
            "primary keeps the old revision"
        );
        let status = cluster.canary("podinfo").await.unwrap().status.unwrap();
        assert_eq!(status.canary_weight, 0);

        hooks
            .wait_events_in_order(
            &[
                "Advance podinfo.test canary weight 10",
                "Halt podinfo.test advancement success rate 50.00% < 99%",
                "Rolling back podinfo.test failed checks threshold reached 2",
                "Canary failed! Scaling down podinfo.test",
            ],
        )
        .await;
        // The two identical Warning events are one Kubernetes Event with count 2.
        let halts: Vec<_> = cluster
            .k8s_events("podinfo")
            .await
            .into_iter()
            .filter(|e| {
                e.message.as_deref() == Some("Halt podinfo.test advancement success rate 50.00% < 99%")
            })
            .collect();
        assert_eq!(halts.len(), 1, "{halts:?}");
        assert_eq!(halts[0].count, Some(2));
        assert_eq!(halts[0].type_.as_deref(), Some("Warning"));
        let phases = rec.phases();
        assert_eq!(phases.last().map(String::as_str), Some("Failed"), "{phases:?}");
        assert!(!phases.iter().any(|p| p == "Promoting" || p == "Succeeded"), "{phases:?}");

        // The error-severity alert went to the AlertProvider (Slack format).
        wait_for("slack alert", Duration::from_secs(5), || async {
            hooks
                .calls
                .lock()
                .unwrap()
                .iter()
                .any(|(p, v)| p == "/slack" && v.to_string().contains("Failed checks threshold reached 2"))
                .then_some(())
        })
        .await;
        let infos = hooks
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, v)| p == "/slack" && v.to_string().contains("New revision detected"))
            .count();
        assert_eq!(infos, 0, "info alerts are filtered by severity error");

        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_by_rollback_webhook() {
    guarded(async {
        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        hooks.set_status("/rollback", 500);
        cluster
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let ctrl = Controller::start(&cluster, &prom, &[]);
        let mut canary = podinfo_canary(&hooks, json!({"maxWeight": 50}));
        canary["spec"]["analysis"]["webhooks"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "rollback", "type": "rollback", "url": format!("{}/rollback", hooks.url)}));
        cluster.create_canary(canary).await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;

        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_for("canary weight 20", Duration::from_secs(10), || async {
            (cluster.vs_weights("podinfo").await == Some((80, 20))).then_some(())
        })
        .await;
        // The rollback hook now signals a rollback.
        hooks.set_status("/rollback", 200);
        wait_phase(&cluster, "podinfo", "Failed", Duration::from_secs(10)).await;
        assert_eq!(cluster.vs_weights("podinfo").await, Some((100, 0)));
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.0")
        );
        hooks
            .wait_events_in_order(
            &[
                "Advance podinfo.test canary weight 20",
                "Rolling back podinfo.test manual webhook invoked",
                "Canary failed! Scaling down podinfo.test",
            ],
        )
        .await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}
