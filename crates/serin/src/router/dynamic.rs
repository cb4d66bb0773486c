//! Thin I/O over one kind of object as JSON: the reads and merge-patch writes routers share.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch};
use serde_json::Value;

use super::RouterError;
use crate::k8s::cache::Cache;
use crate::k8s::meta::{patch_params, post_params};

/// Objects of one kind in one namespace, read (from the cache when it has them) and written as
/// JSON.
pub struct DynamicApi {
    api: Api<DynamicObject>,
    kind: &'static str,
    namespace: String,
    cache: Cache,
}

impl DynamicApi {
    pub fn new(
        client: kube::Client,
        resource: &ApiResource,
        kind: &'static str,
        namespace: &str,
    ) -> Self {
        Self {
            api: Api::namespaced_with(client, namespace, resource),
            kind,
            namespace: namespace.to_string(),
            cache: Cache::disabled(),
        }
    }

    /// Reads through `cache` and tells it about the writes.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    fn id(&self, name: &str) -> String {
        format!("{} {name}.{}", self.kind, self.namespace)
    }

    pub async fn get_opt(&self, name: &str) -> Result<Option<Value>, RouterError> {
        self.cache
            .get_as(&self.api, name)
            .await
            .map_err(|source| RouterError::Api {
                context: format!("{} get query error", self.id(name)),
                source,
            })
    }

    pub async fn get(&self, name: &str) -> Result<Value, RouterError> {
        self.get_opt(name).await?.ok_or_else(|| {
            RouterError::Routes(format!("{} get query error: not found", self.id(name)))
        })
    }

    pub async fn create(&self, name: &str, object: Value) -> Result<(), RouterError> {
        let object: DynamicObject = serde_json::from_value(object)
            .map_err(|e| RouterError::Routes(format!("{} cannot be built: {e}", self.id(name))))?;
        self.cache
            .create(&self.api, &post_params(), &object)
            .await
            .map_err(|source| RouterError::Api {
                context: format!("{} create error", self.id(name)),
                source,
            })?;
        Ok(())
    }

    pub async fn patch(&self, name: &str, patch: &Value) -> Result<(), RouterError> {
        self.cache
            .patch(&self.api, name, &patch_params(), &Patch::Merge(patch))
            .await
            .map_err(|source| RouterError::Api {
                context: format!("{} update error", self.id(name)),
                source,
            })?;
        Ok(())
    }
}
