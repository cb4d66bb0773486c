#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::testing::TestCluster;
use crate::testing::assert_golden;
use crate::workload::TargetController;
use crate::workload::template::discovered_ports;

fn canary(extra: Value) -> Canary {
    let mut c = json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "canary-uid"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10}
        }
    });
    crate::k8s::meta::apply_merge_patch(&mut c, &json!({"spec": extra}));
    serde_json::from_value(c).unwrap()
}

fn target() -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "podinfo", "namespace": "test", "generation": 1,
            "labels": {"app": "podinfo", "team": "a", "kustomize.toolkit.fluxcd.io/name": "apps"},
            "annotations": {"team.io/owner": "x", "other": "y", "kustomize.toolkit.fluxcd.io/checksum": "c"}
        },
        "spec": {
            "replicas": 3,
            "progressDeadlineSeconds": 60,
            "minReadySeconds": 5,
            "revisionHistoryLimit": 4,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {
                    "labels": {"app": "podinfo", "version": "1", "helm.toolkit.fluxcd.io/name": "x"},
                    "annotations": {"prometheus.io/scrape": "true", "flagger-id": "old"}
                },
                "spec": {
                    "containers": [{
                        "name": "podinfo", "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                        "ports": [{"name": "http", "containerPort": 9898}, {"name": "grpc", "containerPort": 9999}, {"containerPort": 8080}],
                        "envFrom": [{"configMapRef": {"name": "podinfo-env"}}]
                    }, {"name": "istio-proxy", "ports": [{"containerPort": 15090}]}],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": {"matchLabels": {"app": "podinfo"}}
                    }],
                    "affinity": {"podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [{
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["podinfo", "other"]}]}
                        }],
                        "preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {"topologyKey": "zone", "labelSelector": {"matchLabels": {"app": "podinfo", "tier": "podinfo"}}}
                        }]
                    }}
                }
            }
        },
        "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
    }))
    .unwrap()
}

fn tracked() -> TrackedConfigs {
    let mut t = TrackedConfigs::default();
    t.configmaps
        .insert("podinfo-env".into(), Default::default());
    t
}

fn config() -> WorkloadConfig {
    WorkloadConfig {
        include_label_prefix: vec!["team".into()],
        ..Default::default()
    }
}

#[test]
fn golden_primary_deployment() {
    let c = canary(json!({}));
    let owner = crate::k8s::meta::require_owner_reference(&c).unwrap();
    let primary = build_primary(
        &c,
        &target(),
        &config(),
        &tracked(),
        "00000000-0000-4000-8000-000000000000",
        owner,
    )
    .unwrap();
    assert_golden("workload/testdata/deployment/primary.yaml", &primary);
}

#[test]
fn selector_label_error_is_flaggers() {
    let mut t = target();
    t.spec.as_mut().unwrap().selector.match_labels =
        Some([("k8s-app".to_string(), "x".to_string())].into());
    assert_eq!(
        selector_label(&WorkloadConfig::default(), &t)
            .unwrap_err()
            .to_string(),
        "getSelectorLabel failed: deployment podinfo.test spec.selector.matchLabels must contain one of [app name app.kubernetes.io/name]"
    );
}

#[test]
fn ports_are_discovered_except_main_and_sidecars() {
    let containers = target().spec.unwrap().template.spec.unwrap().containers;
    assert!(discovered_ports(&canary(json!({})), &containers).is_empty());
    let c = canary(json!({"service": {"portDiscovery": true}}));
    let ports: Vec<(String, i32)> = discovered_ports(&c, &containers).into_iter().collect();
    assert_eq!(
        ports,
        vec![
            ("grpc".to_string(), 9999),
            ("tcp-podinfo-2".to_string(), 8080)
        ]
    );
    let c = canary(json!({"service": {"portDiscovery": true, "targetPort": "grpc"}}));
    let ports: Vec<String> = discovered_ports(&c, &containers).into_keys().collect();
    assert_eq!(ports, vec!["http", "tcp-podinfo-2"]);
}

fn dep_with(status: Value, generation: i64, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "podinfo", "generation": generation},
        "spec": {"replicas": replicas, "selector": {}, "template": {}},
        "status": status
    }))
    .unwrap()
}

#[test]
fn readiness_messages_and_retriability() {
    let now = Timestamp::from_second(10_000).unwrap();
    let check = |d: Deployment, threshold: i32| deployment_readiness(&d, 600, threshold, now);
    let err = check(dep_with(json!({"observedGeneration": 1}), 2, 1), 100).unwrap_err();
    assert_eq!(err, NotReady::retriable("waiting for rollout to finish: observed deployment generation less than desired generation".into()));
    let err = check(dep_with(json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}), 1, 1), 100).unwrap_err();
    assert_eq!(
        err,
        NotReady {
            retriable: false,
            message: "deployment \"podinfo\" exceeded its progress deadline".into()
        }
    );
    let err = check(
        dep_with(
            json!({"observedGeneration": 1, "updatedReplicas": 1, "replicas": 1}),
            1,
            3,
        ),
        100,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "waiting for rollout to finish: 1 out of 3 new replicas have been updated"
    );
    let err = check(
        dep_with(
            json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 5}),
            1,
            3,
        ),
        100,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "waiting for rollout to finish: 2 old replicas are pending termination"
    );
    // Computed in float32 and truncated, as Flagger does.
    let err = check(dep_with(json!({"observedGeneration": 1, "updatedReplicas": 10, "replicas": 10, "availableReplicas": 5}), 1, 10), 70).unwrap_err();
    assert_eq!(
        err.message,
        "waiting for rollout to finish: 5 of 7 (readyThreshold 70%) updated replicas are available"
    );
    assert!(check(dep_with(json!({"observedGeneration": 1, "updatedReplicas": 10, "replicas": 10, "availableReplicas": 7}), 1, 10), 70).is_ok());
    let err = check(dep_with(json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 0}), 1, 3), 50).unwrap_err();
    assert_eq!(
        err.message,
        "waiting for rollout to finish: 0 of 1 (readyThreshold 50%) updated replicas are available"
    );
    // Stuck below the minimum for longer than the deadline: not retriable any more.
    let stuck = |updated_at: i64| {
        let t = Timestamp::from_second(updated_at).unwrap().to_string();
        dep_with(
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 0, "conditions": [
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "lastUpdateTime": t}
            ]}),
            1,
            2,
        )
    };
    assert!(!check(stuck(1_000), 100).unwrap_err().retriable);
    assert!(check(stuck(9_900), 100).unwrap_err().retriable);
    assert!(check(dep_with(json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}), 1, 2), 100).is_ok());
}

#[test]
fn errors_carry_flaggers_prefixes() {
    let e = NotReady::retriable("waiting".into()).into_error("podinfo-primary.test not ready");
    assert!(
        matches!(e, WorkloadError::NotReady(ref m) if m == "podinfo-primary.test not ready: waiting")
    );
    let e = NotReady {
        retriable: false,
        message: "x".into(),
    }
    .into_error("canary deployment podinfo.test not ready");
    assert!(!e.is_retriable());
}

#[test]
fn scale_from_zero_rules() {
    assert_eq!(scale_from_zero_replicas(Some(4), false, Some(2), None), 4);
    assert_eq!(scale_from_zero_replicas(Some(0), false, Some(2), None), 2);
    assert_eq!(scale_from_zero_replicas(None, false, None, None), 1);
    assert_eq!(scale_from_zero_replicas(Some(0), true, Some(5), Some(3)), 3);
    assert_eq!(scale_from_zero_replicas(Some(0), true, None, Some(1)), 1);
    assert_eq!(scale_from_zero_replicas(Some(0), true, None, None), 1);
}

#[test]
fn template_hash_tracks_only_the_pod_template() {
    let a = target();
    let mut b = target();
    b.spec.as_mut().unwrap().replicas = Some(7);
    b.metadata.labels = None;
    b.status = None;
    assert_eq!(template_hash(&a), template_hash(&b));
    let mut c = target();
    c.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("podinfo:6.0.1".into());
    assert_ne!(template_hash(&a), template_hash(&c));
    let mut d = target();
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .node_selector = Some(Default::default());
    assert_eq!(
        template_hash(&a),
        template_hash(&d),
        "empty and absent maps hash alike"
    );
}

#[test]
fn promote_patch_copies_template_replicas_and_filtered_metadata() {
    let c = canary(json!({}));
    let owner = crate::k8s::meta::require_owner_reference(&c).unwrap();
    let mut primary = build_primary(&c, &target(), &config(), &tracked(), "id-1", owner).unwrap();
    primary
        .metadata
        .annotations
        .get_or_insert_default()
        .insert("deployment.kubernetes.io/revision".into(), "3".into());
    let mut t = target();
    t.spec.as_mut().unwrap().replicas = Some(5);
    t.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("podinfo:6.0.1".into());
    let patch = promote_patch(&c, &t, &primary, &config(), &tracked(), "id-2")
        .unwrap()
        .unwrap();
    assert_eq!(patch["spec"]["replicas"], 5);
    assert_eq!(
        patch["spec"]["template"]["metadata"]["annotations"]["flagger-id"],
        "id-2"
    );
    assert_eq!(
        patch["spec"]["template"]["spec"]["containers"][0]["image"],
        "podinfo:6.0.1"
    );
    // Annotations become the prefix-filtered ones; Kubernetes' own are not touched.
    assert_eq!(patch["metadata"]["annotations"], json!({"other": null}));
    assert!(patch["metadata"].get("labels").is_none());

    let with_hpa = canary(
        json!({"autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}}),
    );
    let patch = promote_patch(&with_hpa, &t, &primary, &config(), &tracked(), "id-2")
        .unwrap()
        .unwrap();
    assert!(patch["spec"].get("replicas").is_none());
}

fn target_json() -> Value {
    let mut v = serde_json::to_value(target()).unwrap();
    v["apiVersion"] = json!("apps/v1");
    v["kind"] = json!("Deployment");
    v
}

#[tokio::test]
async fn initialize_promote_scale_and_finalize() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    fake.insert(target_json()).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "podinfo-env", "namespace": "test"}, "data": {"A": "1"}})).await;
    let ctl = DeploymentController::new(client, config());
    let c = fake.store_canary(canary(json!({}))).await;

    let meta = ctl.metadata(&c).await.unwrap();
    assert_eq!(
        (meta.label.as_str(), meta.label_value.as_str()),
        ("app", "podinfo")
    );

    ctl.initialize(&c, false).await.unwrap();
    let primary = fake
        .get("apps/v1", "Deployment", "test", "podinfo-primary")
        .await
        .unwrap();
    assert_eq!(
        primary["spec"]["selector"]["matchLabels"],
        json!({"app": "podinfo-primary"})
    );
    assert_eq!(
        primary["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"],
        "podinfo-env-primary"
    );
    assert!(
        fake.get("v1", "ConfigMap", "test", "podinfo-env-primary")
            .await
            .is_some()
    );
    fake.clear_writes();
    ctl.initialize(&c, false).await.unwrap();
    assert!(fake.writes().is_empty());

    // The simulator is off: the primary has no status yet, so it is not ready.
    let err = ctl.initialize(&c, true).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("podinfo-primary.test not ready: waiting for rollout to finish"),
        "{err}"
    );
    assert!(ctl.is_canary_ready(&c).await.is_ok());

    ctl.scale_to_zero(&c).await.unwrap();
    assert_eq!(
        fake.get("apps/v1", "Deployment", "test", "podinfo")
            .await
            .unwrap()["spec"]["replicas"],
        0
    );
    fake.clear_writes();
    ctl.scale_to_zero(&c).await.unwrap();
    assert!(fake.writes().is_empty(), "no write when already at zero");
    ctl.scale_from_zero(&c).await.unwrap();
    assert_eq!(
        fake.get("apps/v1", "Deployment", "test", "podinfo")
            .await
            .unwrap()["spec"]["replicas"],
        3
    );

    let before = ctl.revision(&c).await.unwrap();
    assert_eq!(
        before.tracked_configs.keys().collect::<Vec<_>>(),
        vec!["configmap/podinfo-env"]
    );
    fake.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "podinfo-env", "namespace": "test"}, "data": {"A": "2"}})).await;
    let after = ctl.revision(&c).await.unwrap();
    assert_eq!(before.spec_hash, after.spec_hash);
    assert_ne!(before.tracked_configs, after.tracked_configs);

    let id_before = fake
        .get("apps/v1", "Deployment", "test", "podinfo-primary")
        .await
        .unwrap()["spec"]["template"]["metadata"]["annotations"]["flagger-id"]
        .clone();
    ctl.promote(&c).await.unwrap();
    let primary = fake
        .get("apps/v1", "Deployment", "test", "podinfo-primary")
        .await
        .unwrap();
    assert_ne!(
        primary["spec"]["template"]["metadata"]["annotations"]["flagger-id"],
        id_before
    );
    assert_eq!(
        fake.get("v1", "ConfigMap", "test", "podinfo-env-primary")
            .await
            .unwrap()["data"],
        json!({"A": "2"})
    );

    ctl.scale_to_zero(&c).await.unwrap();
    ctl.finalize(&c).await.unwrap();
    assert_eq!(
        fake.get("apps/v1", "Deployment", "test", "podinfo")
            .await
            .unwrap()["spec"]["replicas"],
        3
    );
}

#[tokio::test]
async fn missing_target_is_an_api_error_with_flaggers_context() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let ctl = DeploymentController::new(client, WorkloadConfig::default());
    let err = ctl.metadata(&canary(json!({}))).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("deployment podinfo.test get query error"),
        "{err}"
    );
}

/// One analysis step's calls on the Deployment controller (the primary is not ready: the
/// simulator is off).
async fn step(ctl: &DeploymentController, c: &Canary) {
    ctl.metadata(c).await.unwrap();
    ctl.initialize(c, false).await.unwrap();
    ctl.revision(c).await.unwrap();
    ctl.is_canary_ready(c).await.unwrap();
    assert!(ctl.is_primary_ready(c).await.is_err());
    ctl.promote(c).await.unwrap();
    ctl.scale_from_zero(c).await.unwrap();
}

/// A dev cluster with the target, its ConfigMap and HPA, and the Canary.
async fn step_cluster() -> (TestCluster, Canary) {
    let fake = TestCluster::start().await;
    fake.insert(target_json()).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "podinfo-env", "namespace": "test"}, "data": {"A": "1"}})).await;
    fake.insert(json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}, "minReplicas": 2, "maxReplicas": 4}}))
    .await;
    let c = canary(
        json!({"autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}}),
    );
    let c = fake.store_canary(c).await;
    (fake, c)
}

#[tokio::test]
async fn a_cached_step_reads_nothing_from_the_api_server_and_writes_the_same() {
    use crate::k8s::cache::Cache;
    use crate::testing::until_cached;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;

    // Without a cache: every step reads everything.
    let (fake, c) = step_cluster().await;
    let plain = DeploymentController::new(fake.client(), config());
    step(&plain, &c).await;
    fake.clear_writes();
    step(&plain, &c).await;
    let uncached_writes = fake.write_paths();
    assert!(!fake.gets().is_empty());
    assert!(!uncached_writes.is_empty(), "promotion always writes");

    let (fake, c) = step_cluster().await;
    let cache = Cache::new(None);
    let ctl = DeploymentController::new(fake.client(), config()).with_cache(cache.clone());
    step(&ctl, &c).await;
    let deployments: Api<Deployment> = Api::namespaced(fake.client(), "test");
    until_cached(&cache, &deployments, "podinfo").await;
    until_cached(&cache, &deployments, "podinfo-primary").await;
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "test");
    until_cached(&cache, &cms, "podinfo-env").await;
    until_cached(&cache, &cms, "podinfo-env-primary").await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(fake.client(), "test");
    until_cached(&cache, &hpas, "podinfo").await;
    fake.clear_writes();
    step(&ctl, &c).await;
    assert_eq!(fake.gets(), Vec::<String>::new());
    assert_eq!(fake.write_paths(), uncached_writes);
}
