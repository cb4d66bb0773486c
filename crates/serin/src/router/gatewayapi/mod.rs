//! Gateway API router: the HTTPRoute `<apex>` (`gateway.networking.k8s.io` v1 or v1beta1),
//! Flagger's `GatewayAPIRouter` / `GatewayAPIV1Beta1Router`, or for gRPC canaries the GRPCRoute
//! `<apex>` (v1, Serin only: `service.appProtocol: grpc`).
//!
//! [`render`] and [`grpc`] build Serin's rules and the patches (pure, golden-tested);
//! [`GatewayApiRouter`] does one read per call (answered by the watch cache when it has one) and
//! writes a merge patch of `parentRefs`, `hostnames`, `rules` and the desired labels/annotations
//! only when something differs. Rules and filters Serin did not write are kept (see [`render`]).

use async_trait::async_trait;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch};
use serde_json::Value;

use super::istio::CookieGenerator;
use super::{Router, RouterError, Routes};
use crate::api::apis::gatewayapi::{GrpcRoute, HttpRoute};
use crate::api::provider::GatewayApiVersion;
use crate::api::{Canary, CanaryStatus};
use crate::k8s::cache::Cache;
use crate::k8s::meta::{canary_id, namespace, patch_params, post_params, random_letters};

pub mod grpc;
pub mod render;

fn random_cookie_value() -> Result<String, String> {
    random_letters(10)
}

/// The Gateway API router of one API version. Its client talks to the mesh cluster.
#[derive(Clone)]
pub struct GatewayApiRouter {
    client: kube::Client,
    version: GatewayApiVersion,
    set_owner_refs: bool,
    cookie_generator: CookieGenerator,
    cache: Cache,
}

impl GatewayApiRouter {
    pub fn new(client: kube::Client, version: GatewayApiVersion, set_owner_refs: bool) -> Self {
        Self {
            client,
            version,
            set_owner_refs,
            cookie_generator: random_cookie_value,
            cache: Cache::disabled(),
        }
    }

    /// Reads the routes through `cache` and tells it about the writes.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    /// Replaces the random session-affinity cookie values (tests, simulations).
    pub fn with_cookie_generator(mut self, generator: CookieGenerator) -> Self {
        self.cookie_generator = generator;
        self
    }

    fn resource(&self) -> ApiResource {
        let (group, version) = render::api_version(self.version)
            .split_once('/')
            .unwrap_or(("gateway.networking.k8s.io", "v1"));
        let gvk = GroupVersionKind::gvk(group, version, "HTTPRoute");
        ApiResource::from_gvk_with_plural(&gvk, "httproutes")
    }

    fn api(&self, canary: &Canary) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &namespace(canary), &self.resource())
    }

    fn context(canary: &Canary, what: &str) -> String {
        let n = render::names(canary);
        format!("HTTPRoute {}.{} {what}", n.apex, n.namespace)
    }

    async fn get_opt(&self, canary: &Canary) -> Result<Option<HttpRoute>, RouterError> {
        let n = render::names(canary);
        self.cache
            .get_as(&self.api(canary), &n.apex)
            .await
            .map_err(|source| read_error(Self::context(canary, ""), source))
    }

    async fn get(&self, canary: &Canary) -> Result<HttpRoute, RouterError> {
        let n = render::names(canary);
        self.get_opt(canary).await?.ok_or_else(|| {
            RouterError::Routes(format!(
                "HTTPRoute {}.{} get query error: not found",
                n.apex, n.namespace
            ))
        })
    }

    async fn patch(&self, canary: &Canary, patch: &Value, what: &str) -> Result<(), RouterError> {
        let n = render::names(canary);
        self.cache
            .patch(
                &self.api(canary),
                &n.apex,
                &patch_params(),
                &Patch::Merge(patch),
            )
            .await
            .map_err(|source| RouterError::Api {
                context: Self::context(canary, what),
                source,
            })?;
        Ok(())
    }
}

/// The GRPCRoute calls (the same shape as the HTTPRoute ones).
impl GatewayApiRouter {
    fn grpc_resource() -> ApiResource {
        let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "GRPCRoute");
        ApiResource::from_gvk_with_plural(&gvk, "grpcroutes")
    }

    fn grpc_api(&self, canary: &Canary) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &namespace(canary),
            &Self::grpc_resource(),
        )
    }

    fn grpc_context(canary: &Canary, what: &str) -> String {
        let n = render::names(canary);
        format!("GRPCRoute {}.{} {what}", n.apex, n.namespace)
    }

    async fn grpc_get_opt(&self, canary: &Canary) -> Result<Option<GrpcRoute>, RouterError> {
        let n = render::names(canary);
        self.cache
            .get_as(&self.grpc_api(canary), &n.apex)
            .await
            .map_err(|source| read_error(Self::grpc_context(canary, ""), source))
    }

    async fn grpc_get(&self, canary: &Canary) -> Result<GrpcRoute, RouterError> {
        let n = render::names(canary);
        self.grpc_get_opt(canary).await?.ok_or_else(|| {
            RouterError::Routes(format!(
                "GRPCRoute {}.{} get query error: not found",
                n.apex, n.namespace
            ))
        })
    }

    async fn grpc_patch(
        &self,
        canary: &Canary,
        patch: &Value,
        what: &str,
    ) -> Result<(), RouterError> {
        let n = render::names(canary);
        self.cache
            .patch(
                &self.grpc_api(canary),
                &n.apex,
                &patch_params(),
                &Patch::Merge(patch),
            )
            .await
            .map_err(|source| RouterError::Api {
                context: Self::grpc_context(canary, what),
                source,
            })?;
        Ok(())
    }

    async fn grpc_reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        let n = render::names(canary);
        match self.grpc_get_opt(canary).await? {
            None => {
                let desired = grpc::grpc_route(canary, self.set_owner_refs)?;
                let object: DynamicObject = serde_json::to_value(&desired)
                    .and_then(serde_json::from_value)
                    .map_err(|e| {
                        RouterError::Routes(format!("serialising the GRPCRoute failed: {e}"))
                    })?;
                self.cache
                    .create(&self.grpc_api(canary), &post_params(), &object)
                    .await
                    .map_err(|source| RouterError::Api {
                        context: Self::grpc_context(canary, "create error"),
                        source,
                    })?;
                tracing::info!(canary = %canary_id(canary), "GRPCRoute {}.{} created", n.apex, n.namespace);
            }
            Some(live) => {
                if let Some(patch) = grpc::grpc_reconcile_patch(canary, &live)? {
                    self.grpc_patch(canary, &patch, "update error while reconciling")
                        .await?;
                    tracing::info!(canary = %canary_id(canary), "GRPCRoute {}.{} updated", n.apex, n.namespace);
                }
            }
        }
        Ok(())
    }

    async fn grpc_set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let live = self.grpc_get(canary).await?;
        if let Some(patch) = grpc::grpc_set_routes_patch(canary, &live.spec, routes)? {
            self.grpc_patch(canary, &patch, "update error while setting weights")
                .await?;
        }
        Ok(())
    }

    async fn grpc_get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        let live = self.grpc_get(canary).await?;
        render::parents_accepted(
            "GRPCRoute",
            canary,
            live.metadata.generation,
            live.spec.parent_refs.as_deref(),
            live.status.as_ref(),
        )?;
        grpc::grpc_routes_of(canary, &live.spec)
    }
}

#[async_trait]
impl Router for GatewayApiRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        if grpc::wants_grpc_route(canary, self.version) {
            return self.grpc_reconcile(canary).await;
        }
        let n = render::names(canary);
        match self.get_opt(canary).await? {
            None => {
                let desired = render::http_route(canary, self.version, self.set_owner_refs)?;
                let object: DynamicObject = serde_json::to_value(&desired)
                    .and_then(serde_json::from_value)
                    .map_err(|e| {
                        RouterError::Routes(format!("serialising the HTTPRoute failed: {e}"))
                    })?;
                self.cache
                    .create(&self.api(canary), &post_params(), &object)
                    .await
                    .map_err(|source| RouterError::Api {
                        context: Self::context(canary, "create error"),
                        source,
                    })?;
                tracing::info!(canary = %canary_id(canary), "HTTPRoute {}.{} created", n.apex, n.namespace);
            }
            Some(live) => {
                if let Some(patch) = render::reconcile_patch(canary, self.version, &live)? {
                    self.patch(canary, &patch, "update error while reconciling")
                        .await?;
                    tracing::info!(canary = %canary_id(canary), "HTTPRoute {}.{} updated", n.apex, n.namespace);
                }
            }
        }
        Ok(())
    }

    async fn set_routes(
        &self,
        canary: &Canary,
        status: &mut CanaryStatus,
        routes: Routes,
    ) -> Result<(), RouterError> {
        if grpc::wants_grpc_route(canary, self.version) {
            return self.grpc_set_routes(canary, routes).await;
        }
        let live = self.get(canary).await?;
        let generator = self.cookie_generator;
        render::update_cookies(canary, status, routes, &mut || generator())?;
        if let Some(patch) =
            render::set_routes_patch(canary, self.version, &live.spec, routes, status)?
        {
            self.patch(canary, &patch, "update error while setting weights")
                .await?;
        }
        Ok(())
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        if grpc::wants_grpc_route(canary, self.version) {
            return self.grpc_get_routes(canary).await;
        }
        let live = self.get(canary).await?;
        render::parents_ready(canary, &live)?;
        render::routes_of(canary, &live.spec)
    }

    /// Nothing to revert (as in Flagger): a created HTTPRoute is garbage-collected with the
    /// Canary through its owner reference; an adopted one keeps Serin's rules.
    async fn finalize(&self, _canary: &Canary) -> Result<(), RouterError> {
        Ok(())
    }
}

/// A failed read of a route, `id` being `<Kind> <name>.<namespace> ` (as the contexts build
/// it): an object that does not decode as its type "cannot be read", anything else is the
/// API's "get query error".
fn read_error(id: String, source: kube::Error) -> RouterError {
    match source {
        kube::Error::SerdeError(e) => RouterError::Routes(format!("{id}cannot be read: {e}")),
        source => RouterError::Api {
            context: format!("{id}get query error"),
            source,
        },
    }
}
#[cfg(test)]
mod tests;
