//! Istio router: two DestinationRules (`<apex>-primary`, `<apex>-canary`) and the VirtualService
//! `<apex>` (Flagger's `IstioRouter`).
//!
//! [`render`] builds the desired objects from a Canary and weights (pure, golden-tested);
//! [`IstioRouter`] reads the live objects through the mesh cluster's client (or its watch cache)
//! and writes merge patches of the fields Serin owns (`spec.hosts`, `spec.gateways`, `spec.http`,
//! `spec.tcp` of the VirtualService, `spec.host` and `spec.trafficPolicy` of the
//! DestinationRules, the desired labels/annotations), only when something differs.

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Router, RouterError, Routes};
use crate::api::apis::istio::{DestinationRule, VirtualService};
use crate::api::{Canary, CanaryStatus};
use crate::k8s::cache::Cache;
use crate::k8s::error::not_found_in;
use crate::k8s::meta::{FIELD_MANAGER, canary_id, is_controlled_by, namespace, random_letters};

pub mod render;

pub use render::ORIGINAL_CONFIGURATION;

/// Generates session-affinity cookie values.
pub type CookieGenerator = fn() -> Result<String, String>;

fn random_cookie_value() -> Result<String, String> {
    random_letters(10)
}

/// The Istio router. Its client talks to the mesh cluster (`-kubeconfig-service-mesh`).
#[derive(Clone)]
pub struct IstioRouter {
    client: kube::Client,
    set_owner_refs: bool,
    cookie_generator: CookieGenerator,
    cache: Cache,
}

impl IstioRouter {
    /// `set_owner_refs` is false when the mesh cluster is not the workload cluster.
    pub fn new(client: kube::Client, set_owner_refs: bool) -> Self {
        Self {
            client,
            set_owner_refs,
            cookie_generator: random_cookie_value,
            cache: Cache::disabled(),
        }
    }

    /// Replaces the random session-affinity cookie values (tests, simulations).
    pub fn with_cookie_generator(mut self, generator: CookieGenerator) -> Self {
        self.cookie_generator = generator;
        self
    }

    /// Reads the VirtualService and DestinationRules through `cache` and tells it about the
    /// writes.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    /// The VirtualService API, untyped: reads keep `spec` exactly as stored (the typed form
    /// writes defaults such as `weight: 0`, which must not leak into a restored user spec), and
    /// every read and write goes through this one kind, so the cache watches it once and a
    /// write of Serin's own is what the next read returns.
    fn vs_api(&self, canary: &Canary) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &namespace(canary), &vs_resource())
    }

    fn dr_api(&self, canary: &Canary) -> Api<DestinationRule> {
        Api::namespaced(self.client.clone(), &namespace(canary))
    }

    /// The VirtualService as `T`: typed, or its JSON as stored (`Value`).
    async fn read_vs<T: DeserializeOwned>(
        &self,
        canary: &Canary,
    ) -> Result<Option<T>, RouterError> {
        let apex = canary.spec.apex_name();
        self.cache
            .get_as(&self.vs_api(canary), apex)
            .await
            .map_err(|source| RouterError::Api {
                context: format!(
                    "VirtualService {apex}.{} get query error",
                    namespace(canary)
                ),
                source,
            })
    }

    /// The live VirtualService (an error when it is missing, as the API server's).
    async fn get_vs(&self, canary: &Canary) -> Result<VirtualService, RouterError> {
        let apex = canary.spec.apex_name();
        self.read_vs(canary).await?.ok_or_else(|| {
            let resource = vs_resource();
            RouterError::Api {
                context: format!(
                    "VirtualService {apex}.{} get query error",
                    namespace(canary)
                ),
                source: not_found_in(&resource.group, &resource.plural, apex),
            }
        })
    }

    /// The live VirtualService, typed and with its `spec` exactly as stored.
    async fn get_vs_raw(
        &self,
        canary: &Canary,
    ) -> Result<Option<(VirtualService, Value)>, RouterError> {
        let Some(raw) = self.read_vs::<Value>(canary).await? else {
            return Ok(None);
        };
        let raw_spec = raw.get("spec").cloned().unwrap_or_else(|| json!({}));
        let typed = serde_json::from_value(raw).map_err(|e| {
            RouterError::Routes(format!(
                "VirtualService {}.{} cannot be read: {e}",
                canary.spec.apex_name(),
                namespace(canary)
            ))
        })?;
        Ok(Some((typed, raw_spec)))
    }

    async fn patch_vs(
        &self,
        canary: &Canary,
        patch: &Value,
        what: &str,
    ) -> Result<(), RouterError> {
        let apex = canary.spec.apex_name().to_string();
        let ns = namespace(canary);
        self.cache
            .patch(
                &self.vs_api(canary),
                &apex,
                &patch_params(),
                &Patch::Merge(patch),
            )
            .await
            .map_err(|source| RouterError::Api {
                context: format!("VirtualService {apex}.{ns} {what}"),
                source,
            })?;
        Ok(())
    }

    async fn reconcile_destination_rule(
        &self,
        canary: &Canary,
        desired: DestinationRule,
    ) -> Result<(), RouterError> {
        let api = self.dr_api(canary);
        let name = desired.metadata.name.clone().unwrap_or_default();
        let ns = namespace(canary);
        let live = self
            .cache
            .get(&api, &name)
            .await
            .map_err(|source| RouterError::Api {
                context: format!("DestinationRule {name}.{ns} get query error"),
                source,
            })?;
        match live {
            None => {
                self.cache
                    .create(&api, &post_params(), &desired)
                    .await
                    .map_err(|source| RouterError::Api {
                        context: format!("DestinationRule {name}.{ns} create error"),
                        source,
                    })?;
                tracing::info!(canary = %canary_id(canary), "DestinationRule {name}.{ns} created");
            }
            Some(live) => {
                if let Some(spec_patch) = render::destination_rule_spec_patch(&live, &desired) {
                    self.cache
                        .patch(
                            &api,
                            &name,
                            &patch_params(),
                            &Patch::Merge(json!({"spec": spec_patch})),
                        )
                        .await
                        .map_err(|source| RouterError::Api {
                            context: format!("DestinationRule {name}.{ns} update error"),
                            source,
                        })?;
                    tracing::info!(canary = %canary_id(canary), "DestinationRule {name}.{ns} updated");
                }
            }
        }
        Ok(())
    }

    async fn reconcile_virtual_service(&self, canary: &Canary) -> Result<(), RouterError> {
        let desired = render::virtual_service(canary, self.set_owner_refs)?;
        let apex = canary.spec.apex_name().to_string();
        let ns = namespace(canary);
        let Some((live, raw_spec)) = self.get_vs_raw(canary).await? else {
            let desired: DynamicObject = serde_json::to_value(&desired)
                .and_then(serde_json::from_value)
                .map_err(|e| {
                    RouterError::Routes(format!("VirtualService {apex}.{ns} cannot be built: {e}"))
                })?;
            self.cache
                .create(&self.vs_api(canary), &post_params(), &desired)
                .await
                .map_err(|source| RouterError::Api {
                    context: format!("VirtualService {apex}.{ns} create error"),
                    source,
                })?;
            tracing::info!(canary = %canary_id(canary), "VirtualService {apex}.{ns} created");
            return Ok(());
        };
        if let Some(patch) =
            render::virtual_service_update_patch(canary, &live, &raw_spec, &desired)?
        {
            self.patch_vs(canary, &patch, "update error").await?;
            tracing::info!(canary = %canary_id(canary), "VirtualService {apex}.{ns} updated");
        }
        Ok(())
    }
}

fn vs_resource() -> ApiResource {
    ApiResource::erase::<VirtualService>(&())
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

#[async_trait]
impl Router for IstioRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        for dr in render::destination_rules(canary, self.set_owner_refs)? {
            self.reconcile_destination_rule(canary, dr).await?;
        }
        self.reconcile_virtual_service(canary).await
    }

    async fn set_routes(
        &self,
        canary: &Canary,
        status: &mut CanaryStatus,
        routes: Routes,
    ) -> Result<(), RouterError> {
        let live = self.get_vs(canary).await?;
        let generator = self.cookie_generator;
        render::update_session_cookies(canary, status, routes, &mut || generator())?;
        let desired = render::spec(canary, routes, status)?;
        if let Some(patch) = render::routes_patch(canary, &live.spec, &desired)? {
            self.patch_vs(canary, &json!({"spec": patch}), "update failed")
                .await?;
        }
        Ok(())
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        let live = self.get_vs(canary).await?;
        render::routes_of(canary, &live.spec)
    }

    async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        let apex = canary.spec.apex_name().to_string();
        let ns = namespace(canary);
        let Some((live, raw_spec)) = self.get_vs_raw(canary).await? else {
            return Ok(());
        };
        match render::restore_patch(canary, &live, &raw_spec)? {
            Some(patch) => {
                self.patch_vs(canary, &patch, "update error").await?;
                tracing::info!(canary = %canary_id(canary), "VirtualService {apex}.{ns} restored");
            }
            None if render::stored_spec(canary, &live)?.is_none() => {
                tracing::warn!(
                    canary = %canary_id(canary),
                    "VirtualService {apex}.{ns} original configuration not found, unable to revert"
                );
            }
            None => {}
        }
        Ok(())
    }
}

/// Whether `meta` is controlled by `canary` (adopted objects are not).
fn controlled(meta: &ObjectMeta, canary: &Canary) -> bool {
    is_controlled_by(meta, canary)
}

#[cfg(test)]
mod tests;
