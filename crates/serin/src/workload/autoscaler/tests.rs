#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::testing::TestCluster;
use crate::testing::assert_golden;

fn canary(autoscaler: Value) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "canary-uid"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "autoscalerRef": autoscaler,
            "service": {"port": 9898}
        }
    }))
    .unwrap()
}

fn hpa_ref() -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"})
}

fn so_ref(extra: Value) -> Value {
    let mut r =
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo"});
    crate::k8s::meta::apply_merge_patch(&mut r, &extra);
    r
}

fn hpa(min: Option<i32>, max: i32) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "podinfo", "namespace": "test",
                     "labels": {"app": "podinfo", "kustomize.toolkit.fluxcd.io/name": "x"},
                     "annotations": {"note": "n"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "minReplicas": min, "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 99}}}]
        }
    })
}

fn scaled_object() -> Value {
    json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"},
                     "annotations": {"autoscaling.keda.sh/paused-replicas": "0", "note": "n"}},
        "spec": {
            "scaleTargetRef": {"name": "podinfo", "kind": "Deployment", "apiVersion": "apps/v1"},
            "pollingInterval": 10, "cooldownPeriod": 20, "minReplicaCount": 2, "maxReplicaCount": 5,
            "advanced": {"horizontalPodAutoscalerConfig": {"name": "podinfo-hpa"}},
            "triggers": [
                {"type": "prometheus", "name": "requests", "metadata": {"query": "sum(rate(http_requests_total{ app=\"podinfo\" }[30s])) / sum(up{app=\"podinfo-canary\"})"}},
                {"type": "cpu", "metadata": {"value": "50"}}
            ],
            "unknownFutureField": true
        }
    })
}

#[tokio::test]
async fn scaler_factory_by_kind() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let cfg = WorkloadConfig::default();
    assert!(
        scaler_with_cache(
            client.clone(),
            &cfg,
            &canary(Value::Null),
            Cache::disabled()
        )
        .unwrap()
        .is_none()
    );
    assert!(
        scaler_with_cache(client.clone(), &cfg, &canary(hpa_ref()), Cache::disabled())
            .unwrap()
            .is_some()
    );
    assert!(
        scaler_with_cache(
            client.clone(),
            &cfg,
            &canary(so_ref(json!({}))),
            Cache::disabled()
        )
        .unwrap()
        .is_some()
    );
    let err = scaler_with_cache(
        client,
        &cfg,
        &canary(so_ref(json!({"kind": "VerticalPodAutoscaler"}))),
        Cache::disabled(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("VerticalPodAutoscaler"));
}

#[test]
fn golden_primary_hpa_with_replica_overrides() {
    let c = canary(
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo",
                          "primaryScalerReplicas": {"minReplicas": 3}}),
    );
    let source: HorizontalPodAutoscaler = serde_json::from_value(hpa(Some(2), 4)).unwrap();
    let owner = crate::k8s::meta::require_owner_reference(&c).unwrap();
    assert_golden(
        "workload/testdata/autoscaler/primary-hpa.yaml",
        &build_primary_hpa(&c, &source, owner),
    );
}

#[test]
fn query_rewriting() {
    assert_eq!(
        rewrite_query(
            "sum(rate(http_requests_total{ app=\"podinfo\" }[30s]))",
            "podinfo"
        ),
        "sum(rate(http_requests_total{ app=\"podinfo-primary\" }[30s]))"
    );
    assert_eq!(
        rewrite_query("a{x=\"podinfo-canary\"} b{y=\"podinfo\"}", "podinfo"),
        "a{x=\"podinfo-canary\"} b{y=\"podinfo-primary\"}"
    );
}

#[test]
fn golden_primary_scaled_object() {
    let c = canary(so_ref(json!({"primaryScalerReplicas": {"maxReplicas": 9}})));
    let source: DynamicObject = serde_json::from_value(scaled_object()).unwrap();
    let owner = crate::k8s::meta::require_owner_reference(&c).unwrap();
    assert_golden(
        "workload/testdata/autoscaler/primary-scaledobject.yaml",
        &build_primary_scaled_object(&c, &source, owner),
    );
}

#[test]
fn primary_scaler_queries_replace_named_triggers() {
    let c = canary(so_ref(
        json!({"primaryScalerQueries": {"requests": "custom_query"}}),
    ));
    let spec = primary_scaled_object_spec(&c, &scaled_object()["spec"]);
    assert_eq!(spec["triggers"][0]["metadata"]["query"], "custom_query");
    assert_eq!(spec["triggers"][1]["metadata"], json!({"value": "50"}));
    assert!(spec.get("unknownFutureField").is_none());
}

#[tokio::test]
async fn hpa_is_created_then_updated_only_outside_init() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    fake.insert(hpa(None, 4)).await;
    let c = fake.store_canary(canary(hpa_ref())).await;
    let cfg = WorkloadConfig {
        include_label_prefix: vec!["app".into()],
        ..Default::default()
    };
    let r = HpaReconciler::new(client, cfg);
    r.reconcile_primary(&c, true).await.unwrap();
    let primary = fake
        .get(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "test",
            "podinfo-primary",
        )
        .await
        .unwrap();
    assert_eq!(primary["spec"]["scaleTargetRef"]["name"], "podinfo-primary");
    assert_eq!(primary["metadata"]["labels"], json!({"app": "podinfo"}));
    fake.clear_writes();
    // The server defaults minReplicas to 1: that is not a difference.
    let mut defaulted = primary.clone();
    defaulted["spec"]["minReplicas"] = json!(1);
    fake.insert(defaulted).await;
    r.reconcile_primary(&c, false).await.unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());

    fake.insert(hpa(Some(2), 8)).await;
    r.reconcile_primary(&c, true).await.unwrap();
    assert!(fake.writes().is_empty(), "init never updates");
    r.reconcile_primary(&c, false).await.unwrap();
    let primary = fake
        .get(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "test",
            "podinfo-primary",
        )
        .await
        .unwrap();
    assert_eq!(primary["spec"]["maxReplicas"], 8);
    assert_eq!(primary["spec"]["minReplicas"], 2);
    fake.clear_writes();
    r.reconcile_primary(&c, false).await.unwrap();
    assert!(
        fake.writes().is_empty(),
        "metadata is synchronised, so no update on every tick"
    );
}

#[tokio::test]
async fn scaled_object_pause_resume_and_update() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let mut so = scaled_object();
    so["metadata"]["annotations"] = json!({"note": "n"});
    fake.insert(so).await;
    let c = fake.store_canary(canary(so_ref(json!({})))).await;
    let r = ScaledObjectReconciler::new(client, WorkloadConfig::default());
    r.reconcile_primary(&c, true).await.unwrap();
    let primary = fake
        .get(
            "keda.sh/v1alpha1",
            "ScaledObject",
            "test",
            "podinfo-primary",
        )
        .await
        .unwrap();
    assert_eq!(primary["spec"]["scaleTargetRef"]["name"], "podinfo-primary");

    r.pause_target(&c).await.unwrap();
    let target = fake
        .get("keda.sh/v1alpha1", "ScaledObject", "test", "podinfo")
        .await
        .unwrap();
    assert_eq!(
        target["metadata"]["annotations"][PAUSED_REPLICAS_ANNOTATION],
        "0"
    );
    fake.clear_writes();
    r.pause_target(&c).await.unwrap();
    assert!(fake.writes().is_empty());
    r.resume_target(&c).await.unwrap();
    let target = fake
        .get("keda.sh/v1alpha1", "ScaledObject", "test", "podinfo")
        .await
        .unwrap();
    assert!(
        target["metadata"]["annotations"]
            .get(PAUSED_REPLICAS_ANNOTATION)
            .is_none()
    );

    // The pause annotation never reaches the primary; spec changes do, outside init.
    r.pause_target(&c).await.unwrap();
    let mut changed = fake
        .get("keda.sh/v1alpha1", "ScaledObject", "test", "podinfo")
        .await
        .unwrap();
    changed["spec"]["maxReplicaCount"] = json!(12);
    fake.insert(changed).await;
    r.reconcile_primary(&c, false).await.unwrap();
    let primary = fake
        .get(
            "keda.sh/v1alpha1",
            "ScaledObject",
            "test",
            "podinfo-primary",
        )
        .await
        .unwrap();
    assert_eq!(primary["spec"]["maxReplicaCount"], 12);
    assert!(
        primary["metadata"]
            .get("annotations")
            .is_none_or(|a| a.get(PAUSED_REPLICAS_ANNOTATION).is_none())
    );
    fake.clear_writes();
    r.reconcile_primary(&c, false).await.unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[test]
fn primary_hpa_log_lines_are_flaggers() {
    assert_eq!(
        primary_hpa_log("podinfo-primary", "test", "created"),
        "HorizontalPodAutoscaler v2 podinfo-primary.test created"
    );
    assert_eq!(
        primary_hpa_log("podinfo-primary", "test", "updated"),
        "HorizontalPodAutoscaler v2 podinfo-primary.test updated"
    );
}

#[tokio::test]
async fn cached_reconciles_read_no_autoscaler_from_the_api_server() {
    use crate::k8s::cache::Cache;
    use crate::testing::until_cached;

    let fake = TestCluster::start().await;
    fake.insert(hpa(Some(2), 4)).await;
    fake.insert(scaled_object()).await;
    let cache = Cache::new(None);
    let hpa_canary = fake.store_canary(canary(hpa_ref())).await;
    // The same stored Canary owns both primaries (the garbage collector deletes objects whose
    // owner does not exist).
    let mut so_canary = hpa_canary.clone();
    so_canary.spec.autoscaler_ref = canary(so_ref(json!({}))).spec.autoscaler_ref;
    let hpas =
        HpaReconciler::new(fake.client(), WorkloadConfig::default()).with_cache(cache.clone());
    let sos = ScaledObjectReconciler::new(fake.client(), WorkloadConfig::default())
        .with_cache(cache.clone());
    // Creation, then the update that syncs the prefix-filtered metadata.
    for _ in 0..2 {
        hpas.reconcile_primary(&hpa_canary, false).await.unwrap();
        sos.reconcile_primary(&so_canary, false).await.unwrap();
        sos.resume_target(&so_canary).await.unwrap();
    }
    let hpa_api: Api<HorizontalPodAutoscaler> = Api::namespaced(fake.client(), "test");
    until_cached(&cache, &hpa_api, "podinfo").await;
    until_cached(&cache, &hpa_api, "podinfo-primary").await;
    let so_api: Api<DynamicObject> =
        Api::namespaced_with(fake.client(), "test", &scaled_object_resource());
    until_cached(&cache, &so_api, "podinfo").await;
    until_cached(&cache, &so_api, "podinfo-primary").await;
    fake.clear_writes();
    hpas.reconcile_primary(&hpa_canary, false).await.unwrap();
    sos.reconcile_primary(&so_canary, false).await.unwrap();
    sos.resume_target(&so_canary).await.unwrap();
    assert_eq!(
        min_replicas(&fake.client(), &cache, &so_canary)
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(fake.gets(), Vec::<String>::new());
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}
