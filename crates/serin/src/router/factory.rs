//! The one place a provider becomes a router: an exhaustive `match` over [`Provider`].

use std::sync::Arc;

use async_trait::async_trait;

use super::apisix::ApisixRouter;
use super::appmesh::render::Selector;
use super::appmesh::{AppMeshRouter, SelectorSource};
use super::contour::HttpProxy;
use super::gloo::GlooRouter;
use super::knative::KnativeRouter;
use super::kuma::TrafficRoute;
use super::nginx::NginxRouter;
use super::object::ObjectRouter;
use super::skipper::SkipperRouter;
use super::smi::TrafficSplit;
use super::traefik::TraefikService;
use super::{GatewayApiRouter, IstioRouter, KubernetesRouter, Router, RouterError};
use crate::api::provider::SmiVersion;
use crate::api::{Canary, Provider};
use crate::k8s::cache::Cache;
use crate::workload::{self, WorkloadConfig, WorkloadError};

/// The controller flags of the ingress routers.
#[derive(Clone, Debug)]
pub struct IngressOptions {
    /// `-ingress-class` (Contour's `ingressClassName`; empty: not set).
    pub class: String,
    /// `-ingress-annotations-prefix` (NGINX).
    pub annotations_prefix: String,
}

impl Default for IngressOptions {
    fn default() -> Self {
        Self {
            class: String::new(),
            annotations_prefix: "nginx.ingress.kubernetes.io".to_string(),
        }
    }
}

/// Builds routers. Routing objects are written through the mesh cluster's client
/// (`-kubeconfig-service-mesh`, by default the workload cluster's).
#[derive(Clone)]
pub struct RouterFactory {
    mesh_client: kube::Client,
    set_owner_refs: bool,
    ingress: IngressOptions,
    targets: TargetSelector,
    cache: Cache,
}

impl RouterFactory {
    /// `set_owner_refs` must be false when the mesh cluster is not the workload cluster (an owner
    /// reference to a Canary of another cluster would get the routing objects garbage-collected).
    pub fn new(mesh_client: kube::Client, set_owner_refs: bool) -> Self {
        Self {
            targets: TargetSelector {
                client: mesh_client.clone(),
                config: WorkloadConfig::default(),
                cache: Cache::disabled(),
            },
            mesh_client,
            set_owner_refs,
            ingress: IngressOptions::default(),
            cache: Cache::disabled(),
        }
    }

    /// Gives every router it builds `cache` for its routing objects (the Knative router and
    /// App Mesh's read of the target's selector go through the workload module, which is not
    /// cached here).
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    /// Sets the workload cluster's client and configuration (App Mesh's virtual nodes select
    /// pods by the target's selector label; by default the mesh client and default flags).
    pub fn with_workloads(mut self, client: kube::Client, config: WorkloadConfig) -> Self {
        self.targets = TargetSelector {
            client,
            config,
            cache: self.targets.cache.clone(),
        };
        self
    }

    /// The workload cluster's cache, for what the routers read there (App Mesh's target
    /// selector, the Knative Service).
    pub fn with_workload_cache(mut self, cache: Cache) -> Self {
        self.targets.cache = cache;
        self
    }

    /// Sets the ingress routers' flags.
    pub fn with_ingress(mut self, ingress: IngressOptions) -> Self {
        self.ingress = ingress;
        self
    }

    /// The router of `provider` (every provider of the CRD has one).
    pub fn router(&self, provider: &Provider) -> Result<Box<dyn Router>, RouterError> {
        match provider {
            Provider::Istio => Ok(Box::new(
                IstioRouter::new(self.mesh_client.clone(), self.set_owner_refs)
                    .with_cache(self.cache.clone()),
            )),
            Provider::Kubernetes => Ok(Box::new(KubernetesRouter::new())),
            Provider::GatewayApi(version) => Ok(Box::new(
                GatewayApiRouter::new(self.mesh_client.clone(), *version, self.set_owner_refs)
                    .with_cache(self.cache.clone()),
            )),
            Provider::Linkerd => Ok(self.object(TrafficSplit {
                version: SmiVersion::V1alpha1,
                mesh: Some("linkerd".to_string()),
            })),
            Provider::Smi { version, mesh } => Ok(self.object(TrafficSplit {
                version: *version,
                mesh: mesh.clone(),
            })),
            Provider::Osm => Ok(self.object(TrafficSplit {
                version: SmiVersion::V1alpha2,
                mesh: Some("osm".to_string()),
            })),
            Provider::Contour => Ok(self.object(HttpProxy {
                ingress_class: self.ingress.class.clone(),
            })),
            Provider::Traefik => Ok(self.object(TraefikService)),
            Provider::Kuma => Ok(self.object(TrafficRoute)),
            Provider::Nginx => Ok(Box::new(
                NginxRouter::new(
                    self.mesh_client.clone(),
                    self.set_owner_refs,
                    &self.ingress.annotations_prefix,
                )
                .with_cache(self.cache.clone()),
            )),
            Provider::Skipper => Ok(Box::new(
                SkipperRouter::new(self.mesh_client.clone(), self.set_owner_refs)
                    .with_cache(self.cache.clone()),
            )),
            Provider::Apisix => Ok(Box::new(
                ApisixRouter::new(self.mesh_client.clone(), self.set_owner_refs)
                    .with_cache(self.cache.clone()),
            )),
            Provider::Gloo => Ok(Box::new(
                GlooRouter::new(self.mesh_client.clone(), self.set_owner_refs)
                    .with_cache(self.cache.clone()),
            )),
            Provider::AppMesh(version) => Ok(Box::new(
                AppMeshRouter::new(
                    self.mesh_client.clone(),
                    *version,
                    self.set_owner_refs,
                    Arc::new(self.targets.clone()),
                )
                .with_cache(self.cache.clone()),
            )),
            Provider::Knative => Ok(Box::new(
                KnativeRouter::new(self.targets.client.clone())
                    .with_cache(self.targets.cache.clone()),
            )),
        }
    }
}

impl RouterFactory {
    fn object<R: super::object::RoutingObject + 'static>(&self, object: R) -> Box<dyn Router> {
        Box::new(
            ObjectRouter::new(self.mesh_client.clone(), self.set_owner_refs, object)
                .with_cache(self.cache.clone()),
        )
    }
}

/// The selector label of a Canary's target, read from the workload cluster.
#[derive(Clone)]
struct TargetSelector {
    client: kube::Client,
    config: WorkloadConfig,
    cache: Cache,
}

#[async_trait]
impl SelectorSource for TargetSelector {
    async fn selector(&self, canary: &Canary) -> Result<Selector, RouterError> {
        let as_router_error = |e: WorkloadError| match e {
            WorkloadError::Api { context, source } => RouterError::Api { context, source },
            other => RouterError::Invalid(other.to_string()),
        };
        let target = workload::target_controller_with_cache(
            self.client.clone(),
            &self.config,
            canary,
            self.cache.clone(),
        )
        .map_err(as_router_error)?;
        let metadata = target.metadata(canary).await.map_err(as_router_error)?;
        Ok(Selector {
            label: metadata.label,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::api::provider::CRD_PROVIDER_VALUES;
    use crate::testing::TestCluster;

    #[tokio::test]
    async fn every_provider_has_a_router() {
        let fake = TestCluster::start().await;
        let client = fake.client();
        let factory = RouterFactory::new(client, true);
        for value in CRD_PROVIDER_VALUES {
            let provider: Provider = value.parse().unwrap();
            assert!(factory.router(&provider).is_ok(), "{value}");
        }
    }
}
