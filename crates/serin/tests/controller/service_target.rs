//! A plain `kind: Service` target routed by Gateway API: the target Service chooses the backend
//! (its selector), Serin copies it to `podinfo-canary` and `podinfo-primary` and shifts the
//! HTTPRoute's weights between the two; promotion copies the target's spec to the primary.

use std::time::Duration;

use crate::routers::{Case, gateway_api, install, wait_weights, weights};
use crate::support::*;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

fn services(cluster: &Cluster) -> Api<Service> {
    Api::namespaced(cluster.client.clone(), NS)
}

async fn create_target(cluster: &Cluster, backend: &str) {
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": NS, "labels": {"app": "podinfo"}},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": backend},
            "ports": [{"name": "http", "port": 9898, "protocol": "TCP", "targetPort": "http"}]
        }
    }))
    .unwrap();
    services(cluster)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
}

/// Points the target Service at another backend: a new revision.
async fn select_backend(cluster: &Cluster, backend: &str) {
    let patch = json!({"spec": {"selector": {"app": backend}}});
    services(cluster)
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn selector(cluster: &Cluster, name: &str) -> Option<String> {
    let svc = services(cluster).get_opt(name).await.unwrap()?;
    svc.spec?.selector?.get("app").cloned()
}

async fn cluster_ip(cluster: &Cluster, name: &str) -> Option<String> {
    services(cluster)
        .get_opt(name)
        .await
        .unwrap()?
        .spec?
        .cluster_ip
}

fn service_canary(hooks: &Hooks, case: &Case) -> serde_json::Value {
    let mut canary = podinfo_canary(hooks, json!({}));
    canary["spec"]["provider"] = json!(case.provider);
    canary["spec"]["targetRef"] = json!({"apiVersion": "v1", "kind": "Service", "name": "podinfo"});
    for (k, v) in case.service.as_object().unwrap() {
        canary["spec"]["service"][k] = v.clone();
    }
    canary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_target_with_gateway_api() {
    guarded(async {
        let case = gateway_api("gatewayapi:v1", "v1");
        let cluster = Cluster::start().await;
        install(&cluster, &case).await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        create_target(&cluster, "podinfo-blue").await;
        let ctrl = Controller::start(&cluster, &prom, &[]);
        cluster.create_canary(service_canary(&hooks, &case)).await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(15)).await;
        assert_eq!(weights(&cluster, &case).await, Some((100, 0)));
        for copy in ["podinfo-primary", "podinfo-canary"] {
            assert_eq!(
                selector(&cluster, copy).await.as_deref(),
                Some("podinfo-blue"),
                "{copy}"
            );
        }
        let primary_ip = cluster_ip(&cluster, "podinfo-primary").await;
        assert!(primary_ip.is_some());
        assert_ne!(primary_ip, cluster_ip(&cluster, "podinfo").await);

        // Promotion: the target selects the green backend.
        select_backend(&cluster, "podinfo-green").await;
        wait_weights(&cluster, &case, (90, 10)).await;
        assert_eq!(
            selector(&cluster, "podinfo-canary").await.as_deref(),
            Some("podinfo-green"),
            "the canary copy follows the target"
        );
        assert_eq!(
            selector(&cluster, "podinfo-primary").await.as_deref(),
            Some("podinfo-blue"),
            "the primary waits for promotion"
        );
        wait_weights(&cluster, &case, (80, 20)).await;
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(20)).await;
        assert_eq!(weights(&cluster, &case).await, Some((100, 0)));
        assert_eq!(
            selector(&cluster, "podinfo-primary").await.as_deref(),
            Some("podinfo-green")
        );
        assert_eq!(
            cluster_ip(&cluster, "podinfo-primary").await,
            primary_ip,
            "the primary keeps its address"
        );

        // Rollback: the red backend fails its checks.
        select_backend(&cluster, "podinfo-red").await;
        wait_weights(&cluster, &case, (90, 10)).await;
        prom.set(50.0, 100.0);
        wait_phase(&cluster, "podinfo", "Failed", Duration::from_secs(20)).await;
        assert_eq!(weights(&cluster, &case).await, Some((100, 0)));
        assert_eq!(
            selector(&cluster, "podinfo-primary").await.as_deref(),
            Some("podinfo-green"),
            "the primary keeps the promoted revision"
        );
        hooks
            .wait_events_in_order(&[
                "New revision detected! Scaling up podinfo.test",
                "Advance podinfo.test canary weight 10",
                "Promotion completed! Scaling down podinfo.test",
                "Advance podinfo.test canary weight 10",
                "Rolling back podinfo.test failed checks threshold reached 2",
            ])
            .await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}
