#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::render::*;
use crate::api::Canary;
use crate::api::provider::AppMeshVersion;
use crate::k8s::meta::apply_merge_patch;
use crate::router::object::testing::canary;
use crate::router::{RouterError, Routes};
use crate::testing::assert_golden;

const V2: AppMeshVersion = AppMeshVersion::V1beta2;
const V1: AppMeshVersion = AppMeshVersion::V1beta1;

fn selector() -> Selector {
    Selector {
        label: "app".to_string(),
    }
}

/// Every object as `Reconcile` creates it, then `SetRoutes(routes)` applied to the weighted
/// one; checks that the weights read back, and that neither `Reconcile` nor `SetRoutes` writes
/// again.
fn routed(c: &Canary, version: AppMeshVersion, routes: Routes) -> Vec<Value> {
    let (kind, name, _) = weighted(c, version);
    let mut out = Vec::new();
    for d in desired(c, version, &selector()).unwrap() {
        let mut obj = object(c, version, &d, true);
        if d.kind == kind && d.name == name {
            assert_eq!(
                routes_of(c, version, &obj).unwrap(),
                Routes::new(100, 0, false)
            );
            if let Some(p) = set_routes_patch(c, version, &obj, routes).unwrap() {
                apply_merge_patch(&mut obj, &p);
            }
            assert_eq!(routes_of(c, version, &obj).unwrap(), routes);
            assert_eq!(set_routes_patch(c, version, &obj, routes).unwrap(), None);
        }
        assert_eq!(
            reconcile_patch(c, version, &d, &obj),
            None,
            "Reconcile leaves {} {} alone",
            d.kind.as_str(),
            d.name
        );
        out.push(obj);
    }
    out
}

fn with_annotation(mut c: Canary, key: &str, value: &str) -> Canary {
    c.metadata
        .annotations
        .get_or_insert_default()
        .insert(key.to_string(), value.to_string());
    c
}

fn full_service() -> Value {
    json!({
        "targetPort": 8080,
        "match": [{"uri": {"prefix": "/api"}}],
        "timeout": "30s",
        "retries": {"attempts": 3, "perTryTimeout": "5s", "retryOn": "gateway-error,client-error"},
        "hosts": ["app.example.com", "www.example.com"],
        "backends": ["backend.test", "arn:aws:appmesh:eu-west-1:12345678910:mesh/my-mesh/virtualService/other"],
        "apex": {"labels": {"team": "a"}, "annotations": {"owner": "a"}}
    })
}

#[test]
fn golden_v1beta2_weights_with_options() {
    let c = with_annotation(
        canary("appmesh:v1beta2", full_service(), json!({})),
        ACCESS_LOG_ANNOTATION,
        "enabled",
    );
    assert_golden(
        "router/testdata/appmesh/v1beta2-weights.yaml",
        &routed(&c, V2, Routes::new(70, 30, false)),
    );
}

#[test]
fn golden_v1beta2_ab_headers() {
    let c = canary(
        "appmesh:v1beta2",
        json!({}),
        json!({"stepWeight": null, "maxWeight": null, "iterations": 5, "match": [
            {"headers": {
                "x-canary": {"exact": "insider"},
                "user-agent": {"prefix": "Mozilla"},
                "cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"},
                "x-region": {"suffix": "-west"}
            }}
        ]}),
    );
    let objects = routed(&c, V2, Routes::new(0, 100, false));
    // Route b keeps sending everything else to the primary.
    assert_eq!(
        objects[2].pointer("/spec/routes/1/httpRoute/action/weightedTargets"),
        Some(&json!([{"virtualNodeRef": {"name": "podinfo-primary"}, "weight": 100}]))
    );
    assert_golden("router/testdata/appmesh/v1beta2-ab.yaml", &objects);
}

#[test]
fn golden_v1beta1_legacy() {
    let mut service = full_service();
    service["meshName"] = json!("global");
    let c = canary("appmesh", service, json!({}));
    assert_golden(
        "router/testdata/appmesh/v1beta1-weights.yaml",
        &routed(&c, V1, Routes::new(60, 40, false)),
    );
}

#[test]
fn v1beta1_needs_a_mesh_name() {
    let c = canary("appmesh", json!({}), json!({}));
    let err = desired(&c, V1, &selector()).unwrap_err();
    assert!(matches!(err, RouterError::Invalid(_)));
    assert!(err.to_string().contains("spec.service.meshName"), "{err}");
}

#[test]
fn grpc_port_names_make_grpc_listeners() {
    let c = canary(
        "appmesh:v1beta2",
        json!({"portName": "grpc-api"}),
        json!({}),
    );
    for d in desired(&c, V2, &selector()).unwrap() {
        if let Some(protocol) = d.spec.pointer("/listeners/0/portMapping/protocol") {
            assert_eq!(protocol, "grpc", "{}", d.name);
            assert_eq!(d.spec["listeners"][0]["portMapping"]["port"], 9898);
        }
    }
}

#[test]
fn pod_selectors_use_the_target_and_its_selector_label() {
    let c = canary("appmesh:v1beta2", json!({"name": "frontend"}), json!({}));
    let all = desired(
        &c,
        V2,
        &Selector {
            label: "app.kubernetes.io/name".into(),
        },
    )
    .unwrap();
    let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "frontend-primary",
            "frontend-canary",
            "frontend",
            "frontend",
            "frontend-canary",
            "frontend-canary"
        ]
    );
    assert_eq!(
        all[0].spec["podSelector"],
        json!({"matchLabels": {"app.kubernetes.io/name": "podinfo-primary"}})
    );
    assert_eq!(
        all[1].spec["podSelector"],
        json!({"matchLabels": {"app.kubernetes.io/name": "podinfo"}})
    );
    assert_eq!(
        all[0].spec["serviceDiscovery"]["dns"]["hostname"],
        "frontend-primary.test.svc.cluster.local."
    );
}

#[test]
fn reconcile_keeps_weights_and_fields_it_does_not_own() {
    let c = canary("appmesh:v1beta2", json!({}), json!({}));
    let objects = routed(&c, V2, Routes::new(80, 20, false));
    let all = desired(&c, V2, &selector()).unwrap();
    // The App Mesh controller fills in meshRef and awsName.
    let mut router = objects[2].clone();
    router["spec"]["meshRef"] = json!({"name": "global", "uid": "x"});
    router["spec"]["awsName"] = json!("podinfo_test");
    assert_eq!(reconcile_patch(&c, V2, &all[2], &router), None);

    // A changed prefix is put back, with the live weights kept.
    router["spec"]["routes"][0]["httpRoute"]["match"]["prefix"] = json!("api");
    let patch = reconcile_patch(&c, V2, &all[2], &router).unwrap();
    apply_merge_patch(&mut router, &patch);
    assert_eq!(
        router["spec"]["routes"][0]["httpRoute"]["match"]["prefix"],
        "/"
    );
    assert_eq!(
        routes_of(&c, V2, &router).unwrap(),
        Routes::new(80, 20, false)
    );
    assert_eq!(router["spec"]["awsName"], "podinfo_test");

    // New backends reach the virtual nodes.
    let c2 = canary(
        "appmesh:v1beta2",
        json!({"backends": ["a.test", "arn:aws:appmesh:x"]}),
        json!({}),
    );
    let node = desired(&c2, V2, &selector()).unwrap().remove(0);
    let patch = reconcile_patch(&c2, V2, &node, &objects[0]).unwrap();
    assert_eq!(
        patch,
        json!({"spec": {"backends": [
            {"virtualService": {"virtualServiceRef": {"name": "a.test"}}},
            {"virtualService": {"virtualServiceARN": "arn:aws:appmesh:x"}}
        ]}})
    );
}

#[test]
fn gateway_annotations_follow_the_hosts() {
    let with_hosts = canary(
        "appmesh:v1beta2",
        json!({"hosts": ["app.example.com"]}),
        json!({}),
    );
    let service = desired(&with_hosts, V2, &selector()).unwrap().remove(3);
    let mut live = object(&with_hosts, V2, &service, false);
    assert_eq!(
        live.pointer("/metadata/annotations/gateway.appmesh.k8s.aws~1domain"),
        Some(&json!("app.example.com,"))
    );
    live["metadata"]["annotations"]["user"] = json!("kept");
    let without = canary("appmesh:v1beta2", json!({}), json!({}));
    let service = desired(&without, V2, &selector()).unwrap().remove(3);
    let patch = reconcile_patch(&without, V2, &service, &live).unwrap();
    assert_eq!(
        patch,
        json!({"metadata": {"annotations": {
            "gateway.appmesh.k8s.aws/domain": null,
            "gateway.appmesh.k8s.aws/expose": null
        }}})
    );
}

#[test]
fn routes_need_the_two_targets() {
    let c = canary("appmesh:v1beta2", json!({}), json!({}));
    let mut router = routed(&c, V2, Routes::new(100, 0, false)).remove(2);
    router["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"] =
        json!([{"virtualNodeRef": {"name": "podinfo-primary"}, "weight": 100}]);
    let err = routes_of(&c, V2, &router).unwrap_err().to_string();
    assert_eq!(err, "VirtualRouter podinfo.test routes not found");
    router["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"] = json!([
        {"virtualNodeRef": {"name": "other-primary"}, "weight": 50},
        {"virtualNodeRef": {"name": "other-canary"}, "weight": 50}
    ]);
    let err = routes_of(&c, V2, &router).unwrap_err().to_string();
    assert_eq!(
        err,
        "VirtualRouter podinfo.test does not contain routes for podinfo-primary and podinfo-canary"
    );
}

/// Through the factory: the selector label comes from the target Deployment; a second
/// `Reconcile` and `SetRoutes` to the current weights write nothing; `SetRoutes` patches the
/// VirtualRouter `<apex>` only.
#[tokio::test]
async fn one_read_per_object_and_no_write_when_nothing_changed() {
    use crate::api::Provider;
    use crate::router::RouterFactory;
    use crate::testing::TestCluster;
    use crate::workload::WorkloadConfig;

    let fake = TestCluster::start().await;
    fake.install_crds(include_str!("../../../tests/fixtures/crds/appmesh.yaml"))
        .await;
    fake.insert(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "selector": {"matchLabels": {"name": "podinfo"}},
            "template": {
                "metadata": {"labels": {"name": "podinfo"}},
                "spec": {"containers": [{"name": "podinfod", "image": "podinfo:6.0.0"}]}
            }
        }
    }))
    .await;
    let c = fake
        .store_canary(canary("appmesh:v1beta2", json!({}), json!({})))
        .await;
    let router = RouterFactory::new(fake.client(), true)
        .with_workloads(fake.client(), WorkloadConfig::default())
        .router(&Provider::AppMesh(V2))
        .unwrap();
    router.reconcile(&c).await.unwrap();
    assert_eq!(fake.writes().len(), 6, "{:?}", fake.writes());
    let node = fake
        .get(
            "appmesh.k8s.aws/v1beta2",
            "VirtualNode",
            "test",
            "podinfo-primary",
        )
        .await
        .unwrap();
    assert_eq!(
        node["spec"]["podSelector"],
        json!({"matchLabels": {"name": "podinfo-primary"}})
    );
    fake.clear_writes();
    router.reconcile(&c).await.unwrap();
    let mut status = Default::default();
    router
        .set_routes(&c, &mut status, Routes::new(100, 0, false))
        .await
        .unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    router
        .set_routes(&c, &mut status, Routes::new(90, 10, false))
        .await
        .unwrap();
    let writes = fake.writes();
    assert_eq!(writes.len(), 1);
    assert!(
        writes[0].path.ends_with("/virtualrouters/podinfo"),
        "{}",
        writes[0].path
    );
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(90, 10, false)
    );
    fake.clear_writes();
    router.reconcile(&c).await.unwrap();
    assert!(fake.writes().is_empty(), "Reconcile keeps the weights");
}

/// The selector label the v1beta2 nodes select by, without reading a target.
struct FixedSelector;

#[async_trait::async_trait]
impl super::SelectorSource for FixedSelector {
    async fn selector(&self, _canary: &Canary) -> Result<Selector, RouterError> {
        Ok(selector())
    }
}

#[tokio::test]
async fn with_a_cache_a_step_reads_nothing_and_writes_the_same() {
    use std::sync::Arc;

    use kube::api::{ApiResource, GroupVersionKind};

    use super::AppMeshRouter;
    use crate::k8s::cache::Cache;
    use crate::router::cached::{assert_cached_steps_read_nothing, until_cached_dynamic};
    use crate::testing::TestCluster;

    let version = AppMeshVersion::V1beta2;
    assert_cached_steps_read_nothing(
        async |fake: &TestCluster| {
            fake.install_crds(include_str!("../../../tests/fixtures/crds/appmesh.yaml"))
                .await;
            fake.store_canary(canary("appmesh:v1beta2", json!({}), json!({})))
                .await
        },
        |client, cache| {
            Box::new(
                AppMeshRouter::new(client, version, true, Arc::new(FixedSelector))
                    .with_cache(cache),
            )
        },
        async |cache: &Cache, client: kube::Client| {
            let c = canary("appmesh:v1beta2", json!({}), json!({}));
            for d in desired(&c, version, &selector()).unwrap() {
                let gvk = GroupVersionKind::gvk("appmesh.k8s.aws", "v1beta2", d.kind.as_str());
                let resource = ApiResource::from_gvk_with_plural(&gvk, d.kind.plural());
                until_cached_dynamic(cache, client.clone(), &resource, Some("test"), &d.name).await;
            }
        },
    )
    .await;
}
