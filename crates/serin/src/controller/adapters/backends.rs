//! [`Backends`] and [`ServiceRouter`] over the workload factories, the generated Services and
//! the router factory (routing objects go to the mesh cluster's client).

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::{Canary, Provider};
use crate::controller::ports::{Backends, PortError, ServiceRouter};
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
}

impl KubeBackends {
    pub fn new(client: kube::Client, config: WorkloadConfig, routers: RouterFactory) -> Self {
        Self {
            client,
            config,
            routers,
        }
    }
}

impl Backends for KubeBackends {
    fn target(&self, canary: &Canary) -> Result<Arc<dyn TargetController>, PortError> {
        workload::target_controller_for(self.client.clone(), &self.config, canary)
            .map(Arc::from)
            .map_err(port_error)
    }

    fn scaler(&self, canary: &Canary) -> Result<Option<Arc<dyn ScalerReconciler>>, PortError> {
        workload::scaler_for(self.client.clone(), &self.config, canary)
            .map(|s| s.map(Arc::from))
            .map_err(port_error)
    }

    fn services(&self, canary: &Canary) -> Option<Arc<dyn ServiceRouter>> {
        if canary.spec.target_ref.kind == "Service" {
            return None;
        }
        Some(Arc::new(KubeServiceRouter {
            services: ServiceReconciler::new(self.client.clone()),
            client: self.client.clone(),
            config: self.config.clone(),
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
    client: kube::Client,
    config: WorkloadConfig,
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
        let target = workload::target_controller_for(self.client.clone(), &self.config, canary)
            .map_err(router_error)?;
        let metadata = target.metadata(canary).await.map_err(router_error)?;
        self.services
            .finalize(canary, &metadata)
            .await
            .map_err(router_error)
    }
}
