//! AWS App Mesh: VirtualNodes, VirtualRouters and VirtualServices (`appmesh.k8s.aws` v1beta2,
//! or v1beta1 for the legacy `appmesh` provider), Flagger's `AppMeshv1beta2Router` and
//! `AppMeshRouter`.
//!
//! [`render`] builds the objects and patches (pure, golden-tested); [`AppMeshRouter`] reads each
//! object once per call and writes a merge patch of the spec fields Serin owns only when they
//! differ other than by weights. The scheduler reconciles this router before the primary is
//! created, so the virtual nodes exist when the primary's pods get their sidecars.

use std::sync::Arc;

use async_trait::async_trait;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::dynamic::DynamicApi;
use super::{Router, RouterError, Routes};
use crate::api::provider::AppMeshVersion;
use crate::api::{Canary, CanaryStatus};
use crate::k8s::cache::Cache;
use crate::k8s::meta::{canary_id, namespace};

pub mod render;

use render::{Kind, Selector};

/// Where the v1beta2 router learns the target's selector label key (the virtual nodes select
/// pods by it): the target on the workload cluster.
#[async_trait]
pub trait SelectorSource: Send + Sync {
    async fn selector(&self, canary: &Canary) -> Result<Selector, RouterError>;
}

/// The App Mesh router of one API version. Its client talks to the mesh cluster.
pub struct AppMeshRouter {
    client: kube::Client,
    version: AppMeshVersion,
    set_owner_refs: bool,
    selector: Arc<dyn SelectorSource>,
    cache: Cache,
}

impl AppMeshRouter {
    pub fn new(
        client: kube::Client,
        version: AppMeshVersion,
        set_owner_refs: bool,
        selector: Arc<dyn SelectorSource>,
    ) -> Self {
        Self {
            client,
            version,
            set_owner_refs,
            selector,
            cache: Cache::disabled(),
        }
    }

    /// Reads the App Mesh objects through `cache` and tells it about the writes (the selector
    /// source reads the target on its own).
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    fn api(&self, canary: &Canary, kind: Kind) -> DynamicApi {
        let (group, version) = render::api_version(self.version)
            .split_once('/')
            .unwrap_or(("appmesh.k8s.aws", "v1beta2"));
        let gvk = GroupVersionKind::gvk(group, version, kind.as_str());
        let resource = ApiResource::from_gvk_with_plural(&gvk, kind.plural());
        DynamicApi::new(
            self.client.clone(),
            &resource,
            kind.as_str(),
            &namespace(canary),
        )
        .with_cache(self.cache.clone())
    }

    async fn selector(&self, canary: &Canary) -> Result<Selector, RouterError> {
        match self.version {
            AppMeshVersion::V1beta2 => self.selector.selector(canary).await,
            // v1beta1 nodes have no pod selector.
            AppMeshVersion::V1beta1 => Ok(Selector {
                label: String::new(),
            }),
        }
    }

    async fn weighted(&self, canary: &Canary) -> Result<Value, RouterError> {
        let (kind, name, _) = render::weighted(canary, self.version);
        self.api(canary, kind).get(&name).await
    }
}

#[async_trait]
impl Router for AppMeshRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        let selector = self.selector(canary).await?;
        let ns = namespace(canary);
        for d in render::desired(canary, self.version, &selector)? {
            let api = self.api(canary, d.kind);
            let id = format!("{} {}.{ns}", d.kind.as_str(), d.name);
            match api.get_opt(&d.name).await? {
                None => {
                    let object = render::object(canary, self.version, &d, self.set_owner_refs);
                    api.create(&d.name, object).await?;
                    tracing::info!(canary = %canary_id(canary), "{id} created");
                }
                Some(live) => {
                    if let Some(patch) = render::reconcile_patch(canary, self.version, &d, &live) {
                        api.patch(&d.name, &patch).await?;
                        tracing::info!(canary = %canary_id(canary), "{id} updated");
                    }
                }
            }
        }
        Ok(())
    }

    async fn set_routes(
        &self,
        canary: &Canary,
        _status: &mut CanaryStatus,
        routes: Routes,
    ) -> Result<(), RouterError> {
        let live = self.weighted(canary).await?;
        if let Some(patch) = render::set_routes_patch(canary, self.version, &live, routes)? {
            let (kind, name, _) = render::weighted(canary, self.version);
            self.api(canary, kind).patch(&name, &patch).await?;
        }
        Ok(())
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        let live = self.weighted(canary).await?;
        render::routes_of(canary, self.version, &live)
    }

    /// Nothing to revert (as in Flagger): the objects are garbage-collected with the Canary
    /// through their owner references.
    async fn finalize(&self, _canary: &Canary) -> Result<(), RouterError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
