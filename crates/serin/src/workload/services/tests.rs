#![allow(clippy::unwrap_used)]

use kube::ResourceExt;
use serde_json::{Value, json};

use super::*;
use crate::testing::TestCluster;
use crate::testing::assert_golden;

fn canary(service: Value) -> Canary {
    let mut svc = json!({"port": 9898});
    crate::k8s::meta::apply_merge_patch(&mut svc, &service);
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "canary-uid"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}, "service": svc}
    }))
    .unwrap()
}

fn meta() -> TargetMetadata {
    TargetMetadata {
        label: "app".into(),
        label_value: "podinfo".into(),
        ports: Default::default(),
    }
}

#[test]
fn golden_services() {
    let c = canary(json!({
        "portName": "http-podinfo", "targetPort": "http", "appProtocol": "http",
        "headless": true, "trafficDistribution": "PreferClose",
        "apex": {"labels": {"team": "a"}, "annotations": {"note": "apex"}},
        "canary": {"labels": {"tier": "canary"}}
    }));
    let mut m = meta();
    m.ports.insert("grpc".into(), 9999);
    let services: Vec<Service> = [ServiceRole::Apex, ServiceRole::Primary, ServiceRole::Canary]
        .into_iter()
        .map(|r| desired_service(&c, r, &m).unwrap())
        .collect();
    assert_golden("workload/testdata/services/generated.yaml", &services);
}

#[test]
fn port_comparison_is_order_insensitive_and_ignores_defaults() {
    let p = |v: Value| -> Vec<ServicePort> { serde_json::from_value(v).unwrap() };
    let live = p(
        json!([{"name": "grpc", "port": 9999, "protocol": "TCP", "targetPort": 9999, "nodePort": 30001},
                        {"name": "http", "port": 9898}]),
    );
    let desired = p(
        json!([{"name": "http", "port": 9898, "protocol": "TCP", "targetPort": 9898},
                           {"name": "grpc", "port": 9999, "protocol": "TCP", "targetPort": 9999}]),
    );
    assert!(!ports_differ(&live, &desired));
    let other = p(json!([{"name": "http", "port": 80}]));
    assert!(ports_differ(&live, &other));
}

#[tokio::test]
async fn services_are_created_and_then_left_alone() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let r = ServiceReconciler::new(client);
    let c = fake.store_canary(canary(json!({}))).await;
    r.initialize(&c, &meta()).await.unwrap();
    r.reconcile(&c, &meta()).await.unwrap();
    let canary_svc = fake
        .get("v1", "Service", "test", "podinfo-canary")
        .await
        .unwrap();
    assert_eq!(canary_svc["spec"]["selector"], json!({"app": "podinfo"}));
    let apex = fake.get("v1", "Service", "test", "podinfo").await.unwrap();
    assert_eq!(apex["spec"]["selector"], json!({"app": "podinfo-primary"}));
    assert_eq!(
        apex["metadata"]["ownerReferences"][0]["uid"],
        c.uid().unwrap().as_str()
    );
    fake.clear_writes();
    r.initialize(&c, &meta()).await.unwrap();
    r.reconcile(&c, &meta()).await.unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[tokio::test]
async fn owned_service_metadata_is_managed_except_unmanaged_keys() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let r = ServiceReconciler::new(client);
    let c = fake
        .store_canary(canary(json!({"primary": {"labels": {"a": "1"}}})))
        .await;
    r.initialize(&c, &meta()).await.unwrap();
    let mut svc = fake
        .get("v1", "Service", "test", "podinfo-primary")
        .await
        .unwrap();
    svc["metadata"]["labels"]["added-by-user"] = json!("x");
    svc["metadata"]["annotations"]["keep.me/too"] = json!("live");
    svc["spec"]["ports"][0]["nodePort"] = json!(30000);
    svc["spec"]["type"] = json!("NodePort");
    fake.insert(svc).await;
    let c2 = fake.store_canary(canary(
        json!({"primary": {"labels": {"b": "2"}}, "unmanagedMetadata": {"annotations": ["keep.me/too"]}, "port": 8080}),
    )).await;
    r.initialize(&c2, &meta()).await.unwrap();
    let svc = fake
        .get("v1", "Service", "test", "podinfo-primary")
        .await
        .unwrap();
    assert_eq!(
        svc["metadata"]["labels"],
        json!({"app": "podinfo-primary", "b": "2"})
    );
    assert_eq!(svc["metadata"]["annotations"]["keep.me/too"], "live");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        svc["spec"]["ports"][0]["nodePort"], 30000,
        "node port of the same-named port kept"
    );
    assert_eq!(
        svc["spec"]["type"], "NodePort",
        "type is only set at creation"
    );
}

#[tokio::test]
async fn pre_existing_apex_service_is_adopted_and_reverted() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    fake.insert(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"owner": "user"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.7", "selector": {"app": "podinfo", "extra": "x"},
                 "ports": [{"name": "http", "port": 9898, "protocol": "TCP", "targetPort": 9898}]}
    })).await;
    let r = ServiceReconciler::new(client);
    let c = fake.store_canary(canary(json!({}))).await;
    r.reconcile(&c, &meta()).await.unwrap();
    let apex = fake.get("v1", "Service", "test", "podinfo").await.unwrap();
    assert_eq!(apex["spec"]["selector"], json!({"app": "podinfo-primary"}));
    assert_eq!(
        apex["metadata"]["labels"],
        json!({"owner": "user"}),
        "user metadata untouched"
    );
    assert_eq!(
        apex["metadata"]["annotations"][FLUX_KUSTOMIZE_RECONCILE],
        "disabled"
    );
    assert!(apex["metadata"].get("ownerReferences").is_none());
    fake.clear_writes();
    r.reconcile(&c, &meta()).await.unwrap();
    assert!(fake.writes().is_empty());

    r.finalize(&c, &meta()).await.unwrap();
    let apex = fake.get("v1", "Service", "test", "podinfo").await.unwrap();
    assert_eq!(apex["spec"]["selector"], json!({"app": "podinfo"}));
}

#[tokio::test]
async fn finalize_restores_kubectl_selector_and_skips_owned_services() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let applied = json!({"spec": {"selector": {"app": "podinfo", "extra": "x"}}}).to_string();
    fake.insert(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": "test", "annotations": {KUBECTL_LAST_APPLIED: applied}},
        "spec": {"selector": {"app": "podinfo-primary"}, "ports": [{"name": "http", "port": 9898}]}
    })).await;
    let r = ServiceReconciler::new(client);
    r.finalize(&canary(json!({})), &meta()).await.unwrap();
    let apex = fake.get("v1", "Service", "test", "podinfo").await.unwrap();
    assert_eq!(
        apex["spec"]["selector"],
        json!({"app": "podinfo", "extra": "x"})
    );

    let fake = TestCluster::start().await;
    let client = fake.client();
    let r = ServiceReconciler::new(client);
    let c = fake.store_canary(canary(json!({}))).await;
    r.reconcile(&c, &meta()).await.unwrap();
    fake.clear_writes();
    r.finalize(&c, &meta()).await.unwrap();
    assert!(
        fake.writes().is_empty(),
        "a generated apex Service is garbage-collected, not reverted"
    );
}

/// The log lines of the current thread, for the log-text test below.
#[derive(Clone)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Flagger logs an update of an existing Service with its name only
/// (`pkg/router/kubernetes_default.go`); found by `tests/differential/run.sh
/// revert-on-deletion`.
#[tokio::test]
async fn a_service_update_is_logged_as_flagger_logs_it() {
    let capture = Capture(Default::default());
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let fake = TestCluster::start().await;
    fake.insert(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"selector": {"app": "podinfo"}, "ports": [{"name": "http", "port": 9898}]}
    }))
    .await;
    let r = ServiceReconciler::new(fake.client());
    let c = fake.store_canary(canary(json!({}))).await;
    r.reconcile(&c, &meta()).await.unwrap();
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("Service podinfo updated"), "{logs}");
    assert!(!logs.contains("Service podinfo.test updated"), "{logs}");
}

/// The generated Services of one step: the canary and primary Services, then the apex.
async fn service_step(r: &ServiceReconciler, c: &Canary) {
    r.initialize(c, &meta()).await.unwrap();
    r.reconcile(c, &meta()).await.unwrap();
}

#[tokio::test]
async fn a_cached_step_reads_no_service_from_the_api_server() {
    use crate::k8s::cache::Cache;
    use crate::testing::until_cached;
    use k8s_openapi::api::core::v1::Service;

    let fake = TestCluster::start().await;
    let c = fake.store_canary(canary(json!({}))).await;
    let plain = ServiceReconciler::new(fake.client());
    service_step(&plain, &c).await;
    let created = fake.write_paths();
    assert_eq!(created.len(), 3, "{created:?}");

    let fake = TestCluster::start().await;
    let c = fake.store_canary(canary(json!({}))).await;
    let cache = Cache::new(None);
    let r = ServiceReconciler::new(fake.client()).with_cache(cache.clone());
    service_step(&r, &c).await;
    assert_eq!(fake.write_paths(), created);
    let services: Api<Service> = Api::namespaced(fake.client(), "test");
    for name in ["podinfo", "podinfo-canary", "podinfo-primary"] {
        until_cached(&cache, &services, name).await;
    }
    fake.clear_writes();
    service_step(&r, &c).await;
    assert_eq!(fake.gets(), Vec::<String>::new());
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}
