//! [`Backends`] and [`ServiceRouter`] over the workload factories, the generated Services and
//! the router factory (routing objects go to the mesh cluster's client).

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::{Canary, Provider};
use crate::controller::ports::{Backends, PortError, ServiceRouter};
use crate::k8s::cache::Cache;
use crate::router::{Router, RouterError, RouterFactory};
use crate::workload::{
    self, ScalerReconciler, ServiceReconciler, TargetController, TargetMetadata, WorkloadConfig,
    WorkloadError,
};

fn port_error(e: WorkloadError) -> PortError {
    match e {
        WorkloadError::Api { context, source } => PortError::Api { context, source },
        other => PortError::Invalid(other.to_string()),
    }
}

fn router_error(e: WorkloadError) -> RouterError {
    match e {
        WorkloadError::Api { context, source } => RouterError::Api { context, source },
        other => RouterError::Invalid(other.to_string()),
    }
}

/// Flagger's factories over one workload cluster and one mesh cluster.
#[derive(Clone)]
pub struct KubeBackends {
    client: kube::Client,
    config: WorkloadConfig,
    routers: RouterFactory,
    cache: Cache,
}

impl KubeBackends {
    pub fn new(client: kube::Client, config: WorkloadConfig, routers: RouterFactory) -> Self {
        Self {
            client,
            config,
            routers,
            cache: Cache::disabled(),
        }
    }

    /// Target controllers, scalers and generated Services read through `cache` (the routers
    /// get theirs from the router factory).
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    fn target_controller(
        &self,
        canary: &Canary,
    ) -> Result<Box<dyn TargetController>, WorkloadError> {
        workload::target_controller_with_cache(
            self.client.clone(),
            &self.config,
            canary,
            self.cache.clone(),
        )
    }
}

impl Backends for KubeBackends {
    fn target(&self, canary: &Canary) -> Result<Arc<dyn TargetController>, PortError> {
        self.target_controller(canary)
            .map(Arc::from)
            .map_err(port_error)
    }

    fn scaler(&self, canary: &Canary) -> Result<Option<Arc<dyn ScalerReconciler>>, PortError> {
        workload::scaler_with_cache(
            self.client.clone(),
            &self.config,
            canary,
            self.cache.clone(),
        )
        .map(|s| s.map(Arc::from))
        .map_err(port_error)
    }

    fn services(&self, canary: &Canary) -> Option<Arc<dyn ServiceRouter>> {
        if canary.spec.target_ref.kind == "Service" {
            return None;
        }
        Some(Arc::new(KubeServiceRouter {
            services: ServiceReconciler::new(self.client.clone()).with_cache(self.cache.clone()),
            backends: self.clone(),
        }))
    }

    fn router(&self, _canary: &Canary, provider: &Provider) -> Result<Arc<dyn Router>, PortError> {
        self.routers
            .router(provider)
            .map(Arc::from)
            .map_err(|e| PortError::Invalid(e.to_string()))
    }
}

/// Flagger's `KubernetesRouter` (the generated ClusterIP Services) as the scheduler's port.
#[derive(Clone)]
pub struct KubeServiceRouter {
    services: ServiceReconciler,
    /// Builds the target controller that [`ServiceRouter::finalize`] asks for the selector label.
    backends: KubeBackends,
}

#[async_trait]
impl ServiceRouter for KubeServiceRouter {
    async fn initialize(
        &self,
        canary: &Canary,
        metadata: &TargetMetadata,
    ) -> Result<(), RouterError> {
        self.services
            .initialize(canary, metadata)
            .await
            .map_err(router_error)
    }

    async fn reconcile(
        &self,
        canary: &Canary,
        metadata: &TargetMetadata,
    ) -> Result<(), RouterError> {
        self.services
            .reconcile(canary, metadata)
            .await
            .map_err(router_error)
    }

    /// Reads the target's metadata (selector label) again to restore the apex Service.
    async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        let target = self
            .backends
            .target_controller(canary)
            .map_err(router_error)?;
        let metadata = target.metadata(canary).await.map_err(router_error)?;
        self.services
            .finalize(canary, &metadata)
            .await
            .map_err(router_error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::Service;
    use kube::Api;
    use serde_json::json;

    use super::*;
    use crate::testing::{TestCluster, until_cached};

    /// The target, its HPA and the Canary.
    async fn cluster() -> (TestCluster, Canary) {
        let fake = TestCluster::start().await;
        fake.insert(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {"metadata": {"labels": {"app": "podinfo"}},
                    "spec": {"containers": [{"name": "podinfo", "image": "podinfo:1"}]}}}}))
            .await;
        fake.insert(json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}, "maxReplicas": 4}}))
        .await;
        let canary: Canary = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"},
                "service": {"port": 9898}
            }
        }))
        .unwrap();
        let canary = fake.store_canary(canary).await;
        (fake, canary)
    }

    /// What a step asks of the workload side: the target, its autoscaler and the Services.
    async fn step(backends: &KubeBackends, canary: &Canary) {
        let target = backends.target(canary).unwrap();
        let metadata = target.metadata(canary).await.unwrap();
        target.initialize(canary, false).await.unwrap();
        target.revision(canary).await.unwrap();
        let scaler = backends.scaler(canary).unwrap().unwrap();
        scaler.reconcile_primary(canary, false).await.unwrap();
        let services = backends.services(canary).unwrap();
        services.initialize(canary, &metadata).await.unwrap();
        services.reconcile(canary, &metadata).await.unwrap();
    }

    #[tokio::test]
    async fn everything_built_with_a_cache_reads_through_it() {
        let (fake, canary) = cluster().await;
        let client = fake.client();
        let cache = Cache::new(None);
        let backends = KubeBackends::new(
            client.clone(),
            WorkloadConfig::default(),
            RouterFactory::new(client.clone(), true),
        )
        .with_cache(cache.clone());
        step(&backends, &canary).await;
        step(&backends, &canary).await;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "test");
        until_cached(&cache, &deployments, "podinfo").await;
        until_cached(&cache, &deployments, "podinfo-primary").await;
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "test");
        until_cached(&cache, &hpas, "podinfo").await;
        until_cached(&cache, &hpas, "podinfo-primary").await;
        let services: Api<Service> = Api::namespaced(client, "test");
        for name in ["podinfo", "podinfo-canary", "podinfo-primary"] {
            until_cached(&cache, &services, name).await;
        }
        fake.clear_writes();
        step(&backends, &canary).await;
        assert_eq!(fake.gets(), Vec::<String>::new());
        assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    }
}
