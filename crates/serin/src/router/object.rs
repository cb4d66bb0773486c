//! The shared half of the routers whose routing state is one object Serin creates and owns
//! (SMI TrafficSplit, TraefikService, Contour HTTPProxy, Kuma TrafficRoute): a [`RoutingObject`]
//! says how to render the object and read its weights (pure), [`ObjectRouter`] does the I/O with
//! one read per call (answered by the watch cache when the router has one) and a merge patch of
//! the spec fields Serin owns only when they differ.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch};
use serde_json::{Map, Value, json};

use super::{Router, RouterError, Routes};
use crate::api::{Canary, CanaryStatus};
use crate::k8s::cache::Cache;
use crate::k8s::meta::{
    FLUX_HELM_DRIFT_DETECTION, FLUX_KUSTOMIZE_RECONCILE, canary_id, canary_owner_reference,
    is_controlled_by, merge_patch_diff, metadata_map_patch, namespace, patch_params, post_params,
    prune,
};

/// How one kind of routing object is rendered and read. Everything here is pure.
pub trait RoutingObject: Send + Sync {
    /// Kind, for messages and logs (e.g. `TrafficSplit`).
    fn kind(&self) -> &'static str;
    fn resource(&self) -> ApiResource;
    /// Cluster-scoped objects (Kuma's TrafficRoute) are not in the Canary's namespace.
    fn cluster_scoped(&self) -> bool {
        false
    }
    /// Owner references are set only when the object can be owned by the Canary.
    fn owned_by_canary(&self) -> bool {
        !self.cluster_scoped()
    }
    fn name(&self, canary: &Canary) -> String {
        canary.spec.apex_name().to_string()
    }
    /// The top-level `spec` fields Serin owns; others are left to their writers.
    fn owned_fields(&self) -> &'static [&'static str];
    /// The owned spec fields routing `routes`.
    fn spec(&self, canary: &Canary, routes: Routes) -> Result<Value, RouterError>;
    /// The owned spec with the weights taken out (what `Reconcile` compares).
    fn unweighted(&self, spec: &Value) -> Value;
    /// The weights of a live spec.
    fn routes_of(&self, canary: &Canary, spec: &Value) -> Result<Routes, RouterError>;
    /// Labels Serin sets (default `service.apex.labels`).
    fn labels(&self, canary: &Canary) -> BTreeMap<String, String> {
        apex_labels(canary)
    }
    /// Annotations Serin sets (default `service.apex.annotations` and the Flux ones).
    fn annotations(&self, canary: &Canary) -> BTreeMap<String, String> {
        apex_annotations(canary)
    }
    /// Top-level fields besides `spec` set on creation (Kuma's `mesh`).
    fn top_level(&self, canary: &Canary) -> Map<String, Value> {
        let _ = canary;
        Map::new()
    }
    /// Rejects weights the object cannot express (default: none).
    fn check_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let _ = (canary, routes);
        Ok(())
    }
}

/// `service.apex.labels`.
pub fn apex_labels(canary: &Canary) -> BTreeMap<String, String> {
    canary
        .spec
        .service
        .as_ref()
        .and_then(|s| s.apex.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// `service.apex.annotations` plus the two Flux "disabled" annotations.
pub fn apex_annotations(canary: &Canary) -> BTreeMap<String, String> {
    let mut out = canary
        .spec
        .service
        .as_ref()
        .and_then(|s| s.apex.as_ref())
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    out.insert(FLUX_KUSTOMIZE_RECONCILE.to_string(), "disabled".to_string());
    out.insert(
        FLUX_HELM_DRIFT_DETECTION.to_string(),
        "disabled".to_string(),
    );
    out
}

/// The `spec.service.port` of a Canary (0 without a service).
pub fn port(canary: &Canary) -> i32 {
    canary.spec.service.as_ref().map_or(0, |s| s.port)
}

/// The whole object `Reconcile` creates, routing 100/0.
pub fn object<R: RoutingObject + ?Sized>(
    r: &R,
    canary: &Canary,
    set_owner_refs: bool,
) -> Result<Value, RouterError> {
    let resource = r.resource();
    let mut metadata = json!({"name": r.name(canary)});
    if !r.cluster_scoped() {
        metadata["namespace"] = json!(namespace(canary));
    }
    let labels = r.labels(canary);
    if !labels.is_empty() {
        metadata["labels"] = json!(labels);
    }
    let annotations = r.annotations(canary);
    if !annotations.is_empty() {
        metadata["annotations"] = json!(annotations);
    }
    if set_owner_refs
        && r.owned_by_canary()
        && let Some(owner) = canary_owner_reference(canary)
    {
        metadata["ownerReferences"] = json!([owner]);
    }
    let mut out = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": metadata,
        "spec": prune(&r.spec(canary, Routes::new(100, 0, false))?),
    });
    if let Some(obj) = out.as_object_mut() {
        obj.extend(r.top_level(canary));
    }
    Ok(out)
}

fn owned<R: RoutingObject + ?Sized>(r: &R, spec: &Value) -> Value {
    let mut out = Map::new();
    for field in r.owned_fields() {
        out.insert(
            (*field).to_string(),
            spec.get(*field).cloned().unwrap_or(Value::Null),
        );
    }
    prune(&Value::Object(out))
}

/// The merge patch `Reconcile` sends to the live object, or `None` when it is up to date: the
/// owned spec fields when they differ other than by weights (the live weights are kept), and
/// the desired labels/annotations (other keys removed only from an object this Canary controls).
pub fn reconcile_patch<R: RoutingObject + ?Sized>(
    r: &R,
    canary: &Canary,
    live: &Value,
) -> Result<Option<Value>, RouterError> {
    let live_spec = live.get("spec").cloned().unwrap_or_else(|| json!({}));
    let routes = r
        .routes_of(canary, &live_spec)
        .unwrap_or(Routes::new(100, 0, false));
    let desired = owned(r, &r.spec(canary, routes)?);
    let current = owned(r, &live_spec);
    let mut patch = Map::new();
    if r.unweighted(&current) != r.unweighted(&desired)
        && let Some(p) = merge_patch_diff(&current, &desired)
    {
        patch.insert("spec".into(), p);
    }
    let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
        serde_json::from_value(live.get("metadata").cloned().unwrap_or_default())
            .unwrap_or_default();
    let controlled = is_controlled_by(&meta, canary);
    let mut m = Map::new();
    if let Some(p) = metadata_map_patch(meta.labels.as_ref(), &r.labels(canary), controlled, &[]) {
        m.insert("labels".into(), p);
    }
    if let Some(p) = metadata_map_patch(
        meta.annotations.as_ref(),
        &r.annotations(canary),
        controlled,
        &[crate::k8s::meta::KUBECTL_LAST_APPLIED],
    ) {
        m.insert("annotations".into(), p);
    }
    if !m.is_empty() {
        patch.insert("metadata".into(), Value::Object(m));
    }
    Ok((!patch.is_empty()).then_some(Value::Object(patch)))
}

/// The merge patch of `SetRoutes`, or `None` when the live object already routes `routes`.
pub fn set_routes_patch<R: RoutingObject + ?Sized>(
    r: &R,
    canary: &Canary,
    live: &Value,
    routes: Routes,
) -> Result<Option<Value>, RouterError> {
    r.check_routes(canary, routes)?;
    let live_spec = live.get("spec").cloned().unwrap_or_else(|| json!({}));
    let desired = owned(r, &r.spec(canary, routes)?);
    Ok(merge_patch_diff(&owned(r, &live_spec), &desired).map(|p| json!({"spec": p})))
}

/// The weights of a live object.
pub fn routes<R: RoutingObject + ?Sized>(
    r: &R,
    canary: &Canary,
    live: &Value,
) -> Result<Routes, RouterError> {
    r.routes_of(canary, live.get("spec").unwrap_or(&Value::Null))
}

/// The router of one [`RoutingObject`] kind. Its client talks to the mesh cluster.
pub struct ObjectRouter<R> {
    client: kube::Client,
    set_owner_refs: bool,
    object: R,
    cache: Cache,
}

impl<R: RoutingObject> ObjectRouter<R> {
    pub fn new(client: kube::Client, set_owner_refs: bool, object: R) -> Self {
        Self {
            client,
            set_owner_refs,
            object,
            cache: Cache::disabled(),
        }
    }

    /// Reads the routing object through `cache` and tells it about the writes.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    fn api(&self, canary: &Canary) -> Api<DynamicObject> {
        let resource = self.object.resource();
        if self.object.cluster_scoped() {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), &namespace(canary), &resource)
        }
    }

    fn id(&self, canary: &Canary) -> String {
        let name = self.object.name(canary);
        if self.object.cluster_scoped() {
            format!("{} {name}", self.object.kind())
        } else {
            format!("{} {name}.{}", self.object.kind(), namespace(canary))
        }
    }

    async fn get_opt(&self, canary: &Canary) -> Result<Option<Value>, RouterError> {
        self.cache
            .get_as(&self.api(canary), &self.object.name(canary))
            .await
            .map_err(|source| RouterError::Api {
                context: format!("{} get query error", self.id(canary)),
                source,
            })
    }

    async fn get(&self, canary: &Canary) -> Result<Value, RouterError> {
        self.get_opt(canary).await?.ok_or_else(|| {
            RouterError::Routes(format!("{} get query error: not found", self.id(canary)))
        })
    }

    async fn patch(&self, canary: &Canary, patch: &Value, what: &str) -> Result<(), RouterError> {
        self.cache
            .patch(
                &self.api(canary),
                &self.object.name(canary),
                &patch_params(),
                &Patch::Merge(patch),
            )
            .await
            .map_err(|source| RouterError::Api {
                context: format!("{} {what}", self.id(canary)),
                source,
            })?;
        Ok(())
    }
}

#[async_trait]
impl<R: RoutingObject> Router for ObjectRouter<R> {
    async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        match self.get_opt(canary).await? {
            None => {
                let desired = object(&self.object, canary, self.set_owner_refs)?;
                let desired: DynamicObject = serde_json::from_value(desired).map_err(|e| {
                    RouterError::Routes(format!("{} cannot be built: {e}", self.id(canary)))
                })?;
                self.cache
                    .create(&self.api(canary), &post_params(), &desired)
                    .await
                    .map_err(|source| RouterError::Api {
                        context: format!("{} create error", self.id(canary)),
                        source,
                    })?;
                tracing::info!(canary = %canary_id(canary), "{} created", self.id(canary));
            }
            Some(live) => {
                if let Some(patch) = reconcile_patch(&self.object, canary, &live)? {
                    self.patch(canary, &patch, "update error").await?;
                    tracing::info!(canary = %canary_id(canary), "{} updated", self.id(canary));
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
        let live = self.get(canary).await?;
        if let Some(patch) = set_routes_patch(&self.object, canary, &live, routes)? {
            self.patch(canary, &patch, "update error").await?;
        }
        Ok(())
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        let live = self.get(canary).await?;
        routes(&self.object, canary, &live)
    }

    /// Nothing to revert: the object is garbage-collected with the Canary (owner reference).
    async fn finalize(&self, _canary: &Canary) -> Result<(), RouterError> {
        Ok(())
    }
}

/// `no valid weights` for 0/0 (routers whose objects read the canary weight as `100 - primary`).
pub fn reject_no_weights(kind: &str, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
    if routes.primary == 0 && routes.canary == 0 {
        return Err(RouterError::Invalid(format!(
            "{kind} {}.{} update failed: no valid weights",
            canary.spec.apex_name(),
            namespace(canary)
        )));
    }
    Ok(())
}

/// Removes every `weight` member, at any depth (what `Reconcile` ignores).
pub fn without_weights(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "weight")
                .map(|(k, v)| (k.clone(), without_weights(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_weights).collect()),
        other => other.clone(),
    }
}

/// Test helpers shared by the routers built on [`ObjectRouter`].
#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::k8s::meta::apply_merge_patch;

    /// A Canary `podinfo` in `test` for `provider`; `service` and `analysis` are merged into the
    /// defaults (port 9898; stepWeight 10, maxWeight 50).
    pub fn canary(provider: &str, service: Value, analysis: Value) -> Canary {
        let mut svc = json!({"port": 9898});
        apply_merge_patch(&mut svc, &service);
        let mut an = json!({"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50});
        apply_merge_patch(&mut an, &analysis);
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "canary-uid"},
            "spec": {
                "provider": provider,
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": svc,
                "analysis": an
            }
        }))
        .unwrap()
    }

    /// The object after `Reconcile` created it and `SetRoutes(routes)` patched it.
    pub fn routed<R: RoutingObject>(r: &R, canary: &Canary, routes: Routes) -> Value {
        let mut obj = object(r, canary, true).unwrap();
        if let Some(p) = set_routes_patch(r, canary, &obj, routes).unwrap() {
            apply_merge_patch(&mut obj, &p);
        }
        assert_eq!(super::routes(r, canary, &obj).unwrap(), routes);
        assert_eq!(
            reconcile_patch(r, canary, &obj).unwrap(),
            None,
            "Reconcile leaves the weights alone"
        );
        assert_eq!(set_routes_patch(r, canary, &obj, routes).unwrap(), None);
        obj
    }
}
