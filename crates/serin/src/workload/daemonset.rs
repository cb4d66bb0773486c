//! DaemonSet targets (Flagger's `DaemonSetController`): the primary DaemonSet
//! `<target>-primary`, promotion, scaling to zero with an unsatisfiable node selector, readiness
//! and revision hashing.

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::Patch;
use serde_json::{Value, json};

use super::config_tracker::{ConfigTracker, TrackedConfigs};
use super::pod::{self, selector_label};
use super::template::{
    NotReady, PrimaryTemplate, is_system_annotation, new_flagger_id, primary_template,
};
use super::{Revision, TargetController, TargetMetadata, WorkloadError};
use crate::api::Canary;
use crate::k8s::meta::patch_params;
use crate::k8s::meta::{
    filter_toolkit, merge_patch_diff, namespace, primary_labels, require_owner_reference,
    revision_hash,
};
use crate::workload::WorkloadConfig;

/// Node-selector key that no node carries: setting it on the target's pod template scales a
/// DaemonSet to zero.
pub const SCALE_TO_ZERO_KEY: &str = "flagger.app/scale-to-zero";

/// DaemonSet targets must roll out with `RollingUpdate` (or the default).
pub fn check_update_strategy(ds: &DaemonSet) -> Result<(), WorkloadError> {
    let strategy = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate");
    if strategy == "RollingUpdate" {
        return Ok(());
    }
    Err(WorkloadError::Invalid(format!(
        "daemonset {}.{} must have RollingUpdate strategy but have {strategy}",
        ds.metadata.name.as_deref().unwrap_or_default(),
        ds.metadata.namespace.as_deref().unwrap_or_default(),
    )))
}

/// The pod template without the scale-to-zero node selector.
pub fn without_scale_to_zero(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(sel) = t.spec.as_mut().and_then(|s| s.node_selector.as_mut()) {
        sel.remove(SCALE_TO_ZERO_KEY);
    }
    t
}

/// Whether the target is scaled to zero.
pub fn is_scaled_to_zero(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.node_selector.as_ref())
        .is_some_and(|n| n.contains_key(SCALE_TO_ZERO_KEY))
}

/// The primary DaemonSet built from `target` (no affinity rewrite, as in Flagger).
pub fn build_primary(
    canary: &Canary,
    target: &DaemonSet,
    config: &WorkloadConfig,
    tracked: &TrackedConfigs,
    flagger_id: &str,
    owner: OwnerReference,
) -> Result<DaemonSet, WorkloadError> {
    let (label, label_value) = selector_label(config, target)?;
    let primary_value = format!("{label_value}-primary");
    let target_spec = target.spec.clone().unwrap_or_default();
    let template = primary_template(
        &without_scale_to_zero(&target_spec.template),
        &PrimaryTemplate {
            label: &label,
            primary_label_value: &primary_value,
            tracked,
            flagger_id,
            affinity: None,
        },
    );
    let annotations = filter_toolkit(target.metadata.annotations.as_ref());
    Ok(DaemonSet {
        metadata: ObjectMeta {
            name: Some(canary.spec.primary_workload_name()),
            namespace: Some(namespace(canary)),
            labels: Some(primary_labels(
                Some(&config.include_by_prefix(target.metadata.labels.as_ref())),
                &label,
                &primary_value,
            )),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            min_ready_seconds: target_spec.min_ready_seconds,
            revision_history_limit: target_spec.revision_history_limit,
            update_strategy: target_spec.update_strategy.clone(),
            selector: LabelSelector {
                match_labels: Some([(label, primary_value)].into()),
                ..Default::default()
            },
            template,
        }),
        status: None,
    })
}

fn promoted_fields(ds: &DaemonSet) -> Value {
    let spec = ds.spec.clone().unwrap_or_default();
    let annotations: std::collections::BTreeMap<String, String> = ds
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !is_system_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({
        "metadata": {"labels": ds.metadata.labels, "annotations": annotations},
        "spec": {
            "minReadySeconds": spec.min_ready_seconds,
            "revisionHistoryLimit": spec.revision_history_limit,
            "updateStrategy": spec.update_strategy,
            "template": spec.template,
        }
    })
}

/// The merge patch promotion sends to the primary DaemonSet.
pub fn promote_patch(
    canary: &Canary,
    target: &DaemonSet,
    primary: &DaemonSet,
    config: &WorkloadConfig,
    tracked: &TrackedConfigs,
    flagger_id: &str,
) -> Result<Option<Value>, WorkloadError> {
    let mut desired = build_primary(
        canary,
        target,
        config,
        tracked,
        flagger_id,
        OwnerReference::default(),
    )?;
    desired.metadata.annotations =
        Some(config.include_by_prefix(target.metadata.annotations.as_ref()));
    Ok(merge_patch_diff(
        &promoted_fields(primary),
        &promoted_fields(&desired),
    ))
}

/// Flagger's DaemonSet readiness: all desired pods updated and `threshold` percent of them
/// available. The progress deadline runs from the Canary's `status.lastTransitionTime` (no
/// deadline while it is unset).
pub fn daemonset_readiness(
    ds: &DaemonSet,
    last_transition: Option<Timestamp>,
    deadline_seconds: i32,
    threshold: i32,
    now: Timestamp,
) -> Result<(), NotReady> {
    let status = ds.status.clone().unwrap_or_default();
    if ds.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Err(NotReady::retriable(
            "waiting for rollout to finish: observed daemonset generation less then desired generation".to_string(),
        ));
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    let ratio = threshold as f32 / 100.0;
    let required = (desired as f32 * ratio) as i32;
    let new_cond = updated < desired;
    let available_cond = available < required;
    if !new_cond && !available_cond {
        return Ok(());
    }
    if let Some(from) = last_transition
        && from.as_second() + i64::from(deadline_seconds) < now.as_second()
    {
        return Err(NotReady {
            retriable: false,
            message: format!("exceeded its progressDeadlineSeconds: {deadline_seconds}"),
        });
    }
    if new_cond {
        return Err(NotReady::retriable(format!(
            "waiting for rollout to finish: {updated} out of {desired} new pods have been updated"
        )));
    }
    Err(NotReady::retriable(format!(
        "waiting for rollout to finish: {available} of {desired} updated pods are available"
    )))
}

/// The revision hash of a DaemonSet target: its pod template without the scale-to-zero key (an
/// empty node selector hashes like none).
pub fn template_hash(ds: &DaemonSet) -> String {
    let template = ds.spec.as_ref().map(|s| without_scale_to_zero(&s.template));
    revision_hash(&serde_json::to_value(template).unwrap_or(Value::Null))
}

/// The DaemonSet target controller.
#[derive(Clone)]
pub struct DaemonSetController {
    client: kube::Client,
    config: WorkloadConfig,
    tracker: ConfigTracker,
}

impl DaemonSetController {
    pub fn new(client: kube::Client, config: WorkloadConfig) -> Self {
        let tracker = ConfigTracker::new(client.clone(), &config);
        Self {
            client,
            config,
            tracker,
        }
    }

    fn api(&self, canary: &Canary) -> Api<DaemonSet> {
        Api::namespaced(self.client.clone(), &namespace(canary))
    }

    async fn get(&self, canary: &Canary, name: &str) -> Result<DaemonSet, WorkloadError> {
        pod::get(&self.client, canary, name).await
    }

    async fn target_configs(
        &self,
        canary: &Canary,
        target: &DaemonSet,
    ) -> Result<TrackedConfigs, WorkloadError> {
        pod::target_configs(&self.tracker, canary, target).await
    }

    async fn set_scale_to_zero(&self, canary: &Canary, zero: bool) -> Result<(), WorkloadError> {
        let name = canary.spec.target_ref.name.clone();
        let target = self.get(canary, &name).await?;
        if is_scaled_to_zero(&target) == zero {
            return Ok(());
        }
        let value = if zero { json!("true") } else { Value::Null };
        let patch =
            json!({"spec": {"template": {"spec": {"nodeSelector": {SCALE_TO_ZERO_KEY: value}}}}});
        self.api(canary)
            .patch(&name, &patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|source| WorkloadError::Api {
                context: format!("updating daemonset {name}.{} failed", namespace(canary)),
                source,
            })?;
        Ok(())
    }

    fn readiness_of(
        &self,
        canary: &Canary,
        ds: &DaemonSet,
        threshold: i32,
    ) -> Result<(), NotReady> {
        let last_transition = canary
            .status
            .as_ref()
            .and_then(|s| s.last_transition_time.as_ref())
            .map(|t| t.0);
        daemonset_readiness(
            ds,
            last_transition,
            canary.spec.progress_deadline_seconds(),
            threshold,
            Timestamp::now(),
        )
    }
}

#[async_trait]
impl TargetController for DaemonSetController {
    async fn metadata(&self, canary: &Canary) -> Result<TargetMetadata, WorkloadError> {
        let target = self.get(canary, &canary.spec.target_ref.name).await?;
        pod::target_metadata(&self.config, canary, &target)
    }

    async fn initialize(
        &self,
        canary: &Canary,
        wait_primary_ready: bool,
    ) -> Result<(), WorkloadError> {
        let primary_name = canary.spec.primary_workload_name();
        if pod::get_opt::<DaemonSet>(&self.client, canary, &primary_name)
            .await?
            .is_none()
        {
            let target = self.get(canary, &canary.spec.target_ref.name).await?;
            check_update_strategy(&target)?;
            selector_label(&self.config, &target)?;
            let tracked = self.target_configs(canary, &target).await?;
            self.tracker.sync_primary_configs(canary, &tracked).await?;
            let owner = require_owner_reference(canary).map_err(WorkloadError::Invalid)?;
            let primary = build_primary(
                canary,
                &target,
                &self.config,
                &tracked,
                &new_flagger_id()?,
                owner,
            )?;
            pod::create_primary(&self.client, canary, &primary).await?;
        }
        if wait_primary_ready {
            self.is_primary_ready(canary).await?;
        }
        Ok(())
    }

    async fn promote(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let target = self.get(canary, &canary.spec.target_ref.name).await?;
        let primary_name = canary.spec.primary_workload_name();
        let primary = self.get(canary, &primary_name).await?;
        let tracked = self.target_configs(canary, &target).await?;
        self.tracker.sync_primary_configs(canary, &tracked).await?;
        if let Some(patch) = promote_patch(
            canary,
            &target,
            &primary,
            &self.config,
            &tracked,
            &new_flagger_id()?,
        )? {
            self.api(canary)
                .patch(&primary_name, &patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(|source| WorkloadError::Api {
                    context: format!(
                        "updating daemonset {primary_name}.{} template spec failed",
                        namespace(canary)
                    ),
                    source,
                })?;
        }
        Ok(())
    }

    async fn is_primary_ready(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let name = canary.spec.primary_workload_name();
        let primary = self.get(canary, &name).await?;
        let threshold = canary
            .spec
            .analysis()
            .map_or(100, |a| a.primary_ready_threshold());
        self.readiness_of(canary, &primary, threshold).map_err(|e| {
            e.into_error(&format!(
                "primary daemonset {name}.{} not ready",
                namespace(canary)
            ))
        })
    }

    async fn is_canary_ready(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let name = &canary.spec.target_ref.name;
        let target = self.get(canary, name).await?;
        let threshold = canary
            .spec
            .analysis()
            .map_or(100, |a| a.canary_ready_threshold());
        self.readiness_of(canary, &target, threshold).map_err(|e| {
            let prefix = format!(
                "canary damonset {name}.{} not ready with retryable {}",
                namespace(canary),
                e.retriable
            );
            e.into_error(&prefix)
        })
    }

    async fn revision(&self, canary: &Canary) -> Result<Revision, WorkloadError> {
        let target = self.get(canary, &canary.spec.target_ref.name).await?;
        let tracked = self.target_configs(canary, &target).await?;
        Ok(Revision {
            spec_hash: template_hash(&target),
            tracked_configs: tracked.checksums(),
        })
    }

    async fn scale_to_zero(&self, canary: &Canary) -> Result<(), WorkloadError> {
        self.set_scale_to_zero(canary, true).await
    }

    async fn scale_from_zero(&self, canary: &Canary) -> Result<(), WorkloadError> {
        self.set_scale_to_zero(canary, false).await
    }

    async fn finalize(&self, canary: &Canary) -> Result<(), WorkloadError> {
        self.scale_from_zero(canary).await
    }
}

#[cfg(test)]
mod tests;
