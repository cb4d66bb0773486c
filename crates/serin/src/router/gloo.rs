//! Gloo Edge: the Upstreams `<ns>-<apex>-{primary,canary}upstream-<port>` (`gloo.solo.io/v1`) and
//! the RouteTable `<apex>` (`gateway.solo.io/v1`), Flagger's `GlooRouter`.
//!
//! The Upstreams point at the primary and canary Services (with their selectors); with
//! `spec.upstreamRef`, the referenced Upstream's connection settings are copied at creation and
//! its `loadBalancerConfig` is kept in sync afterwards. The RouteTable's single route weights
//! the two Upstreams; with `analysis.match` it matches the headers (exact or regex) and methods
//! (requests that do not match fall through to the parent VirtualService's other routes).

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};

use super::dynamic::DynamicApi;
use super::object::{ObjectRouter, RoutingObject, port, reject_no_weights, without_weights};
use super::{Router, RouterError, Routes};
use crate::api::{Canary, CanaryStatus};
use crate::k8s::cache::Cache;
use crate::k8s::error::not_found_in;
use crate::k8s::meta::{canary_id, canary_owner_reference, namespace};

/// Settings copied from `spec.upstreamRef` into new Upstreams.
const COPIED: &[&str] = &[
    "labels",
    "sslConfig",
    "circuitBreakers",
    "connectionConfig",
    "loadBalancerConfig",
    "useHttp2",
    "initialStreamWindowSize",
    "initialConnectionWindowSize",
    "httpProxyHostname",
];

/// `(primary, canary)` Upstream names.
pub fn upstream_names(canary: &Canary) -> (String, String) {
    let apex = canary.spec.apex_name();
    let ns = namespace(canary);
    let port = port(canary);
    (
        format!("{ns}-{apex}-primaryupstream-{port}"),
        format!("{ns}-{apex}-canaryupstream-{port}"),
    )
}

fn upstream_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("gloo.solo.io", "v1", "Upstream");
    ApiResource::from_gvk_with_plural(&gvk, "upstreams")
}

/// A new Upstream for `service` (its selector), with the settings of `config` (the Upstream
/// `spec.upstreamRef` names).
pub fn upstream(
    canary: &Canary,
    name: &str,
    service: &str,
    selector: Option<Value>,
    config: Option<&Value>,
    set_owner_refs: bool,
) -> Value {
    let mut spec = Map::new();
    if let Some(config) = config.and_then(|c| c.get("spec")) {
        for key in COPIED {
            if let Some(v) = config.get(*key) {
                spec.insert((*key).to_string(), v.clone());
            }
        }
    }
    let mut kube = json!({
        "serviceName": service,
        "serviceNamespace": namespace(canary),
        "servicePort": port(canary),
    });
    if let Some(selector) = selector {
        kube["selector"] = selector;
    }
    spec.insert("kube".into(), kube);
    let mut metadata = json!({"name": name, "namespace": namespace(canary)});
    if set_owner_refs && let Some(owner) = canary_owner_reference(canary) {
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({
        "apiVersion": "gloo.solo.io/v1",
        "kind": "Upstream",
        "metadata": metadata,
        "spec": spec,
    })
}

/// The patch that brings an existing Upstream's `loadBalancerConfig` to the referenced one's.
pub fn upstream_patch(live: &Value, config: &Value) -> Option<Value> {
    let desired = config
        .pointer("/spec/loadBalancerConfig")
        .cloned()
        .unwrap_or(Value::Null);
    let current = live
        .pointer("/spec/loadBalancerConfig")
        .cloned()
        .unwrap_or(Value::Null);
    (desired != current).then(|| json!({"spec": {"loadBalancerConfig": desired}}))
}

/// The RouteTable `<apex>`.
pub struct RouteTable;

fn matchers(canary: &Canary) -> Option<Value> {
    let mut headers = Vec::new();
    let mut methods = Vec::new();
    for m in canary.spec.analysis().map(|a| a.matches()).unwrap_or(&[]) {
        for (name, sm) in m.headers.iter().flatten() {
            match (&sm.regex, &sm.exact) {
                (Some(re), _) => headers.push(json!({"name": name, "value": re, "regex": true})),
                (None, exact) => headers.push(json!({"name": name, "value": exact})),
            }
        }
        if let Some(method) = m.method.as_ref().and_then(|m| m.exact.clone()) {
            methods.push(method);
        }
    }
    if headers.is_empty() && methods.is_empty() {
        return None;
    }
    let mut matcher = Map::new();
    if !headers.is_empty() {
        matcher.insert("headers".into(), json!(headers));
    }
    if !methods.is_empty() {
        matcher.insert("methods".into(), json!(methods));
    }
    Some(json!([matcher]))
}

impl RoutingObject for RouteTable {
    fn kind(&self) -> &'static str {
        "RouteTable"
    }

    fn resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk("gateway.solo.io", "v1", "RouteTable");
        ApiResource::from_gvk_with_plural(&gvk, "routetables")
    }

    fn owned_fields(&self) -> &'static [&'static str] {
        &["routes"]
    }

    fn spec(&self, canary: &Canary, routes: Routes) -> Result<Value, RouterError> {
        let (primary, canary_name) = upstream_names(canary);
        let ns = namespace(canary);
        let mut route = json!({
            "inheritablePathMatchers": true,
            "routeAction": {"multi": {"destinations": [
                {"destination": {"upstream": {"name": primary, "namespace": ns}}, "weight": routes.primary},
                {"destination": {"upstream": {"name": canary_name, "namespace": ns}}, "weight": routes.canary},
            ]}}
        });
        if let Some(m) = matchers(canary) {
            route["matchers"] = m;
        }
        Ok(json!({"routes": [route]}))
    }

    fn unweighted(&self, spec: &Value) -> Value {
        without_weights(spec)
    }

    fn routes_of(&self, canary: &Canary, spec: &Value) -> Result<Routes, RouterError> {
        let (primary, _) = upstream_names(canary);
        let not_found = || {
            RouterError::Routes(format!(
                "RouteTable {}.{} destinations not found",
                canary.spec.apex_name(),
                namespace(canary)
            ))
        };
        let destinations = spec
            .pointer("/routes/0/routeAction/multi/destinations")
            .and_then(Value::as_array)
            .filter(|d| d.len() >= 2)
            .ok_or_else(not_found)?;
        let weight = destinations
            .iter()
            .find(|d| {
                d.pointer("/destination/upstream/name")
                    .and_then(Value::as_str)
                    == Some(primary.as_str())
            })
            .and_then(|d| d.get("weight").and_then(Value::as_i64))
            .and_then(|w| i32::try_from(w).ok())
            .ok_or_else(not_found)?;
        Ok(Routes::new(weight, 100 - weight, false))
    }

    fn check_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        reject_no_weights(self.kind(), canary, routes)
    }
}

/// The Gloo router: the Upstreams, then the RouteTable.
pub struct GlooRouter {
    client: kube::Client,
    set_owner_refs: bool,
    table: ObjectRouter<RouteTable>,
    cache: Cache,
}

impl GlooRouter {
    pub fn new(client: kube::Client, set_owner_refs: bool) -> Self {
        Self {
            table: ObjectRouter::new(client.clone(), set_owner_refs, RouteTable),
            client,
            set_owner_refs,
            cache: Cache::disabled(),
        }
    }

    /// Reads the Upstreams, the RouteTable and the Services through `cache` and tells it about
    /// the writes.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.table = self.table.with_cache(cache.clone());
        self.cache = cache;
        self
    }

    async fn config(&self, canary: &Canary) -> Result<Option<Value>, RouterError> {
        let Some(r) = &canary.spec.upstream_ref else {
            return Ok(None);
        };
        let ns = r.namespace.clone().unwrap_or_else(|| namespace(canary));
        let api = DynamicApi::new(
            self.client.clone(),
            &upstream_resource(),
            "config upstream",
            &ns,
        )
        .with_cache(self.cache.clone());
        api.get(&r.name).await.map(Some)
    }

    async fn reconcile_upstream(
        &self,
        canary: &Canary,
        name: &str,
        service: &str,
        config: Option<&Value>,
    ) -> Result<(), RouterError> {
        let ns = namespace(canary);
        let api = DynamicApi::new(self.client.clone(), &upstream_resource(), "upstream", &ns)
            .with_cache(self.cache.clone());
        match api.get_opt(name).await? {
            None => {
                let services: Api<Service> = Api::namespaced(self.client.clone(), &ns);
                let svc = self
                    .cache
                    .get(&services, service)
                    .await
                    .and_then(|svc| svc.ok_or_else(|| not_found_in("", "services", service)))
                    .map_err(|source| RouterError::Api {
                        context: format!("service {service}.{ns} get query error"),
                        source,
                    })?;
                let selector = svc.spec.and_then(|s| s.selector).map(|s| json!(s));
                let desired =
                    upstream(canary, name, service, selector, config, self.set_owner_refs);
                api.create(name, desired).await?;
                tracing::info!(canary = %canary_id(canary), "Upstream {name}.{ns} created");
            }
            Some(live) => {
                if let Some(patch) = config.and_then(|c| upstream_patch(&live, c)) {
                    api.patch(name, &patch).await?;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Router for GlooRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        let (_, primary_svc, canary_svc) = canary.spec.service_names();
        let (primary, canary_upstream) = upstream_names(canary);
        let config = self.config(canary).await?;
        self.reconcile_upstream(canary, &primary, &primary_svc, config.as_ref())
            .await?;
        self.reconcile_upstream(canary, &canary_upstream, &canary_svc, config.as_ref())
            .await?;
        self.table.reconcile(canary).await
    }

    async fn set_routes(
        &self,
        canary: &Canary,
        status: &mut CanaryStatus,
        routes: Routes,
    ) -> Result<(), RouterError> {
        self.table.set_routes(canary, status, routes).await
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        self.table.get_routes(canary).await
    }

    async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        self.table.finalize(canary).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::router::object::testing::{canary, routed};
    use crate::testing::assert_golden;

    #[test]
    fn golden_route_table_and_upstreams() {
        let c = canary("gloo", json!({}), json!({}));
        let config = json!({"spec": {
            "loadBalancerConfig": {"roundRobin": {"slowStartConfig": {"minWeightPercent": 10}}},
            "connectionConfig": {"maxRequestsPerConnection": 10},
            "kube": {"serviceName": "ignored"}
        }});
        let (primary, _) = upstream_names(&c);
        let up = upstream(
            &c,
            &primary,
            "podinfo-primary",
            Some(json!({"app": "podinfo-primary"})),
            Some(&config),
            true,
        );
        assert_eq!(upstream_patch(&up, &config), None);
        let mut changed = config.clone();
        changed["spec"]["loadBalancerConfig"] = json!({"leastRequest": {}});
        assert_eq!(
            upstream_patch(&up, &changed),
            Some(json!({"spec": {"loadBalancerConfig": {"leastRequest": {}}}}))
        );
        assert_golden(
            "router/testdata/gloo/weights.yaml",
            &json!({"upstream": up, "routeTable": routed(&RouteTable, &c, Routes::new(70, 30, false))}),
        );
    }

    #[test]
    fn golden_ab_headers_and_methods() {
        let c = canary(
            "gloo",
            json!({}),
            json!({"stepWeight": null, "maxWeight": null, "iterations": 5, "match": [
                {"headers": {"x-canary": {"exact": "insider"}, "user": {"regex": "^qa-.*"}},
                 "method": {"exact": "GET"}}
            ]}),
        );
        assert_golden(
            "router/testdata/gloo/ab.yaml",
            &routed(&RouteTable, &c, Routes::new(0, 100, false)),
        );
    }

    /// The Upstreams (with a config Upstream to copy), the Services they are made from and the
    /// RouteTable.
    #[tokio::test]
    async fn with_a_cache_a_step_reads_nothing_and_writes_the_same() {
        use crate::k8s::cache::Cache;
        use crate::router::cached::{assert_cached_steps_read_nothing, until_cached_dynamic};
        use crate::testing::TestCluster;
        assert_cached_steps_read_nothing(
            async |fake: &TestCluster| {
                fake.install_crds(include_str!("../../tests/fixtures/crds/gloo.yaml"))
                    .await;
                for name in ["podinfo-primary", "podinfo-canary"] {
                    fake.insert(json!({
                        "apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": "test"},
                        "spec": {"selector": {"app": name}, "ports": [{"port": 9898}]}
                    }))
                    .await;
                }
                fake.insert(json!({
                    "apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
                    "metadata": {"name": "config", "namespace": "test"},
                    "spec": {"connectionConfig": {"maxRequestsPerConnection": 10}}
                }))
                .await;
                let mut c = canary("gloo", json!({}), json!({}));
                c.spec.upstream_ref =
                    Some(serde_json::from_value(json!({"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "config"})).unwrap());
                fake.store_canary(c).await
            },
            |client, cache| Box::new(GlooRouter::new(client, true).with_cache(cache)),
            async |cache: &Cache, client: kube::Client| {
                let upstreams = upstream_resource();
                until_cached_dynamic(cache, client.clone(), &upstreams, Some("test"), "config")
                    .await;
                let table = RouteTable.resource();
                until_cached_dynamic(cache, client, &table, Some("test"), "podinfo").await;
            },
        )
        .await;
    }
}
