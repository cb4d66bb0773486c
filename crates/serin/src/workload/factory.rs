//! The one place a target kind becomes a [`TargetController`].

use super::{
    DaemonSetController, DeploymentController, KnativeController, TargetController, WorkloadConfig,
    WorkloadError, meta,
};
use crate::api::Canary;

/// The target controller of a Canary's `targetRef.kind` (`Deployment`, `DaemonSet`, or
/// `Service` of `serving.knative.dev`). Plain Service targets are not implemented yet; an
/// unknown kind falls back to the Deployment controller with a warning, as in Flagger.
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
        "Service" if canary.spec.is_knative_target() => {
            Ok(Box::new(KnativeController::new(client)))
        }
        "Deployment" => Ok(Box::new(DeploymentController::new(client, config.clone()))),
        "DaemonSet" => Ok(Box::new(DaemonSetController::new(client, config.clone()))),
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

    fn canary(kind: &str) -> Canary {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": kind, "name": "podinfo"}, "service": {"port": 80}}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn kinds() {
        let fake = TestCluster::start().await;
        let client = fake.client();
        let config = WorkloadConfig::default();
        for kind in ["Deployment", "DaemonSet", "StatefulSet"] {
            assert!(
                target_controller_for(client.clone(), &config, &canary(kind)).is_ok(),
                "{kind}"
            );
        }
        let mut knative = canary("Service");
        knative.spec.target_ref.api_version = "serving.knative.dev/v1".to_string();
        assert!(target_controller_for(client.clone(), &config, &knative).is_ok());
        let err = target_controller_for(client, &config, &canary("Service"))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "target apps/v1/Service podinfo is not supported yet by Serin"
        );
    }
}
