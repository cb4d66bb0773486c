//! The one place a target kind becomes a [`TargetController`].

use super::{
    DaemonSetController, DeploymentController, KnativeController, ServiceTargetController,
    TargetController, WorkloadConfig, WorkloadError,
};
use crate::api::Canary;
use crate::k8s::cache::Cache;
use crate::k8s::meta;

/// The target controller of a Canary's `targetRef.kind` (`Deployment`, `DaemonSet`, a Knative
/// `Service` of `serving.knative.dev` or a plain `Service`); an unknown kind falls back to the
/// Deployment controller with a warning, as in Flagger. Reads go through `cache`
/// (`Cache::disabled()` reads from the API server).
pub fn target_controller_with_cache(
    client: kube::Client,
    config: &WorkloadConfig,
    canary: &Canary,
    cache: Cache,
) -> Result<Box<dyn TargetController>, WorkloadError> {
    let target = &canary.spec.target_ref;
    let config = config.clone();
    match target.kind.as_str() {
        "Service" if canary.spec.targets_knative_service() => {
            Ok(Box::new(KnativeController::new(client).with_cache(cache)))
        }
        "Deployment" => Ok(Box::new(
            DeploymentController::new(client, config).with_cache(cache),
        )),
        "DaemonSet" => Ok(Box::new(
            DaemonSetController::new(client, config).with_cache(cache),
        )),
        "Service" => Ok(Box::new(
            ServiceTargetController::new(client, config).with_cache(cache),
        )),
        other => {
            tracing::warn!(
                canary = %meta::canary_id(canary),
                "unknown target kind {other}, handling {} as a Deployment",
                target.name
            );
            Ok(Box::new(
                DeploymentController::new(client, config).with_cache(cache),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::TestCluster;

    fn canary(api_version: &str, kind: &str) -> Canary {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": api_version, "kind": kind, "name": "podinfo"}, "service": {"port": 80}}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn kinds() {
        let fake = TestCluster::start().await;
        let client = fake.client();
        let config = WorkloadConfig::default();
        for (api_version, kind) in [
            ("apps/v1", "Deployment"),
            ("apps/v1", "DaemonSet"),
            ("apps/v1", "StatefulSet"),
            ("v1", "Service"),
        ] {
            assert!(
                target_controller_with_cache(
                    client.clone(),
                    &config,
                    &canary(api_version, kind),
                    Cache::disabled()
                )
                .is_ok(),
                "{kind}"
            );
        }
        let knative = canary("serving.knative.dev/v1", "Service");
        assert!(target_controller_with_cache(client, &config, &knative, Cache::disabled()).is_ok());
    }
}
