//! A DaemonSet target with the Kubernetes provider (blue/green, the only strategy that
//! provider supports): generated Services, primary DaemonSet, promotion.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::*;

fn image(ds: &DaemonSet) -> Option<String> {
    ds.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daemonset_blue_green_with_the_kubernetes_provider() {
    guarded(async {
        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        let daemonsets: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), NS);
        let ds: DaemonSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": NS},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "agent", "image": "agent:1.0.0",
                        "ports": [{"name": "http", "containerPort": 8080}]}]}
                }
            }
        }))
        .unwrap();
        daemonsets.create(&PostParams::default(), &ds).await.unwrap();
        let ctrl = Controller::start(&cluster, &prom, &[]);
        let mut canary = podinfo_canary(
            &hooks,
            json!({"maxWeight": null, "stepWeight": null, "iterations": 2}),
        );
        canary["metadata"]["name"] = Value::from("agent");
        canary["spec"]["provider"] = Value::from("kubernetes");
        canary["spec"]["targetRef"] =
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent"});
        canary["spec"]["service"] = json!({"port": 8080});
        cluster.create_canary(canary).await;
        wait_phase(&cluster, "agent", "Initialized", Duration::from_secs(10)).await;

        let primary = daemonsets.get("agent-primary").await.unwrap();
        assert_eq!(image(&primary).as_deref(), Some("agent:1.0.0"));
        let services: Api<Service> = Api::namespaced(cluster.client.clone(), NS);
        let apex = services.get("agent").await.unwrap();
        assert_eq!(
            apex.spec.unwrap().selector.unwrap().get("app").map(String::as_str),
            Some("agent-primary")
        );

        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:1.0.1"}]}}}});
        daemonsets
            .patch("agent", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
        wait_phase(&cluster, "agent", "Succeeded", Duration::from_secs(20)).await;
        let primary = daemonsets.get("agent-primary").await.unwrap();
        assert_eq!(image(&primary).as_deref(), Some("agent:1.0.1"));
        hooks
            .wait_events_in_order(
            &[
                "New revision detected! Scaling up agent.test",
                "Advance agent.test canary iteration 1/2",
                "Advance agent.test canary iteration 2/2",
                "Copying agent.test template spec to agent-primary.test",
                "Promotion completed! Scaling down agent.test",
            ],
        )
        .await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}
