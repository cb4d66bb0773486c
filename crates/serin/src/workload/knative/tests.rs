#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::testing::TestCluster;
use crate::testing::assert_golden;

pub(crate) const CRDS: &str = include_str!("../../../tests/fixtures/crds/knative.yaml");

pub(crate) fn canary(phase: &str) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "provider": "knative",
            "targetRef": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"},
            "service": {"port": 80}
        },
        "status": {"phase": phase}
    }))
    .unwrap()
}

/// A Knative Service whose latest created revision is `latest`.
pub(crate) fn service(latest: &str, annotations: Value, traffic: Value) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": "test", "annotations": annotations},
        "spec": {
            "template": {"spec": {"containers": [{"image": "ghcr.io/stefanprodan/podinfo:6.0.0"}]}},
            "traffic": traffic
        },
        "status": {
            "latestCreatedRevisionName": latest,
            "latestReadyRevisionName": latest,
            "conditions": [{"type": "Ready", "status": "True"}],
            "traffic": traffic
        }
    })
}

/// A Revision whose `Ready` condition has `ready` as status.
pub(crate) async fn insert_revision(fake: &TestCluster, name: &str, ready: &str) {
    fake.insert(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": name, "namespace": "test"},
        "status": {"conditions": [{"type": "Ready", "status": ready}]}
    }))
    .await;
}

pub(crate) async fn stored(fake: &TestCluster) -> Value {
    fake.get("serving.knative.dev/v1", "Service", "test", "podinfo")
        .await
        .unwrap()
}

/// The merge patch of initialization, and none once the Service is initialized.
#[test]
fn rendered_initialize_patch() {
    let fresh: KnativeService = serde_json::from_value(service(
        "podinfo-00001",
        json!({"owner": "team-a"}),
        json!([{"latestRevision": true, "percent": 100}]),
    ))
    .unwrap();
    let patch = initialize_patch(&fresh, "podinfo-00001").unwrap();
    assert_golden("workload/testdata/knative/initialize.yaml", &patch);
    let mut value = serde_json::to_value(&fresh).unwrap();
    crate::k8s::meta::apply_merge_patch(&mut value, &patch);
    let done: KnativeService = serde_json::from_value(value).unwrap();
    assert_eq!(initialize_patch(&done, "podinfo-00001"), None);
}

#[tokio::test]
async fn initialize_names_the_primary_revision_and_routes_everything_to_it() {
    let fake = TestCluster::start().await;
    fake.install_crds(CRDS).await;
    fake.insert(service(
        "podinfo-00001",
        json!({}),
        json!([{"latestRevision": true, "percent": 100}]),
    ))
    .await;
    insert_revision(&fake, "podinfo-00001", "True").await;
    let ctrl = KnativeController::new(fake.client());

    ctrl.initialize(&canary("Initializing"), true)
        .await
        .unwrap();
    let svc = stored(&fake).await;
    assert_eq!(
        svc["metadata"]["annotations"]["flagger.app/primary-revision"],
        "podinfo-00001"
    );
    assert_eq!(
        svc["spec"]["traffic"],
        json!([
            {"latestRevision": true, "percent": 0},
            {"revisionName": "podinfo-00001", "percent": 100}
        ])
    );
    assert_eq!(
        svc["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/stefanprodan/podinfo:6.0.0",
        "the merge patch leaves the revision template alone"
    );
    assert_eq!(fake.writes().len(), 1);

    // Nothing left to do: no write. After initialization the traffic belongs to the router.
    fake.clear_writes();
    ctrl.initialize(&canary(""), false).await.unwrap();
    ctrl.initialize(&canary("Progressing"), false)
        .await
        .unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[tokio::test]
async fn revision_promotion_and_readiness() {
    let fake = TestCluster::start().await;
    fake.install_crds(CRDS).await;
    let traffic = json!([
        {"latestRevision": true, "percent": 0},
        {"revisionName": "podinfo-00001", "percent": 100}
    ]);
    fake.insert(service(
        "podinfo-00002",
        json!({"flagger.app/primary-revision": "podinfo-00001"}),
        traffic,
    ))
    .await;
    let ctrl = KnativeController::new(fake.client());
    let c = canary("Progressing");
    assert_eq!(ctrl.revision(&c).await.unwrap().spec_hash, "podinfo-00002");

    // Revisions missing, then not ready, then ready.
    let err = ctrl.is_canary_ready(&c).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Knative Revision podinfo-00002.test get query error: "),
        "{err}"
    );
    insert_revision(&fake, "podinfo-00001", "True").await;
    insert_revision(&fake, "podinfo-00002", "Unknown").await;
    ctrl.is_primary_ready(&c).await.unwrap();
    let err = ctrl.is_canary_ready(&c).await.unwrap_err();
    assert!(err.is_retriable());
    assert_eq!(
        err.to_string(),
        "Knative Revision podinfo-00002.test is not ready"
    );
    insert_revision(&fake, "podinfo-00002", "True").await;
    ctrl.is_canary_ready(&c).await.unwrap();
    insert_revision(&fake, "podinfo-00001", "False").await;
    assert_eq!(
        ctrl.is_primary_ready(&c).await.unwrap_err().to_string(),
        "Knative Revision podinfo-00001.test is not ready"
    );

    ctrl.promote(&c).await.unwrap();
    assert_eq!(
        stored(&fake).await["metadata"]["annotations"]["flagger.app/primary-revision"],
        "podinfo-00002"
    );
    fake.clear_writes();
    ctrl.promote(&c).await.unwrap();
    assert!(fake.writes().is_empty(), "promoted already: no write");
}

#[tokio::test]
async fn a_missing_service_or_revision_is_reported_in_plain_words() {
    let fake = TestCluster::start().await;
    fake.install_crds(CRDS).await;
    let ctrl = KnativeController::new(fake.client());
    let c = canary("");
    let err = ctrl.initialize(&c, false).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Knative Service podinfo.test get query error: "),
        "{err}"
    );
    let mut svc = service("podinfo-00001", json!({}), json!([]));
    svc["status"] = json!({});
    fake.insert(svc).await;
    assert_eq!(
        ctrl.revision(&c).await.unwrap_err().to_string(),
        "Knative Service podinfo.test has no revision yet (status.latestCreatedRevisionName is empty)"
    );
    assert_eq!(
        ctrl.is_primary_ready(&c).await.unwrap_err().to_string(),
        "Knative Service podinfo.test primary revision annotation not found"
    );
}

/// One step's calls on a Knative target.
async fn knative_step(ctrl: &KnativeController, c: &Canary) {
    ctrl.revision(c).await.unwrap();
    ctrl.is_primary_ready(c).await.unwrap();
    ctrl.is_canary_ready(c).await.unwrap();
    ctrl.promote(c).await.unwrap();
}

async fn knative_cluster() -> TestCluster {
    let fake = TestCluster::start().await;
    fake.install_crds(CRDS).await;
    let traffic = json!([
        {"latestRevision": true, "percent": 0},
        {"revisionName": "podinfo-00001", "percent": 100}
    ]);
    fake.insert(service(
        "podinfo-00002",
        json!({"flagger.app/primary-revision": "podinfo-00001"}),
        traffic,
    ))
    .await;
    insert_revision(&fake, "podinfo-00001", "True").await;
    insert_revision(&fake, "podinfo-00002", "True").await;
    fake
}

#[tokio::test]
async fn a_cached_step_reads_nothing_from_the_api_server() {
    use crate::k8s::cache::Cache;
    use crate::testing::until_cached;

    let c = canary("Progressing");
    let fake = knative_cluster().await;
    let plain = KnativeController::new(fake.client());
    knative_step(&plain, &c).await;
    fake.clear_writes();
    knative_step(&plain, &c).await;
    let uncached_writes = fake.write_paths();

    let fake = knative_cluster().await;
    let cache = Cache::new(None);
    let ctrl = KnativeController::new(fake.client()).with_cache(cache.clone());
    knative_step(&ctrl, &c).await;
    let services: Api<KnativeService> = Api::namespaced(fake.client(), "test");
    until_cached(&cache, &services, "podinfo").await;
    let revisions: Api<KnativeRevision> = Api::namespaced(fake.client(), "test");
    until_cached(&cache, &revisions, "podinfo-00001").await;
    until_cached(&cache, &revisions, "podinfo-00002").await;
    fake.clear_writes();
    knative_step(&ctrl, &c).await;
    assert_eq!(fake.gets(), Vec::<String>::new());
    assert_eq!(fake.write_paths(), uncached_writes);
}
