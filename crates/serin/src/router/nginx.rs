//! NGINX: the canary Ingress `<ingressRef>-canary` with NGINX's canary annotations, Flagger's
//! `IngressRouter`.
//!
//! The Ingress `spec.ingressRef` names is never modified. Its copy routes every backend `<apex>`
//! to `<apex>-canary`; `<prefix>/canary-weight` (or, for A/B testing, `canary-by-header`,
//! `canary-by-header-value`, `canary-by-header-pattern` or `canary-by-cookie`) decides what
//! reaches it. `<prefix>` is `-ingress-annotations-prefix`. Serin owns the copy's `spec` and its
//! `<prefix>/canary*` annotations; other annotations are copied from the original at creation
//! and then left alone.

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

/// The annotation keys of one prefix.
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.prefix)
    }

    /// Any of NGINX's canary annotations (they all start with `<prefix>/canary`).
    fn is_canary_key(&self, key: &str) -> bool {
        key.contains(&self.key("canary"))
    }
}

/// The original's spec with every backend `<apex>` renamed `<apex>-canary`; an error when no
/// backend is `<apex>`.
pub fn canary_spec(canary: &Canary, original: &Value) -> Result<Value, RouterError> {
    let (apex, _, canary_name) = canary.spec.service_names();
    let mut spec = original.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut found = false;
    for rule in spec
        .get_mut("rules")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for path in rule
            .pointer_mut("/http/paths")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(name) = path.pointer_mut("/backend/service/name")
                && name.as_str() == Some(apex.as_str())
            {
                *name = json!(canary_name);
                found = true;
            }
        }
    }
    if !found {
        return Err(RouterError::Invalid(format!(
            "backend {apex} not found in ingress {}",
            ingress_ref(canary)?
        )));
    }
    Ok(spec)
}

/// The canary annotations routing `routes`.
pub fn canary_annotations(
    canary: &Canary,
    keys: &Keys,
    routes: Routes,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        (keys.key("canary"), "true".to_string()),
        (keys.key("canary-weight"), "0".to_string()),
    ]);
    let matches = canary.spec.analysis().map(|a| a.matches()).unwrap_or(&[]);
    if matches.is_empty() {
        out.insert(keys.key("canary-weight"), routes.canary.to_string());
    } else if routes.canary > 0 {
        for m in matches {
            for (name, sm) in m.headers.iter().flatten() {
                if name == "cookie" {
                    if let Some(v) = &sm.exact {
                        out.insert(keys.key("canary-by-cookie"), v.clone());
                    }
                } else {
                    out.insert(keys.key("canary-by-header"), name.clone());
                    if let Some(v) = &sm.exact {
                        out.insert(keys.key("canary-by-header-value"), v.clone());
                    }
                    if let Some(v) = &sm.regex {
                        out.insert(keys.key("canary-by-header-pattern"), v.clone());
                    }
                }
            }
        }
    }
    out
}

/// The canary Ingress `Reconcile` creates: the original's labels, its annotations without the
/// canary ones and `last-applied`, plus the Flux annotations and `canary: "true"`,
/// `canary-weight: "0"`.
pub fn canary_ingress(
    canary: &Canary,
    original: &Value,
    keys: &Keys,
    set_owner_refs: bool,
) -> Result<Value, RouterError> {
    let spec = canary_spec(canary, original)?;
    let mut annotations: BTreeMap<String, String> = original
        .pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    annotations.retain(|k, _| !keys.is_canary_key(k) && k != KUBECTL_LAST_APPLIED);
    annotations.insert(FLUX_KUSTOMIZE_RECONCILE.to_string(), "disabled".to_string());
    annotations.insert(
        FLUX_HELM_DRIFT_DETECTION.to_string(),
        "disabled".to_string(),
    );
    annotations.extend(canary_annotations(canary, keys, Routes::new(100, 0, false)));
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

/// `Reconcile`'s patch of the live canary Ingress: its `spec` when the original's changed.
pub fn reconcile_patch(
    canary: &Canary,
    original: &Value,
    live: &Value,
) -> Result<Option<Value>, RouterError> {
    let desired = canary_spec(canary, original)?;
    let live_spec = live.get("spec").cloned().unwrap_or_else(|| json!({}));
    Ok(merge_patch_diff(&live_spec, &desired).map(|p| json!({"spec": p})))
}

fn annotations_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

/// `SetRoutes`'s patch: the canary annotations for `routes` set and the other canary
/// annotations removed, or `None` when they already are.
pub fn set_routes_patch(
    canary: &Canary,
    live: &Value,
    keys: &Keys,
    routes: Routes,
) -> Option<Value> {
    let live = annotations_of(live);
    let desired = canary_annotations(canary, keys, routes);
    let mut patch = Map::new();
    for (k, v) in &desired {
        if live.get(k) != Some(v) {
            patch.insert(k.clone(), json!(v));
        }
    }
    for k in live.keys() {
        if keys.is_canary_key(k) && !desired.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    (!patch.is_empty()).then(|| json!({"metadata": {"annotations": patch}}))
}

/// `GetRoutes`: with `analysis.match` and header/cookie routing on, 0/100; else the canary
/// weight annotation.
pub fn routes_of(canary: &Canary, live: &Value, keys: &Keys) -> Result<Routes, RouterError> {
    let annotations = annotations_of(live);
    let has_match = canary
        .spec
        .analysis()
        .is_some_and(|a| !a.matches().is_empty());
    if has_match
        && (annotations.contains_key(&keys.key("canary-by-cookie"))
            || annotations.contains_key(&keys.key("canary-by-header")))
    {
        return Ok(Routes::new(0, 100, false));
    }
    let weight = match annotations.get(&keys.key("canary-weight")) {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<i32>()
            .map_err(|e| RouterError::Routes(format!("failed to convert {v} to int: {e}")))?,
    };
    Ok(Routes::new(100 - weight, weight, false))
}

/// The NGINX router.
pub struct NginxRouter {
    ingresses: Ingresses,
    set_owner_refs: bool,
    keys: Keys,
}

impl NginxRouter {
    pub fn new(client: kube::Client, set_owner_refs: bool, annotations_prefix: &str) -> Self {
        Self {
            ingresses: Ingresses::new(client),
            set_owner_refs,
            keys: Keys::new(annotations_prefix),
        }
    }

    /// Reads the Ingresses through `cache` and tells it about the writes.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.ingresses = self.ingresses.with_cache(cache);
        self
    }
}

#[async_trait]
impl Router for NginxRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.ingresses
            .reconcile_canary(
                canary,
                |original| canary_ingress(canary, original, &self.keys, self.set_owner_refs),
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
        if let Some(patch) = set_routes_patch(canary, &live, &self.keys, routes) {
            self.ingresses.patch_canary(canary, &patch).await?;
        }
        Ok(())
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        let live = self.ingresses.get_canary(canary).await?;
        routes_of(canary, &live, &self.keys)
    }

    /// Nothing to revert: the canary Ingress is garbage-collected with the Canary.
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

    const PREFIX: &str = "nginx.ingress.kubernetes.io";

    fn canary(analysis: Value) -> Canary {
        let mut c = base_canary("nginx", json!({}), analysis);
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
                "labels": {"app": "podinfo"},
                "annotations": {
                    "kubernetes.io/ingress.class": "nginx",
                    "nginx.ingress.kubernetes.io/canary-weight": "40",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"
                }},
            "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
                {"path": "/static", "pathType": "Prefix",
                 "backend": {"service": {"name": "static", "port": {"number": 80}}}}
            ]}}]}
        })
    }

    fn routed(c: &Canary, routes: Routes) -> Value {
        let keys = Keys::new(PREFIX);
        let mut obj = canary_ingress(c, &original(), &keys, true).unwrap();
        if let Some(p) = set_routes_patch(c, &obj, &keys, routes) {
            apply_merge_patch(&mut obj, &p);
        }
        assert_eq!(set_routes_patch(c, &obj, &keys, routes), None);
        assert_eq!(reconcile_patch(c, &original(), &obj).unwrap(), None);
        obj
    }

    #[test]
    fn golden_weights() {
        let c = canary(json!({}));
        let obj = routed(&c, Routes::new(70, 30, false));
        assert_eq!(
            routes_of(&c, &obj, &Keys::new(PREFIX)).unwrap(),
            Routes::new(70, 30, false)
        );
        assert_golden("router/testdata/nginx/weights.yaml", &obj);
    }

    #[test]
    fn golden_ab_header_and_cookie() {
        let ab = |m: Value| {
            canary(json!({"stepWeight": null, "maxWeight": null, "iterations": 5, "match": m}))
        };
        let header = ab(json!([{"headers": {"x-canary": {"regex": "^insider$"}}}]));
        let cookie = ab(json!([{"headers": {"cookie": {"exact": "canary"}}}]));
        let on_header = routed(&header, Routes::new(0, 100, false));
        let on_cookie = routed(&cookie, Routes::new(0, 100, false));
        let keys = Keys::new(PREFIX);
        assert_eq!(
            routes_of(&header, &on_header, &keys).unwrap(),
            Routes::new(0, 100, false)
        );
        // Back to the primary: only `canary: "true"` and `canary-weight: "0"` stay.
        let mut off = on_cookie.clone();
        apply_merge_patch(
            &mut off,
            &set_routes_patch(&cookie, &on_cookie, &keys, Routes::new(100, 0, false)).unwrap(),
        );
        assert_eq!(
            routes_of(&cookie, &off, &keys).unwrap(),
            Routes::new(100, 0, false)
        );
        assert_golden(
            "router/testdata/nginx/ab.yaml",
            &json!({"header": on_header["metadata"]["annotations"],
                    "cookie": on_cookie["metadata"]["annotations"],
                    "promoted": off["metadata"]["annotations"]}),
        );
    }

    #[test]
    fn errors_say_what_is_missing() {
        let mut c = canary(json!({}));
        let mut other = original();
        other["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("x");
        let err = canary_spec(&c, &other).unwrap_err().to_string();
        assert_eq!(err, "backend podinfo not found in ingress podinfo");
        c.spec.ingress_ref = None;
        assert_eq!(
            canary_ingress_name(&c).unwrap_err().to_string(),
            "ingress selector is empty"
        );
    }

    #[tokio::test]
    async fn the_original_is_never_written_and_nothing_is_written_twice() {
        let fake = TestCluster::start().await;
        fake.insert(original()).await;
        let c = fake.store_canary(canary(json!({}))).await;
        let router = NginxRouter::new(fake.client(), true, PREFIX);
        router.reconcile(&c).await.unwrap();
        let mut status = CanaryStatus::default();
        router
            .set_routes(&c, &mut status, Routes::new(90, 10, false))
            .await
            .unwrap();
        let writes = fake.writes();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert!(
            writes
                .iter()
                .all(|w| w.path.contains("podinfo-canary") || w.method == "POST")
        );
        assert_eq!(
            writes[1].body,
            json!({"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "10"}}})
        );
        fake.clear_writes();
        router.reconcile(&c).await.unwrap();
        router
            .set_routes(&c, &mut status, Routes::new(90, 10, false))
            .await
            .unwrap();
        assert!(fake.writes().is_empty(), "{:?}", fake.writes());
        assert_eq!(
            router.get_routes(&c).await.unwrap(),
            Routes::new(90, 10, false)
        );
        assert_eq!(
            fake.get("networking.k8s.io/v1", "Ingress", "test", "podinfo")
                .await
                .unwrap()["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"],
            "40"
        );
    }

    #[tokio::test]
    async fn with_a_cache_a_step_reads_nothing_and_writes_the_same() {
        use crate::k8s::cache::Cache;
        use crate::router::cached::{assert_cached_steps_read_nothing, until_cached};
        use k8s_openapi::api::networking::v1::Ingress;
        assert_cached_steps_read_nothing(
            async |fake: &TestCluster| {
                fake.insert(original()).await;
                fake.store_canary(canary(json!({}))).await
            },
            |client, cache| Box::new(NginxRouter::new(client, true, PREFIX).with_cache(cache)),
            async |cache: &Cache, client: kube::Client| {
                let ingresses: kube::Api<Ingress> = kube::Api::namespaced(client, "test");
                until_cached(cache, &ingresses, "podinfo").await;
            },
        )
        .await;
    }
}
