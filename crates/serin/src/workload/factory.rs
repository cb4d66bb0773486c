//! The one place a target kind becomes a [`TargetController`].

use super::{
    DaemonSetController, DeploymentController, ServiceTargetController, TargetController,
    WorkloadConfig, WorkloadError, meta,
};
use crate::api::Canary;

/// The target controller of a Canary's `targetRef.kind` (`Deployment`, `DaemonSet` or a plain
/// `Service`). Knative Service targets are not implemented yet
/// ([`crate::api::canary::CanarySpec::unsupported_target`]); an unknown kind falls back to the
/// Deployment controller with a warning, as in Flagger.
pub fn target_controller_for(
    client: kube::Client,
    config: &WorkloadConfig,
    canary: &Canary,
) -> Result<Box<dyn TargetController>, WorkloadError> {
    let target = &canary.spec.target_ref;
    if let Some(reason) = canary.spec.unsupported_target() {
        return Err(WorkloadError::Invalid(reason));
    }
    match target.kind.as_str() {
        "Deployment" => Ok(Box::new(DeploymentController::new(client, config.clone()))),
        "DaemonSet" => Ok(Box::new(DaemonSetController::new(client, config.clone()))),
        "Service" => Ok(Box::new(ServiceTargetController::new(
            client,
            config.clone(),
        ))),
        other => {
            tracing::warn!(
                canary = %meta::canary_id(canary),
                "unknown target kind {other}, handling {} as a Deployment",
                target.name
            );
            Ok(Box::new(DeploymentController::new(client, config.clone())))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::workload::test_cluster::TestCluster;

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
                target_controller_for(client.clone(), &config, &canary(api_version, kind)).is_ok(),
                "{kind}"
            );
        }
        let knative = canary("serving.knative.dev/v1", "Service");
        let err = target_controller_for(client, &config, &knative)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "target serving.knative.dev/v1/Service podinfo is not supported yet by Serin"
        );
    }
}
