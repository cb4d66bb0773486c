//! The `knative` provider (Flagger's `KnativeRouter`, `pkg/router/knative.go`): traffic is split
//! by the target Knative Service's own `spec.traffic` between the latest revision (the canary)
//! and the revision named by the `flagger.app/primary-revision` annotation (the primary).
//!
//! The weights are read back from `status.traffic`, so they lag until Knative has reconciled
//! the Service. Only `spec.traffic` is written (a merge patch replaces that list and nothing
//! else). Knative routes by percentages only: no A/B matches, mirroring or session affinity
//! (see `Provider::capabilities`).

use async_trait::async_trait;
use serde_json::json;

use super::{Router, RouterError, Routes};
use crate::api::apis::knative::{self, KnativeService, TrafficTarget};
use crate::api::{Canary, CanaryStatus};
use crate::k8s::cache::Cache;
use crate::k8s::meta::canary_id;
use crate::workload::WorkloadError;
use crate::workload::knative::{KnativeServices, primary_annotation_patch};

/// The router of the `knative` provider; the Knative Service lives in the workload cluster.
pub struct KnativeRouter {
    services: KnativeServices,
}

impl KnativeRouter {
    pub fn new(client: kube::Client) -> Self {
        Self {
            services: KnativeServices::new(client),
        }
    }

    /// Reads and patches the Knative Service through `cache` (the workload cluster's).
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.services = self.services.with_cache(cache);
        self
    }

    async fn service(&self, canary: &Canary) -> Result<KnativeService, RouterError> {
        self.services.get(canary).await.map_err(router_error)
    }
}

fn router_error(e: WorkloadError) -> RouterError {
    match e {
        WorkloadError::Api { context, source } => RouterError::Api { context, source },
        other => RouterError::Routes(other.to_string()),
    }
}

fn no_annotation(canary: &Canary) -> RouterError {
    RouterError::Routes(format!(
        "Knative Service {} annotation not found",
        KnativeServices::key(canary)
    ))
}

/// `spec.traffic` for `routes`, or `None` when the Service already routes that way.
pub fn desired_traffic(
    canary: &Canary,
    service: &KnativeService,
    routes: Routes,
) -> Result<Option<Vec<TrafficTarget>>, RouterError> {
    let primary = service
        .primary_revision()
        .ok_or_else(|| no_annotation(canary))?;
    let traffic = knative::traffic(primary, i64::from(routes.primary), i64::from(routes.canary));
    Ok((service.spec.traffic.as_ref() != Some(&traffic)).then_some(traffic))
}

/// The weights in `status.traffic`: the latest-revision entry is the canary, the other entry
/// naming the primary revision is the primary.
pub fn routes_of(canary: &Canary, service: &KnativeService) -> Result<Routes, RouterError> {
    let key = KnativeServices::key(canary);
    // Until Knative has reconciled the last spec change, status.traffic is the previous split:
    // reading it as the current one would make a step look undone (or a rollback look done).
    let observed = service.status.as_ref().and_then(|s| s.observed_generation);
    if let (Some(generation), Some(observed)) = (service.metadata.generation, observed)
        && observed < generation
    {
        return Err(RouterError::Routes(format!(
            "Knative Service {key} traffic is not reconciled yet (status.observedGeneration {observed} < metadata.generation {generation})"
        )));
    }
    let primary_name = service
        .primary_revision()
        .ok_or_else(|| no_annotation(canary))?;
    let traffic = service
        .status
        .as_ref()
        .map(|s| s.traffic.as_slice())
        .unwrap_or_default();
    let canary_entry = traffic.iter().find(|t| t.is_latest());
    // Once promoted, the latest revision is the primary revision too: its own entry (not the
    // latest-revision one) holds the primary's share. Between the promotion and the next
    // traffic change it has no entry of its own yet, and the latest-revision entry (which
    // names it) stands for both, as in Flagger.
    let names_primary = |t: &&TrafficTarget| t.revision_name.as_deref() == Some(primary_name);
    let primary_entry = traffic
        .iter()
        .filter(names_primary)
        .find(|t| !t.is_latest())
        .or_else(|| traffic.iter().find(names_primary));
    let (Some(canary_entry), Some(primary_entry)) = (canary_entry, primary_entry) else {
        return Err(RouterError::Routes(format!(
            "Knative Service {key} traffic spec invalid: status.traffic needs an entry with latestRevision true and one with revisionName {primary_name}"
        )));
    };
    let percent = |entry: &TrafficTarget, which: &str| {
        entry
            .percent
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| {
                RouterError::Routes(format!(
                    "Knative Service {key} {which} revision traffic percent does not exist"
                ))
            })
    };
    Ok(Routes::new(
        percent(primary_entry, "primary")?,
        percent(canary_entry, "canary")?,
        false,
    ))
}

#[async_trait]
impl Router for KnativeRouter {
    /// Names the latest revision as the primary when no revision is named yet.
    async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        let service = self.service(canary).await?;
        if service.primary_revision().is_some() {
            return Ok(());
        }
        let latest = KnativeServices::latest_revision(canary, &service).map_err(router_error)?;
        self.services
            .patch(canary, &primary_annotation_patch(Some(latest)))
            .await
            .map_err(router_error)?;
        tracing::info!(canary = %canary_id(canary), "Knative Service {} updated", KnativeServices::key(canary));
        Ok(())
    }

    async fn set_routes(
        &self,
        canary: &Canary,
        _status: &mut CanaryStatus,
        routes: Routes,
    ) -> Result<(), RouterError> {
        let service = self.service(canary).await?;
        if let Some(traffic) = desired_traffic(canary, &service, routes)? {
            self.services
                .patch(canary, &json!({"spec": {"traffic": traffic}}))
                .await
                .map_err(router_error)?;
        }
        Ok(())
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        let service = self.service(canary).await?;
        routes_of(canary, &service)
    }

    /// Removes the primary revision annotation (the traffic split stays as it is).
    async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        let service = self.service(canary).await?;
        if service.primary_revision().is_none() {
            return Ok(());
        }
        self.services
            .patch(canary, &primary_annotation_patch(None))
            .await
            .map_err(router_error)?;
        tracing::info!(canary = %canary_id(canary), "Knative Service {} updated", KnativeServices::key(canary));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
