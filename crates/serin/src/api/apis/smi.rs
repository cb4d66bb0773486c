//! SMI `TrafficSplit` (`split.smi-spec.io` v1alpha1, v1alpha2, v1alpha3).

use serde::{Deserialize, Serialize};

use super::{Extra, third_party_resource};

/// A v1alpha1 backend: the weight is a resource quantity (Flagger writes plain integers).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficSplitBackendV1alpha1 {
    pub service: String,
    pub weight: k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of a v1alpha1 TrafficSplit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficSplitSpecV1alpha1 {
    pub service: String,
    #[serde(default)]
    pub backends: Vec<TrafficSplitBackendV1alpha1>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A v1alpha2 / v1alpha3 backend with an integer weight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficSplitBackend {
    pub service: String,
    pub weight: i64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of a v1alpha2 / v1alpha3 TrafficSplit (v1alpha3 may carry `matches`, kept in `extra`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficSplitSpec {
    pub service: String,
    #[serde(default)]
    pub backends: Vec<TrafficSplitBackend>,
    #[serde(flatten)]
    pub extra: Extra,
}

third_party_resource! {
    /// SMI TrafficSplit `split.smi-spec.io/v1alpha1` (Linkerd).
    TrafficSplitV1alpha1 {
        spec: TrafficSplitSpecV1alpha1,
        status: serde_json::Value,
        group: "split.smi-spec.io",
        version: "v1alpha1",
        kind: "TrafficSplit",
        plural: "trafficsplits",
    }
}

third_party_resource! {
    /// SMI TrafficSplit `split.smi-spec.io/v1alpha2` (OSM).
    TrafficSplitV1alpha2 {
        spec: TrafficSplitSpec,
        status: serde_json::Value,
        group: "split.smi-spec.io",
        version: "v1alpha2",
        kind: "TrafficSplit",
        plural: "trafficsplits",
    }
}

third_party_resource! {
    /// SMI TrafficSplit `split.smi-spec.io/v1alpha3`.
    TrafficSplitV1alpha3 {
        spec: TrafficSplitSpec,
        status: serde_json::Value,
        group: "split.smi-spec.io",
        version: "v1alpha3",
        kind: "TrafficSplit",
        plural: "trafficsplits",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn v1alpha1_weights_are_quantities() {
        let input = serde_json::json!({
            "apiVersion": "split.smi-spec.io/v1alpha1",
            "kind": "TrafficSplit",
            "metadata": {"name": "podinfo"},
            "spec": {"service": "podinfo", "backends": [
                {"service": "podinfo-canary", "weight": "10"},
                {"service": "podinfo-primary", "weight": "90"}
            ]}
        });
        let ts: TrafficSplitV1alpha1 = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(ts.spec.backends[0].weight.0, "10");
        assert_eq!(serde_json::to_value(&ts).unwrap(), input);
    }

    #[test]
    fn v1alpha3_round_trips_matches() {
        let input = serde_json::json!({
            "apiVersion": "split.smi-spec.io/v1alpha3",
            "kind": "TrafficSplit",
            "metadata": {"name": "podinfo"},
            "spec": {"service": "podinfo", "backends": [
                {"service": "podinfo-canary", "weight": 10},
                {"service": "podinfo-primary", "weight": 90}
            ], "matches": [{"kind": "HTTPRouteGroup", "name": "ab"}]}
        });
        let ts: TrafficSplitV1alpha3 = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(serde_json::to_value(&ts).unwrap(), input);
    }
}
