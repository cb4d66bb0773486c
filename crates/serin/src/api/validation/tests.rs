#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::{Options, validate_canary_spec};
use crate::api::canary::CanarySpec;
use crate::api::provider::CRD_PROVIDER_VALUES;
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

/// Serin routes every provider of the CRD: none gets a warning about the provider itself.
#[test]
fn every_provider_is_routable() {
    for value in CRD_PROVIDER_VALUES {
        let warnings: Vec<String> = validate_canary_spec(&spec(value), &Options::default())
            .into_iter()
            .filter(|p| p.severity == Severity::Warning && p.path == "spec.provider")
            .map(|p| p.message)
            .collect();
        assert!(warnings.is_empty(), "{value}: {warnings:?}");
    }
}

fn knative_spec(analysis_extra: serde_json::Value) -> CanarySpec {
    let mut analysis = json!({"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50});
    for (k, v) in analysis_extra.as_object().unwrap() {
        analysis[k] = v.clone();
    }
    serde_json::from_value(json!({
        "provider": "knative",
        "targetRef": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"},
        "service": {"port": 80},
        "analysis": analysis
    }))
    .unwrap()
}

/// A Knative canary is valid with weights or iterations; what Knative cannot route is refused
/// with what to change.
#[test]
fn knative_routes_weights_only() {
    let errors = |extra| -> Vec<(String, String)> {
        validate_canary_spec(&knative_spec(extra), &Options::default())
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| (p.path, p.message))
            .collect()
    };
    assert_eq!(errors(json!({})), []);
    let mut no_service = knative_spec(json!({}));
    no_service.service = None;
    let problems = validate_canary_spec(&no_service, &Options::default());
    assert!(
        problems.is_empty(),
        "Flagger's Knative manifests have no service: {problems:?}"
    );
    assert_eq!(
        errors(json!({"stepWeight": null, "maxWeight": null, "iterations": 5})),
        []
    );
    let ab = errors(
        json!({"stepWeight": null, "maxWeight": null, "iterations": 5, "match": [{"headers": {"x-canary": {"exact": "1"}}}]}),
    );
    assert_eq!(ab.len(), 1, "{ab:?}");
    assert_eq!(ab[0].0, "spec.analysis.match");
    assert!(
        ab[0].1.starts_with("the knative provider does not support routing by match conditions; remove analysis.match"),
        "{}",
        ab[0].1
    );
    let mirror = errors(json!({"mirror": true}));
    assert_eq!(mirror.len(), 1, "{mirror:?}");
    assert!(
        mirror[0]
            .1
            .starts_with("the knative provider cannot mirror traffic")
    );
    let affinity = errors(json!({"sessionAffinity": {"cookieName": "canary"}}));
    assert_eq!(affinity.len(), 1, "{affinity:?}");
    assert!(affinity[0].1.starts_with(
        "the knative provider does not support session affinity; remove sessionAffinity"
    ));
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
