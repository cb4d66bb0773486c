//! The canary Ingress `<ingressRef>-canary` that the Ingress-based routers (NGINX, Skipper)
//! keep beside the user's Ingress: its name, reads, the create-or-patch reconcile and patches.
//! What goes into it is each router's own.

use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{DeleteParams, Patch};
use serde_json::Value;

use super::RouterError;
use crate::api::Canary;
use crate::api::json::from_json;
use crate::k8s::cache::Cache;
use crate::k8s::meta::{canary_id, namespace, patch_params, post_params};

/// The Ingress `spec.ingressRef` names, or the error Flagger gives without one.
pub fn ingress_ref(canary: &Canary) -> Result<&str, RouterError> {
    canary
        .spec
        .ingress_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| RouterError::Invalid("ingress selector is empty".to_string()))
}

/// The canary Ingress name: `<ingressRef>-canary`.
pub fn canary_ingress_name(canary: &Canary) -> Result<String, RouterError> {
    Ok(format!("{}-canary", ingress_ref(canary)?))
}

/// Ingress reads (from the cache when it has them) and writes in the Canary's namespace.
pub struct Ingresses {
    client: kube::Client,
    cache: Cache,
}

impl Ingresses {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: Cache::disabled(),
        }
    }

    /// Reads through `cache` and tells it about the writes.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    fn api(&self, canary: &Canary) -> Api<Ingress> {
        Api::namespaced(self.client.clone(), &namespace(canary))
    }

    pub async fn get_opt(&self, canary: &Canary, name: &str) -> Result<Option<Value>, RouterError> {
        let ns = namespace(canary);
        let obj = self
            .cache
            .get(&self.api(canary), name)
            .await
            .map_err(|source| RouterError::Api {
                context: format!("ingress {name}.{ns} get query error"),
                source,
            })?;
        obj.map(|o| {
            serde_json::to_value(o).map_err(|e| {
                RouterError::Routes(format!("ingress {name}.{ns} cannot be read: {e}"))
            })
        })
        .transpose()
    }

    pub async fn get(&self, canary: &Canary, name: &str) -> Result<Value, RouterError> {
        self.get_opt(canary, name).await?.ok_or_else(|| {
            RouterError::Routes(format!(
                "ingress {name}.{} get query error: not found",
                namespace(canary)
            ))
        })
    }

    /// The canary Ingress as it is now.
    pub async fn get_canary(&self, canary: &Canary) -> Result<Value, RouterError> {
        self.get(canary, &canary_ingress_name(canary)?).await
    }

    /// Merge-patches the canary Ingress.
    pub async fn patch_canary(&self, canary: &Canary, patch: &Value) -> Result<(), RouterError> {
        let name = canary_ingress_name(canary)?;
        self.cache
            .patch(
                &self.api(canary),
                &name,
                &patch_params(),
                &Patch::Merge(patch),
            )
            .await
            .map_err(|source| RouterError::Api {
                context: format!("ingress {name}.{} update error", namespace(canary)),
                source,
            })?;
        Ok(())
    }

    /// Creates the canary Ingress from the user's (`build(original)`) when it is missing, or
    /// applies `update(original, live)` when that returns a patch.
    pub async fn reconcile_canary(
        &self,
        canary: &Canary,
        build: impl FnOnce(&Value) -> Result<Value, RouterError>,
        update: impl FnOnce(&Value, &Value) -> Result<Option<Value>, RouterError>,
    ) -> Result<(), RouterError> {
        let original = self.get(canary, ingress_ref(canary)?).await?;
        let name = canary_ingress_name(canary)?;
        let ns = namespace(canary);
        match self.get_opt(canary, &name).await? {
            None => {
                let desired: Ingress = from_json(&build(&original)?).map_err(|e| {
                    RouterError::Routes(format!("ingress {name}.{ns} cannot be built: {e}"))
                })?;
                self.cache
                    .create(&self.api(canary), &post_params(), &desired)
                    .await
                    .map_err(|source| RouterError::Api {
                        context: format!("ingress {name}.{ns} create error"),
                        source,
                    })?;
                tracing::info!(canary = %canary_id(canary), "Ingress {name}.{ns} created");
            }
            Some(live) => {
                if let Some(patch) = update(&original, &live)? {
                    self.patch_canary(canary, &patch).await?;
                    tracing::info!(canary = %canary_id(canary), "Ingress {name} updated");
                }
            }
        }
        Ok(())
    }

    /// Deletes the canary Ingress (grace period 2 s); one already gone is fine.
    pub async fn delete_canary(&self, canary: &Canary) -> Result<(), RouterError> {
        let name = canary_ingress_name(canary)?;
        let params = DeleteParams {
            grace_period_seconds: Some(2),
            ..Default::default()
        };
        let api = self.api(canary);
        match self.cache.delete(&api, &name, &params).await {
            Ok(()) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                self.cache.deleted(&api, &name);
                Ok(())
            }
            Err(source) => Err(RouterError::Api {
                context: format!(
                    "ingress {name}.{} unable to remove canary ingress",
                    namespace(canary)
                ),
                source,
            }),
        }
    }
}
