//! What the Deployment and DaemonSet target controllers share: typed reads with Flagger's error
//! texts, the selector label, the target metadata and the tracked configs of a pod template.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodSpec;
use kube::Api;
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::config_tracker::{ConfigTracker, TrackedConfigs};
use super::template::discovered_ports;
use super::{TargetMetadata, WorkloadError};
use crate::api::Canary;
use crate::k8s::meta::{canary_id, namespace, post_params};
use crate::workload::WorkloadConfig;

/// A namespaced workload with a label selector and a pod template.
pub trait PodWorkload:
    kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The kind as Flagger writes it in messages (`deployment`, `daemonset`).
    const KIND: &'static str;
    fn match_labels(&self) -> Option<&BTreeMap<String, String>>;
    fn pod_spec(&self) -> Option<&PodSpec>;
}

impl PodWorkload for Deployment {
    const KIND: &'static str = "deployment";
    fn match_labels(&self) -> Option<&BTreeMap<String, String>> {
        self.spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
    }
    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref().and_then(|s| s.template.spec.as_ref())
    }
}

impl PodWorkload for DaemonSet {
    const KIND: &'static str = "daemonset";
    fn match_labels(&self) -> Option<&BTreeMap<String, String>> {
        self.spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
    }
    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref().and_then(|s| s.template.spec.as_ref())
    }
}

/// The workloads of kind `K` in the canary's namespace.
pub fn api<K: PodWorkload>(client: &kube::Client, canary: &Canary) -> Api<K> {
    Api::namespaced(client.clone(), &namespace(canary))
}

fn get_error<K: PodWorkload>(canary: &Canary, name: &str, source: kube::Error) -> WorkloadError {
    WorkloadError::Api {
        context: format!("{} {name}.{} get query error", K::KIND, namespace(canary)),
        source,
    }
}

/// Reads a workload; Flagger's `<kind> <name>.<ns> get query error` on failure.
pub async fn get<K: PodWorkload>(
    client: &kube::Client,
    canary: &Canary,
    name: &str,
) -> Result<K, WorkloadError> {
    api::<K>(client, canary)
        .get(name)
        .await
        .map_err(|e| get_error::<K>(canary, name, e))
}

/// Reads a workload that may not exist.
pub async fn get_opt<K: PodWorkload>(
    client: &kube::Client,
    canary: &Canary,
    name: &str,
) -> Result<Option<K>, WorkloadError> {
    api::<K>(client, canary)
        .get_opt(name)
        .await
        .map_err(|e| get_error::<K>(canary, name, e))
}

/// The selector label of a workload (first of `-selector-labels` in its selector), or Flagger's
/// `getSelectorLabel failed: …` error.
pub fn selector_label<K: PodWorkload>(
    config: &WorkloadConfig,
    workload: &K,
) -> Result<(String, String), WorkloadError> {
    config.selector_label(workload.match_labels()).ok_or_else(|| {
        let meta = workload.meta();
        WorkloadError::Invalid(format!(
            "getSelectorLabel failed: {} {}.{} spec.selector.matchLabels must contain one of {}",
            K::KIND,
            meta.name.as_deref().unwrap_or_default(),
            meta.namespace.as_deref().unwrap_or_default(),
            config.selector_labels_display()
        ))
    })
}

/// Selector label, its value and the discovered ports of a target.
pub fn target_metadata<K: PodWorkload>(
    config: &WorkloadConfig,
    canary: &Canary,
    target: &K,
) -> Result<TargetMetadata, WorkloadError> {
    let (label, label_value) = selector_label(config, target)?;
    let containers = target
        .pod_spec()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    Ok(TargetMetadata {
        label,
        label_value,
        ports: discovered_ports(canary, containers),
    })
}

/// The ConfigMaps and Secrets the target's pod template uses.
pub async fn target_configs<K: PodWorkload>(
    tracker: &ConfigTracker,
    canary: &Canary,
    target: &K,
) -> Result<TrackedConfigs, WorkloadError> {
    let spec = target.pod_spec().cloned().unwrap_or_default();
    tracker.target_configs(canary, &spec).await
}

/// Creates the primary workload; Flagger's `<Kind> <name>.<ns> created` log line.
pub async fn create_primary<K: PodWorkload>(
    client: &kube::Client,
    canary: &Canary,
    primary: &K,
) -> Result<(), WorkloadError> {
    let name = primary.meta().name.clone().unwrap_or_default();
    let ns = namespace(canary);
    api::<K>(client, canary)
        .create(&post_params(), primary)
        .await
        .map_err(|source| WorkloadError::Api {
            context: format!("creating {} {name}.{ns} failed", K::KIND),
            source,
        })?;
    tracing::info!(canary = %canary_id(canary), "{} {name}.{ns} created", K::kind(&()));
    Ok(())
}
