//! Primary autoscalers (Flagger's `HPAReconciler` and `ScaledObjectReconciler`): a copy of the
//! target's HorizontalPodAutoscaler (`autoscaling/v2`) or KEDA ScaledObject (`keda.sh/v1alpha1`,
//! handled as JSON) that scales `<target>-primary`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch};
use serde_json::{Map, Value, json};

use super::{ScalerReconciler, WorkloadError};
use crate::api::Canary;
use crate::k8s::cache::Cache;
use crate::k8s::error::not_found;
use crate::k8s::meta::{
    canary_id, exact_metadata_patch, filter_toolkit, merge_patch_diff, namespace, patch_params,
    post_params, require_owner_reference,
};
use crate::workload::WorkloadConfig;

/// KEDA's annotation that freezes a ScaledObject's workload at the given replica count.
pub const PAUSED_REPLICAS_ANNOTATION: &str = "autoscaling.keda.sh/paused-replicas";

/// The KEDA ScaledObject resource.
pub fn scaled_object_resource() -> ApiResource {
    ApiResource {
        group: "keda.sh".into(),
        version: "v1alpha1".into(),
        api_version: "keda.sh/v1alpha1".into(),
        kind: "ScaledObject".into(),
        plural: "scaledobjects".into(),
    }
}

/// The scaler reconciler of a Canary's `autoscalerRef`, if any, reading through `cache`
/// (`Cache::disabled()` reads from the API server).
pub fn scaler_with_cache(
    client: kube::Client,
    config: &WorkloadConfig,
    canary: &Canary,
    cache: Cache,
) -> Result<Option<Box<dyn ScalerReconciler>>, WorkloadError> {
    let Some(r) = canary.spec.autoscaler_ref.as_ref() else {
        return Ok(None);
    };
    match r.kind.as_str() {
        "HorizontalPodAutoscaler" => Ok(Some(Box::new(
            HpaReconciler::new(client, config.clone()).with_cache(cache),
        ))),
        "ScaledObject" => Ok(Some(Box::new(
            ScaledObjectReconciler::new(client, config.clone()).with_cache(cache),
        ))),
        other => Err(unsupported_kind(other)),
    }
}

fn unsupported_kind(kind: &str) -> WorkloadError {
    WorkloadError::Invalid(format!(
        "autoscalerRef kind {kind} is not supported (HorizontalPodAutoscaler or ScaledObject)"
    ))
}

fn get_error(kind: &str, name: &str, ns: &str, source: kube::Error) -> WorkloadError {
    WorkloadError::Api {
        context: format!("{kind} {name}.{ns} get query error"),
        source,
    }
}

/// Reads the target's HPA; the API server's 404 text when it is missing.
async fn get_hpa(
    api: &Api<HorizontalPodAutoscaler>,
    cache: &Cache,
    name: &str,
    ns: &str,
) -> Result<HorizontalPodAutoscaler, WorkloadError> {
    const KIND: &str = "HorizontalPodAutoscaler";
    cache
        .get(api, name)
        .await
        .map_err(|e| get_error(KIND, name, ns, e))?
        .ok_or_else(|| {
            get_error(
                KIND,
                name,
                ns,
                not_found::<HorizontalPodAutoscaler>(&(), name),
            )
        })
}

/// Reads the target's ScaledObject; the API server's 404 text when it is missing.
async fn get_scaled_object(
    api: &Api<DynamicObject>,
    cache: &Cache,
    name: &str,
    ns: &str,
) -> Result<DynamicObject, WorkloadError> {
    const KIND: &str = "ScaledObject";
    let resource = scaled_object_resource();
    cache
        .get(api, name)
        .await
        .map_err(|e| get_error(KIND, name, ns, e))?
        .ok_or_else(|| get_error(KIND, name, ns, not_found::<DynamicObject>(&resource, name)))
}

fn scaled_object_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &scaled_object_resource())
}

/// The minimum replicas of the target's autoscaler (HPA `minReplicas`, KEDA
/// `minReplicaCount`), `None` without `autoscalerRef`: what a primary workload scaled up from
/// zero falls back to.
pub async fn min_replicas(
    client: &kube::Client,
    cache: &Cache,
    canary: &Canary,
) -> Result<Option<i32>, WorkloadError> {
    let Some(r) = canary.spec.autoscaler_ref.as_ref() else {
        return Ok(None);
    };
    let ns = namespace(canary);
    match r.kind.as_str() {
        "HorizontalPodAutoscaler" => {
            let api = Api::namespaced(client.clone(), &ns);
            let hpa = get_hpa(&api, cache, &r.name, &ns).await?;
            Ok(hpa.spec.and_then(|s| s.min_replicas))
        }
        "ScaledObject" => {
            let so =
                get_scaled_object(&scaled_object_api(client, &ns), cache, &r.name, &ns).await?;
            Ok(so.data["spec"]["minReplicaCount"]
                .as_i64()
                .and_then(|v| i32::try_from(v).ok()))
        }
        other => Err(unsupported_kind(other)),
    }
}

fn scaler_replicas(canary: &Canary) -> (Option<i32>, Option<i32>) {
    let r = canary
        .spec
        .autoscaler_ref
        .as_ref()
        .and_then(|r| r.primary_scaler_replicas.as_ref());
    (
        r.and_then(|r| r.min_replicas),
        r.and_then(|r| r.max_replicas),
    )
}

// ---------------------------------------------------------------------------------------------
// HorizontalPodAutoscaler

/// The primary HPA's spec: the target's, pointed at `<target>-primary`, with
/// `primaryScalerReplicas` overrides.
pub fn primary_hpa_spec(
    canary: &Canary,
    source: &HorizontalPodAutoscaler,
) -> HorizontalPodAutoscalerSpec {
    let spec = source.spec.clone().unwrap_or_default();
    let (min, max) = scaler_replicas(canary);
    HorizontalPodAutoscalerSpec {
        scale_target_ref: CrossVersionObjectReference {
            api_version: spec.scale_target_ref.api_version.clone(),
            kind: spec.scale_target_ref.kind.clone(),
            name: canary.spec.primary_workload_name(),
        },
        min_replicas: min.or(spec.min_replicas),
        max_replicas: max.unwrap_or(spec.max_replicas),
        metrics: spec.metrics.clone(),
        behavior: spec.behavior.clone(),
    }
}

/// Flagger's log line for a write of the primary HPA (`pkg/canary/hpa_reconciler.go`):
/// `HorizontalPodAutoscaler v2 <name>.<ns> created` or `... updated`.
fn primary_hpa_log(primary_name: &str, ns: &str, what: &str) -> String {
    format!("HorizontalPodAutoscaler v2 {primary_name}.{ns} {what}")
}

/// The primary HPA `<hpa>-primary` created from `source` (labels without toolkit keys).
pub fn build_primary_hpa(
    canary: &Canary,
    source: &HorizontalPodAutoscaler,
    owner: OwnerReference,
) -> HorizontalPodAutoscaler {
    let labels = filter_toolkit(source.metadata.labels.as_ref());
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-primary",
                source.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: Some(namespace(canary)),
            labels: (!labels.is_empty()).then_some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(primary_hpa_spec(canary, source)),
        status: None,
    }
}

/// The update of an existing primary HPA (only outside initialisation): min (unset = 1), max,
/// metrics and behavior from the target's, and the prefix-filtered labels and annotations of the
/// target's HPA.
pub fn hpa_update_patch(
    canary: &Canary,
    source: &HorizontalPodAutoscaler,
    primary: &HorizontalPodAutoscaler,
    config: &WorkloadConfig,
) -> Option<Value> {
    let desired = primary_hpa_spec(canary, source);
    let live = primary.spec.clone().unwrap_or_default();
    let owned = |s: &HorizontalPodAutoscalerSpec| {
        json!({
            "minReplicas": s.min_replicas.unwrap_or(1),
            "maxReplicas": s.max_replicas,
            "metrics": s.metrics,
            "behavior": s.behavior,
        })
    };
    let mut patch = Map::new();
    if let Some(p) = merge_patch_diff(&owned(&live), &owned(&desired)) {
        patch.insert("spec".into(), p);
    }
    let labels = config.include_by_prefix(source.metadata.labels.as_ref());
    let annotations = config.include_by_prefix(source.metadata.annotations.as_ref());
    if let Some(meta) = exact_metadata_patch(&primary.metadata, &labels, &annotations) {
        patch.insert("metadata".into(), meta);
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// Primary HPA reconciler; pausing is a no-op (the target HPA does not scale a Deployment at 0).
#[derive(Clone)]
pub struct HpaReconciler {
    client: kube::Client,
    config: WorkloadConfig,
    cache: Cache,
}

impl HpaReconciler {
    pub fn new(client: kube::Client, config: WorkloadConfig) -> Self {
        Self {
            client,
            config,
            cache: Cache::disabled(),
        }
    }

    /// Reads the HPAs through `cache`.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }
}

#[async_trait]
impl ScalerReconciler for HpaReconciler {
    async fn reconcile_primary(&self, canary: &Canary, init: bool) -> Result<(), WorkloadError> {
        let Some(r) = canary.spec.autoscaler_ref.as_ref() else {
            return Ok(());
        };
        let ns = namespace(canary);
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), &ns);
        let source = get_hpa(&api, &self.cache, &r.name, &ns).await?;
        let primary_name = format!("{}-primary", r.name);
        let live = self
            .cache
            .get(&api, &primary_name)
            .await
            .map_err(|e| get_error("HorizontalPodAutoscaler", &primary_name, &ns, e))?;
        match live {
            None => {
                let owner = require_owner_reference(canary).map_err(WorkloadError::Invalid)?;
                let primary = build_primary_hpa(canary, &source, owner);
                self.cache
                    .create(&api, &post_params(), &primary)
                    .await
                    .map_err(|source| WorkloadError::Api {
                        context: format!(
                            "creating HorizontalPodAutoscaler {primary_name}.{ns} failed"
                        ),
                        source,
                    })?;
                tracing::info!(canary = %canary_id(canary), "{}", primary_hpa_log(&primary_name, &ns, "created"));
            }
            Some(live) if !init => {
                if let Some(patch) = hpa_update_patch(canary, &source, &live, &self.config) {
                    self.cache
                        .patch(&api, &primary_name, &patch_params(), &Patch::Merge(&patch))
                        .await
                        .map_err(|source| WorkloadError::Api {
                            context: format!(
                                "updating HorizontalPodAutoscaler {primary_name}.{ns} failed"
                            ),
                            source,
                        })?;
                    tracing::info!(canary = %canary_id(canary), "{}", primary_hpa_log(&primary_name, &ns, "updated"));
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    async fn pause_target(&self, _canary: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }

    async fn resume_target(&self, _canary: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// KEDA ScaledObject

const COPIED_SCALED_OBJECT_FIELDS: &[&str] = &[
    "pollingInterval",
    "cooldownPeriod",
    "minReplicaCount",
    "maxReplicaCount",
    "advanced",
    "triggers",
    "fallback",
    "idleReplicaCount",
];

/// Rewrites a trigger query for the primary: `<target>` becomes `<target>-primary`, while
/// `<target>-canary` stays as it is.
pub fn rewrite_query(query: &str, target: &str) -> String {
    const PLACEHOLDER: &str = "\u{0}serin-canary\u{0}";
    let canary = format!("{target}-canary");
    query
        .replace(&canary, PLACEHOLDER)
        .replace(target, &format!("{target}-primary"))
        .replace(PLACEHOLDER, &canary)
}

/// The primary ScaledObject's spec from the target's.
pub fn primary_scaled_object_spec(canary: &Canary, source_spec: &Value) -> Value {
    let mut spec = Map::new();
    for f in COPIED_SCALED_OBJECT_FIELDS {
        if let Some(v) = source_spec.get(*f).filter(|v| !v.is_null()) {
            spec.insert((*f).to_string(), v.clone());
        }
    }
    let mut target_ref = Map::new();
    for f in ["kind", "apiVersion", "envSourceContainerName"] {
        if let Some(v) = source_spec["scaleTargetRef"]
            .get(f)
            .filter(|v| !v.is_null())
        {
            target_ref.insert(f.to_string(), v.clone());
        }
    }
    target_ref.insert("name".into(), json!(canary.spec.primary_workload_name()));
    spec.insert("scaleTargetRef".into(), Value::Object(target_ref));
    if let Some(name) = spec
        .get_mut("advanced")
        .and_then(|a| a.get_mut("horizontalPodAutoscalerConfig"))
        .and_then(|h| h.get_mut("name"))
        && let Some(n) = name.as_str().filter(|n| !n.is_empty())
    {
        *name = json!(format!("{n}-primary"));
    }
    let (min, max) = scaler_replicas(canary);
    if let Some(min) = min {
        spec.insert("minReplicaCount".into(), json!(min));
    }
    if let Some(max) = max {
        spec.insert("maxReplicaCount".into(), json!(max));
    }
    let queries = canary
        .spec
        .autoscaler_ref
        .as_ref()
        .and_then(|r| r.primary_scaler_queries.clone());
    let target = canary.spec.target_ref.name.as_str();
    if let Some(Value::Array(triggers)) = spec.get_mut("triggers") {
        for trigger in triggers.iter_mut() {
            let name = trigger
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string);
            let Some(query) = trigger.get_mut("metadata").and_then(|m| m.get_mut("query")) else {
                continue;
            };
            match &queries {
                Some(q) => {
                    if let Some(replacement) = name.and_then(|n| q.get(&n)) {
                        *query = json!(replacement);
                    }
                }
                None => {
                    if let Some(text) = query.as_str() {
                        *query = json!(rewrite_query(text, target));
                    }
                }
            }
        }
    }
    Value::Object(spec)
}

fn scaled_object_metadata(
    source: &ObjectMeta,
    filter: impl Fn(Option<&BTreeMap<String, String>>) -> BTreeMap<String, String>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let labels = filter(source.labels.as_ref());
    let mut annotations = filter(source.annotations.as_ref());
    annotations.remove(PAUSED_REPLICAS_ANNOTATION);
    (labels, annotations)
}

/// The primary ScaledObject `<so>-primary` (labels and annotations of the target's without
/// toolkit keys and without KEDA's pause annotation).
pub fn build_primary_scaled_object(
    canary: &Canary,
    source: &DynamicObject,
    owner: OwnerReference,
) -> Value {
    let (labels, annotations) = scaled_object_metadata(&source.metadata, filter_toolkit);
    let name = format!(
        "{}-primary",
        source.metadata.name.as_deref().unwrap_or_default()
    );
    json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": name,
            "namespace": namespace(canary),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner],
        },
        "spec": primary_scaled_object_spec(canary, &source.data["spec"]),
    })
}

/// The update of an existing primary ScaledObject: the spec when it differs, and the
/// prefix-filtered labels/annotations of the target's.
pub fn scaled_object_update_patch(
    canary: &Canary,
    source: &DynamicObject,
    primary: &DynamicObject,
    config: &WorkloadConfig,
) -> Option<Value> {
    let desired = primary_scaled_object_spec(canary, &source.data["spec"]);
    let mut patch = Map::new();
    if let Some(p) = merge_patch_diff(&primary.data["spec"], &desired) {
        patch.insert("spec".into(), p);
    }
    let (labels, annotations) =
        scaled_object_metadata(&source.metadata, |m| config.include_by_prefix(m));
    if let Some(meta) = exact_metadata_patch(&primary.metadata, &labels, &annotations) {
        patch.insert("metadata".into(), meta);
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// Primary ScaledObject reconciler; pausing sets KEDA's `paused-replicas: "0"` on the target's.
#[derive(Clone)]
pub struct ScaledObjectReconciler {
    client: kube::Client,
    config: WorkloadConfig,
    cache: Cache,
}

impl ScaledObjectReconciler {
    pub fn new(client: kube::Client, config: WorkloadConfig) -> Self {
        Self {
            client,
            config,
            cache: Cache::disabled(),
        }
    }

    /// Reads the ScaledObjects through `cache`.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    fn api(&self, canary: &Canary) -> Api<DynamicObject> {
        scaled_object_api(&self.client, &namespace(canary))
    }

    async fn get_source(&self, canary: &Canary) -> Result<Option<DynamicObject>, WorkloadError> {
        let Some(r) = canary.spec.autoscaler_ref.as_ref() else {
            return Ok(None);
        };
        let ns = namespace(canary);
        get_scaled_object(&self.api(canary), &self.cache, &r.name, &ns)
            .await
            .map(Some)
    }

    async fn set_paused(&self, canary: &Canary, paused: bool) -> Result<(), WorkloadError> {
        let Some(source) = self.get_source(canary).await? else {
            return Ok(());
        };
        let name = source.metadata.name.clone().unwrap_or_default();
        let current = source
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PAUSED_REPLICAS_ANNOTATION));
        let value = match (paused, current) {
            (true, Some(v)) if v == "0" => return Ok(()),
            (false, None) => return Ok(()),
            (true, _) => json!("0"),
            (false, Some(_)) => Value::Null,
        };
        self.cache
            .patch(
                &self.api(canary),
                &name,
                &patch_params(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {PAUSED_REPLICAS_ANNOTATION: value}}}),
                ),
            )
            .await
            .map_err(|source| WorkloadError::Api {
                context: format!("updating ScaledObject {name}.{} failed", namespace(canary)),
                source,
            })?;
        Ok(())
    }
}

#[async_trait]
impl ScalerReconciler for ScaledObjectReconciler {
    async fn reconcile_primary(&self, canary: &Canary, init: bool) -> Result<(), WorkloadError> {
        let Some(source) = self.get_source(canary).await? else {
            return Ok(());
        };
        let ns = namespace(canary);
        let primary_name = format!(
            "{}-primary",
            source.metadata.name.as_deref().unwrap_or_default()
        );
        let api = self.api(canary);
        let live = self
            .cache
            .get(&api, &primary_name)
            .await
            .map_err(|e| get_error("ScaledObject", &primary_name, &ns, e))?;
        match live {
            None => {
                let owner = require_owner_reference(canary).map_err(WorkloadError::Invalid)?;
                let value = build_primary_scaled_object(canary, &source, owner);
                let obj: DynamicObject = serde_json::from_value(value).map_err(|e| {
                    WorkloadError::Invalid(format!(
                        "ScaledObject {primary_name}.{ns} cannot be built: {e}"
                    ))
                })?;
                self.cache
                    .create(&api, &post_params(), &obj)
                    .await
                    .map_err(|source| WorkloadError::Api {
                        context: format!("creating ScaledObject {primary_name}.{ns} failed"),
                        source,
                    })?;
                tracing::info!(canary = %canary_id(canary), "ScaledObject {primary_name}.{ns} created");
            }
            Some(live) if !init => {
                if let Some(patch) =
                    scaled_object_update_patch(canary, &source, &live, &self.config)
                {
                    self.cache
                        .patch(&api, &primary_name, &patch_params(), &Patch::Merge(&patch))
                        .await
                        .map_err(|source| WorkloadError::Api {
                            context: format!("updating ScaledObject {primary_name}.{ns} failed"),
                            source,
                        })?;
                    tracing::info!(canary = %canary_id(canary), "ScaledObject {primary_name}.{ns} updated");
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    async fn pause_target(&self, canary: &Canary) -> Result<(), WorkloadError> {
        self.set_paused(canary, true).await
    }

    async fn resume_target(&self, canary: &Canary) -> Result<(), WorkloadError> {
        self.set_paused(canary, false).await
    }
}

#[cfg(test)]
mod tests;
