//! Apache APISIX: the ApisixRoute `<routeRef>-<apex>-canary` (`apisix.apache.org/v2`), Flagger's
//! `ApisixRouter`.
//!
//! The ApisixRoute `spec.routeRef` names is never modified. From it, the `http[]` entry whose
//! (single) backend is `<apex>` is copied with `priority: 10000` and two backends, the primary
//! and the canary, whose `weight`s split the traffic. Serin owns the copy's `spec.http`. No A/B,
//! no mirroring.

use async_trait::async_trait;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::dynamic::DynamicApi;
use super::object::{reject_no_weights, without_weights};
use super::{Router, RouterError, Routes};
use crate::api::{Canary, CanaryStatus};
use crate::k8s::cache::Cache;
use crate::k8s::meta::{canary_id, canary_owner_reference, merge_patch_diff, namespace};

const KIND: &str = "ApisixRoute";
const MAX_PRIORITY: i64 = 10000;

fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("apisix.apache.org", "v2", KIND);
    ApiResource::from_gvk_with_plural(&gvk, "apisixroutes")
}

fn route_ref(canary: &Canary) -> Result<&str, RouterError> {
    canary
        .spec
        .route_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| RouterError::Invalid("apisix route selector is empty".to_string()))
}

/// `<routeRef>-<apex>-canary`.
pub fn canary_route_name(canary: &Canary) -> Result<String, RouterError> {
    Ok(format!(
        "{}-{}-canary",
        route_ref(canary)?,
        canary.spec.apex_name()
    ))
}

/// The copy's `spec.http` routing `routes`, from the original ApisixRoute.
pub fn http(canary: &Canary, original: &Value, routes: Routes) -> Result<Value, RouterError> {
    let (apex, primary, canary_name) = canary.spec.service_names();
    let name = route_ref(canary)?;
    let ns = namespace(canary);
    let entries = original
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            RouterError::Invalid(format!("APISIX route {name}.{ns}'s spec.http is empty"))
        })?;
    let entry = entries
        .iter()
        .find(|e| {
            e.get("backends")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|b| b.get("serviceName").and_then(Value::as_str) == Some(apex.as_str()))
        })
        .ok_or_else(|| {
            RouterError::Invalid(format!(
                "Can not find {apex} backend on apisix route {name}.{ns}"
            ))
        })?;
    let backends = entry
        .get("backends")
        .and_then(Value::as_array)
        .filter(|b| b.len() == 1)
        .ok_or_else(|| {
            RouterError::Invalid(format!(
                "APISIX route {name}.{ns}'s http route {} only one http backend is supported",
                entry
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ))
        })?;
    let original_backend = &backends[0];
    let mut primary_backend = original_backend.clone();
    primary_backend["serviceName"] = json!(primary);
    primary_backend["weight"] = json!(routes.primary);
    let mut canary_backend = json!({"serviceName": canary_name, "weight": routes.canary});
    for key in ["servicePort", "resolveGranularity", "subset"] {
        if let Some(v) = original_backend.get(key) {
            canary_backend[key] = v.clone();
        }
    }
    let mut entry = entry.clone();
    entry["priority"] = json!(MAX_PRIORITY);
    entry["backends"] = json!([primary_backend, canary_backend]);
    Ok(json!([entry]))
}

/// The copy `Reconcile` creates (routing 100/0), with the original's labels and annotations.
pub fn canary_route(
    canary: &Canary,
    original: &Value,
    set_owner_refs: bool,
) -> Result<Value, RouterError> {
    let mut metadata = json!({
        "name": canary_route_name(canary)?,
        "namespace": namespace(canary),
    });
    for key in ["labels", "annotations"] {
        if let Some(v) = original.pointer(&format!("/metadata/{key}")) {
            metadata[key] = v.clone();
        }
    }
    if set_owner_refs && let Some(owner) = canary_owner_reference(canary) {
        metadata["ownerReferences"] = json!([owner]);
    }
    let mut spec = original.get("spec").cloned().unwrap_or_else(|| json!({}));
    spec["http"] = http(canary, original, Routes::new(100, 0, false))?;
    Ok(json!({
        "apiVersion": "apisix.apache.org/v2",
        "kind": KIND,
        "metadata": metadata,
        "spec": spec,
    }))
}

/// `GetRoutes`: the primary backend's weight (the canary gets the rest).
pub fn routes_of(canary: &Canary, live: &Value) -> Result<Routes, RouterError> {
    let (_, primary, _) = canary.spec.service_names();
    let weight = live
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e.get("backends")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|b| b.get("serviceName").and_then(Value::as_str) == Some(primary.as_str()))
        .and_then(|b| b.get("weight").and_then(Value::as_i64))
        .and_then(|w| i32::try_from(w).ok())
        .ok_or_else(|| {
            RouterError::Routes(format!(
                "Can not find {primary} backend on apisix route {}.{}",
                canary_route_name(canary).unwrap_or_default(),
                namespace(canary)
            ))
        })?;
    Ok(Routes::new(weight, 100 - weight, false))
}

/// `Reconcile`'s patch of the copy's `spec.http` when the original's entry changed (weights
/// kept).
pub fn reconcile_patch(
    canary: &Canary,
    original: &Value,
    live: &Value,
) -> Result<Option<Value>, RouterError> {
    let routes = routes_of(canary, live).unwrap_or(Routes::new(100, 0, false));
    let desired = http(canary, original, routes)?;
    let current = live.pointer("/spec/http").cloned().unwrap_or(Value::Null);
    if without_weights(&current) == without_weights(&desired) {
        return Ok(None);
    }
    Ok(
        merge_patch_diff(&json!({"http": current}), &json!({"http": desired}))
            .map(|p| json!({"spec": p})),
    )
}

/// `SetRoutes`'s patch of the backend weights, or `None` when they already are `routes`.
pub fn set_routes_patch(
    canary: &Canary,
    live: &Value,
    routes: Routes,
) -> Result<Option<Value>, RouterError> {
    reject_no_weights(KIND, canary, routes)?;
    let (_, primary, canary_name) = canary.spec.service_names();
    let mut http = live.pointer("/spec/http").cloned().unwrap_or(Value::Null);
    for b in http.as_array_mut().into_iter().flatten().flat_map(|e| {
        e.get_mut("backends")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
    }) {
        match b.get("serviceName").and_then(Value::as_str) {
            Some(n) if n == primary => b["weight"] = json!(routes.primary),
            Some(n) if n == canary_name => b["weight"] = json!(routes.canary),
            _ => {}
        }
    }
    let current = live.pointer("/spec/http").cloned().unwrap_or(Value::Null);
    Ok((current != http).then(|| json!({"spec": {"http": http}})))
}

/// The APISIX router.
pub struct ApisixRouter {
    client: kube::Client,
    set_owner_refs: bool,
    cache: Cache,
}

impl ApisixRouter {
    pub fn new(client: kube::Client, set_owner_refs: bool) -> Self {
        Self {
            client,
            set_owner_refs,
            cache: Cache::disabled(),
        }
    }

    /// Reads the ApisixRoutes through `cache` and tells it about the writes.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    fn api(&self, canary: &Canary) -> DynamicApi {
        DynamicApi::new(
            self.client.clone(),
            &resource(),
            "APISIX route",
            &namespace(canary),
        )
        .with_cache(self.cache.clone())
    }
}

#[async_trait]
impl Router for ApisixRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        let api = self.api(canary);
        let original = api.get(route_ref(canary)?).await?;
        let name = canary_route_name(canary)?;
        match api.get_opt(&name).await? {
            None => {
                api.create(&name, canary_route(canary, &original, self.set_owner_refs)?)
                    .await?;
                tracing::info!(canary = %canary_id(canary), "APISIX route {name}.{} created", namespace(canary));
            }
            Some(live) => {
                if let Some(patch) = reconcile_patch(canary, &original, &live)? {
                    api.patch(&name, &patch).await?;
                    tracing::info!(canary = %canary_id(canary), "Apisix route {name} updated");
                }
            }
        }
        Ok(())
    }

    async fn set_routes(
        &self,
        canary: &Canary,
        _status: &mut CanaryStatus,
        routes: Routes,
    ) -> Result<(), RouterError> {
        let api = self.api(canary);
        let name = canary_route_name(canary)?;
        let live = api.get(&name).await?;
        if let Some(patch) = set_routes_patch(canary, &live, routes)? {
            api.patch(&name, &patch).await?;
        }
        Ok(())
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        let live = self.api(canary).get(&canary_route_name(canary)?).await?;
        routes_of(canary, &live)
    }

    /// Nothing to revert: the copy is garbage-collected with the Canary.
    async fn finalize(&self, _canary: &Canary) -> Result<(), RouterError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::k8s::meta::apply_merge_patch;
    use crate::router::object::testing::canary as base_canary;
    use crate::testing::TestCluster;
    use crate::testing::assert_golden;

    fn canary() -> Canary {
        let mut c = base_canary("apisix", json!({}), json!({}));
        c.spec.route_ref = serde_json::from_value(
            json!({"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "app"}),
        )
        .unwrap();
        c
    }

    fn original() -> Value {
        json!({
            "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
            "metadata": {"name": "app", "namespace": "test", "labels": {"team": "web"}},
            "spec": {"http": [
                {"name": "static", "match": {"paths": ["/static/*"]},
                 "backends": [{"serviceName": "static", "servicePort": 80}]},
                {"name": "podinfo", "match": {"hosts": ["app.example.com"], "paths": ["/*"]},
                 "plugins": [{"name": "prometheus", "enable": true}],
                 "backends": [{"serviceName": "podinfo", "servicePort": 80, "resolveGranularity": "service"}]}
            ]}
        })
    }

    fn routed(c: &Canary, routes: Routes) -> Value {
        let mut obj = canary_route(c, &original(), true).unwrap();
        if let Some(p) = set_routes_patch(c, &obj, routes).unwrap() {
            apply_merge_patch(&mut obj, &p);
        }
        assert_eq!(set_routes_patch(c, &obj, routes).unwrap(), None);
        assert_eq!(reconcile_patch(c, &original(), &obj).unwrap(), None);
        assert_eq!(routes_of(c, &obj).unwrap(), routes);
        obj
    }

    #[test]
    fn golden_weights() {
        assert_golden(
            "router/testdata/apisix/weights.yaml",
            &routed(&canary(), Routes::new(70, 30, false)),
        );
    }

    #[test]
    fn errors_say_what_to_change() {
        let c = canary();
        let mut two = original();
        two["spec"]["http"][1]["backends"]
            .as_array_mut()
            .unwrap()
            .push(json!({"serviceName": "other", "servicePort": 80}));
        assert_eq!(
            http(&c, &two, Routes::default()).unwrap_err().to_string(),
            "APISIX route app.test's http route podinfo only one http backend is supported"
        );
        let live = routed(&c, Routes::new(100, 0, false));
        assert_eq!(
            set_routes_patch(&c, &live, Routes::new(0, 0, false))
                .unwrap_err()
                .to_string(),
            "ApisixRoute podinfo.test update failed: no valid weights"
        );
    }

    #[tokio::test]
    async fn the_original_is_never_written() {
        let fake = TestCluster::start().await;
        fake.install_crds(include_str!("../../tests/fixtures/crds/apisix.yaml"))
            .await;
        fake.insert(original()).await;
        let c = fake.store_canary(canary()).await;
        let router = ApisixRouter::new(fake.client(), true);
        router.reconcile(&c).await.unwrap();
        let mut status = CanaryStatus::default();
        router
            .set_routes(&c, &mut status, Routes::new(90, 10, false))
            .await
            .unwrap();
        let writes = fake.writes();
        assert_eq!(writes.len(), 2);
        assert!(
            writes
                .iter()
                .all(|w| !w.path.ends_with("/apisixroutes/app"))
        );
        fake.clear_writes();
        router.reconcile(&c).await.unwrap();
        assert!(fake.writes().is_empty(), "{:?}", fake.writes());
        assert_eq!(
            router.get_routes(&c).await.unwrap(),
            Routes::new(90, 10, false)
        );
    }

    #[tokio::test]
    async fn with_a_cache_a_step_reads_nothing_and_writes_the_same() {
        use crate::k8s::cache::Cache;
        use crate::router::cached::{assert_cached_steps_read_nothing, until_cached_dynamic};
        assert_cached_steps_read_nothing(
            async |fake: &TestCluster| {
                fake.install_crds(include_str!("../../tests/fixtures/crds/apisix.yaml"))
                    .await;
                fake.insert(original()).await;
                fake.store_canary(canary()).await
            },
            |client, cache| Box::new(ApisixRouter::new(client, true).with_cache(cache)),
            async |cache: &Cache, client: kube::Client| {
                until_cached_dynamic(cache, client, &resource(), Some("test"), "app").await;
            },
        )
        .await;
    }
}
