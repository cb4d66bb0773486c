#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::k8s::meta::apply_merge_patch;
use crate::testing::TestCluster;
use crate::testing::assert_golden;

fn canary(extra: Value) -> Canary {
    let mut c = json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "canary-uid"},
        "spec": {
            "targetRef": {"apiVersion": "v1", "kind": "Service", "name": "podinfo"},
            "provider": "gatewayapi:v1",
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10}
        }
    });
    apply_merge_patch(&mut c, &json!({"spec": extra}));
    serde_json::from_value(c).unwrap()
}

/// The target as an API server returns it: cluster IPs allocated, defaults filled in, the
/// `kubectl apply` record and Flux's labels on it.
fn target_json() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "podinfo", "namespace": "test", "uid": "target-uid", "resourceVersion": "7",
            "labels": {"app": "podinfo", "team": "a", "kustomize.toolkit.fluxcd.io/name": "apps"},
            "annotations": {
                "team.io/owner": "x",
                "other": "y",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Service\"}"
            }
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "selector": {"app": "podinfo-blue"},
            "ports": [{"name": "http", "port": 9898, "protocol": "TCP", "targetPort": "http"}],
            "sessionAffinity": "None"
        }
    })
}

fn target() -> Service {
    serde_json::from_value(target_json()).unwrap()
}

fn config() -> WorkloadConfig {
    WorkloadConfig {
        include_label_prefix: vec!["team".into()],
        ..Default::default()
    }
}

fn owner(c: &Canary) -> OwnerReference {
    require_owner_reference(c).unwrap()
}

#[test]
fn golden_copies() {
    let c = canary(json!({}));
    let copies = vec![
        build_copy(&c, &target(), "podinfo-canary", owner(&c)),
        build_copy(
            &canary(json!({"service": {"trafficDistribution": "PreferClose"}})),
            &target(),
            "podinfo-primary",
            owner(&c),
        ),
    ];
    assert_golden("workload/testdata/service_target/copies.yaml", &copies);
}

#[test]
fn a_headless_target_gives_headless_copies_and_node_ports_are_left_to_the_server() {
    let c = canary(json!({}));
    let mut headless = target();
    let spec = headless.spec.as_mut().unwrap();
    spec.cluster_ip = Some("None".into());
    spec.cluster_ips = Some(vec!["None".into()]);
    let copy = build_copy(&c, &headless, "podinfo-canary", owner(&c));
    assert_eq!(copy.spec.unwrap().cluster_ip.as_deref(), Some("None"));

    let mut node_port = target();
    let spec = node_port.spec.as_mut().unwrap();
    spec.type_ = Some("LoadBalancer".into());
    spec.health_check_node_port = Some(31000);
    spec.ports.as_mut().unwrap()[0].node_port = Some(30080);
    let copy = build_copy(&c, &node_port, "podinfo-canary", owner(&c))
        .spec
        .unwrap();
    assert_eq!(copy.cluster_ip, None);
    assert_eq!(copy.health_check_node_port, None);
    assert_eq!(copy.ports.unwrap()[0].node_port, None);
}

#[test]
fn the_canary_copy_follows_the_target_and_keeps_its_own_addresses() {
    let c = canary(json!({}));
    let mut live = build_copy(&c, &target(), "podinfo-canary", owner(&c));
    live.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.11".into());
    live.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.0.11".into()]);
    assert_eq!(canary_sync_patch(&c, &target(), &live), None, "in step");

    let mut green = target_json();
    green["spec"]["selector"] = json!({"app": "podinfo-green"});
    green["metadata"]["labels"]["release"] = json!("green");
    green["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("other");
    let green: Service = serde_json::from_value(green).unwrap();
    let patch = canary_sync_patch(&c, &green, &live).unwrap();
    assert_eq!(
        patch,
        json!({
            "spec": {"selector": {"app": "podinfo-green"}},
            "metadata": {"labels": {"release": "green"}, "annotations": {"other": null}}
        })
    );

    // A NodePort target: a new port list keeps the copy's own node ports.
    let mut np = target_json();
    np["spec"]["type"] = json!("NodePort");
    np["spec"]["ports"] = json!([
        {"name": "http", "port": 9898, "protocol": "TCP", "targetPort": "http", "nodePort": 30001},
        {"name": "grpc", "port": 9999, "protocol": "TCP", "targetPort": 9999, "nodePort": 30002}
    ]);
    let np: Service = serde_json::from_value(np).unwrap();
    let mut live = build_copy(&c, &np, "podinfo-canary", owner(&c));
    live.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(31001);
    live.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].node_port = Some(31002);
    assert_eq!(
        canary_sync_patch(&c, &np, &live),
        None,
        "node ports are the copy's own"
    );
    let mut wider: Value = serde_json::to_value(&np).unwrap();
    wider["spec"]["ports"][1]["port"] = json!(10000);
    let wider: Service = serde_json::from_value(wider).unwrap();
    let patch = canary_sync_patch(&c, &wider, &live).unwrap();
    assert_eq!(
        patch["spec"]["ports"],
        json!([
            {"name": "http", "port": 9898, "protocol": "TCP", "targetPort": "http", "nodePort": 31001},
            {"name": "grpc", "port": 10000, "protocol": "TCP", "targetPort": 9999, "nodePort": 31002}
        ])
    );
}

#[test]
fn a_type_change_drops_the_node_ports_the_new_type_does_not_allow() {
    let c = canary(json!({}));
    let mut lb = target_json();
    lb["spec"]["type"] = json!("LoadBalancer");
    lb["spec"]["externalTrafficPolicy"] = json!("Local");
    let lb: Service = serde_json::from_value(lb).unwrap();
    let mut live = build_copy(&c, &lb, "podinfo-canary", owner(&c));
    let spec = live.spec.as_mut().unwrap();
    spec.ports.as_mut().unwrap()[0].node_port = Some(31001);
    spec.health_check_node_port = Some(32000);
    assert_eq!(canary_sync_patch(&c, &lb, &live), None, "in step");

    // Back to ClusterIP: the API server refuses node ports on a ClusterIP Service.
    let patch = canary_sync_patch(&c, &target(), &live).unwrap();
    assert_eq!(
        patch["spec"],
        json!({
            "type": "ClusterIP",
            "externalTrafficPolicy": null,
            "healthCheckNodePort": null,
            "ports": [{"name": "http", "port": 9898, "protocol": "TCP", "targetPort": "http"}]
        })
    );
}

#[test]
fn promotion_copies_the_spec_and_the_prefix_filtered_metadata() {
    let c = canary(json!({"service": {"trafficDistribution": "PreferClose"}}));
    let mut primary = build_copy(&c, &target(), "podinfo-primary", owner(&c));
    primary.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.12".into());
    primary.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.0.12".into()]);

    let mut green = target_json();
    green["spec"]["selector"] = json!({"app": "podinfo-green"});
    let green: Service = serde_json::from_value(green).unwrap();
    let patch = promote_patch(&c, &green, &primary, &config()).unwrap();
    assert_eq!(
        patch,
        json!({
            "spec": {"selector": {"app": "podinfo-green"}},
            // Only `team*` keys pass `-include-label-prefix`; kubectl's record never does.
            "metadata": {"labels": {"app": null}, "annotations": {"other": null}}
        })
    );
    assert!(
        patch["spec"].get("clusterIP").is_none(),
        "the primary keeps its address"
    );

    let mut promoted = serde_json::to_value(&primary).unwrap();
    apply_merge_patch(&mut promoted, &patch);
    let promoted: Service = serde_json::from_value(promoted).unwrap();
    assert_eq!(promote_patch(&c, &green, &promoted, &config()), None);
}

#[test]
fn the_revision_is_the_spec() {
    let a = target();
    let mut b = target_json();
    b["metadata"]["labels"] = json!({"other": "labels"});
    let b: Service = serde_json::from_value(b).unwrap();
    assert_eq!(spec_hash(&a), spec_hash(&b), "metadata is not the revision");
    let mut c = target_json();
    c["spec"]["selector"] = json!({"app": "podinfo-green"});
    let c: Service = serde_json::from_value(c).unwrap();
    assert_ne!(spec_hash(&a), spec_hash(&c));
    assert_eq!(spec_hash(&a).len(), 16);
}

fn stored_target() -> Value {
    let mut t = target_json();
    let meta = t["metadata"].as_object_mut().unwrap();
    meta.remove("uid");
    meta.remove("resourceVersion");
    let spec = t["spec"].as_object_mut().unwrap();
    spec.remove("clusterIP");
    spec.remove("clusterIPs");
    t
}

#[tokio::test]
async fn initialize_resync_and_promote_on_an_api_server() {
    let fake = TestCluster::start().await;
    fake.insert(stored_target()).await;
    let ctl = ServiceTargetController::new(fake.client(), config());
    let c = fake
        .store_canary(canary(
            json!({"service": {"trafficDistribution": "PreferClose"}}),
        ))
        .await;

    assert_eq!(ctl.metadata(&c).await.unwrap(), TargetMetadata::default());
    ctl.initialize(&c, true).await.unwrap();
    let get = |name: &'static str| {
        let fake = &fake;
        async move { fake.get("v1", "Service", "test", name).await.unwrap() }
    };
    let target_ip = get("podinfo").await["spec"]["clusterIP"].clone();
    let canary_svc = get("podinfo-canary").await;
    let primary_svc = get("podinfo-primary").await;
    for copy in [&canary_svc, &primary_svc] {
        assert_eq!(copy["spec"]["selector"], json!({"app": "podinfo-blue"}));
        assert_eq!(copy["spec"]["trafficDistribution"], "PreferClose");
        assert_ne!(copy["spec"]["clusterIP"], target_ip, "its own address");
        assert_eq!(copy["metadata"]["ownerReferences"][0]["kind"], "Canary");
        assert!(
            copy["metadata"]["annotations"]
                .get(KUBECTL_LAST_APPLIED)
                .is_none()
        );
    }
    let canary_ip = canary_svc["spec"]["clusterIP"].clone();
    let primary_ip = primary_svc["spec"]["clusterIP"].clone();

    fake.clear_writes();
    ctl.initialize(&c, true).await.unwrap();
    assert!(fake.writes().is_empty(), "nothing to write when in step");

    // The target moves to the green backend: the canary copy follows at once, the primary
    // waits for promotion.
    let before = ctl.revision(&c).await.unwrap();
    let mut green = stored_target();
    green["spec"]["selector"] = json!({"app": "podinfo-green"});
    fake.insert(green).await;
    let after = ctl.revision(&c).await.unwrap();
    assert_ne!(before.spec_hash, after.spec_hash);
    assert!(after.tracked_configs.is_empty());
    ctl.initialize(&c, true).await.unwrap();
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "PATCH");
    assert_eq!(writes[0].content_type, "application/merge-patch+json");
    assert!(writes[0].path.ends_with("/services/podinfo-canary"));
    assert_eq!(
        writes[0].body,
        json!({"spec": {"selector": {"app": "podinfo-green"}}})
    );
    assert_eq!(
        get("podinfo-canary").await["spec"]["clusterIP"],
        canary_ip,
        "the canary copy keeps its address"
    );
    assert_eq!(
        get("podinfo-primary").await["spec"]["selector"],
        json!({"app": "podinfo-blue"})
    );

    // Nothing to scale or wait for.
    ctl.scale_to_zero(&c).await.unwrap();
    ctl.scale_from_zero(&c).await.unwrap();
    ctl.is_primary_ready(&c).await.unwrap();
    ctl.is_canary_ready(&c).await.unwrap();
    ctl.finalize(&c).await.unwrap();

    fake.clear_writes();
    ctl.promote(&c).await.unwrap();
    let primary = get("podinfo-primary").await;
    assert_eq!(primary["spec"]["selector"], json!({"app": "podinfo-green"}));
    assert_eq!(primary["spec"]["clusterIP"], primary_ip);
    assert_eq!(
        primary["spec"]["trafficDistribution"], "PreferClose",
        "service.trafficDistribution survives promotion"
    );
    assert_eq!(primary["metadata"]["labels"], json!({"team": "a"}));
    assert_eq!(
        primary["metadata"]["annotations"],
        json!({"team.io/owner": "x"})
    );
    assert_eq!(
        primary["metadata"]["ownerReferences"][0]["uid"],
        json!(c.metadata.uid),
        "the primary stays owned by the Canary"
    );
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    fake.clear_writes();
    ctl.promote(&c).await.unwrap();
    assert!(
        fake.writes().is_empty(),
        "a promoted primary is not written"
    );
}

#[tokio::test]
async fn a_missing_target_is_reported_in_words() {
    let fake = TestCluster::start().await;
    let ctl = ServiceTargetController::new(fake.client(), config());
    let c = fake.store_canary(canary(json!({}))).await;
    let err = ctl.initialize(&c, false).await.unwrap_err();
    assert!(err.is_retriable());
    assert_eq!(
        err.to_string(),
        "service podinfo.test get query error: the API server answered HTTP 404 Not Found (NotFound): services \"podinfo\" not found"
    );
}

/// One step's calls on a Service target.
async fn service_target_step(ctl: &ServiceTargetController, c: &Canary) {
    ctl.initialize(c, true).await.unwrap();
    ctl.revision(c).await.unwrap();
    ctl.promote(c).await.unwrap();
}

#[tokio::test]
async fn a_cached_step_reads_no_service_from_the_api_server() {
    use crate::k8s::cache::Cache;
    use crate::testing::until_cached;

    let fake = TestCluster::start().await;
    fake.insert(stored_target()).await;
    let c = fake.store_canary(canary(json!({}))).await;
    let plain = ServiceTargetController::new(fake.client(), config());
    service_target_step(&plain, &c).await;
    let first = fake.write_paths();
    assert!(!first.is_empty());

    let fake = TestCluster::start().await;
    fake.insert(stored_target()).await;
    let c = fake.store_canary(canary(json!({}))).await;
    let cache = Cache::new(None);
    let ctl = ServiceTargetController::new(fake.client(), config()).with_cache(cache.clone());
    service_target_step(&ctl, &c).await;
    assert_eq!(fake.write_paths(), first);
    let services: Api<Service> = Api::namespaced(fake.client(), "test");
    for name in ["podinfo", "podinfo-canary", "podinfo-primary"] {
        until_cached(&cache, &services, name).await;
    }
    fake.clear_writes();
    service_target_step(&ctl, &c).await;
    assert_eq!(fake.gets(), Vec::<String>::new());
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}
