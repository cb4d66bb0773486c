//! Every router end to end on the dev cluster with its provider's CRDs installed: a promotion
//! and a rollback, with the weights read back from the routing object the router writes.

use std::time::Duration;

use crate::support::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// One router under test.
pub struct Case {
    pub provider: &'static str,
    /// The provider's CRDs (multi-document YAML from `tests/fixtures/crds/`).
    pub crds: &'static str,
    /// Merged into the Canary's `spec.service`.
    pub service: Value,
    /// Merged into the Canary's `spec` (e.g. `ingressRef`).
    pub spec: Value,
    /// Objects the user has before creating the Canary (e.g. the Ingress NGINX copies).
    pub objects: Vec<Value>,
    /// `(group, version, kind, plural, name)` of the routing object holding the weights.
    pub routing: (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ),
    /// `(primary, canary)` weights of the routing object.
    pub weights: fn(&Value) -> Option<(i64, i64)>,
    /// The routing object is cluster-scoped (Kuma).
    pub cluster_scoped: bool,
}

pub async fn install(cluster: &Cluster, case: &Case) {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    for doc in case.crds.split("\n---\n").filter(|d| !d.trim().is_empty()) {
        let crd: CustomResourceDefinition = serde_saphyr::from_str(doc).unwrap();
        let name = crd.metadata.name.clone().unwrap();
        // Scenarios share CRDs on a real cluster: apply, don't create, and use the kind only
        // once the server serves it.
        crds.patch(
            &name,
            &PatchParams::apply("serin-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        wait_for(
            &format!("CRD {name} established"),
            Duration::from_secs(30),
            || async {
                let conditions = crds.get(&name).await.ok()?.status?.conditions?;
                conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            },
        )
        .await;
    }
    // On a real cluster the previous scenario's routing object may still be there: its owner,
    // that scenario's Canary, is gone, but the garbage collector deletes dependents in the
    // background (and watches a kind only after its next discovery sync). The Gateway API
    // scenarios share the HTTPRoute `podinfo`: v1beta1 adopted v1's leftover and lost it to the
    // collector mid-run. Start without it.
    let routing = routing_api(cluster, case);
    let name = case.routing.4;
    if routing.get_opt(name).await.unwrap().is_some() {
        let _ = routing.delete(name, &Default::default()).await;
    }
    wait_for(
        &format!("the previous {name} to go"),
        Duration::from_secs(60),
        || async { routing.get_opt(name).await.unwrap().is_none().then_some(()) },
    )
    .await;
    for obj in &case.objects {
        let api_version = obj["apiVersion"].as_str().unwrap();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = obj["kind"].as_str().unwrap();
        let lower = kind.to_lowercase();
        let plural = if lower.ends_with('s') {
            format!("{lower}es")
        } else {
            format!("{lower}s")
        };
        let api = cluster.dynamic(group, version, kind, &plural);
        let o: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
        api.create(&PostParams::default(), &o).await.unwrap();
    }
}

fn routing_api(cluster: &Cluster, case: &Case) -> Api<DynamicObject> {
    let (group, version, kind, plural, _) = case.routing;
    if case.cluster_scoped {
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
        Api::<DynamicObject>::all_with(cluster.client.clone(), &ar)
    } else {
        cluster.dynamic(group, version, kind, plural)
    }
}

pub async fn weights(cluster: &Cluster, case: &Case) -> Option<(i64, i64)> {
    let obj = routing_api(cluster, case)
        .get_opt(case.routing.4)
        .await
        .unwrap()?;
    (case.weights)(&serde_json::to_value(obj).unwrap())
}

pub async fn wait_weights(cluster: &Cluster, case: &Case, want: (i64, i64)) {
    wait_for(
        &format!("{} weights {want:?}", case.provider),
        Duration::from_secs(15),
        || async { (weights(cluster, case).await == Some(want)).then_some(()) },
    )
    .await;
}

/// Initializes a Canary routed by `case`, promotes 6.0.1 through weights 10..30, then rolls
/// 6.0.2 back on failing metrics.
pub async fn promotion_and_rollback(case: Case) {
    guarded(async {
        let cluster = Cluster::start().await;
        install(&cluster, &case).await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        cluster
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let ctrl = Controller::start(&cluster, &prom, &[]);
        let mut canary = podinfo_canary(&hooks, json!({}));
        canary["spec"]["provider"] = json!(case.provider);
        for (k, v) in case.service.as_object().unwrap() {
            canary["spec"]["service"][k] = v.clone();
        }
        for (k, v) in case.spec.as_object().unwrap() {
            canary["spec"][k] = v.clone();
        }
        cluster.create_canary(canary).await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(15)).await;
        assert_eq!(weights(&cluster, &case).await, Some((100, 0)));

        // Promotion.
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_weights(&cluster, &case, (90, 10)).await;
        wait_weights(&cluster, &case, (80, 20)).await;
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(20)).await;
        assert_eq!(weights(&cluster, &case).await, Some((100, 0)));
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.1")
        );

        // Rollback.
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.2")
            .await;
        wait_weights(&cluster, &case, (90, 10)).await;
        prom.set(50.0, 100.0);
        wait_phase(&cluster, "podinfo", "Failed", Duration::from_secs(20)).await;
        assert_eq!(weights(&cluster, &case).await, Some((100, 0)));
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.1"),
            "the primary keeps the promoted revision"
        );
        hooks
            .wait_events_in_order(&[
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

/// Weights of the HTTPRoute rule with two backendRefs (the weighted rule).
fn httproute_weights(route: &Value) -> Option<(i64, i64)> {
    let rules = route.pointer("/spec/rules")?.as_array()?;
    let rule = rules.iter().rev().find(|r| {
        r.get("backendRefs")
            .and_then(Value::as_array)
            .is_some_and(|b| b.len() == 2)
    })?;
    let mut out = (None, None);
    for b in rule["backendRefs"].as_array()? {
        let w = b.get("weight").and_then(Value::as_i64);
        match b["name"].as_str()? {
            "podinfo-primary" => out.0 = w,
            "podinfo-canary" => out.1 = w,
            _ => {}
        }
    }
    Some((out.0?, out.1?))
}

pub fn gateway_api(provider: &'static str, version: &'static str) -> Case {
    Case {
        provider,
        crds: include_str!("../fixtures/crds/gatewayapi.yaml"),
        service: json!({
            "hosts": ["app.example.com"],
            "gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress"}]
        }),
        spec: json!({}),
        objects: vec![],
        routing: (
            "gateway.networking.k8s.io",
            version,
            "HTTPRoute",
            "httproutes",
            "podinfo",
        ),
        weights: httproute_weights,
        cluster_scoped: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_api_v1() {
    promotion_and_rollback(gateway_api("gatewayapi:v1", "v1")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_api_v1beta1() {
    promotion_and_rollback(gateway_api("gatewayapi:v1beta1", "v1beta1")).await;
}

/// GRPCRoute (Serin only): `gatewayapi:v1` with `service.appProtocol: grpc`. Its weighted rule
/// has the HTTPRoute's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_api_grpc_route() {
    let mut case = gateway_api("gatewayapi:v1", "v1");
    case.service["appProtocol"] = json!("grpc");
    case.routing = (
        "gateway.networking.k8s.io",
        "v1",
        "GRPCRoute",
        "grpcroutes",
        "podinfo",
    );
    promotion_and_rollback(case).await;
}

/// Weights of a TrafficSplit's backends (integers or quantities).
fn traffic_split_weights(ts: &Value) -> Option<(i64, i64)> {
    let mut out = (None, None);
    for b in ts.pointer("/spec/backends")?.as_array()? {
        let w = match &b["weight"] {
            Value::String(s) => s.parse().ok(),
            v => v.as_i64(),
        };
        match b["service"].as_str()? {
            "podinfo-primary" => out.0 = w,
            "podinfo-canary" => out.1 = w,
            _ => {}
        }
    }
    Some((out.0?, out.1?))
}

fn smi(provider: &'static str, version: &'static str) -> Case {
    Case {
        provider,
        crds: include_str!("../fixtures/crds/smi.yaml"),
        service: json!({}),
        spec: json!({}),
        objects: vec![],
        routing: (
            "split.smi-spec.io",
            version,
            "TrafficSplit",
            "trafficsplits",
            "podinfo",
        ),
        weights: traffic_split_weights,
        cluster_scoped: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linkerd() {
    promotion_and_rollback(smi("linkerd", "v1alpha1")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn osm() {
    promotion_and_rollback(smi("osm", "v1alpha2")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smi_v1alpha3() {
    promotion_and_rollback(smi("smi:v1alpha3", "v1alpha3")).await;
}

/// `(primary, canary)` from the entries of `list` named by `name_key`, `weight` read by `read`.
fn named_weights(list: &Value, name_key: &str, canary_default: Option<i64>) -> Option<(i64, i64)> {
    let mut out = (None, canary_default);
    for e in list.as_array()? {
        let w = e.get("weight").and_then(Value::as_i64);
        let name = e.pointer(name_key)?.as_str()?;
        if name.contains("podinfo-primary") {
            out.0 = w;
        } else if name.contains("podinfo-canary") {
            out.1 = w;
        }
    }
    Some((out.0?, out.1?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contour() {
    promotion_and_rollback(Case {
        provider: "contour",
        crds: include_str!("../fixtures/crds/contour.yaml"),
        service: json!({}),
        spec: json!({}),
        objects: vec![],
        routing: (
            "projectcontour.io",
            "v1",
            "HTTPProxy",
            "httpproxies",
            "podinfo",
        ),
        weights: |o| named_weights(o.pointer("/spec/routes/0/services")?, "/name", None),
        cluster_scoped: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traefik() {
    promotion_and_rollback(Case {
        provider: "traefik",
        crds: include_str!("../fixtures/crds/traefik.yaml"),
        service: json!({}),
        spec: json!({}),
        objects: vec![],
        routing: (
            "traefik.io",
            "v1alpha1",
            "TraefikService",
            "traefikservices",
            "podinfo",
        ),
        // The canary entry is there only while it gets traffic.
        weights: |o| named_weights(o.pointer("/spec/weighted/services")?, "/name", Some(0)),
        cluster_scoped: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kuma() {
    promotion_and_rollback(Case {
        provider: "kuma",
        crds: include_str!("../fixtures/crds/kuma.yaml"),
        service: json!({}),
        spec: json!({}),
        objects: vec![],
        routing: (
            "kuma.io",
            "v1alpha1",
            "TrafficRoute",
            "trafficroutes",
            "podinfo",
        ),
        weights: |o| {
            named_weights(
                o.pointer("/spec/conf/split")?,
                "/destination/kuma.io~1service",
                None,
            )
        },
        cluster_scoped: true,
    })
    .await;
}

/// The Ingress `name` a user routes `podinfo` with before NGINX or Skipper canaries it. Each
/// scenario has its own name: on a real cluster the scenarios share the namespace, and the
/// canary Ingress of one (`<name>-canary`, garbage-collected in the background) must not be
/// found by the next.
fn podinfo_ingress(name: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "app.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "podinfo", "port": {"number": 9898}}}}
        ]}}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx() {
    promotion_and_rollback(Case {
        provider: "nginx",
        // Ingress is built in.
        crds: "",
        service: json!({}),
        spec: json!({"ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo-nginx"}}),
        objects: vec![podinfo_ingress("podinfo-nginx")],
        routing: ("networking.k8s.io", "v1", "Ingress", "ingresses", "podinfo-nginx-canary"),
        weights: |o| {
            let w: i64 = o
                .pointer("/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight")?
                .as_str()?
                .parse()
                .ok()?;
            Some((100 - w, w))
        },
        cluster_scoped: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skipper() {
    promotion_and_rollback(Case {
        provider: "skipper",
        // Ingress is built in.
        crds: "",
        service: json!({}),
        spec: json!({"ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo-skipper"}}),
        objects: vec![podinfo_ingress("podinfo-skipper")],
        routing: ("networking.k8s.io", "v1", "Ingress", "ingresses", "podinfo-skipper-canary"),
        weights: |o| {
            let raw = o
                .pointer("/metadata/annotations/zalando.org~1backend-weights")?
                .as_str()?;
            let w: Value = serde_json::from_str(raw).ok()?;
            Some((w["podinfo-primary"].as_i64()?, w["podinfo-canary"].as_i64()?))
        },
        cluster_scoped: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apisix() {
    promotion_and_rollback(Case {
        provider: "apisix",
        crds: include_str!("../fixtures/crds/apisix.yaml"),
        service: json!({}),
        spec: json!({"routeRef": {"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "app"}}),
        objects: vec![json!({
            "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
            "metadata": {"name": "app", "namespace": NS},
            "spec": {"http": [{"name": "podinfo", "match": {"paths": ["/*"]},
                "backends": [{"serviceName": "podinfo", "servicePort": 9898}]}]}
        })],
        routing: ("apisix.apache.org", "v2", "ApisixRoute", "apisixroutes", "app-podinfo-canary"),
        weights: |o| named_weights(o.pointer("/spec/http/0/backends")?, "/serviceName", None),
        cluster_scoped: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gloo() {
    promotion_and_rollback(Case {
        provider: "gloo",
        crds: include_str!("../fixtures/crds/gloo.yaml"),
        service: json!({}),
        spec: json!({}),
        objects: vec![],
        routing: (
            "gateway.solo.io",
            "v1",
            "RouteTable",
            "routetables",
            "podinfo",
        ),
        weights: |o| {
            named_weights(
                o.pointer("/spec/routes/0/routeAction/multi/destinations")?,
                "/destination/upstream/name",
                None,
            )
        },
        cluster_scoped: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appmesh_v1beta2() {
    promotion_and_rollback(Case {
        provider: "appmesh:v1beta2",
        crds: include_str!("../fixtures/crds/appmesh.yaml"),
        service: json!({}),
        spec: json!({}),
        objects: vec![],
        routing: (
            "appmesh.k8s.aws",
            "v1beta2",
            "VirtualRouter",
            "virtualrouters",
            "podinfo",
        ),
        weights: |o| {
            named_weights(
                o.pointer("/spec/routes/0/httpRoute/action/weightedTargets")?,
                "/virtualNodeRef/name",
                None,
            )
        },
        cluster_scoped: false,
    })
    .await;
}
