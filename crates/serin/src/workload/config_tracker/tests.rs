#![allow(clippy::unwrap_used)]

use kube::ResourceExt;
use serde_json::{Value, json};

use super::*;
use crate::testing::TestCluster;

fn pod_spec(v: Value) -> PodSpec {
    serde_json::from_value(v).unwrap()
}

fn spec_with_everything() -> PodSpec {
    pod_spec(json!({
        "volumes": [
            {"name": "v1", "configMap": {"name": "cm-vol"}},
            {"name": "v2", "secret": {"secretName": "s-vol"}},
            {"name": "v3", "projected": {"sources": [
                {"configMap": {"name": "cm-proj"}},
                {"secret": {"name": "s-proj", "optional": true}}
            ]}},
            {"name": "v4", "emptyDir": {}}
        ],
        "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "cm-init"}}]}],
        "containers": [{
            "name": "app",
            "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "a", "optional": true}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "b"}}},
                {"name": "C", "value": "plain"}
            ],
            "envFrom": [{"secretRef": {"name": "s-from"}}, {"configMapRef": {"name": "cm-vol", "optional": true}}]
        }]
    }))
}

#[test]
fn discovery_covers_volumes_projections_env_and_init_containers() {
    let refs = discover(&spec_with_everything());
    fn names(m: &BTreeMap<String, bool>) -> Vec<(&str, bool)> {
        m.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }
    assert_eq!(
        names(&refs.configmaps),
        vec![
            ("cm-env", true),
            ("cm-init", false),
            ("cm-proj", false),
            ("cm-vol", false)
        ]
    );
    assert_eq!(
        names(&refs.secrets),
        vec![
            ("s-env", false),
            ("s-from", false),
            ("s-proj", true),
            ("s-vol", false)
        ]
    );
}

#[test]
fn checksums_match_flaggers_encoding() {
    // Expected values computed independently (Python: sorted compact JSON, Go's HTML escaping).
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "a"}, "data": {"z": "x", "a": "<b>&"}}))
            .unwrap();
    assert_eq!(configmap_checksum(&cm), "ae1edd844b8ca8a9");
    let empty: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap();
    assert_eq!(configmap_checksum(&empty), "74234e98afe7498f");
    let with_empty_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "a"}, "data": {}})).unwrap();
    assert_eq!(configmap_checksum(&with_empty_map), "74234e98afe7498f");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"k": "aGVsbG8="}}))
            .unwrap();
    assert_eq!(secret_checksum(&secret), "67430c10fd9013b5");
    let binary: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "a"}, "data": {"a": "1"}, "binaryData": {"bin": "AAE="}}),
    )
    .unwrap();
    assert_eq!(configmap_checksum(&binary), "b966ef8d0996456f");
}

#[test]
fn exclusions() {
    let meta =
        |a: Value| -> ObjectMeta { serde_json::from_value(json!({"annotations": a})).unwrap() };
    assert!(tracking_disabled(&meta(
        json!({"flagger.app/config-tracking": "disabled"})
    )));
    assert!(!tracking_disabled(&meta(
        json!({"flagger.app/config-tracking": "enabled"})
    )));
    let secret = |t: Value| -> Secret {
        serde_json::from_value(json!({"metadata": {}, "type": t})).unwrap()
    };
    assert!(is_tracked_secret_type(&secret(json!("kubernetes.io/tls"))));
    assert!(is_tracked_secret_type(&secret(Value::Null)));
    assert!(!is_tracked_secret_type(&secret(json!(
        "kubernetes.io/dockerconfigjson"
    ))));
    assert!(!is_tracked_secret_type(&secret(json!(
        "kubernetes.io/service-account-token"
    ))));
}

#[test]
fn rewrite_renames_only_tracked_references() {
    let mut spec = spec_with_everything();
    let mut tracked = TrackedConfigs::default();
    for n in ["cm-vol", "cm-proj", "cm-init", "cm-env"] {
        tracked.configmaps.insert(n.into(), ConfigMap::default());
    }
    for n in ["s-vol", "s-env"] {
        tracked.secrets.insert(n.into(), Secret::default());
    }
    rewrite_pod_spec(&mut spec, &tracked);
    let v = serde_json::to_value(&spec).unwrap();
    assert_eq!(v["volumes"][0]["configMap"]["name"], "cm-vol-primary");
    assert_eq!(v["volumes"][1]["secret"]["secretName"], "s-vol-primary");
    assert_eq!(
        v["volumes"][2]["projected"]["sources"][0]["configMap"]["name"],
        "cm-proj-primary"
    );
    assert_eq!(
        v["volumes"][2]["projected"]["sources"][1]["secret"]["name"],
        "s-proj"
    );
    assert_eq!(
        v["initContainers"][0]["envFrom"][0]["configMapRef"]["name"],
        "cm-init-primary"
    );
    let c = &v["containers"][0];
    assert_eq!(
        c["env"][0]["valueFrom"]["configMapKeyRef"]["name"],
        "cm-env-primary"
    );
    assert_eq!(
        c["env"][1]["valueFrom"]["secretKeyRef"]["name"],
        "s-env-primary"
    );
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "s-from");
    assert_eq!(c["envFrom"][1]["configMapRef"]["name"], "cm-vol-primary");
}

fn canary() -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "canary-uid"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}, "service": {"port": 9898}}
    }))
    .unwrap()
}

#[tokio::test]
async fn target_configs_skip_missing_optional_and_fail_on_missing_mandatory() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    fake.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-vol", "namespace": "test"}, "data": {"a": "1"}})).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-init", "namespace": "test", "annotations": {"flagger.app/config-tracking": "disabled"}}})).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-proj", "namespace": "test"}})).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s-vol", "namespace": "test"}, "type": "kubernetes.io/dockerconfigjson", "data": {}})).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s-env", "namespace": "test"}, "type": "Opaque", "data": {"b": "Yg=="}})).await;
    let tracker = ConfigTracker::new(client, &WorkloadConfig::default());
    let err = tracker
        .target_configs(&canary(), &spec_with_everything())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret s-from.test get query error: secrets \"s-from\" not found"
    );
    fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s-from", "namespace": "test"}, "data": {"c": "Yw=="}})).await;
    let tracked = tracker
        .target_configs(&canary(), &spec_with_everything())
        .await
        .unwrap();
    assert_eq!(
        tracked.configmaps.keys().collect::<Vec<_>>(),
        vec!["cm-proj", "cm-vol"]
    );
    assert_eq!(
        tracked.secrets.keys().collect::<Vec<_>>(),
        vec!["s-env", "s-from"]
    );
    assert_eq!(
        tracked.checksums().keys().collect::<Vec<_>>(),
        vec![
            "configmap/cm-proj",
            "configmap/cm-vol",
            "secret/s-env",
            "secret/s-from"
        ]
    );

    let other = TestCluster::start().await;
    let disabled = ConfigTracker::new(
        other.client(),
        &WorkloadConfig {
            config_tracking: false,
            ..Default::default()
        },
    );
    assert!(
        disabled
            .target_configs(&canary(), &spec_with_everything())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn primary_copies_are_created_updated_and_left_alone() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let c = fake.store_canary(canary()).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "test", "labels": {"app": "podinfo", "kustomize.toolkit.fluxcd.io/name": "x"}, "annotations": {"a": "b"}}, "data": {"k": "v"}, "binaryData": {"bin": "AAE="}})).await;
    let config = WorkloadConfig {
        include_label_prefix: vec!["*".into()],
        ..Default::default()
    };
    let tracker = ConfigTracker::new(client, &config);
    let spec = pod_spec(
        json!({"containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}),
    );
    let tracked = tracker.target_configs(&c, &spec).await.unwrap();
    tracker.sync_primary_configs(&c, &tracked).await.unwrap();
    let copy = fake
        .get("v1", "ConfigMap", "test", "cfg-primary")
        .await
        .unwrap();
    assert_eq!(copy["data"], json!({"k": "v"}));
    assert_eq!(copy["binaryData"], json!({"bin": "AAE="}));
    assert_eq!(copy["metadata"]["labels"], json!({"app": "podinfo"}));
    assert!(copy["metadata"].get("annotations").is_none());
    assert_eq!(
        copy["metadata"]["ownerReferences"][0]["uid"],
        c.uid().unwrap().as_str()
    );

    fake.clear_writes();
    tracker.sync_primary_configs(&c, &tracked).await.unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());

    // Another owner on the copy is kept as a non-controller owner; data changes are patched.
    let mut cm = tracked.configmaps["cfg"].clone();
    cm.data = Some(BTreeMap::from([("k".to_string(), "v2".to_string())]));
    let mut tracked2 = TrackedConfigs::default();
    tracked2.configmaps.insert("cfg".into(), cm);
    let live: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "cfg-primary", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "other", "controller": true}
        ]}}),
    )
    .unwrap();
    let owner = require_owner_reference(&c).unwrap();
    let desired = primary_configmap(
        &tracked2.configmaps["cfg"],
        "test",
        &owner,
        Some(&live),
        &[],
    );
    let refs = desired.metadata.owner_references.unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[1].controller, Some(false));
    tracker.sync_primary_configs(&c, &tracked2).await.unwrap();
    assert_eq!(
        fake.get("v1", "ConfigMap", "test", "cfg-primary")
            .await
            .unwrap()["data"],
        json!({"k": "v2"})
    );
}

/// With a cache, tracking a ConfigMap and a Secret reads the ConfigMaps from the watch and the
/// Secrets (never cached) from the API server; the copies are the same.
#[tokio::test]
async fn configmaps_come_from_the_cache_and_secrets_from_the_api_server() {
    use crate::k8s::cache::Cache;
    use crate::testing::until_cached;

    let fake = TestCluster::start().await;
    let c = fake.store_canary(canary()).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "test"}, "data": {"k": "v"}})).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec", "namespace": "test"}, "type": "Opaque", "data": {"k": "dg=="}})).await;
    let spec = pod_spec(json!({"containers": [{"name": "app", "envFrom": [
        {"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"}}
    ]}]}));
    let cache = Cache::new(None);
    let tracker =
        ConfigTracker::new(fake.client(), &WorkloadConfig::default()).with_cache(cache.clone());
    let tracked = tracker.target_configs(&c, &spec).await.unwrap();
    tracker.sync_primary_configs(&c, &tracked).await.unwrap();
    let written = fake.write_paths();
    assert_eq!(written.len(), 2, "{written:?}");
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "test");
    until_cached(&cache, &cms, "cfg").await;
    until_cached(&cache, &cms, "cfg-primary").await;

    fake.clear_writes();
    let again = tracker.target_configs(&c, &spec).await.unwrap();
    assert_eq!(again.checksums(), tracked.checksums());
    tracker.sync_primary_configs(&c, &again).await.unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    assert_eq!(
        fake.gets(),
        vec![
            "/api/v1/namespaces/test/secrets/sec".to_string(),
            "/api/v1/namespaces/test/secrets/sec-primary".to_string()
        ]
    );
}
