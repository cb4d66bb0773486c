//! The [`PodWorkload`] trait (what one workload kind with a pod template must provide to the
//! generic primary controller) and what the kinds share: typed reads with Flagger's error texts,
//! the selector label, the target metadata and the tracked configs of a pod template.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config_tracker::{ConfigTracker, TrackedConfigs};
use super::template::{NotReady, discovered_ports};
use super::{TargetMetadata, WorkloadError};
use crate::api::Canary;
use crate::k8s::cache::Cache;
use crate::k8s::error::not_found;
use crate::k8s::meta::{canary_id, namespace, post_params};
use crate::workload::WorkloadConfig;

/// How a primary workload is scaled ([`PodWorkload::scale_patch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// No pods at all (`spec.replicas: 0`, or a node selector no node matches).
    Zero,
    /// Running again, with `replicas` pods for [`PodWorkload::REPLICATED`] kinds (the others
    /// ignore the count).
    Up { replicas: i32 },
}

/// A namespaced workload with a label selector and a pod template: everything the generic
/// [`PrimaryController`](super::primary::PrimaryController) needs to know about one kind.
/// Adding a kind (e.g. StatefulSet) is one impl of this trait.
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
    /// Whether the kind scales by `spec.replicas` (the primary's count is restored on
    /// finalisation and the autoscaler minimum matters when scaling up from zero).
    const REPLICATED: bool;

    fn match_labels(&self) -> Option<&BTreeMap<String, String>>;
    fn pod_spec(&self) -> Option<&PodSpec>;
    /// `spec.replicas` (`None` for kinds without a count).
    fn replicas(&self) -> Option<i32>;

    /// Target requirements beyond the selector label, checked before the primary is created.
    fn check_target(&self) -> Result<(), WorkloadError> {
        Ok(())
    }

    /// The primary `<target>-primary` built from `target`.
    fn build_primary(
        canary: &Canary,
        target: &Self,
        config: &WorkloadConfig,
        tracked: &TrackedConfigs,
        flagger_id: &str,
        owner: OwnerReference,
    ) -> Result<Self, WorkloadError>;

    /// The merge patch promotion sends to the primary, `None` when nothing differs.
    fn promote_patch(
        canary: &Canary,
        target: &Self,
        primary: &Self,
        config: &WorkloadConfig,
        tracked: &TrackedConfigs,
        flagger_id: &str,
    ) -> Result<Option<Value>, WorkloadError>;

    /// Flagger's readiness of this kind with `threshold` percent of the pods available.
    fn readiness(&self, canary: &Canary, threshold: i32, now: Timestamp) -> Result<(), NotReady>;

    /// Prefix of the primary's not-ready message (`<name>.<ns>` given).
    fn primary_not_ready(name_ns: &str) -> String;

    /// Prefix of the canary's not-ready message (`<name>.<ns>` given).
    fn canary_not_ready(name_ns: &str, retriable: bool) -> String;

    /// The revision hash of a target of this kind.
    fn template_hash(&self) -> String;

    /// The merge patch that scales the target, `None` when it is already scaled so.
    fn scale_patch(&self, scale: Scale) -> Option<Value>;

    /// What failed when the scale patch did (`<name>.<ns>` given).
    fn scale_error(name_ns: &str, scale: Scale) -> String;
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

/// Reads a workload (from the cache when it holds the kind); Flagger's `<kind> <name>.<ns> get
/// query error` on failure, the API server's 404 text when it is missing.
pub async fn get<K: PodWorkload>(
    client: &kube::Client,
    cache: &Cache,
    canary: &Canary,
    name: &str,
) -> Result<K, WorkloadError> {
    get_opt::<K>(client, cache, canary, name)
        .await?
        .ok_or_else(|| get_error::<K>(canary, name, not_found::<K>(&(), name)))
}

/// Reads a workload that may not exist.
pub async fn get_opt<K: PodWorkload>(
    client: &kube::Client,
    cache: &Cache,
    canary: &Canary,
    name: &str,
) -> Result<Option<K>, WorkloadError> {
    cache
        .get(&api::<K>(client, canary), name)
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
    cache: &Cache,
    canary: &Canary,
    primary: &K,
) -> Result<(), WorkloadError> {
    let name = primary.meta().name.clone().unwrap_or_default();
    let ns = namespace(canary);
    cache
        .create(&api::<K>(client, canary), &post_params(), primary)
        .await
        .map_err(|source| WorkloadError::Api {
            context: format!("creating {} {name}.{ns} failed", K::KIND),
            source,
        })?;
    tracing::info!(canary = %canary_id(canary), "{} {name}.{ns} created", K::kind(&()));
    Ok(())
}
