//! The `kubernetes` provider (Flagger's `NopRouter`): no routing objects. Traffic always reaches
//! the primary through the apex Service; the canary is reachable only at `<apex>-canary`, so the
//! strategy is Blue/Green and the weights are derived from the iteration counter.

use async_trait::async_trait;

use super::{Router, RouterError, Routes};
use crate::api::{Canary, CanaryStatus};

/// The router of the `kubernetes` provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct KubernetesRouter;

impl KubernetesRouter {
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl Router for KubernetesRouter {
    async fn reconcile(&self, _canary: &Canary) -> Result<(), RouterError> {
        Ok(())
    }

    async fn set_routes(
        &self,
        _canary: &Canary,
        _status: &mut CanaryStatus,
        _routes: Routes,
    ) -> Result<(), RouterError> {
        Ok(())
    }

    /// `0/100` while Blue/Green iterations run (`status.iterations > 0`), else `100/0`.
    async fn get_routes(&self, canary: &Canary) -> Result<Routes, RouterError> {
        let iterations = canary.status.as_ref().map_or(0, |s| s.iterations);
        Ok(if iterations > 0 {
            Routes::new(0, 100, false)
        } else {
            Routes::new(100, 0, false)
        })
    }

    async fn finalize(&self, _canary: &Canary) -> Result<(), RouterError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canary(iterations: Option<i32>) -> Canary {
        let mut c: Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "provider": "kubernetes",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "15s", "threshold": 5, "iterations": 10}
            }
        }))
        .unwrap();
        if let Some(i) = iterations {
            c.status = Some(CanaryStatus {
                iterations: i,
                ..Default::default()
            });
        }
        c
    }

    #[tokio::test]
    async fn routes_follow_the_iteration_counter() {
        let r = KubernetesRouter::new();
        assert_eq!(
            r.get_routes(&canary(None)).await.unwrap(),
            Routes::new(100, 0, false)
        );
        assert_eq!(
            r.get_routes(&canary(Some(0))).await.unwrap(),
            Routes::new(100, 0, false)
        );
        assert_eq!(
            r.get_routes(&canary(Some(3))).await.unwrap(),
            Routes::new(0, 100, false)
        );
    }

    #[tokio::test]
    async fn writes_nothing_and_keeps_status() {
        let r = KubernetesRouter::new();
        let c = canary(Some(2));
        let mut status = c.status.clone().unwrap();
        r.reconcile(&c).await.unwrap();
        r.set_routes(&c, &mut status, Routes::new(0, 100, false))
            .await
            .unwrap();
        r.finalize(&c).await.unwrap();
        assert_eq!(Some(status), c.status);
    }
}
