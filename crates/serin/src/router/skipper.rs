//! Skipper: the canary Ingress `<ingressRef>-canary` with Skipper's annotations, Flagger's
//! `SkipperRouter`.
//!
//! The Ingress `spec.ingressRef` names is never modified and keeps routing to `<apex>`. Its copy
//! points every `<apex>` path at `<apex>-primary` and adds the same path for `<apex>-canary`;
//! `zalando.org/backend-weights` splits the traffic and `zalando.org/skipper-predicate` starts
//! with `Weight(100)` (the copy's routes win) while the canary gets traffic, `False()` (the copy
//! is disabled, the original routes) when it gets none. Finalize deletes the copy.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::ingress::{Ingresses, canary_ingress_name, ingress_ref};
use super::{Router, RouterError, Routes};
use crate::api::{Canary, CanaryStatus};
use crate::k8s::cache::Cache;
use crate::k8s::meta::{
    FLUX_HELM_DRIFT_DETECTION, FLUX_KUSTOMIZE_RECONCILE, KUBECTL_LAST_APPLIED,
    canary_owner_reference, merge_patch_diff, namespace,
};

const PREDICATE: &str = "zalando.org/skipper-predicate";
const BACKEND_WEIGHTS: &str = "zalando.org/backend-weights";
const WEIGHT: &str = "Weight(100)";
const DISABLED: &str = "False()";

/// The original's spec with every `<apex>` path pointed at the primary and duplicated for the
/// canary; an error when no path routes to `<apex>`.
pub fn canary_spec(canary: &Canary, original: &Value) -> Result<Value, RouterError> {
    let (apex, primary, canary_name) = canary.spec.service_names();
    let mut spec = original.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut found = false;
    for rule in spec
        .get_mut("rules")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(paths) = rule
            .pointer_mut("/http/paths")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let mut added = Vec::new();
        for path in paths.iter_mut() {
            if path
                .pointer("/backend/service/name")
                .and_then(Value::as_str)
                == Some(apex.as_str())
            {
                path["backend"]["service"]["name"] = json!(primary);
                let mut copy = path.clone();
                copy["backend"]["service"]["name"] = json!(canary_name);
                added.push(copy);
                found = true;
            }
        }
        paths.extend(added);
    }
    if !found {
        return Err(RouterError::Invalid(format!(
            "backend {apex} not found in ingress {}",
            ingress_ref(canary)?
        )));
    }
    Ok(spec)
}

/// `first` followed by the other predicates of `raw` (Serin's own left out).
fn predicate(raw: &str, first: &str) -> String {
    std::iter::once(first)
        .chain(
            raw.split("&&")
                .map(str::trim)
                .filter(|p| !p.is_empty() && *p != WEIGHT && *p != DISABLED),
        )
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The two annotations Serin owns, routing `routes`.
pub fn routing_annotations(
    canary: &Canary,
    live_predicate: &str,
    routes: Routes,
) -> BTreeMap<String, String> {
    let (_, primary, canary_name) = canary.spec.service_names();
    let weights = BTreeMap::from([(canary_name, routes.canary), (primary, routes.primary)]);
    let first = if routes.canary == 0 { DISABLED } else { WEIGHT };
    BTreeMap::from([
        (BACKEND_WEIGHTS.to_string(), json!(weights).to_string()),
        (PREDICATE.to_string(), predicate(live_predicate, first)),
    ])
}

fn annotations_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

/// The canary Ingress `Reconcile` creates (routing 100/0).
pub fn canary_ingress(
    canary: &Canary,
    original: &Value,
    set_owner_refs: bool,
) -> Result<Value, RouterError> {
    let spec = canary_spec(canary, original)?;
    let mut annotations = annotations_of(original);
    annotations.remove(KUBECTL_LAST_APPLIED);
    let original_predicate = annotations.get(PREDICATE).cloned().unwrap_or_default();
    annotations.insert(FLUX_KUSTOMIZE_RECONCILE.to_string(), "disabled".to_string());
    annotations.insert(
        FLUX_HELM_DRIFT_DETECTION.to_string(),
        "disabled".to_string(),
    );
    annotations.extend(routing_annotations(
        canary,
        &original_predicate,
        Routes::new(100, 0, false),
    ));
    let mut metadata = json!({
        "name": canary_ingress_name(canary)?,
        "namespace": namespace(canary),
        "annotations": annotations,
    });
    if let Some(labels) = original.pointer("/metadata/labels") {
        metadata["labels"] = labels.clone();
    }
    if set_owner_refs && let Some(owner) = canary_owner_reference(canary) {
        metadata["ownerReferences"] = json!([owner]);
    }
    Ok(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    }))
}

/// `Reconcile`'s patch: the copy's `spec` when the original's changed.
pub fn reconcile_patch(
    canary: &Canary,
    original: &Value,
    live: &Value,
) -> Result<Option<Value>, RouterError> {
    let desired = canary_spec(canary, original)?;
    let live_spec = live.get("spec").cloned().unwrap_or_else(|| json!({}));
    Ok(merge_patch_diff(&live_spec, &desired).map(|p| json!({"spec": p})))
}

/// `SetRoutes`'s patch of the two annotations, or `None` when they already route `routes`.
pub fn set_routes_patch(canary: &Canary, live: &Value, routes: Routes) -> Option<Value> {
    let live = annotations_of(live);
    let desired = routing_annotations(
        canary,
        live.get(PREDICATE).map(String::as_str).unwrap_or_default(),
        routes,
    );
    let patch: Map<String, Value> = desired
        .into_iter()
        .filter(|(k, v)| live.get(k) != Some(v))
        .map(|(k, v)| (k, json!(v)))
        .collect();
    (!patch.is_empty()).then(|| json!({"metadata": {"annotations": patch}}))
}

/// `GetRoutes`: the weights of `zalando.org/backend-weights`.
pub fn routes_of(canary: &Canary, live: &Value) -> Result<Routes, RouterError> {
    let (_, primary, canary_name) = canary.spec.service_names();
    let id = format!(
        "ingress {}.{}",
        canary_ingress_name(canary)?,
        namespace(canary)
    );
    let annotations = annotations_of(live);
    let raw = annotations
        .get(BACKEND_WEIGHTS)
        .ok_or_else(|| RouterError::Routes(format!("{id} has no {BACKEND_WEIGHTS} annotation")))?;
    let weights: BTreeMap<String, i32> = serde_json::from_str(raw).map_err(|e| {
        RouterError::Routes(format!(
            "{id} annotation {BACKEND_WEIGHTS} is not valid: {e}"
        ))
    })?;
    let get = |name: &str| {
        weights.get(name).copied().ok_or_else(|| {
            RouterError::Routes(format!(
                "{id} has no weight for {name} in {BACKEND_WEIGHTS}"
            ))
        })
    };
    Ok(Routes::new(get(&primary)?, get(&canary_name)?, false))
}

/// The Skipper router.
pub struct SkipperRouter {
    ingresses: Ingresses,
    set_owner_refs: bool,
}

impl SkipperRouter {
    pub fn new(client: kube::Client, set_owner_refs: bool) -> Self {
        Self {
            ingresses: Ingresses::new(client),
            set_owner_refs,
        }
    }

    /// Reads the Ingresses through `cache` and tells it about the writes.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.ingresses = self.ingresses.with_cache(cache);
        self
    }
}

#[async_trait]
impl Router for SkipperRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.ingresses
            .reconcile_canary(
                canary,
                |original| canary_ingress(canary, original, self.set_owner_refs),
                |original, live| reconcile_patch(canary, original, live),
            )
            .await
    }

    async fn set_routes(
        &self,
        canary: &Canary,
        _status: &mut CanaryStatus,
        routes: Routes,
    ) -> Result<(), RouterError> {
        let live = self.ingresses.get_canary(canary).await?;
        if let Some(patch) = set_routes_patch(canary, &live, routes) {
            self.ingresses.patch_canary(canary, &patch).await?;
        }
        Ok(())
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        let live = self.ingresses.get_canary(canary).await?;
        routes_of(canary, &live)
    }

    /// Deletes the canary Ingress (grace period 2 s), as Flagger does.
    async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        self.ingresses.delete_canary(canary).await
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
        let mut c = base_canary("skipper", json!({}), json!({}));
        c.spec.ingress_ref = serde_json::from_value(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"}),
        )
        .unwrap();
        c
    }

    fn original() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "podinfo", "namespace": "test",
                "annotations": {"zalando.org/skipper-predicate": "Host(/^app/) && Method(\"GET\")"}},
            "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}}
            ]}}]}
        })
    }

    fn routed(c: &Canary, routes: Routes) -> Value {
        let mut obj = canary_ingress(c, &original(), true).unwrap();
        if let Some(p) = set_routes_patch(c, &obj, routes) {
            apply_merge_patch(&mut obj, &p);
        }
        assert_eq!(set_routes_patch(c, &obj, routes), None);
        assert_eq!(reconcile_patch(c, &original(), &obj).unwrap(), None);
        assert_eq!(routes_of(c, &obj).unwrap(), routes);
        obj
    }

    #[test]
    fn golden_weights_and_predicates() {
        let c = canary();
        let initial = routed(&c, Routes::new(100, 0, false));
        let step = routed(&c, Routes::new(80, 20, false));
        assert_eq!(
            initial["metadata"]["annotations"][PREDICATE],
            "False() && Host(/^app/) && Method(\"GET\")"
        );
        assert_eq!(
            step["metadata"]["annotations"][PREDICATE],
            "Weight(100) && Host(/^app/) && Method(\"GET\")"
        );
        assert_golden(
            "router/testdata/skipper/weights.yaml",
            &json!({"initial": initial, "step": step}),
        );
    }

    #[test]
    fn missing_weights_are_errors() {
        let err = routes_of(&canary(), &original()).unwrap_err().to_string();
        assert_eq!(
            err,
            "ingress podinfo-canary.test has no zalando.org/backend-weights annotation"
        );
    }

    #[tokio::test]
    async fn finalize_deletes_the_copy_only() {
        let fake = TestCluster::start().await;
        fake.insert(original()).await;
        let c = canary();
        let router = SkipperRouter::new(fake.client(), false);
        router.reconcile(&c).await.unwrap();
        fake.clear_writes();
        router.reconcile(&c).await.unwrap();
        assert!(fake.writes().is_empty(), "{:?}", fake.writes());
        router.finalize(&c).await.unwrap();
        let api = "networking.k8s.io/v1";
        assert!(
            fake.get(api, "Ingress", "test", "podinfo-canary")
                .await
                .is_none()
        );
        assert!(fake.get(api, "Ingress", "test", "podinfo").await.is_some());
        router.finalize(&c).await.unwrap();
    }

    /// With a cache, a read right after the deletion sees the copy gone (whether or not the
    /// watch has delivered the deletion yet).
    #[tokio::test]
    async fn with_a_cache_the_deleted_copy_is_gone_at_once() {
        use crate::k8s::cache::Cache;
        use crate::router::cached::until_cached;
        use k8s_openapi::api::networking::v1::Ingress;
        let fake = TestCluster::start().await;
        fake.insert(original()).await;
        let c = canary();
        let cache = Cache::new(None);
        let router = SkipperRouter::new(fake.client(), false).with_cache(cache.clone());
        router.reconcile(&c).await.unwrap();
        let ingresses: kube::Api<Ingress> = kube::Api::namespaced(fake.client(), "test");
        until_cached(&cache, &ingresses, "podinfo-canary").await;
        fake.clear_writes();
        router.finalize(&c).await.unwrap();
        assert_eq!(fake.writes().len(), 1, "{:?}", fake.writes());
        let err = router.get_routes(&c).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "ingress podinfo-canary.test get query error: not found"
        );
        // Gone already: still fine, and still gone.
        router.finalize(&c).await.unwrap();
        assert!(router.get_routes(&c).await.is_err());
    }
}
