//! Plain `kind: Service` targets (Flagger's `ServiceController`, `pkg/canary/service_controller.go`):
//! the target Service is copied to `<target>-canary` (kept in step with the target on every
//! tick) and to `<target>-primary` (created once, then changed only by promotion). There are no
//! pods to scale, no configs to track and nothing to wait for; the revision is the target's
//! `spec`. Typical use: two backends behind one name, the target's selector (or other spec
//! fields) choosing the release, routed by Gateway API or Istio.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::Patch;
use serde_json::{Map, Value, json};

use super::{Revision, TargetController, TargetMetadata, WorkloadError};
use crate::api::Canary;
use crate::k8s::cache::Cache;
use crate::k8s::error::not_found;
use crate::k8s::meta::{
    KUBECTL_LAST_APPLIED, canary_id, exact_metadata_patch, filter_toolkit, merge_patch_diff,
    namespace, patch_params, post_params, require_owner_reference, revision_hash,
};
use crate::workload::WorkloadConfig;

/// Spec fields the API server gives each Service on its own: never copied from the target and
/// never changed on a copy (a copy keeps its own cluster IPs and health-check node port).
const PER_SERVICE_SPEC_FIELDS: [&str; 3] = ["clusterIP", "clusterIPs", "healthCheckNodePort"];

/// Name of the canary copy, `<target>-canary` (Flagger names the copies after the target, not
/// after `service.name`).
pub fn canary_copy_name(canary: &Canary) -> String {
    format!("{}-canary", canary.spec.target_ref.name)
}

/// Whether a Service is headless (`clusterIP: None`), which a copy must stay.
fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
}

/// Whether the API server allocates node ports for this Service type.
fn has_node_ports(spec: &ServiceSpec) -> bool {
    matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"))
}

/// The target's spec as a copy gets it: its own cluster IPs and node ports left to the API
/// server (a headless target stays headless), `service.trafficDistribution` applied.
pub fn copied_spec(canary: &Canary, target: &Service) -> ServiceSpec {
    let mut spec = target.spec.clone().unwrap_or_default();
    if !is_headless(&spec) {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
    }
    spec.health_check_node_port = None;
    for port in spec.ports.iter_mut().flatten() {
        port.node_port = None;
    }
    if let Some(td) = canary
        .spec
        .service
        .as_ref()
        .and_then(|s| s.traffic_distribution.clone())
        .filter(|t| !t.is_empty())
    {
        spec.traffic_distribution = Some(td);
    }
    spec
}

/// The target's annotations as the canary copy carries them: without `kubectl`'s last-applied
/// configuration and Flux's ownership keys.
fn copied_annotations(target: &Service) -> BTreeMap<String, String> {
    let mut out = filter_toolkit(target.metadata.annotations.as_ref());
    out.remove(KUBECTL_LAST_APPLIED);
    out
}

/// A copy of `target` named `name`, owned by the Canary, as Serin creates it.
pub fn build_copy(canary: &Canary, target: &Service, name: &str, owner: OwnerReference) -> Service {
    let labels = filter_toolkit(target.metadata.labels.as_ref());
    let annotations = copied_annotations(target);
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace(canary)),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(copied_spec(canary, target)),
        status: None,
    }
}

/// The spec fields a copy takes from its target, as JSON: everything but the per-Service ones,
/// and ports without their node ports.
fn owned_spec(spec: &ServiceSpec) -> Value {
    let mut value = serde_json::to_value(spec).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        for field in PER_SERVICE_SPEC_FIELDS {
            map.remove(field);
        }
        if let Some(ports) = map.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
    }
    value
}

/// Whether the API server keeps a health-check node port for this Service.
fn has_health_check_node_port(spec: &ServiceSpec) -> bool {
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec.external_traffic_policy.as_deref() == Some("Local")
}

/// The `spec` part of a merge patch that makes `live` carry `desired`'s owned fields; a new port
/// list keeps the node ports `live` already has for ports of the same name. Node ports (and the
/// health-check node port) the desired type does not allow are removed.
fn spec_patch(live: &ServiceSpec, desired: &ServiceSpec) -> Option<Value> {
    let mut patch = merge_patch_diff(&owned_spec(live), &owned_spec(desired)).unwrap_or(json!({}));
    let live_node_ports = live.ports.iter().flatten().any(|p| p.node_port.is_some());
    let ports_patched = patch.get("ports").is_some_and(|p| !p.is_null());
    if ports_patched || (live_node_ports && !has_node_ports(desired)) {
        let mut ports = desired.ports.clone().unwrap_or_default();
        for port in ports.iter_mut() {
            port.node_port = live
                .ports
                .iter()
                .flatten()
                .find(|l| l.name == port.name)
                .and_then(|l| l.node_port)
                .filter(|_| has_node_ports(desired));
        }
        patch["ports"] = json!(ports);
    }
    if live.health_check_node_port.is_some() && !has_health_check_node_port(desired) {
        patch["healthCheckNodePort"] = Value::Null;
    }
    (patch != json!({})).then_some(patch)
}

fn join_patch(spec: Option<Value>, metadata: Option<Value>) -> Option<Value> {
    let mut patch = Map::new();
    if let Some(s) = spec {
        patch.insert("spec".into(), s);
    }
    if let Some(m) = metadata {
        patch.insert("metadata".into(), m);
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// The merge patch that re-syncs the canary copy with the target: spec (its own cluster IPs and
/// node ports kept) and labels and annotations exactly the target's (without `kubectl`'s
/// last-applied configuration and Flux's keys). `None` when it is in step.
pub fn canary_sync_patch(canary: &Canary, target: &Service, live: &Service) -> Option<Value> {
    let desired = copied_spec(canary, target);
    let spec = spec_patch(&live.spec.clone().unwrap_or_default(), &desired);
    let labels = filter_toolkit(target.metadata.labels.as_ref());
    let metadata = exact_metadata_patch(&live.metadata, &labels, &copied_annotations(target));
    join_patch(spec, metadata)
}

/// The merge patch promotion sends to the primary copy: the target's spec (the primary's own
/// cluster IPs and node ports kept) and the target's labels and annotations filtered by
/// `-include-label-prefix`, as for the other targets. `None` when the primary is in step.
pub fn promote_patch(
    canary: &Canary,
    target: &Service,
    primary: &Service,
    config: &WorkloadConfig,
) -> Option<Value> {
    let desired = copied_spec(canary, target);
    let spec = spec_patch(&primary.spec.clone().unwrap_or_default(), &desired);
    let labels = config.include_by_prefix(target.metadata.labels.as_ref());
    let mut annotations = config.include_by_prefix(target.metadata.annotations.as_ref());
    annotations.remove(KUBECTL_LAST_APPLIED);
    let metadata = exact_metadata_patch(&primary.metadata, &labels, &annotations);
    join_patch(spec, metadata)
}

/// The revision hash of a Service target: the canonical hash of its `spec`, as Flagger hashes
/// the spec (Deployments hash their pod template the same way).
pub fn spec_hash(target: &Service) -> String {
    revision_hash(&serde_json::to_value(&target.spec).unwrap_or(Value::Null))
}

fn get_error(canary: &Canary, name: &str, source: kube::Error) -> WorkloadError {
    WorkloadError::Api {
        context: format!("service {name}.{} get query error", namespace(canary)),
        source,
    }
}

/// The plain Service target controller.
#[derive(Clone)]
pub struct ServiceTargetController {
    client: kube::Client,
    config: WorkloadConfig,
    cache: Cache,
}

impl ServiceTargetController {
    pub fn new(client: kube::Client, config: WorkloadConfig) -> Self {
        Self {
            client,
            config,
            cache: Cache::disabled(),
        }
    }

    /// Reads and writes the Services through `cache`.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    fn api(&self, canary: &Canary) -> Api<Service> {
        Api::namespaced(self.client.clone(), &namespace(canary))
    }

    async fn get_opt(&self, canary: &Canary, name: &str) -> Result<Option<Service>, WorkloadError> {
        self.cache
            .get(&self.api(canary), name)
            .await
            .map_err(|source| get_error(canary, name, source))
    }

    async fn get(&self, canary: &Canary, name: &str) -> Result<Service, WorkloadError> {
        self.get_opt(canary, name)
            .await?
            .ok_or_else(|| get_error(canary, name, not_found::<Service>(&(), name)))
    }

    async fn target(&self, canary: &Canary) -> Result<Service, WorkloadError> {
        self.get(canary, &canary.spec.target_ref.name).await
    }

    async fn create_copy(
        &self,
        canary: &Canary,
        target: &Service,
        name: &str,
    ) -> Result<(), WorkloadError> {
        let owner = require_owner_reference(canary).map_err(WorkloadError::Invalid)?;
        let copy = build_copy(canary, target, name, owner);
        let ns = namespace(canary);
        self.cache
            .create(&self.api(canary), &post_params(), &copy)
            .await
            .map_err(|source| WorkloadError::Api {
                context: format!("creating service {name}.{ns} failed"),
                source,
            })?;
        tracing::info!(canary = %canary_id(canary), "Service {name}.{ns} created");
        Ok(())
    }

    async fn patch(
        &self,
        canary: &Canary,
        name: &str,
        patch: &Value,
        context: &str,
    ) -> Result<(), WorkloadError> {
        self.cache
            .patch(
                &self.api(canary),
                name,
                &patch_params(),
                &Patch::Merge(patch),
            )
            .await
            .map_err(|source| WorkloadError::Api {
                context: context.to_string(),
                source,
            })?;
        Ok(())
    }

    /// Creates the canary copy, or brings it in step with the target.
    async fn reconcile_canary_copy(
        &self,
        canary: &Canary,
        target: &Service,
    ) -> Result<(), WorkloadError> {
        let name = canary_copy_name(canary);
        let ns = namespace(canary);
        let Some(live) = self.get_opt(canary, &name).await? else {
            return self.create_copy(canary, target, &name).await;
        };
        if let Some(patch) = canary_sync_patch(canary, target, &live) {
            let context = format!("updating service {name}.{ns} failed");
            self.patch(canary, &name, &patch, &context).await?;
            tracing::info!(canary = %canary_id(canary), "Service {name}.{ns} updated");
        }
        Ok(())
    }
}

#[async_trait]
impl TargetController for ServiceTargetController {
    /// A Service target has no pods: no selector label, no discovered ports.
    async fn metadata(&self, _canary: &Canary) -> Result<TargetMetadata, WorkloadError> {
        Ok(TargetMetadata::default())
    }

    async fn initialize(
        &self,
        canary: &Canary,
        _wait_primary_ready: bool,
    ) -> Result<(), WorkloadError> {
        let target = self.target(canary).await?;
        self.reconcile_canary_copy(canary, &target).await?;
        let primary = canary.spec.primary_workload_name();
        if self.get_opt(canary, &primary).await?.is_none() {
            self.create_copy(canary, &target, &primary).await?;
        }
        Ok(())
    }

    async fn promote(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let target = self.target(canary).await?;
        let name = canary.spec.primary_workload_name();
        let primary = self.get(canary, &name).await?;
        if let Some(patch) = promote_patch(canary, &target, &primary, &self.config) {
            let context = format!("updating service {name}.{} spec failed", namespace(canary));
            self.patch(canary, &name, &patch, &context).await?;
        }
        Ok(())
    }

    async fn is_primary_ready(&self, _canary: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }

    async fn is_canary_ready(&self, _canary: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }

    async fn revision(&self, canary: &Canary) -> Result<Revision, WorkloadError> {
        let target = self.target(canary).await?;
        Ok(Revision {
            spec_hash: spec_hash(&target),
            tracked_configs: BTreeMap::new(),
        })
    }

    async fn scale_to_zero(&self, _canary: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }

    async fn scale_from_zero(&self, _canary: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }

    async fn finalize(&self, _canary: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
