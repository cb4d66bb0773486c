//! `serin simulate-workloads` through the API (kube-rs), on the dev cluster with its own
//! simulator switched off: status is written for the workloads of the chosen namespace, after
//! the ready delay, with the dev cluster's annotations, and nothing elsewhere is touched. (On a
//! real cluster every scenario runs with this simulator.)

use std::time::Duration;

use crate::support::*;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use serin::cli::simulate_workloads::{self, Args};
use tokio::sync::watch;

fn deployment(name: &str, ns: &str, annotations: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]}}
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulate_workloads_writes_status_through_the_api() {
    if dev_cluster_only("the harness already runs this simulator for every scenario there") {
        return;
    }
    guarded(async {
        let cluster = Cluster::start().await;
        cluster.dev().simulator().set_enabled(false);
        let client = cluster.client.clone();
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "elsewhere"}})).unwrap(),
            )
            .await
            .unwrap();
        let (stop, rx) = watch::channel(false);
        let args = Args {
            kubeconfig: cluster.kubeconfig.clone(),
            namespaces: vec![NS.to_string()],
            selector: None,
            ready_delay_ms: 300,
            tick_ms: 20,
        };
        let sim_client = client.clone();
        let task =
            tokio::spawn(async move { simulate_workloads::simulate(sim_client, &args, rx).await });

        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
        let pp = PostParams::default();
        deployments
            .create(&pp, &deployment("web", NS, json!({})))
            .await
            .unwrap();
        deployments
            .create(
                &pp,
                &deployment(
                    "stuck",
                    NS,
                    json!({"devcluster.serin.dev/behaviour": "never-ready"}),
                ),
            )
            .await
            .unwrap();
        let foreign: Api<Deployment> = Api::namespaced(client.clone(), "elsewhere");
        foreign
            .create(&pp, &deployment("web", "elsewhere", json!({})))
            .await
            .unwrap();
        let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), NS);
        daemonsets
            .create(
                &pp,
                &serde_json::from_value(json!({
                    "metadata": {"name": "agent", "namespace": NS},
                    "spec": {"selector": {"matchLabels": {"app": "agent"}},
                        "template": {"metadata": {"labels": {"app": "agent"}},
                            "spec": {"containers": [{"name": "a", "image": "busybox"}]}}}
                }))
                .unwrap(),
            )
            .await
            .unwrap();

        // Not ready at once (the delay), then ready with the controllers' conditions.
        let first = wait_for("a first status", Duration::from_secs(5), || async {
            deployments.get("web").await.unwrap().status
        })
        .await;
        assert_eq!(
            first.ready_replicas, None,
            "ready before the delay: {first:?}"
        );
        assert_eq!(first.updated_replicas, Some(2));
        let ready = wait_for("web ready", Duration::from_secs(5), || async {
            let s = deployments.get("web").await.unwrap().status?;
            (s.ready_replicas == Some(2)).then_some(s)
        })
        .await;
        assert_eq!(ready.available_replicas, Some(2));
        assert_eq!(ready.observed_generation, Some(1));
        let conditions = ready.conditions.unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True"),
            "{conditions:?}"
        );
        assert!(
            conditions.iter().any(|c| c.type_ == "Progressing"
                && c.reason.as_deref() == Some("NewReplicaSetAvailable")),
            "{conditions:?}"
        );
        wait_for("the DaemonSet ready", Duration::from_secs(5), || async {
            let s = daemonsets.get("agent").await.unwrap().status?;
            (s.number_ready == 1).then_some(())
        })
        .await;
        // The never-ready script is honoured; the other namespace is left alone.
        let stuck = deployments.get("stuck").await.unwrap().status.unwrap();
        assert_eq!(
            (stuck.updated_replicas, stuck.ready_replicas),
            (Some(2), None)
        );
        assert!(foreign.get("web").await.unwrap().status.is_none());

        let _ = stop.send(true);
        task.await.unwrap().unwrap();
        cluster.shutdown().await;
    })
    .await;
}
