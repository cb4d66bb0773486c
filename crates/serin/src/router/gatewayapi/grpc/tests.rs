#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::super::GatewayApiRouter;
use super::*;
use crate::api::CanaryStatus;
use crate::k8s::meta::apply_merge_patch;
use crate::router::Router;
use crate::testing::TestCluster;
use crate::testing::assert_golden;

const CRDS: &str = include_str!("../../../../tests/fixtures/crds/gatewayapi.yaml");

/// A gRPC Canary (`appProtocol: grpc`) for target `podinfo` in `test` with one gateway ref;
/// `service` and `analysis` are merged into the defaults.
fn canary(service: Value, analysis: Value) -> Canary {
    let mut svc = json!({
        "port": 9999,
        "appProtocol": "grpc",
        "hosts": ["grpc.example.com"],
        "gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress"}]
    });
    apply_merge_patch(&mut svc, &service);
    let mut an = json!({"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50});
    apply_merge_patch(&mut an, &analysis);
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "canary-uid"},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": svc,
            "analysis": an
        }
    }))
    .unwrap()
}

/// The GRPCRoute created and then set to `routes`.
fn routed(c: &Canary, routes: Routes) -> GrpcRoute {
    let mut route = grpc_route(c, true).unwrap();
    if let Some(patch) = grpc_set_routes_patch(c, &route.spec, routes).unwrap() {
        let mut v = serde_json::to_value(&route).unwrap();
        apply_merge_patch(&mut v, &patch);
        route = serde_json::from_value(v).unwrap();
    }
    route
}

#[test]
fn only_gateway_api_v1_with_app_protocol_grpc_asks_for_a_grpc_route() {
    let grpc = canary(json!({}), json!({}));
    assert!(wants_grpc_route(&grpc, GatewayApiVersion::V1));
    assert!(!wants_grpc_route(&grpc, GatewayApiVersion::V1beta1));
    let upper = canary(json!({"appProtocol": "GRPC"}), json!({}));
    assert!(wants_grpc_route(&upper, GatewayApiVersion::V1));
    for other in [json!("http"), json!("kubernetes.io/h2c"), Value::Null] {
        let c = canary(json!({ "appProtocol": other }), json!({}));
        assert!(!wants_grpc_route(&c, GatewayApiVersion::V1), "{other}");
    }
}

#[test]
fn golden_weights() {
    let c = canary(
        json!({"headers": {"request": {"set": {"x-route": "canary"}}}}),
        json!({}),
    );
    let route = routed(&c, Routes::new(90, 10, false));
    assert_eq!(
        grpc_routes_of(&c, &route.spec).unwrap(),
        Routes::new(90, 10, false)
    );
    assert_golden("router/testdata/gatewayapi/grpc-weights.yaml", &route);
}

#[test]
fn golden_header_and_method_match() {
    let c = canary(
        json!({"match": [
            {"uri": {"exact": "/podinfo.Echo/Say"}},
            {"uri": {"prefix": "/grpc.health.v1.Health/"}}
        ]}),
        json!({"iterations": 5, "stepWeight": null, "maxWeight": null,
            "match": [{"headers": {"x-canary": {"exact": "insider"}, "user-agent": {"regex": ".*grpc-go.*"}}}]}),
    );
    let route = routed(&c, Routes::new(0, 100, false));
    let rules = route.spec.rules.as_ref().unwrap();
    assert_eq!(rules.len(), 2, "the A/B rule and the primary fallback");
    assert_eq!(rules[0].matches.as_ref().unwrap().len(), 2);
    assert_eq!(
        grpc_routes_of(&c, &route.spec).unwrap(),
        Routes::new(0, 100, false)
    );
    assert_golden("router/testdata/gatewayapi/grpc-ab.yaml", &route);
}

#[test]
fn golden_blue_green_mirror() {
    let c = canary(
        json!({}),
        json!({"iterations": 5, "stepWeight": null, "maxWeight": null, "mirror": true}),
    );
    let route = routed(&c, Routes::new(100, 0, true));
    assert_eq!(
        grpc_routes_of(&c, &route.spec).unwrap(),
        Routes::new(100, 0, true)
    );
    assert_golden("router/testdata/gatewayapi/grpc-mirror.yaml", &route);
    // Promotion: all traffic to the canary, no mirror.
    let route = routed(&c, Routes::new(0, 100, false));
    assert_eq!(
        grpc_routes_of(&c, &route.spec).unwrap(),
        Routes::new(0, 100, false)
    );
}

#[test]
fn matches_grpc_cannot_express_are_errors_in_words() {
    let cases = [
        (
            json!([{"uri": {"regex": "/podinfo.*"}}]),
            "GRPCRoute matches a gRPC service and method: write the match's uri as exact: /<service>/<method> or prefix: /<service>/",
        ),
        (
            json!([{"uri": {"exact": "/podinfo.Echo"}}]),
            "GRPCRoute matches a gRPC service and method: write the match's uri as exact: /<service>/<method> or prefix: /<service>/",
        ),
        (
            json!([{"method": {"exact": "GET"}}]),
            "GRPCRoute has no HTTP method match (gRPC requests are all POST); match the gRPC method with the uri /<service>/<method>",
        ),
        (
            json!([{"queryParams": {"a": {"exact": "b"}}}]),
            "GRPCRoute has no query parameter match",
        ),
    ];
    for (matches, message) in cases {
        let c = canary(json!({ "match": matches }), json!({}));
        let err = grpc_route(&c, true).unwrap_err();
        assert_eq!(err.to_string(), message, "{matches}");
    }
    let sticky = canary(
        json!({}),
        json!({"sessionAffinity": {"cookieName": "flagger-cookie"}}),
    );
    assert!(
        grpc_route(&sticky, true)
            .unwrap_err()
            .to_string()
            .starts_with("GRPCRoute cannot route by cookie")
    );
}

#[test]
fn reconcile_keeps_live_weights_and_others_rules() {
    let c = canary(json!({}), json!({}));
    let mut live = routed(&c, Routes::new(70, 30, false));
    assert_eq!(grpc_reconcile_patch(&c, &live).unwrap(), None);
    let other = GrpcRouteRule {
        matches: Some(vec![GrpcRouteMatch {
            method: Some(GrpcMethodMatch {
                match_type: Some("Exact".into()),
                service: Some("other.Service".into()),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        backend_refs: Some(vec![backend_ref("other", 1, 9000)]),
        ..Default::default()
    };
    live.spec.rules.as_mut().unwrap().push(other.clone());
    assert_eq!(
        grpc_reconcile_patch(&c, &live).unwrap(),
        None,
        "others' rules are not Serin's business"
    );
    let changed = canary(json!({"hosts": ["grpc2.example.com"]}), json!({}));
    let patch = grpc_reconcile_patch(&changed, &live).unwrap().unwrap();
    assert_eq!(patch["spec"]["hostnames"], json!(["grpc2.example.com"]));
    let rules = &patch["spec"]["rules"];
    assert_eq!(
        rules[0]["backendRefs"][0]["weight"], 70,
        "live weights kept"
    );
    assert_eq!(rules[1], serde_json::to_value(&other).unwrap());
}

async fn cluster() -> TestCluster {
    let fake = TestCluster::start().await;
    fake.install_crds(CRDS).await;
    fake
}

#[tokio::test]
async fn the_router_writes_a_grpc_route_and_nothing_when_in_step() {
    let fake = cluster().await;
    let router = GatewayApiRouter::new(fake.client(), GatewayApiVersion::V1, true);
    let c = fake.store_canary(canary(json!({}), json!({}))).await;
    router.reconcile(&c).await.unwrap();
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "POST");
    assert!(
        writes[0]
            .path
            .ends_with("/gateway.networking.k8s.io/v1/namespaces/test/grpcroutes")
    );
    assert!(
        fake.get(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "test",
            "podinfo"
        )
        .await
        .is_none(),
        "no HTTPRoute for a gRPC canary"
    );
    fake.clear_writes();
    router.reconcile(&c).await.unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(100, 0, false)
    );
    let mut status = CanaryStatus::default();
    router
        .set_routes(&c, &mut status, Routes::new(80, 20, false))
        .await
        .unwrap();
    assert_eq!(fake.writes().len(), 1);
    let stored = fake
        .get(
            "gateway.networking.k8s.io/v1",
            "GRPCRoute",
            "test",
            "podinfo",
        )
        .await
        .unwrap();
    assert_eq!(
        stored["spec"]["rules"][0]["backendRefs"][1]["weight"],
        json!(20)
    );
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(80, 20, false)
    );
    fake.clear_writes();
    router
        .set_routes(&c, &mut status, Routes::new(80, 20, false))
        .await
        .unwrap();
    assert!(fake.writes().is_empty());

    // A gateway that has not accepted the current generation holds the analysis.
    fake.set_status(
        "gateway.networking.k8s.io/v1",
        "GRPCRoute",
        "test",
        "podinfo",
        json!({"parents": [{"parentRef": {"name": "gateway", "namespace": "istio-ingress"},
            "controllerName": "example.com/gateway",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 0}]}]}),
    )
    .await;
    let err = router.get_routes(&c).await.unwrap_err().to_string();
    assert!(
        err.starts_with("GRPCRoute podinfo.test parent gateway is not ready (status: True, observed generation: 0"),
        "{err}"
    );
}

#[tokio::test]
async fn with_a_cache_a_step_reads_nothing_and_writes_the_same() {
    use crate::k8s::cache::Cache;
    use crate::router::cached::{assert_cached_steps_read_nothing, until_cached_dynamic};
    assert_cached_steps_read_nothing(
        async |fake: &TestCluster| {
            fake.install_crds(CRDS).await;
            fake.store_canary(canary(json!({}), json!({}))).await
        },
        |client, cache| {
            Box::new(GatewayApiRouter::new(client, GatewayApiVersion::V1, true).with_cache(cache))
        },
        async |cache: &Cache, client: kube::Client| {
            let resource = GatewayApiRouter::grpc_resource();
            until_cached_dynamic(cache, client, &resource, Some("test"), "podinfo").await;
        },
    )
    .await;
}
