//! The `Canary` custom resource (`flagger.app/v1beta1`).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::analysis::CanaryAnalysis;
use super::provider::{Provider, UnknownProvider};
use super::schema;
use super::service::CanaryService;
use super::status::CanaryStatus;

/// Default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// `spec` of a Canary.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "Canary",
    plural = "canaries",
    singular = "canary",
    namespaced,
    status = "CanaryStatus",
    category = "all",
    shortname = "cnry",
    doc = "Canary is the Schema for the Canary API: a progressive delivery of a workload.",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Weight","type":"string","jsonPath":".status.canaryWeight"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend","priority":1}"#,
    printcolumn = r#"{"name":"FailedChecks","type":"string","jsonPath":".status.failedChecks","priority":1}"#,
    printcolumn = r#"{"name":"Interval","type":"string","jsonPath":".spec.analysis.interval","priority":1}"#,
    printcolumn = r#"{"name":"Mirror","type":"boolean","jsonPath":".spec.analysis.mirror","priority":1}"#,
    printcolumn = r#"{"name":"StepWeight","type":"string","jsonPath":".spec.analysis.stepWeight","priority":1}"#,
    printcolumn = r#"{"name":"StepWeights","type":"string","jsonPath":".spec.analysis.stepWeights","priority":1}"#,
    printcolumn = r#"{"name":"MaxWeight","type":"string","jsonPath":".spec.analysis.maxWeight","priority":1}"#,
    printcolumn = r#"{"name":"LastTransitionTime","type":"string","jsonPath":".status.lastTransitionTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// Traffic management provider (default: the controller's `-mesh-provider`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::provider")]
    pub provider: Option<String>,
    /// Prometheus URL for the built-in checks of this canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,
    /// The workload under progressive delivery.
    pub target_ref: TargetReference,
    /// HorizontalPodAutoscaler or KEDA ScaledObject of the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_ref: Option<AutoscalerReference>,
    /// Ingress (NGINX, Skipper).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<ObjectReference>,
    /// APISIX route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_ref: Option<ObjectReference>,
    /// Gloo Upstream whose configuration is copied into the generated upstreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ref: Option<NamespacedObjectReference>,
    /// How Services and routing objects are generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<CanaryService>,
    /// The analysis definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysis>,
    /// Deprecated spelling of `analysis` (Flagger < 1.0); used only when `analysis` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_analysis: Option<CanaryAnalysis>,
    /// Seconds the canary or primary may fail to make rollout progress (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub progress_deadline_seconds: Option<i32>,
    /// Promote new revisions without analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_analysis: Option<bool>,
    /// Revert the target, apex Service and routing on deletion (adds a finalizer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_on_deletion: Option<bool>,
    /// Pause the analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// `spec.targetRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetReference {
    pub api_version: String,
    /// `Deployment`, `DaemonSet` or `Service`.
    #[schemars(schema_with = "schema::target_kind")]
    pub kind: String,
    pub name: String,
}

/// `spec.ingressRef` / `spec.routeRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// `spec.upstreamRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedObjectReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `spec.autoscalerRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerReference {
    pub api_version: String,
    /// `HorizontalPodAutoscaler` or `ScaledObject`.
    #[schemars(schema_with = "schema::autoscaler_kind")]
    pub kind: String,
    pub name: String,
    /// KEDA: trigger name → query used for the primary ScaledObject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::string_map")]
    pub primary_scaler_queries: Option<BTreeMap<String, String>>,
    /// Replica bounds for the primary autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_replicas: Option<ScalerReplicas>,
}

/// `spec.autoscalerRef.primaryScalerReplicas`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalerReplicas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
}

impl CanarySpec {
    /// `analysis`, or the deprecated `canaryAnalysis` when `analysis` is absent.
    pub fn analysis(&self) -> Option<&CanaryAnalysis> {
        self.analysis.as_ref().or(self.canary_analysis.as_ref())
    }

    /// Moves a deprecated `canaryAnalysis` into `analysis` (the controller works on the
    /// normalised form only).
    pub fn normalize(&mut self) {
        if self.analysis.is_none() {
            self.analysis = self.canary_analysis.take();
        }
    }

    /// Flagger's `SkipAnalysis()`: `skipAnalysis`, or no analysis at all.
    pub fn skip_analysis(&self) -> bool {
        self.skip_analysis.unwrap_or(false) || self.analysis().is_none()
    }

    pub fn suspend(&self) -> bool {
        self.suspend.unwrap_or(false)
    }

    pub fn revert_on_deletion(&self) -> bool {
        self.revert_on_deletion.unwrap_or(false)
    }

    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// The routing provider: `spec.provider` if set and non-empty, else `default_provider`.
    pub fn provider(&self, default_provider: &Provider) -> Result<Provider, UnknownProvider> {
        match self.provider.as_deref() {
            Some(p) if !p.trim().is_empty() => p.parse(),
            _ => Ok(default_provider.clone()),
        }
    }

    /// The apex Service name: `service.name` or the target name.
    pub fn apex_name(&self) -> &str {
        match self.service.as_ref().and_then(|s| s.name.as_deref()) {
            Some(name) if !name.is_empty() => name,
            _ => &self.target_ref.name,
        }
    }

    /// `(apex, primary, canary)` Service names.
    pub fn service_names(&self) -> (String, String, String) {
        let apex = self.apex_name().to_string();
        (
            apex.clone(),
            format!("{apex}-primary"),
            format!("{apex}-canary"),
        )
    }

    /// Whether the target is a Knative Service (`kind: Service` of `serving.knative.dev`); any
    /// other `kind: Service` is a plain Kubernetes Service.
    pub fn targets_knative_service(&self) -> bool {
        let target = &self.target_ref;
        target.kind == "Service" && target.api_version.starts_with("serving.knative.dev")
    }

    /// Name of the primary workload (`<target>-primary`).
    pub fn primary_workload_name(&self) -> String {
        format!("{}-primary", self.target_ref.name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn canary_analysis_is_normalised_into_analysis() {
        let mut spec: CanarySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "canaryAnalysis": {"interval": "1m", "threshold": 5, "stepWeight": 10}
        }))
        .unwrap();
        assert_eq!(spec.analysis().unwrap().step_weight, Some(10));
        assert!(!spec.skip_analysis());
        spec.normalize();
        assert!(spec.canary_analysis.is_none());
        assert_eq!(spec.analysis.as_ref().unwrap().threshold, Some(5));
    }

    #[test]
    fn names() {
        let spec: CanarySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "name": "web"},
        }))
        .unwrap();
        assert_eq!(
            spec.service_names(),
            ("web".into(), "web-primary".into(), "web-canary".into())
        );
        assert_eq!(spec.primary_workload_name(), "podinfo-primary");
        assert!(spec.skip_analysis());
        assert_eq!(spec.provider(&Provider::Istio).unwrap(), Provider::Istio);
    }
}
