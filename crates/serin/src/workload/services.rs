//! The generated ClusterIP Services of Deployment and DaemonSet targets (Flagger's
//! `KubernetesDefaultRouter`): `<apex>-canary` and `<apex>-primary` (Initialize) and the apex
//! `<apex>` selecting the primary pods (Reconcile); a pre-existing apex Service is adopted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::{Patch, PostParams};
use serde_json::{Map, Value, json};

use super::{TargetMetadata, WorkloadError};
use crate::api::Canary;
use crate::api::service::{CanaryService, CustomMetadata};
use crate::k8s::cache::Cache;
use crate::k8s::meta::{
    FIELD_MANAGER, FLUX_HELM_DRIFT_DETECTION, FLUX_KUSTOMIZE_RECONCILE, KUBECTL_LAST_APPLIED,
    canary_id, canary_owner_reference, is_controlled_by, is_controlled_by_a_canary,
    merge_patch_diff, namespace, patch_params,
};

/// Which generated Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceRole {
    /// `<apex>`: selects the primary pods.
    Apex,
    /// `<apex>-primary`: selects the primary pods.
    Primary,
    /// `<apex>-canary`: selects the target pods.
    Canary,
}

fn service_spec(canary: &Canary) -> Result<&CanaryService, WorkloadError> {
    canary.spec.service.as_ref().ok_or_else(|| {
        WorkloadError::Invalid(format!("canary {} has no spec.service", canary_id(canary)))
    })
}

/// Name, selector value and custom metadata of a role.
fn role_parts<'a>(
    canary: &'a Canary,
    svc: &'a CanaryService,
    role: ServiceRole,
    meta: &TargetMetadata,
) -> (String, String, Option<&'a CustomMetadata>) {
    let (apex, primary, canary_name) = canary.spec.service_names();
    let primary_value = format!("{}-primary", meta.label_value);
    match role {
        ServiceRole::Apex => (apex, primary_value, svc.apex.as_ref()),
        ServiceRole::Primary => (primary, primary_value, svc.primary.as_ref()),
        ServiceRole::Canary => (canary_name, meta.label_value.clone(), svc.canary.as_ref()),
    }
}

/// The ports of the generated Services: the main port and the discovered ones.
pub fn service_ports(svc: &CanaryService, meta: &TargetMetadata) -> Vec<ServicePort> {
    let mut ports = vec![ServicePort {
        name: Some(svc.port_name().to_string()),
        protocol: Some("TCP".to_string()),
        port: svc.port,
        target_port: Some(svc.target_port()),
        app_protocol: svc.app_protocol.clone().filter(|p| !p.is_empty()),
        ..Default::default()
    }];
    for (name, port) in &meta.ports {
        ports.push(ServicePort {
            name: Some(name.clone()),
            protocol: Some("TCP".to_string()),
            port: *port,
            target_port: Some(IntOrString::Int(*port)),
            ..Default::default()
        });
    }
    ports
}

fn desired_labels(
    custom: Option<&CustomMetadata>,
    label: &str,
    name: &str,
) -> BTreeMap<String, String> {
    let mut labels = custom.and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(label.to_string(), name.to_string());
    labels
}

fn desired_annotations(custom: Option<&CustomMetadata>) -> BTreeMap<String, String> {
    let mut annotations = custom
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    annotations.insert(FLUX_KUSTOMIZE_RECONCILE.to_string(), "disabled".to_string());
    annotations.insert(
        FLUX_HELM_DRIFT_DETECTION.to_string(),
        "disabled".to_string(),
    );
    annotations
}

/// The Service Serin creates for `role`.
pub fn desired_service(
    canary: &Canary,
    role: ServiceRole,
    meta: &TargetMetadata,
) -> Result<Service, WorkloadError> {
    let svc = service_spec(canary)?;
    let (name, selector_value, custom) = role_parts(canary, svc, role, meta);
    Ok(Service {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace(canary)),
            labels: Some(desired_labels(custom, &meta.label, &name)),
            annotations: Some(desired_annotations(custom)),
            owner_references: canary_owner_reference(canary).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            cluster_ip: (svc.headless == Some(true)).then(|| "None".to_string()),
            selector: Some([(meta.label.clone(), selector_value)].into()),
            ports: Some(service_ports(svc, meta)),
            traffic_distribution: svc.traffic_distribution.clone().filter(|t| !t.is_empty()),
            ..Default::default()
        }),
        status: None,
    })
}

type PortKey = (String, String, i32, String, String);

fn port_key(p: &ServicePort) -> PortKey {
    let target = match p.target_port.clone().unwrap_or(IntOrString::Int(p.port)) {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s,
    };
    (
        p.name.clone().unwrap_or_default(),
        p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
        p.port,
        target,
        p.app_protocol.clone().unwrap_or_default(),
    )
}

/// Whether two port lists differ (order-insensitive; defaults and node ports ignored).
pub fn ports_differ(live: &[ServicePort], desired: &[ServicePort]) -> bool {
    let mut a: Vec<PortKey> = live.iter().map(port_key).collect();
    let mut b: Vec<PortKey> = desired.iter().map(port_key).collect();
    a.sort();
    b.sort();
    a != b
}

/// The merge patch of an existing Service: ports (keeping node ports of same-named ports) and
/// selector when they differ, for any Service (this is how a pre-existing apex Service is taken
/// over); labels and annotations only when this Canary controls it (desired = custom metadata +
/// selector label + Flux annotations; `unmanagedMetadata` keys untouched; others removed). The
/// Flux annotations accompany every update.
pub fn service_update_patch(canary: &Canary, live: &Service, desired: &Service) -> Option<Value> {
    let live_spec = live.spec.clone().unwrap_or_default();
    let desired_spec = desired.spec.clone().unwrap_or_default();
    let mut spec = Map::new();
    let live_ports = live_spec.ports.clone().unwrap_or_default();
    let mut desired_ports = desired_spec.ports.clone().unwrap_or_default();
    if ports_differ(&live_ports, &desired_ports) {
        for p in desired_ports.iter_mut() {
            p.node_port = live_ports
                .iter()
                .find(|l| l.name == p.name)
                .and_then(|l| l.node_port);
        }
        spec.insert("ports".into(), json!(desired_ports));
    }
    if let Some(p) = merge_patch_diff(&json!(live_spec.selector), &json!(desired_spec.selector)) {
        spec.insert("selector".into(), p);
    }

    let controlled = is_controlled_by(&live.metadata, canary);
    let unmanaged = canary
        .spec
        .service
        .as_ref()
        .and_then(|s| s.unmanaged_metadata.clone())
        .unwrap_or_default();
    let mut meta = Map::new();
    let managed = |live: Option<&BTreeMap<String, String>>,
                   desired: Option<&BTreeMap<String, String>>,
                   keep: &[String],
                   remove_others: bool| {
        let live = live.cloned().unwrap_or_default();
        let mut desired = desired.cloned().unwrap_or_default();
        for k in keep {
            match live.get(k) {
                Some(v) => desired.insert(k.clone(), v.clone()),
                None => desired.remove(k),
            };
        }
        crate::k8s::meta::metadata_map_patch(Some(&live), &desired, remove_others, &[])
    };
    if controlled {
        if let Some(p) = managed(
            live.metadata.labels.as_ref(),
            desired.metadata.labels.as_ref(),
            unmanaged.labels.as_deref().unwrap_or(&[]),
            true,
        ) {
            meta.insert("labels".into(), p);
        }
        if let Some(p) = managed(
            live.metadata.annotations.as_ref(),
            desired.metadata.annotations.as_ref(),
            unmanaged.annotations.as_deref().unwrap_or(&[]),
            true,
        ) {
            meta.insert("annotations".into(), p);
        }
    } else if !spec.is_empty() {
        let flux = desired_annotations(None);
        if let Some(p) = crate::k8s::meta::metadata_map_patch(
            live.metadata.annotations.as_ref(),
            &flux,
            false,
            &[],
        ) {
            meta.insert("annotations".into(), p);
        }
    }

    let mut patch = Map::new();
    if !spec.is_empty() {
        patch.insert("spec".into(), Value::Object(spec));
    }
    if !meta.is_empty() {
        patch.insert("metadata".into(), Value::Object(meta));
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// The selector the apex Service gets back on deletion: the one in `kubectl`'s last-applied
/// configuration, else the target pods'.
pub fn restored_selector(live: &Service, meta: &TargetMetadata) -> BTreeMap<String, String> {
    let from_kubectl = live
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(KUBECTL_LAST_APPLIED))
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .and_then(|v| serde_json::from_value(v["spec"]["selector"].clone()).ok());
    from_kubectl.unwrap_or_else(|| [(meta.label.clone(), meta.label_value.clone())].into())
}

/// Writes the generated Services through the workload cluster's client.
#[derive(Clone)]
pub struct ServiceReconciler {
    client: kube::Client,
    cache: Cache,
}

impl ServiceReconciler {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
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

    pub async fn reconcile_service(
        &self,
        canary: &Canary,
        role: ServiceRole,
        meta: &TargetMetadata,
    ) -> Result<(), WorkloadError> {
        let desired = desired_service(canary, role, meta)?;
        let name = desired.metadata.name.clone().unwrap_or_default();
        let ns = namespace(canary);
        let api = self.api(canary);
        let live = self
            .cache
            .get(&api, &name)
            .await
            .map_err(|source| WorkloadError::Api {
                context: format!("service {name}.{ns} get query error"),
                source,
            })?;
        match live {
            None => {
                let pp = PostParams {
                    field_manager: Some(FIELD_MANAGER.to_string()),
                    ..Default::default()
                };
                self.cache
                    .create(&api, &pp, &desired)
                    .await
                    .map_err(|source| WorkloadError::Api {
                        context: format!("service {name}.{ns} create error"),
                        source,
                    })?;
                tracing::info!(canary = %canary_id(canary), "Service {name}.{ns} created");
            }
            Some(live) => {
                if let Some(patch) = service_update_patch(canary, &live, &desired) {
                    self.cache
                        .patch(&api, &name, &patch_params(), &Patch::Merge(&patch))
                        .await
                        .map_err(|source| WorkloadError::Api {
                            context: format!("service {name}.{ns} update error"),
                            source,
                        })?;
                    // Flagger's text names the Service without its namespace
                    // (`pkg/router/kubernetes_default.go`).
                    tracing::info!(canary = %canary_id(canary), "Service {name} updated");
                }
            }
        }
        Ok(())
    }

    /// Flagger's `Initialize`: the canary and primary Services.
    pub async fn initialize(
        &self,
        canary: &Canary,
        meta: &TargetMetadata,
    ) -> Result<(), WorkloadError> {
        self.reconcile_service(canary, ServiceRole::Canary, meta)
            .await?;
        self.reconcile_service(canary, ServiceRole::Primary, meta)
            .await
    }

    /// Flagger's `Reconcile`: the apex Service, selecting the primary pods.
    pub async fn reconcile(
        &self,
        canary: &Canary,
        meta: &TargetMetadata,
    ) -> Result<(), WorkloadError> {
        self.reconcile_service(canary, ServiceRole::Apex, meta)
            .await
    }

    /// On deletion with `revertOnDeletion`: an adopted apex Service (not controlled by any
    /// Canary) selects the target pods again (or its `kubectl`-applied selector).
    pub async fn finalize(
        &self,
        canary: &Canary,
        meta: &TargetMetadata,
    ) -> Result<(), WorkloadError> {
        let (apex, _, _) = canary.spec.service_names();
        let ns = namespace(canary);
        let api = self.api(canary);
        let live = self
            .cache
            .get(&api, &apex)
            .await
            .map_err(|source| WorkloadError::Api {
                context: format!("service {apex}.{ns} get query error"),
                source,
            })?;
        let Some(live) = live else {
            return Ok(());
        };
        if is_controlled_by_a_canary(&live.metadata) {
            return Ok(());
        }
        let selector = restored_selector(&live, meta);
        let current = live.spec.as_ref().and_then(|s| s.selector.clone());
        if let Some(p) = merge_patch_diff(&json!(current), &json!(selector)) {
            self.cache
                .patch(
                    &api,
                    &apex,
                    &patch_params(),
                    &Patch::Merge(json!({"spec": {"selector": p}})),
                )
                .await
                .map_err(|source| WorkloadError::Api {
                    context: format!("service {apex}.{ns} update error"),
                    source,
                })?;
            tracing::info!(canary = %canary_id(canary), "Service {apex}.{ns} reverted");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
