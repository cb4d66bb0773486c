//! DaemonSet targets (Flagger's `DaemonSetController`): what is particular to a DaemonSet behind
//! the generic [`PrimaryController`] — the primary DaemonSet `<target>-primary`, its promoted
//! fields, readiness, revision hashing and scaling to zero with an unsatisfiable node selector.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::WorkloadError;
use super::config_tracker::TrackedConfigs;
use super::pod::{PodWorkload, Scale, selector_label};
use super::primary::PrimaryController;
use super::template::{NotReady, PrimaryTemplate, is_system_annotation, primary_template};
use crate::api::Canary;
use crate::k8s::meta::{
    filter_toolkit, merge_patch_diff, namespace, primary_labels, revision_hash,
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
pub type DaemonSetController = PrimaryController<DaemonSet>;

impl PodWorkload for DaemonSet {
    const KIND: &'static str = "daemonset";
    const REPLICATED: bool = false;

    fn match_labels(&self) -> Option<&BTreeMap<String, String>> {
        self.spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
    }

    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref().and_then(|s| s.template.spec.as_ref())
    }

    fn replicas(&self) -> Option<i32> {
        None
    }

    fn check_target(&self) -> Result<(), WorkloadError> {
        check_update_strategy(self)
    }

    fn build_primary(
        canary: &Canary,
        target: &Self,
        config: &WorkloadConfig,
        tracked: &TrackedConfigs,
        flagger_id: &str,
        owner: OwnerReference,
    ) -> Result<Self, WorkloadError> {
        build_primary(canary, target, config, tracked, flagger_id, owner)
    }

    fn promote_patch(
        canary: &Canary,
        target: &Self,
        primary: &Self,
        config: &WorkloadConfig,
        tracked: &TrackedConfigs,
        flagger_id: &str,
    ) -> Result<Option<Value>, WorkloadError> {
        promote_patch(canary, target, primary, config, tracked, flagger_id)
    }

    /// The progress deadline runs from the Canary's `status.lastTransitionTime`.
    fn readiness(&self, canary: &Canary, threshold: i32, now: Timestamp) -> Result<(), NotReady> {
        let last_transition = canary
            .status
            .as_ref()
            .and_then(|s| s.last_transition_time.as_ref())
            .map(|t| t.0);
        daemonset_readiness(
            self,
            last_transition,
            canary.spec.progress_deadline_seconds(),
            threshold,
            now,
        )
    }

    fn primary_not_ready(name_ns: &str) -> String {
        format!("primary daemonset {name_ns} not ready")
    }

    /// Flagger's spelling (`damonset`) is kept: events carry it.
    fn canary_not_ready(name_ns: &str, retriable: bool) -> String {
        format!("canary damonset {name_ns} not ready with retryable {retriable}")
    }

    fn template_hash(&self) -> String {
        template_hash(self)
    }

    /// Scales with the node selector [`SCALE_TO_ZERO_KEY`], which no node carries.
    fn scale_patch(&self, scale: Scale) -> Option<Value> {
        let zero = scale == Scale::Zero;
        if is_scaled_to_zero(self) == zero {
            return None;
        }
        let value = if zero { json!("true") } else { Value::Null };
        Some(json!({"spec": {"template": {"spec": {"nodeSelector": {SCALE_TO_ZERO_KEY: value}}}}}))
    }

    fn scale_error(name_ns: &str, _scale: Scale) -> String {
        format!("updating daemonset {name_ns} failed")
    }
}

#[cfg(test)]
mod tests;
