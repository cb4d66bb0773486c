#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::{Options, validate_canary_spec};
use crate::api::canary::CanarySpec;
use crate::api::provider::{CRD_PROVIDER_VALUES, Provider};
use crate::api::structural::Severity;

fn spec(provider: &str) -> CanarySpec {
    serde_json::from_value(json!({
        "provider": provider,
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898, "meshName": "global"},
        "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50}
    }))
    .unwrap()
}

/// The providers Serin cannot route get a warning naming the ones it can; the others do not.
#[test]
fn unroutable_providers_are_a_warning() {
    for value in CRD_PROVIDER_VALUES {
        let provider: Provider = value.parse().unwrap();
        let warnings: Vec<String> = validate_canary_spec(&spec(value), &Options::default())
            .into_iter()
            .filter(|p| p.severity == Severity::Warning && p.path == "spec.provider")
            .map(|p| p.message)
            .collect();
        if provider.routable_by_serin() {
            assert!(warnings.is_empty(), "{value}: {warnings:?}");
        } else {
            assert_eq!(
                warnings,
                [format!(
                    "the {value} provider is not supported yet by Serin: the controller cannot route this canary; use {} until it is",
                    super::ROUTABLE_PROVIDERS
                )],
                "{value}"
            );
        }
    }
    assert!(!Provider::Knative.routable_by_serin());
}

/// `analysis.preflight` (Serin's query pre-flight) is known; set without metrics it does
/// nothing, which is said.
#[test]
fn preflight_without_metrics_is_a_warning() {
    let with = |analysis: serde_json::Value| -> Vec<String> {
        let spec: CanarySpec = serde_json::from_value(json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": analysis
        }))
        .unwrap();
        validate_canary_spec(&spec, &Options::default())
            .into_iter()
            .filter(|p| p.path == "spec.analysis.preflight")
            .map(|p| format!("{:?}: {}", p.severity, p.message))
            .collect()
    };
    let metrics = json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]);
    assert!(with(json!({"stepWeight": 10, "metrics": metrics, "preflight": false})).is_empty());
    assert_eq!(
        with(json!({"stepWeight": 10, "preflight": false})),
        ["Warning: has no effect: the query pre-flight runs only for an analysis with metrics"]
    );
}

/// A plain Service target with another `service.name`: the router would send traffic to Services
/// nobody creates.
#[test]
fn a_service_target_with_another_service_name_is_a_warning() {
    let with = |name: Option<&str>| {
        let mut s = spec("gatewayapi:v1");
        s.target_ref.api_version = "v1".into();
        s.target_ref.kind = "Service".into();
        s.service.as_mut().unwrap().name = name.map(str::to_string);
        validate_canary_spec(&s, &Options::default())
            .into_iter()
            .filter(|p| p.path == "spec.service.name")
            .map(|p| (p.severity, p.message))
            .collect::<Vec<_>>()
    };
    assert!(with(None).is_empty());
    assert!(with(Some("podinfo")).is_empty());
    assert_eq!(
        with(Some("web")),
        [(
            Severity::Warning,
            "the copies of the target Service are podinfo-primary and podinfo-canary, but the router sends traffic to web-primary and web-canary; leave service.name unset with a Service target".to_string()
        )]
    );
}
