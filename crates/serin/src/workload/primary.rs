//! The primary-workload target controller (Flagger's `DeploymentController` and
//! `DaemonSetController`), written once over [`PodWorkload`]: the primary `<target>-primary` is
//! built from the target (with copies of its tracked ConfigMaps and Secrets), promotion copies
//! the target's promoted fields to it, readiness and the revision hash are the kind's, and
//! scaling goes through the kind's scale patch.
//!
//! Reads go through the [`Cache`] (watch stores once synced, GETs otherwise) and writes are
//! remembered by it, so a step that writes the target and reads it back sees its own write.
//!
//! # Adding a kind
//!
//! A StatefulSet target would be one `impl PodWorkload for StatefulSet` (next to the
//! Deployment's in `deployment.rs`) and one arm in `factory.rs`:
//!
//! * `KIND = "statefulset"`, `REPLICATED = true` (it scales by `spec.replicas` like a
//!   Deployment, so `scale_patch`/`scale_error` are the Deployment's);
//! * `build_primary` / `promote_patch`: the template through `template::primary_template`, plus
//!   the StatefulSet's own promoted spec fields (`updateStrategy`, `podManagementPolicy`,
//!   `minReadySeconds`, `revisionHistoryLimit`, `persistentVolumeClaimRetentionPolicy`);
//!   `serviceName` and `volumeClaimTemplates` are immutable, so they are set when the primary
//!   is built and never patched;
//! * `readiness`: observed generation, `updatedReplicas` and `readyReplicas` against the
//!   threshold, with the messages Flagger would use;
//! * `template_hash`: the canonical hash of the pod template, like the Deployment's.
//!
//! The watch caches hold any kind on first read, so nothing else changes.

use std::marker::PhantomData;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use kube::api::Patch;

use super::config_tracker::{ConfigTracker, TrackedConfigs};
use super::pod::{self, PodWorkload, Scale, selector_label};
use super::template::new_flagger_id;
use super::{Revision, TargetController, TargetMetadata, WorkloadConfig, WorkloadError};
use crate::api::Canary;
use crate::k8s::cache::Cache;
use crate::k8s::meta::{namespace, patch_params, require_owner_reference};

/// The target controller of a workload kind `K` with a primary copy.
pub struct PrimaryController<K> {
    client: kube::Client,
    config: WorkloadConfig,
    tracker: ConfigTracker,
    cache: Cache,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for PrimaryController<K> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            config: self.config.clone(),
            tracker: self.tracker.clone(),
            cache: self.cache.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: PodWorkload> PrimaryController<K> {
    /// A controller reading everything from the API server.
    pub fn new(client: kube::Client, config: WorkloadConfig) -> Self {
        let tracker = ConfigTracker::new(client.clone(), &config);
        Self {
            client,
            config,
            tracker,
            cache: Cache::disabled(),
            kind: PhantomData,
        }
    }

    /// Reads workloads and tracked ConfigMaps through `cache`.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.tracker = self.tracker.with_cache(cache.clone());
        self.cache = cache;
        self
    }

    async fn get(&self, canary: &Canary, name: &str) -> Result<K, WorkloadError> {
        pod::get(&self.client, &self.cache, canary, name).await
    }

    async fn get_opt(&self, canary: &Canary, name: &str) -> Result<Option<K>, WorkloadError> {
        pod::get_opt(&self.client, &self.cache, canary, name).await
    }

    async fn target(&self, canary: &Canary) -> Result<K, WorkloadError> {
        self.get(canary, &canary.spec.target_ref.name).await
    }

    async fn target_configs(
        &self,
        canary: &Canary,
        target: &K,
    ) -> Result<TrackedConfigs, WorkloadError> {
        pod::target_configs(&self.tracker, canary, target).await
    }

    /// Sends the kind's scale patch to the target unless it is already scaled so.
    async fn scale(&self, canary: &Canary, target: &K, scale: Scale) -> Result<(), WorkloadError> {
        let Some(patch) = target.scale_patch(scale) else {
            return Ok(());
        };
        let name = target.meta().name.clone().unwrap_or_default();
        let api = pod::api::<K>(&self.client, canary);
        self.cache
            .patch(&api, &name, &patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|source| WorkloadError::Api {
                context: K::scale_error(&format!("{name}.{}", namespace(canary)), scale),
                source,
            })?;
        Ok(())
    }

    /// Replicas for scaling up from zero: the target's when positive; else without autoscaler
    /// the primary's (or 1); else the autoscaler minimum when above 1 (or 1).
    async fn replicas_up_from_zero(
        &self,
        canary: &Canary,
        target: &K,
    ) -> Result<i32, WorkloadError> {
        let has_autoscaler = canary.spec.autoscaler_ref.is_some();
        let primary_replicas = if has_autoscaler {
            None
        } else {
            self.get_opt(canary, &canary.spec.primary_workload_name())
                .await?
                .and_then(|p| p.replicas())
        };
        let autoscaler_min = if has_autoscaler {
            super::autoscaler::min_replicas(&self.client, &self.cache, canary).await?
        } else {
            None
        };
        Ok(scale_from_zero_replicas(
            target.replicas(),
            has_autoscaler,
            primary_replicas,
            autoscaler_min,
        ))
    }

    fn readiness_error(
        canary: &Canary,
        workload: &K,
        threshold: i32,
        prefix: impl FnOnce(bool) -> String,
    ) -> Result<(), WorkloadError> {
        workload
            .readiness(canary, threshold, Timestamp::now())
            .map_err(|e| {
                let prefix = prefix(e.retriable);
                e.into_error(&prefix)
            })
    }
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

#[async_trait]
impl<K: PodWorkload> TargetController for PrimaryController<K> {
    async fn metadata(&self, canary: &Canary) -> Result<TargetMetadata, WorkloadError> {
        let target = self.target(canary).await?;
        pod::target_metadata(&self.config, canary, &target)
    }

    async fn initialize(
        &self,
        canary: &Canary,
        wait_primary_ready: bool,
    ) -> Result<(), WorkloadError> {
        let primary_name = canary.spec.primary_workload_name();
        if self.get_opt(canary, &primary_name).await?.is_none() {
            let target = self.target(canary).await?;
            target.check_target()?;
            selector_label(&self.config, &target)?;
            let tracked = self.target_configs(canary, &target).await?;
            self.tracker.sync_primary_configs(canary, &tracked).await?;
            let owner = require_owner_reference(canary).map_err(WorkloadError::Invalid)?;
            let primary = K::build_primary(
                canary,
                &target,
                &self.config,
                &tracked,
                &new_flagger_id()?,
                owner,
            )?;
            pod::create_primary(&self.client, &self.cache, canary, &primary).await?;
        }
        if wait_primary_ready {
            self.is_primary_ready(canary).await?;
        }
        Ok(())
    }

    async fn promote(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let target = self.target(canary).await?;
        let primary_name = canary.spec.primary_workload_name();
        let primary = self.get(canary, &primary_name).await?;
        let tracked = self.target_configs(canary, &target).await?;
        self.tracker.sync_primary_configs(canary, &tracked).await?;
        let patch = K::promote_patch(
            canary,
            &target,
            &primary,
            &self.config,
            &tracked,
            &new_flagger_id()?,
        )?;
        if let Some(patch) = patch {
            let api = pod::api::<K>(&self.client, canary);
            self.cache
                .patch(&api, &primary_name, &patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(|source| WorkloadError::Api {
                    context: format!(
                        "updating {} {primary_name}.{} template spec failed",
                        K::KIND,
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
        let name_ns = format!("{name}.{}", namespace(canary));
        Self::readiness_error(canary, &primary, threshold, |_| {
            K::primary_not_ready(&name_ns)
        })
    }

    async fn is_canary_ready(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let target = self.target(canary).await?;
        let threshold = canary
            .spec
            .analysis()
            .map_or(100, |a| a.canary_ready_threshold());
        let name_ns = format!("{}.{}", canary.spec.target_ref.name, namespace(canary));
        Self::readiness_error(canary, &target, threshold, |retriable| {
            K::canary_not_ready(&name_ns, retriable)
        })
    }

    async fn revision(&self, canary: &Canary) -> Result<Revision, WorkloadError> {
        let target = self.target(canary).await?;
        let tracked = self.target_configs(canary, &target).await?;
        Ok(Revision {
            spec_hash: target.template_hash(),
            tracked_configs: tracked.checksums(),
        })
    }

    async fn scale_to_zero(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let target = self.target(canary).await?;
        self.scale(canary, &target, Scale::Zero).await
    }

    async fn scale_from_zero(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let target = self.target(canary).await?;
        let replicas = if K::REPLICATED {
            self.replicas_up_from_zero(canary, &target).await?
        } else {
            1
        };
        self.scale(canary, &target, Scale::Up { replicas }).await
    }

    /// Restores the target: for a kind with replicas the primary's count (scaled up from zero
    /// when there is no primary), else scaled up from zero.
    async fn finalize(&self, canary: &Canary) -> Result<(), WorkloadError> {
        if !K::REPLICATED {
            return self.scale_from_zero(canary).await;
        }
        let primary = self
            .get_opt(canary, &canary.spec.primary_workload_name())
            .await?;
        match primary {
            None => self.scale_from_zero(canary).await,
            Some(primary) => {
                let target = self.target(canary).await?;
                let replicas = primary.replicas().filter(|r| *r > 0).unwrap_or(1);
                self.scale(canary, &target, Scale::Up { replicas }).await
            }
        }
    }
}
