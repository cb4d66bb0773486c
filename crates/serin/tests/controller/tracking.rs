//! Config tracking and the HPA copy: a ConfigMap and a Secret used by the target are copied to
//! `-primary` copies that the primary uses, a change of the ConfigMap alone is a new revision
//! that is analysed and promoted, and the target's HPA is copied to one for the primary.

use std::time::Duration;

use crate::support::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn create<K>(api: &Api<K>, body: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(
        &PostParams::default(),
        &serde_json::from_value(body).unwrap(),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tracked_configs_and_the_hpa_are_copied_and_a_config_change_is_promoted() {
    guarded(async {
        let cluster = Cluster::start().await;
        let configmaps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), NS);
        let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), NS);
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(cluster.client.clone(), NS);
        create(
            &configmaps,
            json!({"metadata": {"name": "podinfo-config", "namespace": NS},
                   "data": {"color": "blue"}}),
        )
        .await;
        create(
            &secrets,
            json!({"metadata": {"name": "podinfo-token", "namespace": NS},
                   "data": {"token": "czNjcjN0"}}),
        )
        .await;
        let hooks = Hooks::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        cluster
            .deployments()
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "podinfo", "namespace": NS, "labels": {"app": "podinfo"}},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": "podinfo"}},
                        "template": {
                            "metadata": {"labels": {"app": "podinfo"}},
                            "spec": {"containers": [{
                                "name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                                "ports": [{"name": "http", "containerPort": 9898}],
                                "envFrom": [{"configMapRef": {"name": "podinfo-config"}}],
                                "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef":
                                    {"name": "podinfo-token", "key": "token"}}}]
                            }]}
                        }
                    }
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        create(
            &hpas,
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "podinfo", "namespace": NS},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                    "minReplicas": 2, "maxReplicas": 4,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80}}}]
                }}),
        )
        .await;
        let ctrl = Controller::start(&cluster, &prom, &[]);
        let mut canary = podinfo_canary(&hooks, json!({}));
        canary["spec"]["autoscalerRef"] = json!({"apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler", "name": "podinfo"});
        cluster.create_canary(canary).await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(30)).await;

        // The primary uses the copies.
        let primary_cm = configmaps.get("podinfo-config-primary").await.unwrap();
        assert_eq!(
            primary_cm.data.unwrap_or_default().get("color").map(String::as_str),
            Some("blue")
        );
        assert!(secrets.get_opt("podinfo-token-primary").await.unwrap().is_some());
        let primary = cluster.deployments().get("podinfo-primary").await.unwrap();
        let spec = serde_json::to_value(primary.spec.unwrap().template.spec.unwrap()).unwrap();
        assert_eq!(
            spec.pointer("/containers/0/envFrom/0/configMapRef/name"),
            Some(&json!("podinfo-config-primary"))
        );
        assert_eq!(
            spec.pointer("/containers/0/env/0/valueFrom/secretKeyRef/name"),
            Some(&json!("podinfo-token-primary"))
        );
        // The HPA copy scales the primary.
        let hpa = wait_for("the primary HPA", Duration::from_secs(10), || async {
            hpas.get_opt("podinfo-primary").await.unwrap()
        })
        .await;
        let hpa_spec = hpa.spec.unwrap();
        assert_eq!(hpa_spec.scale_target_ref.name, "podinfo-primary");
        assert_eq!((hpa_spec.min_replicas, hpa_spec.max_replicas), (Some(2), 4));

        // A change of the ConfigMap alone is a new revision, promoted to the primary's copy.
        configmaps
            .patch(
                "podinfo-config",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"color": "green"}})),
            )
            .await
            .unwrap();
        wait_phase(&cluster, "podinfo", "Progressing", Duration::from_secs(15)).await;
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(40)).await;
        let promoted = configmaps.get("podinfo-config-primary").await.unwrap();
        assert_eq!(
            promoted.data.unwrap_or_default().get("color").map(String::as_str),
            Some("green")
        );
        hooks
            .wait_events_in_order(&[
                "New revision detected! Scaling up podinfo.test",
                "Copying podinfo.test template spec to podinfo-primary.test",
                "Promotion completed! Scaling down podinfo.test",
            ])
            .await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}
