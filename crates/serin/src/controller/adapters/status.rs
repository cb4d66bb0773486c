//! [`StatusStore`] over the API server: fresh reads, status writes on the `status` subresource
//! and the finalizer, all retrying optimistic-concurrency conflicts.

use crate::k8s;
use async_trait::async_trait;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::api::{Canary, CanaryStatus};
use crate::controller::finalizer::FINALIZER;
use crate::controller::ports::{PortError, StatusStore};

/// Attempts of a read-modify-write before giving up (each conflict means someone else wrote).
const CONFLICT_RETRIES: usize = 5;

/// Reads and writes Canaries through the API server.
#[derive(Clone)]
pub struct KubeStatusStore {
    client: kube::Client,
}

impl KubeStatusStore {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    fn api(&self, namespace: &str) -> Api<Canary> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

fn names(canary: &Canary) -> (String, String) {
    (
        canary.metadata.namespace.clone().unwrap_or_default(),
        canary.metadata.name.clone().unwrap_or_default(),
    )
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

#[async_trait]
impl StatusStore for KubeStatusStore {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Canary>, PortError> {
        self.api(namespace).get_opt(name).await.map_err(|e| {
            PortError::Api(format!(
                "canary {name}.{namespace} get query error: {}",
                k8s::error::describe(&e)
            ))
        })
    }

    /// Replaces the whole status on the status subresource with the live object's
    /// resourceVersion (so fields the new status drops are really dropped); a conflict re-reads
    /// and tries again. Nothing is written when the live status is already `status`.
    async fn write_status(&self, canary: &Canary, status: &CanaryStatus) -> Result<(), PortError> {
        let (ns, name) = names(canary);
        let api = self.api(&ns);
        let mut last_error = None;
        for _ in 0..CONFLICT_RETRIES {
            let Some(mut live) = self.get(&ns, &name).await? else {
                return Err(PortError::Api(format!(
                    "canary {name}.{ns} status update error: not found"
                )));
            };
            if live.status.as_ref() == Some(status) {
                return Ok(());
            }
            live.status = Some(status.clone());
            match api
                .replace_status(&name, &PostParams::default(), &live)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) => last_error = Some(e),
                Err(e) => {
                    return Err(PortError::Api(format!(
                        "canary {name}.{ns} status update error: {}",
                        k8s::error::describe(&e)
                    )));
                }
            }
        }
        Err(PortError::Api(format!(
            "canary {name}.{ns} status update error: {}",
            last_error
                .map(|e| k8s::error::describe(&e).to_string())
                .unwrap_or_default()
        )))
    }

    async fn set_finalizer(&self, canary: &Canary, present: bool) -> Result<(), PortError> {
        let (ns, name) = names(canary);
        let api = self.api(&ns);
        let mut last_error = None;
        for _ in 0..CONFLICT_RETRIES {
            let Some(live) = self.get(&ns, &name).await? else {
                return Ok(());
            };
            let current = live.metadata.finalizers.clone().unwrap_or_default();
            let has = current.iter().any(|f| f == FINALIZER);
            if has == present {
                return Ok(());
            }
            let wanted: Vec<String> = if present {
                current
                    .iter()
                    .cloned()
                    .chain(std::iter::once(FINALIZER.to_string()))
                    .collect()
            } else {
                current.into_iter().filter(|f| f != FINALIZER).collect()
            };
            let patch = json!({
                "metadata": {
                    "finalizers": wanted,
                    "resourceVersion": live.metadata.resource_version,
                }
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) => last_error = Some(e),
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => {
                    return Err(PortError::Api(format!(
                        "canary {name}.{ns} finalizer update error: {}",
                        k8s::error::describe(&e)
                    )));
                }
            }
        }
        Err(PortError::Api(format!(
            "canary {name}.{ns} finalizer update error: {}",
            last_error
                .map(|e| k8s::error::describe(&e).to_string())
                .unwrap_or_default()
        )))
    }
}
