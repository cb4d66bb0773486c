//! Knative Service targets (Flagger's `KnativeController`, `pkg/canary/knative_controller.go`).
//!
//! Knative keeps every revision of a Service, so there is no primary workload to create: the
//! annotation `flagger.app/primary-revision` names the revision that serves as the primary, and
//! `spec.traffic` splits traffic between it and the latest revision (the canary). Promotion moves
//! the annotation to the latest revision. Nothing is scaled: Knative scales revisions itself.
//!
//! Readiness is the `Ready` condition of the Revision objects: the annotated one for the
//! primary, the latest created one for the canary. Never a rollback by itself (Flagger: always
//! retriable).

use async_trait::async_trait;
use kube::Api;
use kube::api::Patch;
use serde_json::{Value, json};

use super::{Revision, TargetController, TargetMetadata, WorkloadError};
use crate::api::apis::knative::{
    self, KnativeRevision, KnativeService, PRIMARY_REVISION_ANNOTATION,
};
use crate::api::{Canary, CanaryPhase};
use crate::k8s::cache::Cache;
use crate::k8s::error::not_found;
use crate::k8s::meta::{canary_id, namespace, patch_params};

/// Reads and patches the Knative Service a Canary targets (shared with the Knative router).
#[derive(Clone)]
pub struct KnativeServices {
    client: kube::Client,
    cache: Cache,
}

impl KnativeServices {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: Cache::disabled(),
        }
    }

    /// Reads and patches the Services and reads the Revisions through `cache`.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    fn api(&self, canary: &Canary) -> Api<KnativeService> {
        Api::namespaced(self.client.clone(), &namespace(canary))
    }

    /// `<target>.<namespace>`, as the messages name the Service.
    pub fn key(canary: &Canary) -> String {
        format!("{}.{}", canary.spec.target_ref.name, namespace(canary))
    }

    /// The target Service.
    pub async fn get(&self, canary: &Canary) -> Result<KnativeService, WorkloadError> {
        let name = &canary.spec.target_ref.name;
        let error = |source| WorkloadError::Api {
            context: format!("Knative Service {} get query error", Self::key(canary)),
            source,
        };
        self.cache
            .get(&self.api(canary), name)
            .await
            .map_err(error)?
            .ok_or_else(|| error(not_found::<KnativeService>(&(), name)))
    }

    /// The Revision `name` in the Canary's namespace.
    pub async fn revision(
        &self,
        canary: &Canary,
        name: &str,
    ) -> Result<KnativeRevision, WorkloadError> {
        let error = |source| WorkloadError::Api {
            context: format!(
                "Knative Revision {name}.{} get query error",
                namespace(canary)
            ),
            source,
        };
        let api = Api::<KnativeRevision>::namespaced(self.client.clone(), &namespace(canary));
        self.cache
            .get(&api, name)
            .await
            .map_err(error)?
            .ok_or_else(|| error(not_found::<KnativeRevision>(&(), name)))
    }

    /// `Ok` when the Revision `name` is ready.
    pub async fn revision_ready(&self, canary: &Canary, name: &str) -> Result<(), WorkloadError> {
        if self.revision(canary, name).await?.is_ready() {
            return Ok(());
        }
        Err(WorkloadError::NotReady(format!(
            "Knative Revision {name}.{} is not ready",
            namespace(canary)
        )))
    }

    /// Sends a JSON merge patch to the target Service (lists such as `spec.traffic` are
    /// replaced whole; every other field is left as it is).
    pub async fn patch(&self, canary: &Canary, patch: &Value) -> Result<(), WorkloadError> {
        self.cache
            .patch(
                &self.api(canary),
                &canary.spec.target_ref.name,
                &patch_params(),
                &Patch::Merge(patch),
            )
            .await
            .map(|_| ())
            .map_err(|source| WorkloadError::Api {
                context: format!("Knative Service {} update query error", Self::key(canary)),
                source,
            })
    }

    /// `status.latestCreatedRevisionName`, or `NotReady` while Knative has not created one.
    pub fn latest_revision<'a>(
        canary: &Canary,
        service: &'a KnativeService,
    ) -> Result<&'a str, WorkloadError> {
        service.latest_created_revision().ok_or_else(|| {
            WorkloadError::NotReady(format!(
                "Knative Service {} has no revision yet (status.latestCreatedRevisionName is empty)",
                Self::key(canary)
            ))
        })
    }
}

/// The merge patch setting the primary revision annotation to `revision`.
pub fn primary_annotation_patch(revision: Option<&str>) -> Value {
    json!({"metadata": {"annotations": {PRIMARY_REVISION_ANNOTATION: revision}}})
}

/// The Knative Service target controller.
pub struct KnativeController {
    services: KnativeServices,
}

impl KnativeController {
    pub fn new(client: kube::Client) -> Self {
        Self {
            services: KnativeServices::new(client),
        }
    }

    /// Reads the Services and Revisions through `cache`.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.services = self.services.with_cache(cache);
        self
    }
}

/// The merge patch of initialization: the latest revision becomes the primary and gets all the
/// traffic. `None` when the Service already looks like that.
pub fn initialize_patch(service: &KnativeService, latest: &str) -> Option<Value> {
    let traffic = knative::traffic(latest, 100, 0);
    let annotated = service.primary_revision() == Some(latest);
    let routed = service.spec.traffic.as_ref() == Some(&traffic);
    if annotated && routed {
        return None;
    }
    let mut patch = primary_annotation_patch(Some(latest));
    patch["spec"] = json!({ "traffic": traffic });
    Some(patch)
}

#[async_trait]
impl TargetController for KnativeController {
    /// Knative targets have no selector label and no generated Services.
    async fn metadata(&self, _canary: &Canary) -> Result<TargetMetadata, WorkloadError> {
        Ok(TargetMetadata::default())
    }

    /// While the Canary initializes: annotate the latest revision as the primary and route all
    /// traffic to it.
    async fn initialize(
        &self,
        canary: &Canary,
        wait_primary_ready: bool,
    ) -> Result<(), WorkloadError> {
        let phase = canary.status.as_ref().map(|s| s.phase).unwrap_or_default();
        if matches!(phase, CanaryPhase::Empty | CanaryPhase::Initializing) {
            let service = self.services.get(canary).await?;
            let latest = KnativeServices::latest_revision(canary, &service)?;
            if let Some(patch) = initialize_patch(&service, latest) {
                self.services.patch(canary, &patch).await?;
            }
        }
        if wait_primary_ready {
            self.is_primary_ready(canary).await?;
        }
        Ok(())
    }

    /// The latest revision becomes the primary (the router then moves the traffic to it).
    async fn promote(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let service = self.services.get(canary).await?;
        let latest = KnativeServices::latest_revision(canary, &service)?;
        if service.primary_revision() != Some(latest) {
            self.services
                .patch(canary, &primary_annotation_patch(Some(latest)))
                .await?;
        }
        Ok(())
    }

    /// The revision named by the primary revision annotation is ready.
    async fn is_primary_ready(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let service = self.services.get(canary).await?;
        match service.primary_revision() {
            Some(name) if !name.is_empty() => self.services.revision_ready(canary, name).await,
            _ => Err(WorkloadError::NotReady(format!(
                "Knative Service {} primary revision annotation not found",
                KnativeServices::key(canary)
            ))),
        }
    }

    /// The latest created revision is ready.
    async fn is_canary_ready(&self, canary: &Canary) -> Result<(), WorkloadError> {
        let service = self.services.get(canary).await?;
        let latest = KnativeServices::latest_revision(canary, &service)?;
        self.services.revision_ready(canary, latest).await
    }

    /// The identity of a Knative target is its latest created revision's name.
    async fn revision(&self, canary: &Canary) -> Result<Revision, WorkloadError> {
        let service = self.services.get(canary).await?;
        let latest = KnativeServices::latest_revision(canary, &service)?;
        Ok(Revision {
            spec_hash: latest.to_string(),
            tracked_configs: Default::default(),
        })
    }

    async fn scale_to_zero(&self, _canary: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }

    async fn scale_from_zero(&self, _canary: &Canary) -> Result<(), WorkloadError> {
        Ok(())
    }

    /// Nothing to restore on the target (the router removes the annotation).
    async fn finalize(&self, canary: &Canary) -> Result<(), WorkloadError> {
        tracing::debug!(canary = %canary_id(canary), "Knative targets have nothing to restore");
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
