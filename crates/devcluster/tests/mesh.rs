#![allow(clippy::unwrap_used)]
//! The dev mesh end to end: Istio CRDs, Services, Deployments and VirtualServices in a dev
//! cluster; sample-app pods served in-process; requests through the ingress gateway and as an
//! HTTP proxy; Istio metrics; pods following scaling.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use devcluster::mesh::MeshConfig;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.0 request on a new connection: (status, body).
async fn http(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {target} HTTP/1.0\r\nHost: demo.example\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

fn version_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("version").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| format!("<{body}>"))
}

async fn create(client: &kube::Client, group: &str, kind: &str, plural: &str, obj: Value) {
    let version = if group.starts_with("networking") {
        "v1beta1"
    } else {
        "v1"
    };
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "prod", &ar);
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

fn deployment(name: &str, app: &str, image: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "prod"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "podinfod", "image": image}]}}}})
}

fn service(name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "prod"},
        "spec": {"selector": {"app": app}, "ports": [{"port": 9898, "targetPort": 9898}]}})
}

#[tokio::test]
async fn routes_by_virtual_service_and_exports_istio_metrics() {
    let cluster = common::cluster().await;
    let client = cluster.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in include_str!("../../../examples/demo/istio-crds.yaml")
        .split("\n---\n")
        .skip(1)
    {
        let crd: CustomResourceDefinition = serde_saphyr::from_str(doc).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "prod"}})).unwrap(),
    )
    .await
    .unwrap();
    create(
        &client,
        "apps",
        "Deployment",
        "deployments",
        deployment(
            "backend-primary",
            "backend-primary",
            "ghcr.io/stefanprodan/podinfo:1.0.0",
            2,
        ),
    )
    .await;
    create(
        &client,
        "apps",
        "Deployment",
        "deployments",
        deployment(
            "backend",
            "backend",
            "ghcr.io/stefanprodan/podinfo:2.0.0",
            1,
        ),
    )
    .await;
    for (name, app) in [
        ("backend", "backend-primary"),
        ("backend-primary", "backend-primary"),
        ("backend-canary", "backend"),
    ] {
        create(&client, "", "Service", "services", service(name, app)).await;
    }
    let route = |w: u32| {
        json!([
            {"destination": {"host": "backend-primary"}, "weight": 100 - w},
            {"destination": {"host": "backend-canary"}, "weight": w}
        ])
    };
    create(
        &client,
        "networking.istio.io",
        "VirtualService",
        "virtualservices",
        json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "backend", "namespace": "prod"},
        "spec": {"hosts": ["backend"], "http": [{"route": route(30)}]}}),
    )
    .await;
    create(&client, "networking.istio.io", "VirtualService", "virtualservices", json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "frontend", "namespace": "prod"},
        "spec": {"hosts": ["*"], "gateways": ["istio-system/public-gateway"], "http": [
            {"match": [{"headers": {"cookie": {"regex": "^(.*?;)?(type=insider)(;.*)?$"}}}], "route": route(100)},
            {"route": route(0)}]}})).await;

    let mesh = cluster.start_mesh(MeshConfig::default()).await.unwrap();
    common::eventually("3 ready pods", 10, || async {
        (mesh.pods().iter().filter(|p| p.ready).count() == 3).then_some(())
    })
    .await;

    // As an HTTP proxy: weights split the traffic for backend.prod.
    let mut canary = 0;
    for _ in 0..200 {
        let (code, body) = http(mesh.addr(), "http://backend.prod:9898/", &[]).await;
        assert_eq!(code, 200, "{body}");
        match version_of(&body).as_str() {
            "2.0.0" => canary += 1,
            "1.0.0" => {}
            other => panic!("unexpected version {other}"),
        }
    }
    assert!(
        (30..=90).contains(&canary),
        "canary got {canary} of 200 at weight 30"
    );

    // At the ingress gateway: the cookie match goes to the canary, the rest to the primary.
    for _ in 0..20 {
        let (_, body) = http(mesh.addr(), "/", &[("Cookie", "type=insider")]).await;
        assert_eq!(version_of(&body), "2.0.0");
        let (_, body) = http(mesh.addr(), "/", &[("User-Agent", "curl/8")]).await;
        assert_eq!(version_of(&body), "1.0.0");
    }
    // podinfo's endpoints through the mesh.
    assert_eq!(
        http(
            mesh.addr(),
            "http://backend-canary.prod.svc.cluster.local:9898/status/418",
            &[]
        )
        .await
        .0,
        418
    );
    assert!(
        http(mesh.addr(), "http://backend-canary.prod:9898/token", &[])
            .await
            .1
            .contains("token")
    );
    assert_eq!(
        http(mesh.addr(), "http://nothing.prod:9898/", &[]).await.0,
        503
    );

    // Istio's metrics for Prometheus.
    let (code, text) = http(mesh.metrics_addr(), "/metrics", &[]).await;
    assert_eq!(code, 200);
    assert!(text.contains("istio_requests_total{reporter=\"destination\""));
    assert!(
        text.contains("destination_workload=\"backend\",destination_workload_namespace=\"prod\"")
    );
    assert!(text.contains("response_code=\"418\""));
    assert!(text.contains("istio_request_duration_milliseconds_bucket{"));
    let canary_200 = mesh
        .metrics()
        .count("prod", "backend")
        .get(&200)
        .copied()
        .unwrap_or(0);
    assert_eq!(canary_200, canary + 20 + 1);

    // Pods follow scaling: the canary scaled to zero has no endpoints left.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "prod");
    deployments
        .patch(
            "backend",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    common::eventually("the canary pod to stop", 10, || async {
        (mesh.pods().len() == 2).then_some(())
    })
    .await;
    let (code, body) = http(mesh.addr(), "http://backend-canary.prod:9898/", &[]).await;
    assert_eq!((code, body.as_str()), (503, "no healthy upstream"));

    // Retries: a 500 is tried 1 + 2 times, each attempt counted by the destination.
    create(
        &client,
        "networking.istio.io",
        "VirtualService",
        "virtualservices",
        json!({
            "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "backend-primary", "namespace": "prod"},
            "spec": {"hosts": ["backend-primary"], "http": [{
                "retries": {"attempts": 2, "perTryTimeout": "2s", "retryOn": "5xx"},
                "route": [{"destination": {"host": "backend-primary"}}]}]}}),
    )
    .await;
    let before = mesh
        .metrics()
        .count("prod", "backend-primary")
        .get(&500)
        .copied()
        .unwrap_or(0);
    let (code, _) = http(
        mesh.addr(),
        "http://backend-primary.prod:9898/status/500",
        &[],
    )
    .await;
    assert_eq!(code, 500);
    let after = mesh
        .metrics()
        .count("prod", "backend-primary")
        .get(&500)
        .copied()
        .unwrap_or(0);
    assert_eq!(after - before, 3);
    let (code, _) = http(
        mesh.addr(),
        "http://backend-primary.prod:9898/status/404",
        &[],
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        mesh.metrics().count("prod", "backend-primary").get(&404),
        Some(&1)
    );

    // Readiness follows the real process: a pod whose app cannot start keeps its Deployment
    // unready although the simulator's ready delay (200 ms) has long passed.
    let mut broken = deployment("broken", "broken", "ghcr.io/stefanprodan/podinfo:1.0.0", 1);
    broken["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "SAMPLE_APP_ERROR_PERCENT", "value": "150"}]);
    create(&client, "apps", "Deployment", "deployments", broken).await;
    let ready = |d: &k8s_openapi::api::apps::v1::Deployment| {
        d.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    };
    common::eventually("the backend-primary Deployment ready", 10, || async {
        let d = deployments.get("backend-primary").await.ok()?;
        (ready(&d) == 2).then_some(())
    })
    .await;
    let errors = common::eventually("the pod error", 10, || async {
        let e = mesh.pod_errors();
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert!(
        errors.contains("SAMPLE_APP_ERROR_PERCENT=\"150\""),
        "{errors}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let d = deployments.get("broken").await.unwrap();
    assert_eq!(ready(&d), 0, "{:?}", d.status);

    mesh.shutdown().await;
    cluster.shutdown().await;
}
