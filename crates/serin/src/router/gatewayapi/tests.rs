#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::render;
use super::*;
use crate::k8s::meta::apply_merge_patch;
use crate::testing::TestCluster;
use crate::testing::assert_golden;

const V1: GatewayApiVersion = GatewayApiVersion::V1;
const V1BETA1: GatewayApiVersion = GatewayApiVersion::V1beta1;
const CRDS: &str = include_str!("../../../tests/fixtures/crds/gatewayapi.yaml");

/// A Canary for target `podinfo` in `test` with one gateway ref; `service` and `analysis` are
/// merged into the defaults.
fn canary(service: Value, analysis: Value) -> Canary {
    let mut svc = json!({
        "port": 9898,
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

/// The route after `set_routes` on the freshly created one (cookies `Cookie<n>Value`).
fn routed(
    c: &Canary,
    version: GatewayApiVersion,
    status: &mut CanaryStatus,
    routes: Routes,
) -> HttpRoute {
    let mut route = render::http_route(c, version, true).unwrap();
    apply_set_routes(c, version, &mut route, status, routes);
    route
}

fn apply_set_routes(
    c: &Canary,
    version: GatewayApiVersion,
    route: &mut HttpRoute,
    status: &mut CanaryStatus,
    routes: Routes,
) {
    let mut n = 0;
    let mut generator = || {
        n += 1;
        Ok(format!("Cookie{n}Value"))
    };
    render::update_cookies(c, status, routes, &mut generator).unwrap();
    if let Some(patch) = render::set_routes_patch(c, version, &route.spec, routes, status).unwrap()
    {
        apply(route, &patch);
    }
}

fn apply(route: &mut HttpRoute, patch: &Value) {
    let mut v = serde_json::to_value(&*route).unwrap();
    apply_merge_patch(&mut v, patch);
    *route = serde_json::from_value(v).unwrap();
}

// ------------------------------------------------------------------------------------------
// Golden files: one per feature

#[test]
fn golden_default_v1() {
    let c = canary(json!({}), json!({}));
    assert_golden(
        "router/testdata/gatewayapi/default.yaml",
        &render::http_route(&c, V1, true).unwrap(),
    );
}

#[test]
fn golden_default_v1beta1_has_no_timeouts_or_cors() {
    let c = canary(
        json!({"timeout": "30s", "backendTimeout": "10s",
               "corsPolicy": {"allowOrigin": ["https://example.com"]}}),
        json!({}),
    );
    let route = render::http_route(&c, V1BETA1, true).unwrap();
    assert_eq!(route.api_version, "gateway.networking.k8s.io/v1beta1");
    assert_golden("router/testdata/gatewayapi/default-v1beta1.yaml", &route);
}

#[test]
fn golden_http_options() {
    let c = canary(
        json!({
            "hosts": ["app.example.com", "www.example.com"],
            "gatewayRefs": [
                {"name": "public", "namespace": "gateways", "sectionName": "https"},
                {"group": "", "kind": "Service", "name": "podinfo", "port": 9898}
            ],
            "match": [
                {"uri": {"prefix": "/api"}, "method": {"exact": "GET"}},
                {"uri": {"regex": "^/v[0-9]+/"}}
            ],
            "timeout": "30s",
            "backendTimeout": "10s",
            "headers": {
                "request": {"set": {"x-b": "2", "x-a": "1"}, "add": {"x-c": "3"}, "remove": ["x-d"]},
                "response": {"add": {"x-served-by": "podinfo"}}
            },
            "rewrite": {"uri": "/", "type": "ReplacePrefixMatch", "authority": "internal.example.com"},
            "mirror": [{"backendRef": {"name": "podinfo-shadow", "port": 9898}}],
            "corsPolicy": {
                "allowOrigin": ["https://example.com"],
                "allowMethods": ["GET", "POST"],
                "allowHeaders": ["x-custom"],
                "exposeHeaders": ["x-exposed"],
                "maxAge": "24h",
                "allowCredentials": true
            }
        }),
        json!({}),
    );
    assert_golden(
        "router/testdata/gatewayapi/http-options.yaml",
        &render::http_route(&c, V1, true).unwrap(),
    );
}

#[test]
fn golden_ab_headers_and_query_params() {
    let c = canary(
        json!({"match": [{"uri": {"prefix": "/api"}}]}),
        json!({"stepWeight": null, "maxWeight": null, "iterations": 10, "match": [
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
            {"queryParams": {"canary": {"exact": "true"}}}
        ]}),
    );
    let mut status = CanaryStatus::default();
    let initial = render::http_route(&c, V1, true).unwrap();
    let during = routed(&c, V1, &mut status, Routes::new(0, 100, false));
    assert_golden(
        "router/testdata/gatewayapi/ab.yaml",
        &json!({"initial": initial, "iterations": during}),
    );
    assert_eq!(
        render::routes_of(&c, &during.spec).unwrap(),
        Routes::new(0, 100, false)
    );
}

#[test]
fn golden_blue_green_mirroring() {
    let c = canary(
        json!({}),
        json!({"stepWeight": null, "maxWeight": null, "iterations": 5, "mirror": true}),
    );
    let mut status = CanaryStatus::default();
    let mirrored = routed(&c, V1, &mut status, Routes::new(100, 0, true));
    assert_golden("router/testdata/gatewayapi/mirror.yaml", &mirrored);
    assert_eq!(
        render::routes_of(&c, &mirrored.spec).unwrap(),
        Routes::new(100, 0, true)
    );
    // Switching to the canary drops the mirror filter.
    let mut route = mirrored.clone();
    apply_set_routes(&c, V1, &mut route, &mut status, Routes::new(0, 100, false));
    assert_eq!(
        render::routes_of(&c, &route.spec).unwrap(),
        Routes::new(0, 100, false)
    );
    // Without iterations (canary strategy) Gateway API does not mirror (as in Flagger).
    let c = canary(json!({}), json!({"mirror": true}));
    let route = routed(
        &c,
        V1,
        &mut CanaryStatus::default(),
        Routes::new(90, 10, true),
    );
    assert!(!render::routes_of(&c, &route.spec).unwrap().mirrored);
}

fn session_affinity() -> Value {
    json!({"sessionAffinity": {
        "cookieName": "canary-cookie", "primaryCookieName": "primary-cookie",
        "maxAge": 300, "path": "/", "sameSite": "Strict", "secure": true
    }})
}

#[test]
fn golden_session_affinity_v1_with_primary_cookie() {
    let c = canary(json!({}), session_affinity());
    let mut status = CanaryStatus::default();
    let route = routed(&c, V1, &mut status, Routes::new(90, 10, false));
    assert_eq!(
        status.session_affinity_cookie.as_deref(),
        Some("canary-cookie=Cookie1Value")
    );
    assert_eq!(
        status.primary_session_affinity_cookie.as_deref(),
        Some("primary-cookie=Cookie2Value")
    );
    assert_golden(
        "router/testdata/gatewayapi/session-affinity-step.yaml",
        &route,
    );
    assert_eq!(
        render::routes_of(&c, &route.spec).unwrap(),
        Routes::new(90, 10, false)
    );
}

#[test]
fn golden_session_affinity_v1beta1_has_no_primary_cookie() {
    let c = canary(json!({}), session_affinity());
    let mut status = CanaryStatus::default();
    let route = routed(&c, V1BETA1, &mut status, Routes::new(90, 10, false));
    assert_golden(
        "router/testdata/gatewayapi/session-affinity-v1beta1.yaml",
        &route,
    );
    let text = serde_json::to_string(&route).unwrap();
    assert!(!text.contains("primary-cookie"), "{text}");
}

#[test]
fn golden_session_affinity_expires_the_previous_cookie() {
    let c = canary(json!({}), session_affinity());
    let mut status = CanaryStatus::default();
    let mut route = routed(&c, V1, &mut status, Routes::new(90, 10, false));
    apply_set_routes(&c, V1, &mut route, &mut status, Routes::new(100, 0, false));
    assert_eq!(status.session_affinity_cookie, None);
    assert_eq!(
        status.previous_session_affinity_cookie.as_deref(),
        Some("canary-cookie=Cookie1Value")
    );
    assert_golden(
        "router/testdata/gatewayapi/session-affinity-expire.yaml",
        &route,
    );
    assert_eq!(
        render::routes_of(&c, &route.spec).unwrap(),
        Routes::new(100, 0, false)
    );
}

#[test]
fn golden_apex_metadata() {
    let c = canary(
        json!({"apex": {"labels": {"team": "web"}, "annotations": {"example.com/owner": "web"}}}),
        json!({}),
    );
    assert_golden(
        "router/testdata/gatewayapi/apex-metadata.yaml",
        &render::http_route(&c, V1, true).unwrap(),
    );
}

/// An HTTPRoute `podinfo` the user wrote before the Canary existed (fluxcd/flagger#1857).
fn users_route() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "namespace": "test",
                     "annotations": {"example.com/managed-by": "team-web"}},
        "spec": {
            "parentRefs": [{"name": "gateway", "namespace": "istio-ingress"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
                    "filters": [{"type": "RequestRedirect",
                                 "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/"}}}]
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "filters": [{"type": "ExtensionRef",
                                 "extensionRef": {"group": "gateway.nginx.org", "kind": "SnippetsFilter", "name": "auth"}}],
                    "backendRefs": [{"name": "podinfo", "port": 9898}]
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                    "backendRefs": [{"name": "static-files", "port": 80}]
                }
            ]
        }
    })
}

#[test]
fn golden_adopted_route_keeps_rules_and_filters_serin_did_not_write() {
    let c = canary(json!({}), json!({}));
    let mut route: HttpRoute = serde_json::from_value(users_route()).unwrap();
    let patch = render::reconcile_patch(&c, V1, &route).unwrap().unwrap();
    apply(&mut route, &patch);
    let adopted = route.clone();
    // The user adds an implementation-specific filter and a retry policy to Serin's rule.
    let mut v = serde_json::to_value(&route).unwrap();
    v["spec"]["rules"][1]["filters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "ExtensionRef",
            "extensionRef": {"group": "gateway.nginx.org", "kind": "SnippetsFilter", "name": "rate-limit"}}));
    v["spec"]["rules"][1]["retry"] = json!({"attempts": 3});
    route = serde_json::from_value(v).unwrap();
    assert_eq!(render::reconcile_patch(&c, V1, &route).unwrap(), None);
    let mut status = CanaryStatus::default();
    apply_set_routes(&c, V1, &mut route, &mut status, Routes::new(80, 20, false));
    assert_golden(
        "router/testdata/gatewayapi/adopted.yaml",
        &json!({"adopted": adopted, "step": route}),
    );
    let rules = route.spec.rules.as_ref().unwrap();
    assert_eq!(
        rules.len(),
        3,
        "the redirect, Serin's rule in place of the rule to podinfo, the rule to static-files"
    );
    assert_eq!(rules[0], adopted.spec.rules.as_ref().unwrap()[0]);
    assert_eq!(rules[1].extra.get("retry"), Some(&json!({"attempts": 3})));
    let filters: Vec<&str> = rules[1]
        .filters
        .iter()
        .flatten()
        .map(|f| f.extension_ref.as_ref().unwrap()["name"].as_str().unwrap())
        .collect();
    assert_eq!(filters, vec!["auth", "rate-limit"]);
    assert_eq!(rules[2], adopted.spec.rules.as_ref().unwrap()[2]);
    assert_eq!(
        render::routes_of(&c, &route.spec).unwrap(),
        Routes::new(80, 20, false)
    );
    // Annotations of others are kept; Serin's are added.
    let annotations = route.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["example.com/managed-by"], "team-web");
    assert_eq!(
        annotations["kustomize.toolkit.fluxcd.io/reconcile"],
        "disabled"
    );
}

#[test]
fn serin_rules_stay_where_they_are_among_the_users() {
    let c = canary(json!({}), json!({}));
    let mut route: HttpRoute = serde_json::from_value(users_route()).unwrap();
    // The user moved Serin's rule behind the redirect.
    let mut rules =
        render::rules(&c, V1, Routes::new(100, 0, false), &CanaryStatus::default()).unwrap();
    let live = route.spec.rules.take().unwrap();
    rules.insert(0, live[0].clone());
    rules.push(live[2].clone());
    route.spec.rules = Some(rules.clone());
    let patch = render::reconcile_patch(&c, V1, &route).unwrap();
    assert!(
        patch.as_ref().is_none_or(|p| p.get("spec").is_none()),
        "{patch:?}"
    );
    let mut status = CanaryStatus::default();
    apply_set_routes(&c, V1, &mut route, &mut status, Routes::new(50, 50, false));
    let after = route.spec.rules.unwrap();
    assert_eq!(after.len(), 3);
    assert_eq!(after[0], rules[0]);
    assert_eq!(after[2], rules[2]);
    assert_eq!(after[1].backend_refs.as_ref().unwrap()[1].weight, Some(50));
}

#[test]
fn reconcile_keeps_live_weights_when_an_option_changes() {
    let c = canary(json!({}), json!({}));
    let mut status = CanaryStatus::default();
    let mut route = routed(&c, V1, &mut status, Routes::new(70, 30, false));
    let changed = canary(json!({"timeout": "5s"}), json!({}));
    let patch = render::reconcile_patch(&changed, V1, &route)
        .unwrap()
        .unwrap();
    apply(&mut route, &patch);
    assert_eq!(
        route.spec.rules.as_ref().unwrap()[0]
            .timeouts
            .as_ref()
            .unwrap()
            .request
            .as_deref(),
        Some("5s")
    );
    assert_eq!(
        render::routes_of(&changed, &route.spec).unwrap(),
        Routes::new(70, 30, false)
    );
    assert_eq!(render::reconcile_patch(&changed, V1, &route).unwrap(), None);
}

#[test]
fn unsupported_matches_are_errors_that_say_what_to_change() {
    let c = canary(json!({"match": [{"uri": {"suffix": ".html"}}]}), json!({}));
    let err = render::http_route(&c, V1, true).unwrap_err().to_string();
    assert!(err.contains("exact, prefix or regex"), "{err}");
    let c = canary(
        json!({}),
        json!({"iterations": 5, "match": [{"headers": {"x-canary": {"prefix": "in"}}}]}),
    );
    let err = render::http_route(&c, V1, true).unwrap_err().to_string();
    assert!(err.contains("exact or regex"), "{err}");
    let c = canary(json!({"gatewayRefs": null}), json!({}));
    let err = render::http_route(&c, V1, true).unwrap_err().to_string();
    assert_eq!(
        err,
        "GatewayRefs must be specified when using Gateway API as a provider."
    );
}

#[test]
fn routes_of_a_route_without_serin_rules_is_an_error() {
    let c = canary(json!({}), json!({}));
    let route: HttpRoute = serde_json::from_value(users_route()).unwrap();
    let err = render::routes_of(&c, &route.spec).unwrap_err().to_string();
    assert_eq!(
        err,
        "HTTPRoute podinfo.test does not contain routes for podinfo-primary and podinfo-canary"
    );
}

// ------------------------------------------------------------------------------------------
// Kube-facing behaviour against the in-memory API

async fn cluster() -> TestCluster {
    let fake = TestCluster::start().await;
    fake.install_crds(CRDS).await;
    fake
}

#[tokio::test]
async fn reconcile_creates_then_writes_nothing() {
    let fake = cluster().await;
    let router = GatewayApiRouter::new(fake.client(), V1, true);
    let c = fake.store_canary(canary(json!({}), json!({}))).await;
    router.reconcile(&c).await.unwrap();
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "POST");
    assert!(writes[0].path.contains("/gateway.networking.k8s.io/v1/"));
    let stored = fake
        .get(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "test",
            "podinfo",
        )
        .await
        .unwrap();
    assert_eq!(stored["metadata"]["ownerReferences"][0]["controller"], true);
    fake.clear_writes();
    router.reconcile(&c).await.unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(100, 0, false)
    );
}

#[tokio::test]
async fn v1beta1_writes_through_v1beta1() {
    let fake = cluster().await;
    let router = GatewayApiRouter::new(fake.client(), V1BETA1, false);
    let c = canary(json!({}), json!({}));
    router.reconcile(&c).await.unwrap();
    let writes = fake.writes();
    assert!(
        writes[0]
            .path
            .contains("/gateway.networking.k8s.io/v1beta1/")
    );
    assert!(writes[0].body["metadata"].get("ownerReferences").is_none());
    fake.clear_writes();
    let mut status = CanaryStatus::default();
    router
        .set_routes(&c, &mut status, Routes::new(60, 40, false))
        .await
        .unwrap();
    assert_eq!(fake.writes().len(), 1);
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(60, 40, false)
    );
}

#[tokio::test]
async fn set_routes_patches_only_on_change() {
    let fake = cluster().await;
    let router = GatewayApiRouter::new(fake.client(), V1, true);
    let c = fake.store_canary(canary(json!({}), json!({}))).await;
    router.reconcile(&c).await.unwrap();
    fake.clear_writes();
    let mut status = CanaryStatus::default();
    router
        .set_routes(&c, &mut status, Routes::new(70, 30, false))
        .await
        .unwrap();
    let writes = fake.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].content_type, "application/merge-patch+json");
    let keys: Vec<&String> = writes[0].body["spec"].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["hostnames", "parentRefs", "rules"]);
    fake.clear_writes();
    router
        .set_routes(&c, &mut status, Routes::new(70, 30, false))
        .await
        .unwrap();
    router.reconcile(&c).await.unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(70, 30, false)
    );
}

#[tokio::test]
async fn get_routes_waits_for_the_gateway_to_accept_the_current_generation() {
    let fake = cluster().await;
    let router = GatewayApiRouter::new(fake.client(), V1, false);
    let c = canary(json!({}), json!({}));
    router.reconcile(&c).await.unwrap();
    let stored = fake
        .get(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "test",
            "podinfo",
        )
        .await
        .unwrap();
    let generation = stored["metadata"]["generation"].as_i64().unwrap_or(1);
    let parent = |status: &str, observed: i64| {
        json!({"parents": [{
            "parentRef": {"name": "gateway", "namespace": "istio-ingress"},
            "controllerName": "example.com/gateway",
            "conditions": [{"type": "Accepted", "status": status, "reason": "Accepted", "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": observed}]
        }]})
    };
    fake.set_status(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "test",
        "podinfo",
        parent("False", generation),
    )
    .await;
    let err = router.get_routes(&c).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "HTTPRoute podinfo.test parent gateway is not ready (status: False, observed generation: {generation}, current generation: {generation})"
        )
    );
    fake.set_status(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "test",
        "podinfo",
        parent("True", generation),
    )
    .await;
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(100, 0, false)
    );
}

#[tokio::test]
async fn an_adopted_route_keeps_the_users_rules_in_the_cluster() {
    let fake = cluster().await;
    fake.insert(users_route()).await;
    let router = GatewayApiRouter::new(fake.client(), V1, true);
    let c = fake.store_canary(canary(json!({}), json!({}))).await;
    router.reconcile(&c).await.unwrap();
    let mut status = CanaryStatus::default();
    router
        .set_routes(&c, &mut status, Routes::new(90, 10, false))
        .await
        .unwrap();
    let stored = fake
        .get(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "test",
            "podinfo",
        )
        .await
        .unwrap();
    let rules = stored["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0], users_route()["spec"]["rules"][0]);
    assert_eq!(
        rules[1]["filters"],
        users_route()["spec"]["rules"][1]["filters"]
    );
    assert_eq!(rules[1]["backendRefs"][1]["weight"], 10);
    assert_eq!(rules[2], users_route()["spec"]["rules"][2]);
    assert_eq!(
        stored["metadata"]["annotations"]["example.com/managed-by"],
        "team-web"
    );
    assert!(stored["metadata"].get("ownerReferences").is_none());
    fake.clear_writes();
    router.finalize(&c).await.unwrap();
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn with_a_cache_a_step_reads_nothing_and_writes_the_same() {
    use crate::k8s::cache::Cache;
    use crate::router::cached::{assert_cached_steps_read_nothing, until_cached_dynamic};
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
    assert_cached_steps_read_nothing(
        async |fake: &TestCluster| {
            fake.install_crds(CRDS).await;
            fake.store_canary(canary(json!({}), json!({}))).await
        },
        |client, cache| Box::new(GatewayApiRouter::new(client, V1, true).with_cache(cache)),
        async |cache: &Cache, client: kube::Client| {
            until_cached_dynamic(cache, client, &resource, Some("test"), "podinfo").await;
        },
    )
    .await;
}
