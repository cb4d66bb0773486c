//! Pieces shared by the Deployment and DaemonSet controllers: the primary pod template, the
//! affinity rewrite, port discovery, owned-field patches and readiness errors.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::WorkloadError;
use super::config_tracker::{TrackedConfigs, rewrite_pod_spec};
use crate::api::Canary;
use crate::k8s::meta::{primary_labels, primary_pod_annotations};

/// Containers whose ports are never discovered (mesh sidecars).
const SIDECARS: &[&str] = &["istio-proxy", "envoy"];

/// `service.portDiscovery`: every container port except the main one (matching `targetPort`) and
/// the sidecars', named after the container port or `tcp-<container>-<index>`.
pub fn discovered_ports(canary: &Canary, containers: &[Container]) -> BTreeMap<String, i32> {
    let Some(svc) = canary.spec.service.as_ref() else {
        return BTreeMap::new();
    };
    if svc.port_discovery != Some(true) {
        return BTreeMap::new();
    }
    let target_port = svc.target_port();
    let mut ports = BTreeMap::new();
    for container in containers {
        if SIDECARS.contains(&container.name.as_str()) {
            continue;
        }
        for (index, port) in container.ports.iter().flatten().enumerate() {
            let is_main = match &target_port {
                IntOrString::Int(n) => port.container_port == *n,
                IntOrString::String(name) => port.name.as_deref() == Some(name.as_str()),
            };
            if is_main {
                continue;
            }
            let name = match port.name.as_deref() {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => format!("tcp-{}-{index}", container.name),
            };
            ports.insert(name, port.container_port);
        }
    }
    ports
}

fn rewrite_selector(selector: &mut LabelSelector, keys: &[String], target_name: &str) {
    for (k, v) in selector.match_labels.iter_mut().flatten() {
        if keys.contains(k) && v == target_name {
            v.push_str("-primary");
        }
    }
    for expr in selector.match_expressions.iter_mut().flatten() {
        if keys.contains(&expr.key) {
            for v in expr.values.iter_mut().flatten() {
                if v == target_name {
                    v.push_str("-primary");
                }
            }
        }
    }
}

/// Points the pod's topology spread constraints and pod anti-affinity (required and preferred)
/// at the primary pods: selector values equal to the target name under one of the selector label
/// keys get `-primary` appended.
pub fn rewrite_affinity(spec: &mut PodSpec, keys: &[String], target_name: &str) {
    for c in spec.topology_spread_constraints.iter_mut().flatten() {
        if let Some(sel) = c.label_selector.as_mut() {
            rewrite_selector(sel, keys, target_name);
        }
    }
    if let Some(anti) = spec
        .affinity
        .as_mut()
        .and_then(|a| a.pod_anti_affinity.as_mut())
    {
        for term in anti
            .required_during_scheduling_ignored_during_execution
            .iter_mut()
            .flatten()
        {
            if let Some(sel) = term.label_selector.as_mut() {
                rewrite_selector(sel, keys, target_name);
            }
        }
        for weighted in anti
            .preferred_during_scheduling_ignored_during_execution
            .iter_mut()
            .flatten()
        {
            if let Some(sel) = weighted.pod_affinity_term.label_selector.as_mut() {
                rewrite_selector(sel, keys, target_name);
            }
        }
    }
}

/// What the primary's pod template is made from.
pub struct PrimaryTemplate<'a> {
    pub label: &'a str,
    pub primary_label_value: &'a str,
    pub tracked: &'a TrackedConfigs,
    pub flagger_id: &'a str,
    /// `(selector label keys, target name)` when the affinity rewrite applies (Deployments).
    pub affinity: Option<(&'a [String], &'a str)>,
}

/// The primary's pod template: the target's, with the selector label set to the primary value,
/// a fresh `flagger-id`, tracked configs renamed and (Deployments) the affinity rewrite.
pub fn primary_template(target: &PodTemplateSpec, p: &PrimaryTemplate<'_>) -> PodTemplateSpec {
    let meta = target.metadata.clone().unwrap_or_default();
    let mut spec = target.spec.clone().unwrap_or_default();
    rewrite_pod_spec(&mut spec, p.tracked);
    if let Some((keys, target_name)) = p.affinity {
        rewrite_affinity(&mut spec, keys, target_name);
    }
    PodTemplateSpec {
        metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            labels: Some(primary_labels(
                meta.labels.as_ref(),
                p.label,
                p.primary_label_value,
            )),
            annotations: Some(primary_pod_annotations(
                meta.annotations.as_ref(),
                p.flagger_id,
            )),
            ..Default::default()
        }),
        spec: Some(spec),
    }
}

/// Annotation keys written by Kubernetes on workloads; promotion never removes them.
pub fn is_system_annotation(key: &str) -> bool {
    key.starts_with("deployment.kubernetes.io/")
        || key.starts_with("kubectl.kubernetes.io/")
        || key.starts_with("deprecated.daemonset.template.generation")
}

/// A readiness failure: the message and whether waiting may fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    pub retriable: bool,
    pub message: String,
}

impl NotReady {
    pub fn retriable(message: String) -> Self {
        Self {
            retriable: true,
            message,
        }
    }

    /// The error with `prefix` (`<name>.<ns> not ready`) in front of the message.
    pub fn into_error(self, prefix: &str) -> WorkloadError {
        let message = format!("{prefix}: {}", self.message);
        if self.retriable {
            WorkloadError::NotReady(message)
        } else {
            WorkloadError::Failed(message)
        }
    }
}

/// A fresh `flagger-id`.
pub fn new_flagger_id() -> Result<String, WorkloadError> {
    crate::k8s::meta::uuid_v4().map_err(WorkloadError::Invalid)
}
