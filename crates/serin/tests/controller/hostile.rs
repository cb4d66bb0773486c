//! Hostile input (issue 19): one Canary the controller cannot read, or one whose webhook never
//! answers, must not stop the others.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

const IMAGE: &str = "ghcr.io/stefanprodan/podinfo:6.0.0";
const NEW_IMAGE: &str = "ghcr.io/stefanprodan/podinfo:6.0.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_canary_does_not_stop_the_others() {
    guarded(async {
        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        cluster.create_deployment("podinfo", IMAGE).await;
        cluster.create_deployment("bad", IMAGE).await;
        // Stored as a cluster with an older, unbounded CRD stores it.
        let mut bad = podinfo_canary(&hooks, json!({"threshold": 2_147_483_648_u64}));
        bad["metadata"]["name"] = json!("bad");
        bad["spec"]["targetRef"]["name"] = json!("bad");
        cluster.create_canary_under_unbounded_crd(bad).await;
        let raw = cluster.dynamic("flagger.app", "v1beta1", "Canary", "canaries");

        let ctrl = Controller::start(&cluster, &prom, &[]);
        cluster
            .create_canary(podinfo_canary(&hooks, json!({})))
            .await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(20)).await;
        cluster.set_image("podinfo", NEW_IMAGE).await;
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(30)).await;

        // The bad one is reported on itself and never scheduled.
        let message = wait_for(
            "the Warning event on bad",
            Duration::from_secs(10),
            || async {
                cluster
                    .k8s_events("bad")
                    .await
                    .into_iter()
                    .filter_map(|e| e.message)
                    .find(|m| m.starts_with("canary spec cannot be read: "))
            },
        )
        .await;
        assert!(message.contains("2147483648"), "{message}");
        let stored = raw.get("bad").await.unwrap();
        assert!(stored.data.get("status").is_none(), "{:?}", stored.data);
        ctrl.stop().await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_never_answers_does_not_stall_the_others() {
    guarded(async {
        // Accepts connections and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_url = format!("http://{}/gate", silent.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                open.push(socket);
            }
        });

        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        cluster.create_deployment("podinfo", IMAGE).await;
        cluster.create_deployment("slow", IMAGE).await;
        // One worker only: a wait that held it would stop everything.
        let ctrl = Controller::start(&cluster, &prom, &["--threadiness=1"]);
        let mut slow = podinfo_canary(
            &hooks,
            json!({"webhooks": [
                {"name": "gate", "type": "confirm-rollout", "url": silent_url, "timeout": "10m"}
            ]}),
        );
        slow["metadata"]["name"] = json!("slow");
        slow["spec"]["targetRef"]["name"] = json!("slow");
        cluster.create_canary(slow).await;
        cluster
            .create_canary(podinfo_canary(&hooks, json!({})))
            .await;
        wait_phase(&cluster, "slow", "Initialized", Duration::from_secs(20)).await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(20)).await;

        cluster.set_image("slow", NEW_IMAGE).await;
        cluster.set_image("podinfo", NEW_IMAGE).await;
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(30)).await;
        assert_eq!(
            cluster.phase("slow").await,
            "Initialized",
            "still waiting on its gate"
        );
        ctrl.stop().await.unwrap();
        held.abort();
    })
    .await
}
