//! Deployment targets (Flagger's `DeploymentController`): the primary Deployment
//! `<target>-primary`, promotion, scaling to and from zero, readiness and revision hashing.

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DynamicObject, Patch};
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
    merge_patch_diff, namespace, primary_labels, require_owner_reference, revision_hash,
};
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

/// Replicas for `ScaleFromZero`: the target's when positive; else without autoscaler the
/// primary's (or 1); else the autoscaler minimum when above 1 (or 1).
pub fn scale_from_zero_replicas(
    target_replicas: Option<i32>,
    has_autoscaler: bool,
    primary_replicas: Option<i32>,
    autoscaler_min: Option<i32>,
) -> i32 {
    if let Some(r) = target_replicas.filter(|r| *r > 0) {
        return r;
    }
    if !has_autoscaler {
        return primary_replicas.filter(|r| *r > 0).unwrap_or(1);
    }
    autoscaler_min.filter(|m| *m > 1).unwrap_or(1)
}

/// The revision hash of a Deployment target: the canonical hash of its pod template.
pub fn template_hash(dep: &Deployment) -> String {
    let template = dep.spec.as_ref().map(|s| &s.template);
    revision_hash(&serde_json::to_value(template).unwrap_or(Value::Null))
}

/// The Deployment target controller.
#[derive(Clone)]
pub struct DeploymentController {
    client: kube::Client,
    config: WorkloadConfig,
    tracker: ConfigTracker,
}

impl DeploymentController {
    pub fn new(client: kube::Client, config: WorkloadConfig) -> Self {
        let tracker = ConfigTracker::new(client.clone(), &config);
        Self {
            client,
            config,
            tracker,
        }
    }

    fn api(&self, canary: &Canary) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &namespace(canary))
    }

    async fn get(&self, canary: &Canary, name: &str) -> Result<Deployment, WorkloadError> {
        pod::get(&self.client, canary, name).await
    }

    async fn get_opt(
        &self,
        canary: &Canary,
        name: &str,
    ) -> Result<Option<Deployment>, WorkloadError> {
        pod::get_opt(&self.client, canary, name).await
    }

    async fn set_replicas(
        &self,
        canary: &Canary,
        dep: &Deployment,
        replicas: i32,
    ) -> Result<(), WorkloadError> {
        if dep.spec.as_ref().and_then(|s| s.replicas) == Some(replicas) {
            return Ok(());
        }
        let name = dep.metadata.name.clone().unwrap_or_default();
        self.api(canary)
            .patch(
                &name,
                &patch_params(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .map_err(|source| WorkloadError::Api {
                context: format!("scaling {name}.{} to {replicas} failed", namespace(canary)),
                source,
            })?;
        Ok(())
    }

    /// The minimum replicas of the target's autoscaler (HPA `minReplicas`, KEDA
    /// `minReplicaCount`).
    async fn autoscaler_min(&self, canary: &Canary) -> Result<Option<i32>, WorkloadError> {
        let Some(r) = canary.spec.autoscaler_ref.as_ref() else {
            return Ok(None);
        };
        let ns = namespace(canary);
        match r.kind.as_str() {
            "HorizontalPodAutoscaler" => {
                let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), &ns);
                let hpa = api
                    .get(&r.name)
                    .await
                    .map_err(|source| WorkloadError::Api {
                        context: format!("HorizontalPodAutoscaler {}.{ns} get query error", r.name),
                        source,
                    })?;
                Ok(hpa.spec.and_then(|s| s.min_replicas))
            }
            "ScaledObject" => {
                let api: Api<DynamicObject> = Api::namespaced_with(
                    self.client.clone(),
                    &ns,
                    &super::autoscaler::scaled_object_resource(),
                );
                let so = api
                    .get(&r.name)
                    .await
                    .map_err(|source| WorkloadError::Api {
                        context: format!("ScaledObject {}.{ns} get query error", r.name),
                        source,
                    })?;
                Ok(so.data["spec"]["minReplicaCount"]
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok()))
            }
            other => Err(WorkloadError::Invalid(format!(
                "autoscalerRef kind {other} is not supported (HorizontalPodAutoscaler or ScaledObject)"
            ))),
        }
    }

    async fn target_configs(
        &self,
        canary: &Canary,
        target: &Deployment,
    ) -> Result<TrackedConfigs, WorkloadError> {
        pod::target_configs(&self.tracker, canary, target).await
    }

    fn readiness_of(
        &self,
        canary: &Canary,
        dep: &Deployment,
        threshold: i32,
    ) -> Result<(), NotReady> {
        deployment_readiness(
            dep,
            canary.spec.progress_deadline_seconds(),
            threshold,
            Timestamp::now(),
        )
    }
}

#[async_trait]
impl TargetController for DeploymentController {
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
        if self.get_opt(canary, &primary_name).await?.is_none() {
            let target = self.get(canary, &canary.spec.target_ref.name).await?;
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
        let patch = promote_patch(
            canary,
            &target,
            &primary,
            &self.config,
            &tracked,
            &new_flagger_id()?,
        )?;
        if let Some(patch) = patch {
            self.api(canary)
                .patch(&primary_name, &patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(|source| WorkloadError::Api {
                    context: format!(
                        "updating deployment {primary_name}.{} template spec failed",
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
        self.readiness_of(canary, &primary, threshold)
            .map_err(|e| e.into_error(&format!("{name}.{} not ready", namespace(canary))))
    }

    async fn is_canary_ready(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let name = &canary.spec.target_ref.name;
        let target = self.get(canary, name).await?;
        let threshold = canary
            .spec
            .analysis()
            .map_or(100, |a| a.canary_ready_threshold());
        self.readiness_of(canary, &target, threshold).map_err(|e| {
            e.into_error(&format!(
                "canary deployment {name}.{} not ready",
                namespace(canary)
            ))
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
        let target = self.get(canary, &canary.spec.target_ref.name).await?;
        self.set_replicas(canary, &target, 0).await
    }

    async fn scale_from_zero(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let target = self.get(canary, &canary.spec.target_ref.name).await?;
        let has_autoscaler = canary.spec.autoscaler_ref.is_some();
        let primary_replicas = if has_autoscaler {
            None
        } else {
            self.get_opt(canary, &canary.spec.primary_workload_name())
                .await?
                .and_then(|p| p.spec.and_then(|s| s.replicas))
        };
        let autoscaler_min = if has_autoscaler {
            self.autoscaler_min(canary).await?
        } else {
            None
        };
        let replicas = scale_from_zero_replicas(
            target.spec.as_ref().and_then(|s| s.replicas),
            has_autoscaler,
            primary_replicas,
            autoscaler_min,
        );
        self.set_replicas(canary, &target, replicas).await
    }

    async fn finalize(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let primary = self
            .get_opt(canary, &canary.spec.primary_workload_name())
            .await?;
        match primary {
            None => self.scale_from_zero(canary).await,
            Some(primary) => {
                let target = self.get(canary, &canary.spec.target_ref.name).await?;
                let replicas = primary
                    .spec
                    .and_then(|s| s.replicas)
                    .filter(|r| *r > 0)
                    .unwrap_or(1);
                self.set_replicas(canary, &target, replicas).await
            }
        }
    }
}

#[cfg(test)]
mod tests;
