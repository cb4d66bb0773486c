//! Deployment targets (Flagger's `DeploymentController`): what is particular to a Deployment
//! behind the generic [`PrimaryController`] — the primary Deployment `<target>-primary`, its
//! promoted fields, readiness, revision hashing and scaling by `spec.replicas`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::WorkloadError;
use super::config_tracker::TrackedConfigs;
use super::pod::{PodWorkload, Scale, selector_label};
use super::primary::PrimaryController;
pub use super::primary::scale_from_zero_replicas;
use super::template::{NotReady, PrimaryTemplate, is_system_annotation, primary_template};
use crate::api::Canary;
use crate::k8s::meta::{merge_patch_diff, namespace, primary_labels, revision_hash};
use crate::workload::WorkloadConfig;

/// The primary Deployment Flagger creates from `target`.
pub fn build_primary(
    canary: &Canary,
    target: &Deployment,
    config: &WorkloadConfig,
    tracked: &TrackedConfigs,
    flagger_id: &str,
    owner: OwnerReference,
) -> Result<Deployment, WorkloadError> {
    let (label, label_value) = selector_label(config, target)?;
    let primary_value = format!("{label_value}-primary");
    let target_spec = target.spec.clone().unwrap_or_default();
    let target_name = canary.spec.target_ref.name.as_str();
    let template = primary_template(
        &target_spec.template,
        &PrimaryTemplate {
            label: &label,
            primary_label_value: &primary_value,
            tracked,
            flagger_id,
            affinity: Some((&config.selector_labels, target_name)),
        },
    );
    let annotations = crate::k8s::meta::filter_toolkit(target.metadata.annotations.as_ref());
    Ok(Deployment {
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
        spec: Some(k8s_openapi::api::apps::v1::DeploymentSpec {
            progress_deadline_seconds: target_spec.progress_deadline_seconds,
            min_ready_seconds: target_spec.min_ready_seconds,
            revision_history_limit: target_spec.revision_history_limit,
            strategy: target_spec.strategy.clone(),
            replicas: Some(target_spec.replicas.filter(|r| *r > 0).unwrap_or(1)),
            selector: LabelSelector {
                match_labels: Some([(label.clone(), primary_value.clone())].into()),
                ..Default::default()
            },
            template,
            ..Default::default()
        }),
        status: None,
    })
}

/// The fields of a primary Deployment that promotion owns, as JSON (system annotations left out).
fn promoted_fields(dep: &Deployment, with_replicas: bool) -> Value {
    let spec = dep.spec.clone().unwrap_or_default();
    let annotations: std::collections::BTreeMap<String, String> = dep
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !is_system_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = json!({
        "metadata": {"labels": dep.metadata.labels, "annotations": annotations},
        "spec": {
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "minReadySeconds": spec.min_ready_seconds,
            "revisionHistoryLimit": spec.revision_history_limit,
            "strategy": spec.strategy,
            "template": spec.template,
        }
    });
    if with_replicas {
        out["spec"]["replicas"] = json!(spec.replicas);
    }
    out
}

/// The merge patch promotion sends to the primary: spec fields, pod template (new `flagger-id`,
/// so always a rollout), replicas when there is no autoscaler, labels and prefix-filtered
/// annotations of the target.
pub fn promote_patch(
    canary: &Canary,
    target: &Deployment,
    primary: &Deployment,
    config: &WorkloadConfig,
    tracked: &TrackedConfigs,
    flagger_id: &str,
) -> Result<Option<Value>, WorkloadError> {
    let owner = primary
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first().cloned())
        .unwrap_or_default();
    let mut desired = build_primary(canary, target, config, tracked, flagger_id, owner)?;
    let annotations = config.include_by_prefix(target.metadata.annotations.as_ref());
    desired.metadata.annotations = Some(annotations);
    if let Some(spec) = desired.spec.as_mut() {
        spec.replicas = target.spec.as_ref().and_then(|s| s.replicas);
    }
    let with_replicas = canary.spec.autoscaler_ref.is_none();
    Ok(merge_patch_diff(
        &promoted_fields(primary, with_replicas),
        &promoted_fields(&desired, with_replicas),
    ))
}

fn condition<'a>(
    dep: &'a Deployment,
    type_: &str,
) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    dep.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Flagger's Deployment readiness (messages and thresholds included): `threshold` is the
/// percentage of updated replicas that must be available; a `ProgressDeadlineExceeded` rollout
/// is not retriable, nor is one whose `Available=False/MinimumReplicasUnavailable` condition is
/// older than the canary's `progressDeadlineSeconds`.
pub fn deployment_readiness(
    dep: &Deployment,
    deadline_seconds: i32,
    threshold: i32,
    now: Timestamp,
) -> Result<(), NotReady> {
    let status = dep.status.clone().unwrap_or_default();
    let generation = dep.metadata.generation.unwrap_or(0);
    if generation > status.observed_generation.unwrap_or(0) {
        return Err(NotReady::retriable(
            "waiting for rollout to finish: observed deployment generation less than desired generation".to_string(),
        ));
    }
    let progress = condition(dep, "Progressing");
    let mut retriable = true;
    if progress.is_some()
        && let Some(available) = condition(dep, "Available")
        && available.status == "False"
        && available.reason.as_deref() == Some("MinimumReplicasUnavailable")
    {
        let from = available
            .last_update_time
            .as_ref()
            .map_or(0, |t| t.0.as_second());
        retriable = from + i64::from(deadline_seconds) >= now.as_second();
    }
    let updated = status.updated_replicas.unwrap_or(0);
    // Flagger computes this in float32; the truncation is kept for identical thresholds.
    let ratio = threshold as f32 / 100.0;
    let ready_threshold_updated = (updated as f32 * ratio) as i32;
    let not_ready = |message: String| NotReady { retriable, message };
    if progress.is_some_and(|p| p.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
        return Err(NotReady {
            retriable: false,
            message: format!(
                "deployment {:?} exceeded its progress deadline",
                dep.metadata.name.as_deref().unwrap_or_default()
            ),
        });
    }
    let spec_replicas = dep.spec.as_ref().and_then(|s| s.replicas);
    if let Some(replicas) = spec_replicas
        && updated < replicas
    {
        return Err(not_ready(format!(
            "waiting for rollout to finish: {updated} out of {replicas} new replicas have been updated"
        )));
    }
    let replicas = status.replicas.unwrap_or(0);
    if replicas > updated {
        return Err(not_ready(format!(
            "waiting for rollout to finish: {} old replicas are pending termination",
            replicas - updated
        )));
    }
    let available = status.available_replicas.unwrap_or(0);
    if available < ready_threshold_updated {
        return Err(not_ready(format!(
            "waiting for rollout to finish: {available} of {ready_threshold_updated} (readyThreshold {threshold}%) updated replicas are available"
        )));
    }
    Ok(())
}

/// The revision hash of a Deployment target: the canonical hash of its pod template.
pub fn template_hash(dep: &Deployment) -> String {
    let template = dep.spec.as_ref().map(|s| &s.template);
    revision_hash(&serde_json::to_value(template).unwrap_or(Value::Null))
}

/// The Deployment target controller.
pub type DeploymentController = PrimaryController<Deployment>;

impl PodWorkload for Deployment {
    const KIND: &'static str = "deployment";
    const REPLICATED: bool = true;

    fn match_labels(&self) -> Option<&BTreeMap<String, String>> {
        self.spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
    }

    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref().and_then(|s| s.template.spec.as_ref())
    }

    fn replicas(&self) -> Option<i32> {
        self.spec.as_ref().and_then(|s| s.replicas)
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

    fn readiness(&self, canary: &Canary, threshold: i32, now: Timestamp) -> Result<(), NotReady> {
        deployment_readiness(
            self,
            canary.spec.progress_deadline_seconds(),
            threshold,
            now,
        )
    }

    fn primary_not_ready(name_ns: &str) -> String {
        format!("{name_ns} not ready")
    }

    fn canary_not_ready(name_ns: &str, _retriable: bool) -> String {
        format!("canary deployment {name_ns} not ready")
    }

    fn template_hash(&self) -> String {
        template_hash(self)
    }

    fn scale_patch(&self, scale: Scale) -> Option<Value> {
        let replicas = replicas_of(scale);
        (self.replicas() != Some(replicas)).then(|| json!({"spec": {"replicas": replicas}}))
    }

    fn scale_error(name_ns: &str, scale: Scale) -> String {
        format!("scaling {name_ns} to {} failed", replicas_of(scale))
    }
}

fn replicas_of(scale: Scale) -> i32 {
    match scale {
        Scale::Zero => 0,
        Scale::Up { replicas } => replicas,
    }
}

#[cfg(test)]
mod tests;
