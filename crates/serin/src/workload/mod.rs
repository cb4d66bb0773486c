//! Target workloads: Deployments, DaemonSets, plain Services and Knative Services behind
//! [`TargetController`], the generated Services, ConfigMap/Secret tracking and the primary
//! autoscalers.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::api::Canary;

/// What the controller needs to know about a target to generate Services.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetMetadata {
    /// The selector label key (first of `-selector-labels` present in the target's selector).
    pub label: String,
    /// Its value in the target's selector (the primary uses `<value>-primary`).
    pub label_value: String,
    /// Extra container ports (`service.portDiscovery`): port name → number.
    pub ports: BTreeMap<String, i32>,
}

/// The identity of a target revision: a stable hash of what Flagger hashes (the pod template for
/// Deployments and DaemonSets) and the checksums of tracked ConfigMaps and Secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revision {
    pub spec_hash: String,
    /// `configmap/<name>` / `secret/<name>` → checksum.
    pub tracked_configs: BTreeMap<String, String>,
}

/// Errors of workload operations.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// Not ready yet (e.g. `waiting for rollout to finish: ...`); retried on the next tick.
    #[error("{0}")]
    NotReady(String),
    /// Not ready for good (progress deadline exceeded): triggers a rollback.
    #[error("{0}")]
    Failed(String),
    /// The target is not usable as configured (message for the user).
    #[error("{0}")]
    Invalid(String),
    /// A Kubernetes API call failed.
    #[error("{context}: {}", crate::k8s::error::describe(.source))]
    Api {
        context: String,
        #[source]
        source: kube::Error,
    },
}

impl WorkloadError {
    /// Whether waiting may fix it (Flagger's "retriable" flag).
    pub fn is_retriable(&self) -> bool {
        !matches!(self, WorkloadError::Failed(_))
    }

    /// The kind of failure of an API call or of a target that cannot be used; `None` for a
    /// workload that is not ready (yet or for good), which is no failure of a request.
    pub fn category(&self) -> Option<crate::k8s::error::Category> {
        use crate::k8s::error::{Category, category};
        match self {
            WorkloadError::NotReady(_) | WorkloadError::Failed(_) => None,
            WorkloadError::Invalid(_) => Some(Category::Invalid),
            WorkloadError::Api { source, .. } => Some(category(source)),
        }
    }
}

/// A target kind's operations (Flagger's `canary.Controller`).
#[async_trait]
pub trait TargetController: Send + Sync {
    /// Selector label, its value and discovered ports.
    async fn metadata(&self, canary: &Canary) -> Result<TargetMetadata, WorkloadError>;
    /// Creates the primary workload (and ConfigMap/Secret copies) when missing; when
    /// `wait_primary_ready` is set, returns `NotReady`/`Failed` until the primary is ready.
    async fn initialize(
        &self,
        canary: &Canary,
        wait_primary_ready: bool,
    ) -> Result<(), WorkloadError>;
    /// Copies the target's template (and configs) to the primary.
    async fn promote(&self, canary: &Canary) -> Result<(), WorkloadError>;
    async fn is_primary_ready(&self, canary: &Canary) -> Result<(), WorkloadError>;
    async fn is_canary_ready(&self, canary: &Canary) -> Result<(), WorkloadError>;
    /// The current revision identity of the target.
    async fn revision(&self, canary: &Canary) -> Result<Revision, WorkloadError>;
    async fn scale_to_zero(&self, canary: &Canary) -> Result<(), WorkloadError>;
    async fn scale_from_zero(&self, canary: &Canary) -> Result<(), WorkloadError>;
    /// Restores the target on deletion with `revertOnDeletion`.
    async fn finalize(&self, canary: &Canary) -> Result<(), WorkloadError>;
}

/// The primary autoscaler of a target (HPA or KEDA ScaledObject).
#[async_trait]
pub trait ScalerReconciler: Send + Sync {
    /// Creates the primary autoscaler when missing; when `init` is false also updates it from
    /// the target's.
    async fn reconcile_primary(&self, canary: &Canary, init: bool) -> Result<(), WorkloadError>;
    /// Stops the target's autoscaler from scaling the canary (KEDA paused-replicas; no-op for HPA).
    async fn pause_target(&self, canary: &Canary) -> Result<(), WorkloadError>;
    async fn resume_target(&self, canary: &Canary) -> Result<(), WorkloadError>;
}

pub mod autoscaler;
pub mod config;
pub mod config_tracker;
pub mod daemonset;
pub mod deployment;
pub mod factory;
pub mod knative;
pub mod pod;
pub mod primary;
pub mod service_target;
pub mod services;
pub mod template;

pub use config::WorkloadConfig;

pub use autoscaler::{HpaReconciler, ScaledObjectReconciler, scaler_with_cache};
pub use config_tracker::ConfigTracker;
pub use daemonset::DaemonSetController;
pub use deployment::DeploymentController;
pub use factory::target_controller_with_cache;
pub use knative::KnativeController;
pub use primary::PrimaryController;
pub use service_target::ServiceTargetController;
pub use services::ServiceReconciler;
