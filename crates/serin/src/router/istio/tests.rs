#![allow(clippy::unwrap_used)]

use kube::ResourceExt;
use serde_json::{Value, json};

use super::render;
use super::*;
use crate::api::apis::istio::VirtualServiceSpec;
use crate::testing::TestCluster;
use crate::testing::assert_golden;

const VS_API: &str = "networking.istio.io/v1beta1";

/// A Canary for target `podinfo` in `test`; `service` and `analysis` are merged into the defaults.
fn canary(service: Value, analysis: Value) -> Canary {
    let mut svc = json!({"port": 9898});
    crate::k8s::meta::apply_merge_patch(&mut svc, &service);
    let mut an = json!({"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50});
    crate::k8s::meta::apply_merge_patch(&mut an, &analysis);
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "canary-uid"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": svc,
            "analysis": an
        }
    }))
    .unwrap()
}

fn set_routes_spec(c: &Canary, status: &mut CanaryStatus, routes: Routes) -> VirtualServiceSpec {
    let mut n = 0;
    let mut generator = || {
        n += 1;
        Ok(format!("Cookie{n}Value"))
    };
    render::update_session_cookies(c, status, routes, &mut generator).unwrap();
    render::spec(c, routes, status).unwrap()
}

fn rendered(c: &Canary) -> Vec<Value> {
    let mut out: Vec<Value> = render::destination_rules(c, true)
        .unwrap()
        .into_iter()
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    out.push(serde_json::to_value(render::virtual_service(c, true).unwrap()).unwrap());
    out
}

// ------------------------------------------------------------------------------------------
// Golden files: one per feature

#[test]
fn golden_default() {
    assert_golden(
        "router/testdata/istio/default.yaml",
        &rendered(&canary(json!({}), json!({}))),
    );
}

#[test]
fn golden_gateways_hosts_port_discovery_traffic_policy() {
    let c = canary(
        json!({
            "portDiscovery": true,
            "gateways": ["public-gateway.istio-system.svc.cluster.local", "mesh"],
            "hosts": ["app.example.com"],
            "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}, "loadBalancer": {"simple": "LEAST_REQUEST"}}
        }),
        json!({}),
    );
    assert_golden("router/testdata/istio/gateways.yaml", &rendered(&c));
}

#[test]
fn golden_delegation() {
    let c = canary(
        json!({"delegation": true, "portDiscovery": true}),
        json!({}),
    );
    assert_golden("router/testdata/istio/delegation.yaml", &rendered(&c));
}

#[test]
fn golden_http_options() {
    let c = canary(
        json!({
            "match": [{"uri": {"prefix": "/api"}}],
            "rewrite": {"uri": "/", "authority": "internal", "type": "ReplacePrefixMatch"},
            "timeout": "30s",
            "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure"},
            "headers": {
                "request": {"add": {"x-some-header": "value"}},
                "response": {"remove": ["x-envoy-upstream-service-time"]}
            },
            "corsPolicy": {"allowOrigin": ["example.com"], "allowMethods": ["GET"], "maxAge": "24h"}
        }),
        json!({}),
    );
    assert_golden("router/testdata/istio/http-options.yaml", &rendered(&c));
}

#[test]
fn golden_apex_metadata() {
    let c = canary(
        json!({"apex": {"labels": {"team": "a"}, "annotations": {"note": "apex"}}}),
        json!({}),
    );
    let vs = render::virtual_service(&c, false).unwrap();
    assert_golden("router/testdata/istio/apex-metadata.yaml", &vs);
}

#[test]
fn golden_ab_cookie_match_after_full_shift() {
    let c = canary(
        json!({}),
        json!({"stepWeight": null, "maxWeight": null, "iterations": 10,
               "match": [{"headers": {"cookie": {"regex": "^(.*?;)?(type=insider)(;.*)?$"}}}]}),
    );
    let spec = set_routes_spec(&c, &mut CanaryStatus::default(), Routes::new(0, 100, false));
    assert_golden("router/testdata/istio/ab-cookie.yaml", &spec);
}

#[test]
fn golden_ab_merged_with_service_match() {
    let c = canary(
        json!({"match": [{"uri": {"prefix": "/api"}}, {"uri": {"prefix": "/v2"}}]}),
        json!({"stepWeight": null, "maxWeight": null, "iterations": 10,
        "match": [
            {"headers": {"x-canary": {"exact": "insider"}}, "uri": {"prefix": "/dropped"}},
            {"sourceLabels": {"app": "frontend"}}
        ]}),
    );
    let spec = set_routes_spec(&c, &mut CanaryStatus::default(), Routes::new(100, 0, false));
    assert_golden("router/testdata/istio/ab-merged.yaml", &spec);
}

#[test]
fn golden_blue_green_mirror() {
    let c = canary(
        json!({}),
        json!({"stepWeight": null, "maxWeight": null, "iterations": 10, "mirror": true, "mirrorWeight": 50}),
    );
    let spec = set_routes_spec(&c, &mut CanaryStatus::default(), Routes::new(100, 0, true));
    assert_golden("router/testdata/istio/mirror.yaml", &spec);
}

#[test]
fn golden_session_affinity_step() {
    let c = canary(
        json!({}),
        json!({"sessionAffinity": {"cookieName": "canary-cookie", "primaryCookieName": "primary-cookie",
                                   "path": "/", "sameSite": "Strict", "secure": true}}),
    );
    let mut status = CanaryStatus::default();
    let spec = set_routes_spec(&c, &mut status, Routes::new(90, 10, false));
    assert_eq!(
        status.session_affinity_cookie.as_deref(),
        Some("canary-cookie=Cookie1Value")
    );
    assert_eq!(
        status.primary_session_affinity_cookie.as_deref(),
        Some("primary-cookie=Cookie2Value")
    );
    assert_golden("router/testdata/istio/session-affinity-step.yaml", &spec);
}

#[test]
fn golden_session_affinity_end_of_run() {
    let c = canary(
        json!({}),
        json!({"sessionAffinity": {"cookieName": "canary-cookie"}}),
    );
    let mut status = CanaryStatus {
        session_affinity_cookie: Some("canary-cookie=AbCdEfGhIj".into()),
        ..Default::default()
    };
    let spec = set_routes_spec(&c, &mut status, Routes::new(100, 0, false));
    assert_eq!(status.session_affinity_cookie, None);
    assert_eq!(
        status.previous_session_affinity_cookie.as_deref(),
        Some("canary-cookie=AbCdEfGhIj")
    );
    assert_golden("router/testdata/istio/session-affinity-expire.yaml", &spec);
}

#[test]
fn golden_tcp() {
    let c = canary(
        json!({"appProtocol": "TCP", "match": [{"port": 9898}, {"port": 9999}]}),
        json!({}),
    );
    let spec = set_routes_spec(&c, &mut CanaryStatus::default(), Routes::new(70, 30, false));
    assert_golden("router/testdata/istio/tcp.yaml", &spec);
}

// ------------------------------------------------------------------------------------------
// Render rules

#[test]
fn hosts_keep_apex_or_wildcard_once_and_gateways_default_to_mesh() {
    let spec = |svc: Value| {
        render::spec(
            &canary(svc, json!({})),
            Routes::new(100, 0, false),
            &CanaryStatus::default(),
        )
        .unwrap()
    };
    let s = spec(json!({"hosts": ["podinfo", "a.example.com"]}));
    assert_eq!(s.hosts.unwrap(), vec!["podinfo", "a.example.com"]);
    let s = spec(json!({"hosts": ["*"], "gateways": ["gw"]}));
    assert_eq!(s.hosts.unwrap(), vec!["*"]);
    assert_eq!(s.gateways.unwrap(), vec!["gw"]);
    let s = spec(json!({}));
    assert_eq!(s.gateways.unwrap(), vec!["mesh"]);
}

#[test]
fn delegation_with_hosts_is_invalid() {
    let c = canary(json!({"delegation": true, "hosts": ["a"]}), json!({}));
    let err = render::virtual_service(&c, true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "VirtualService podinfo.test cannot have hosts and gateways when delegation enabled"
    );
}

#[test]
fn port_is_explicit_only_with_port_discovery_behind_a_gateway() {
    let port_of = |svc: Value| {
        let s = render::spec(
            &canary(svc, json!({})),
            Routes::new(100, 0, false),
            &CanaryStatus::default(),
        )
        .unwrap();
        s.http.unwrap()[0].route.as_ref().unwrap()[0]
            .destination
            .port
            .clone()
    };
    assert!(port_of(json!({"portDiscovery": true})).is_none());
    assert!(port_of(json!({"portDiscovery": true, "gateways": ["mesh", "gw"]})).is_none());
    assert!(port_of(json!({"gateways": ["gw"]})).is_none());
    assert_eq!(
        port_of(json!({"portDiscovery": true, "gateways": ["gw"]}))
            .unwrap()
            .number,
        Some(9898)
    );
}

#[test]
fn merge_match_conditions_rules() {
    use crate::api::apis::istio::HttpMatchRequest;
    let m = |v: Value| -> Vec<HttpMatchRequest> { serde_json::from_value(v).unwrap() };
    let analysis =
        m(json!([{"headers": {"x": {"exact": "1"}}, "queryParams": {"q": {"exact": "1"}}}]));
    assert_eq!(render::merge_match_conditions(&analysis, &[]), analysis);
    let merged = render::merge_match_conditions(
        &analysis,
        &m(json!([{"uri": {"prefix": "/a"}}, {"uri": {"prefix": "/b"}}])),
    );
    assert_eq!(
        serde_json::to_value(merged).unwrap(),
        json!([
            {"uri": {"prefix": "/a"}, "headers": {"x": {"exact": "1"}}},
            {"uri": {"prefix": "/b"}, "headers": {"x": {"exact": "1"}}}
        ])
    );
}

#[test]
fn routes_are_read_back_from_rendered_specs() {
    let cases = [
        (json!({}), json!({}), Routes::new(60, 40, false)),
        (
            json!({}),
            json!({"mirror": true}),
            Routes::new(100, 0, true),
        ),
        (
            json!({"appProtocol": "tcp"}),
            json!({}),
            Routes::new(20, 80, false),
        ),
        (
            json!({}),
            json!({"iterations": 5, "match": [{"headers": {"x": {"exact": "y"}}}]}),
            Routes::new(0, 100, false),
        ),
        (
            json!({}),
            json!({"sessionAffinity": {"cookieName": "c", "primaryCookieName": "p"}}),
            Routes::new(90, 10, false),
        ),
        (
            json!({}),
            json!({"sessionAffinity": {"cookieName": "c"}}),
            Routes::new(100, 0, false),
        ),
    ];
    for (svc, analysis, routes) in cases {
        let c = canary(svc, analysis);
        let mut status = CanaryStatus {
            session_affinity_cookie: Some("c=old".into()),
            ..Default::default()
        };
        let spec = set_routes_spec(&c, &mut status, routes);
        assert_eq!(render::routes_of(&c, &spec).unwrap(), routes, "{spec:?}");
    }
}

#[test]
fn get_routes_errors_without_weights() {
    let c = canary(json!({}), json!({}));
    let spec: VirtualServiceSpec = serde_json::from_value(
        json!({"http": [{"route": [{"destination": {"host": "other"}, "weight": 100}]}]}),
    )
    .unwrap();
    assert_eq!(
        render::routes_of(&c, &spec).unwrap_err().to_string(),
        "VirtualService podinfo.test does not contain routes for podinfo-primary and podinfo-canary"
    );
}

#[test]
fn comparison_ignores_weights_mirrors_and_cookie_routes() {
    let c = canary(
        json!({}),
        json!({"mirror": true, "sessionAffinity": {"cookieName": "c", "primaryCookieName": "p"}}),
    );
    let initial = render::virtual_service(&c, true).unwrap();
    let mut status = CanaryStatus::default();
    let step = set_routes_spec(&c, &mut status, Routes::new(90, 10, true));
    assert_eq!(step.http.as_ref().unwrap().len(), 3);
    assert_eq!(
        render::comparable_spec(&c, &initial.spec),
        render::comparable_spec(&c, &step)
    );
    let other = canary(
        json!({"timeout": "5s"}),
        json!({"mirror": true, "sessionAffinity": {"cookieName": "c"}}),
    );
    let changed = render::virtual_service(&other, true).unwrap();
    assert_ne!(
        render::comparable_spec(&c, &initial.spec),
        render::comparable_spec(&c, &changed.spec)
    );
}

#[test]
fn unparseable_interval_fails_with_session_affinity() {
    let c = canary(
        json!({}),
        json!({"interval": "soon", "sessionAffinity": {"cookieName": "c", "primaryCookieName": "p"}}),
    );
    let mut status = CanaryStatus::default();
    let mut generator = || Ok("x".to_string());
    render::update_session_cookies(&c, &mut status, Routes::new(90, 10, false), &mut generator)
        .unwrap();
    assert_eq!(
        render::spec(&c, Routes::new(90, 10, false), &status)
            .unwrap_err()
            .to_string(),
        "failed to parse canary interval: invalid duration \"soon\""
    );
}

#[test]
fn primary_cookie_is_kept_across_runs() {
    let c = canary(
        json!({}),
        json!({"sessionAffinity": {"cookieName": "c", "primaryCookieName": "p"}}),
    );
    let mut status = CanaryStatus {
        primary_session_affinity_cookie: Some("p=Kept".into()),
        ..Default::default()
    };
    let mut generator = || Ok("New".to_string());
    render::update_session_cookies(&c, &mut status, Routes::new(90, 10, false), &mut generator)
        .unwrap();
    assert_eq!(status.session_affinity_cookie.as_deref(), Some("c=New"));
    assert_eq!(
        status.primary_session_affinity_cookie.as_deref(),
        Some("p=Kept")
    );
}

// ------------------------------------------------------------------------------------------
// Kube-facing behaviour against the in-memory API

async fn vs_of(fake: &TestCluster) -> Value {
    fake.get(VS_API, "VirtualService", "test", "podinfo")
        .await
        .unwrap()
}

#[tokio::test]
async fn reconcile_creates_then_writes_nothing() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let router = IstioRouter::new(client, true);
    let c = fake.store_canary(canary(json!({}), json!({}))).await;
    router.reconcile(&c).await.unwrap();
    let writes = fake.writes();
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert!(writes.iter().all(|w| w.method == "POST"));
    let vs = vs_of(&fake).await;
    assert_eq!(
        vs["metadata"]["ownerReferences"][0]["uid"],
        c.uid().unwrap().as_str()
    );
    assert_eq!(vs["metadata"]["ownerReferences"][0]["controller"], true);
    fake.clear_writes();
    router.reconcile(&c).await.unwrap();
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[tokio::test]
async fn owner_references_are_left_out_for_a_remote_mesh_cluster() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let router = IstioRouter::new(client, false);
    router
        .reconcile(&canary(json!({}), json!({})))
        .await
        .unwrap();
    assert!(
        vs_of(&fake).await["metadata"]
            .get("ownerReferences")
            .is_none()
    );
    let dr = fake
        .get(VS_API, "DestinationRule", "test", "podinfo-primary")
        .await
        .unwrap();
    assert!(dr["metadata"].get("ownerReferences").is_none());
}

#[tokio::test]
async fn set_routes_patches_only_http_and_only_on_change() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let router = IstioRouter::new(client, true);
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
    assert_eq!(
        writes[0].body["spec"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["http"]
    );
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(70, 30, false)
    );
    fake.clear_writes();
    router
        .set_routes(&c, &mut status, Routes::new(70, 30, false))
        .await
        .unwrap();
    assert!(fake.writes().is_empty());
    // A reconcile keeps the weights when nothing but the weights differ.
    router.reconcile(&c).await.unwrap();
    assert!(fake.writes().is_empty());
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(70, 30, false)
    );
}

#[tokio::test]
async fn session_affinity_cookies_are_written_to_status() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let router = IstioRouter::new(client, true).with_cookie_generator(|| Ok("Fixed".into()));
    let c = fake
        .store_canary(canary(
            json!({}),
            json!({"sessionAffinity": {"cookieName": "cc"}}),
        ))
        .await;
    router.reconcile(&c).await.unwrap();
    let mut status = CanaryStatus::default();
    router
        .set_routes(&c, &mut status, Routes::new(90, 10, false))
        .await
        .unwrap();
    assert_eq!(status.session_affinity_cookie.as_deref(), Some("cc=Fixed"));
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(90, 10, false)
    );
    router
        .set_routes(&c, &mut status, Routes::new(100, 0, false))
        .await
        .unwrap();
    assert_eq!(
        status.previous_session_affinity_cookie.as_deref(),
        Some("cc=Fixed")
    );
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(100, 0, false)
    );
}

fn user_vs() -> Value {
    json!({
        "apiVersion": VS_API,
        "kind": "VirtualService",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"owner": "user"},
                     "annotations": {"user-note": "keep"}},
        "spec": {
            "hosts": ["podinfo"],
            "http": [{"route": [{"destination": {"host": "podinfo"}}], "fault": {"abort": {"httpStatus": 500}}}],
            "exportTo": ["."]
        }
    })
}

#[tokio::test]
async fn adopting_and_restoring_a_user_virtual_service() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    fake.insert(user_vs()).await;
    let original_spec = user_vs()["spec"].clone();
    let router = IstioRouter::new(client, true);
    let c = fake.store_canary(canary(json!({}), json!({}))).await;
    router.reconcile(&c).await.unwrap();
    let vs = vs_of(&fake).await;
    // Adopted: no owner reference, user's metadata and unowned spec fields kept.
    assert!(vs["metadata"].get("ownerReferences").is_none());
    assert_eq!(vs["metadata"]["labels"]["owner"], "user");
    assert_eq!(vs["metadata"]["annotations"]["user-note"], "keep");
    assert_eq!(vs["spec"]["exportTo"], json!(["."]));
    assert_eq!(vs["spec"]["gateways"], json!(["mesh"]));
    let stored: Value = serde_json::from_str(
        vs["metadata"]["annotations"][render::ORIGINAL_CONFIGURATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored, original_spec);

    // A later spec change does not overwrite the user's original.
    let changed = fake
        .store_canary(canary(json!({"timeout": "10s"}), json!({})))
        .await;
    router.reconcile(&changed).await.unwrap();
    let vs = vs_of(&fake).await;
    assert_eq!(vs["spec"]["http"][0]["timeout"], "10s");
    let stored: Value = serde_json::from_str(
        vs["metadata"]["annotations"][render::ORIGINAL_CONFIGURATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored, original_spec);

    router.finalize(&changed).await.unwrap();
    assert_eq!(vs_of(&fake).await["spec"], original_spec);
}

#[tokio::test]
async fn finalize_prefers_kubectl_last_applied_and_tolerates_missing_objects() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let router = IstioRouter::new(client, true);
    let c = fake.store_canary(canary(json!({}), json!({}))).await;
    router.finalize(&c).await.unwrap();
    assert!(fake.writes().is_empty());

    let mut user = user_vs();
    let applied = json!({"apiVersion": VS_API, "kind": "VirtualService", "spec": {"hosts": ["from-kubectl"]}});
    user["metadata"]["annotations"][crate::k8s::meta::KUBECTL_LAST_APPLIED] =
        json!(applied.to_string());
    fake.insert(user).await;
    router.reconcile(&c).await.unwrap();
    let vs = vs_of(&fake).await;
    assert!(
        vs["metadata"]["annotations"]
            .get(render::ORIGINAL_CONFIGURATION)
            .is_none()
    );
    router.finalize(&c).await.unwrap();
    assert_eq!(
        vs_of(&fake).await["spec"],
        json!({"hosts": ["from-kubectl"]})
    );
}

#[tokio::test]
async fn finalize_without_a_record_changes_nothing() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let router = IstioRouter::new(client, true);
    let c = fake.store_canary(canary(json!({}), json!({}))).await;
    router.reconcile(&c).await.unwrap();
    fake.clear_writes();
    router.finalize(&c).await.unwrap();
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn controlled_virtual_service_metadata_is_fully_managed() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let router = IstioRouter::new(client, true);
    let c = fake
        .store_canary(canary(
            json!({"apex": {"labels": {"a": "1", "b": "2"}}}),
            json!({}),
        ))
        .await;
    router.reconcile(&c).await.unwrap();
    let c2 = fake
        .store_canary(canary(json!({"apex": {"labels": {"a": "1"}}}), json!({})))
        .await;
    router.reconcile(&c2).await.unwrap();
    let vs = vs_of(&fake).await;
    assert_eq!(vs["metadata"]["labels"], json!({"a": "1"}));
}

#[tokio::test]
async fn destination_rules_follow_the_traffic_policy() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let router = IstioRouter::new(client, true);
    let with_policy = fake
        .store_canary(canary(
            json!({"trafficPolicy": {"tls": {"mode": "DISABLE"}}}),
            json!({}),
        ))
        .await;
    router.reconcile(&with_policy).await.unwrap();
    let dr = fake
        .get(VS_API, "DestinationRule", "test", "podinfo-canary")
        .await
        .unwrap();
    assert_eq!(
        dr["spec"],
        json!({"host": "podinfo-canary", "trafficPolicy": {"tls": {"mode": "DISABLE"}}})
    );
    router
        .reconcile(&fake.store_canary(canary(json!({}), json!({}))).await)
        .await
        .unwrap();
    let dr = fake
        .get(VS_API, "DestinationRule", "test", "podinfo-canary")
        .await
        .unwrap();
    assert_eq!(dr["spec"], json!({"host": "podinfo-canary"}));
}

#[tokio::test]
async fn get_routes_of_a_missing_virtual_service_is_an_api_error() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let router = IstioRouter::new(client, true);
    let err = router
        .get_routes(&canary(json!({}), json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, RouterError::Api { .. }));
    // The API server's own answer to a GET of the missing object, in the same words, with or
    // without a cache.
    let server = Api::<VirtualService>::namespaced(fake.client(), "test")
        .get("podinfo")
        .await
        .unwrap_err();
    let expected = format!(
        "VirtualService podinfo.test get query error: {}",
        crate::k8s::error::describe(&server)
    );
    assert_eq!(err.to_string(), expected);
    // Another VirtualService, to tell when the cache's watch has listed.
    fake.insert(json!({
        "apiVersion": VS_API, "kind": "VirtualService",
        "metadata": {"name": "other", "namespace": "test"},
        "spec": {"hosts": ["other"]}
    }))
    .await;
    let cache = crate::k8s::cache::Cache::new(None);
    let cached = IstioRouter::new(fake.client(), true).with_cache(cache.clone());
    crate::router::cached::until_cached_dynamic(
        &cache,
        fake.client(),
        &vs_resource(),
        Some("test"),
        "other",
    )
    .await;
    let err = cached
        .get_routes(&canary(json!({}), json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), expected);
}

#[tokio::test]
async fn with_a_cache_a_step_reads_nothing_and_writes_the_same() {
    use crate::k8s::cache::Cache;
    use crate::router::cached::{
        assert_cached_steps_read_nothing, until_cached, until_cached_dynamic,
    };
    assert_cached_steps_read_nothing(
        async |fake: &TestCluster| fake.store_canary(canary(json!({}), json!({}))).await,
        |client, cache| Box::new(IstioRouter::new(client, true).with_cache(cache)),
        async |cache: &Cache, client: kube::Client| {
            let rules: Api<DestinationRule> = Api::namespaced(client.clone(), "test");
            until_cached(cache, &rules, "podinfo-primary").await;
            until_cached_dynamic(cache, client, &vs_resource(), Some("test"), "podinfo").await;
        },
    )
    .await;
}
