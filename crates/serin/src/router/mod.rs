//! Traffic routers: one file per provider behind [`Router`], chosen in `factory.rs` with an
//! exhaustive `match` over [`crate::api::Provider`].

use async_trait::async_trait;

use crate::api::{Canary, CanaryStatus};

/// Traffic weights (they always sum to 100) and whether traffic is mirrored to the canary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    pub primary: i32,
    pub canary: i32,
    pub mirrored: bool,
}

impl Routes {
    pub fn new(primary: i32, canary: i32, mirrored: bool) -> Self {
        Self {
            primary,
            canary,
            mirrored,
        }
    }
}

/// Errors of a router.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The Canary asks for something this router cannot do (message for the user).
    #[error("{0}")]
    Invalid(String),
    /// The routing object is not in the shape the router expects (message for the user).
    #[error("{0}")]
    Routes(String),
    /// A Kubernetes API call failed.
    #[error("{context}: {}", crate::k8s::error::describe(.source))]
    Api {
        context: String,
        #[source]
        source: kube::Error,
    },
}

impl RouterError {
    /// The kind of failure: the API error's category, or `invalid` for a Canary or a routing
    /// object the router cannot work with.
    pub fn category(&self) -> crate::k8s::error::Category {
        match self {
            RouterError::Invalid(_) | RouterError::Routes(_) => {
                crate::k8s::error::Category::Invalid
            }
            RouterError::Api { source, .. } => crate::k8s::error::category(source),
        }
    }
}

/// A mesh or ingress router (Flagger's `router.Interface`).
#[async_trait]
pub trait Router: Send + Sync {
    /// Creates or updates the routing objects (initial weights 100/0 on creation).
    async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError>;
    /// Routes `routes.primary`/`routes.canary` percent of traffic. Session-affinity cookies
    /// generated or rotated here are written into `status`; the caller persists them with the
    /// next status write.
    async fn set_routes(
        &self,
        canary: &Canary,
        status: &mut CanaryStatus,
        routes: Routes,
    ) -> Result<(), RouterError>;
    /// Reads the current weights from the routing objects (the source of truth for routing).
    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError>;
    /// Reverts what `reconcile` adopted, on deletion with `revertOnDeletion`.
    async fn finalize(&self, canary: &Canary) -> Result<(), RouterError>;
}

pub mod apisix;
pub mod appmesh;
pub mod contour;
pub mod dynamic;
pub mod factory;
pub mod gatewayapi;
pub mod gloo;
pub mod ingress;
pub mod istio;
pub mod knative;
pub mod kubernetes;
pub mod kuma;
pub mod nginx;
pub mod object;
pub mod skipper;
pub mod smi;
pub mod traefik;

#[cfg(test)]
pub(crate) mod cached;

pub use factory::{IngressOptions, RouterFactory};
pub use gatewayapi::GatewayApiRouter;
pub use istio::IstioRouter;
pub use kubernetes::KubernetesRouter;
