#![allow(clippy::unwrap_used)]
use std::time::Duration;

use super::*;
use crate::api::analysis::CanaryThresholdRange;

fn metric(name: &str, min: Option<f64>, max: Option<f64>) -> CanaryMetric {
    CanaryMetric {
        name: name.into(),
        threshold_range: Some(CanaryThresholdRange { min, max }),
        ..Default::default()
    }
}

fn legacy(name: &str, threshold: f64) -> CanaryMetric {
    CanaryMetric {
        name: name.into(),
        threshold: Some(threshold),
        ..Default::default()
    }
}

#[test]
fn success_rate_messages_match_flagger() {
    let m = metric("request-success-rate", Some(99.0), None);
    assert_eq!(
        success_rate_verdict("podinfo.test", &m, 69.1666).as_deref(),
        Some("Halt podinfo.test advancement success rate 69.17% < 99%")
    );
    assert_eq!(success_rate_verdict("podinfo.test", &m, 99.0), None);
    assert_eq!(success_rate_verdict("podinfo.test", &m, 100.0), None);
    let m = metric("request-success-rate", None, Some(99.5));
    assert_eq!(
        success_rate_verdict("a.b", &m, 100.0).as_deref(),
        Some("Halt a.b advancement success rate 100.00% > 99.5%")
    );
    let m = legacy("request-success-rate", 99.0);
    assert_eq!(
        success_rate_verdict("a.b", &m, 98.999).as_deref(),
        Some("Halt a.b advancement success rate 99.00% < 99%")
    );
    assert_eq!(success_rate_verdict("a.b", &m, 99.0), None);
    // No threshold at all: only negative rates fail (Go zero value).
    let none = CanaryMetric {
        name: "request-success-rate".into(),
        ..Default::default()
    };
    assert_eq!(success_rate_verdict("a.b", &none, 0.0), None);
}

#[test]
fn duration_messages_match_flagger() {
    let m = metric("request-duration", None, Some(500.0));
    assert_eq!(
        duration_verdict("podinfo.test", &m, Duration::from_millis(1515)).as_deref(),
        Some("Halt podinfo.test advancement request duration 1.515s > 500ms")
    );
    assert_eq!(
        duration_verdict("a.b", &m, Duration::from_millis(500)),
        None
    );
    // Bounds are truncated to whole milliseconds.
    let m = metric("request-duration", Some(10.9), Some(500.9));
    assert_eq!(
        duration_verdict("a.b", &m, Duration::from_millis(500)),
        None
    );
    assert_eq!(
        duration_verdict("a.b", &m, Duration::from_millis(501)).as_deref(),
        Some("Halt a.b advancement request duration 501ms > 500ms")
    );
    assert_eq!(
        duration_verdict("a.b", &m, Duration::from_millis(9)).as_deref(),
        Some("Halt a.b advancement request duration 9ms < 10ms")
    );
    let m = legacy("request-duration", 500.0);
    assert_eq!(
        duration_verdict("a.b", &m, Duration::from_secs(2)).as_deref(),
        Some("Halt a.b advancement request duration 2s > 500ms")
    );
    assert_eq!(
        duration_verdict("a.b", &m, Duration::from_millis(499)),
        None
    );
}

#[test]
fn custom_messages_match_flagger() {
    let m = metric("error-rate", None, Some(1.0));
    assert_eq!(
        custom_verdict("frontend.prod", &m, 31.0).as_deref(),
        Some("Halt frontend.prod advancement error-rate 31.00 > 1")
    );
    assert_eq!(custom_verdict("frontend.prod", &m, 1.0), None);
    let m = metric("404s percentage", Some(0.5), Some(5.0));
    assert_eq!(
        custom_verdict("p.t", &m, 0.25).as_deref(),
        Some("Halt p.t advancement 404s percentage 0.25 < 0.5")
    );
    // Legacy threshold is a maximum; absent means 0.
    let m = legacy("latency", 500.0);
    assert_eq!(
        custom_verdict("p.t", &m, 2000.0).as_deref(),
        Some("Halt p.t advancement latency 2000.00 > 500")
    );
    let none = CanaryMetric {
        name: "x".into(),
        ..Default::default()
    };
    assert_eq!(
        custom_verdict("p.t", &none, 0.5).as_deref(),
        Some("Halt p.t advancement x 0.50 > 0")
    );
    assert_eq!(custom_verdict("p.t", &none, 0.0), None);
}

#[test]
fn model_from_canary() {
    let canary: Canary = serde_json::from_value(serde_json::json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo-app"},
            "service": {"port": 9898, "name": "web"},
            "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "ing"},
        }
    }))
    .unwrap();
    let m = CanaryMetric {
        name: "x".into(),
        template_variables: Some(BTreeMap::from([("k".into(), "v".into())])),
        ..Default::default()
    };
    let model = query_model(&canary, &m);
    assert_eq!(model.name, "podinfo");
    assert_eq!(model.namespace, "test");
    assert_eq!(model.target, "podinfo-app");
    assert_eq!(model.service, "web");
    assert_eq!(model.ingress, "ing");
    assert_eq!(model.route, "podinfo-app");
    assert_eq!(model.interval, "1m");
    assert_eq!(model.variables.get("k").map(String::as_str), Some("v"));
    assert_eq!(canary_id(&canary), "podinfo.test");
}

#[test]
fn builtin_selection_skips_metrics_with_their_own_query() {
    let mut m = CanaryMetric {
        name: "request-success-rate".into(),
        ..Default::default()
    };
    assert_eq!(builtin_of(&m), Some(BuiltinMetric::RequestSuccessRate));
    m.template_ref = Some(crate::api::analysis::CrossNamespaceObjectReference {
        name: "t".into(),
        namespace: None,
    });
    assert_eq!(builtin_of(&m), None);
}

#[test]
fn addresses_are_shown_without_user_info() {
    assert_eq!(
        display_address("http://user:hunter2@prom:9090/x"),
        "http://prom:9090/x"
    );
    assert_eq!(display_address("http://prom:9090"), "http://prom:9090");
}

#[test]
fn records_name_the_failing_check_with_its_value_and_range() {
    let canary: Canary = serde_json::from_value(serde_json::json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "analysis": {"metrics": [
                {"name": "request-duration", "thresholdRange": {"max": 500}},
                {"name": "error-rate", "templateRef": {"name": "error-rate"},
                 "thresholdRange": {"max": 1}},
                {"name": "request-success-rate", "threshold": 99}
            ]}
        }
    }))
    .unwrap();
    let measured = |name: &str, value: f64, provider: &str| MetricResult {
        name: name.into(),
        value,
        provider: provider.into(),
        query: format!("{name}(\n  podinfo\n)"),
        ..Default::default()
    };
    let results = vec![
        measured("request-duration", 0.2, "prometheus"),
        measured("error-rate", 3.0, "datadog"),
    ];
    let failed = FailedCheck {
        message: "Halt podinfo.test advancement error-rate 3.00 > 1".into(),
        severity: Severity::Warning,
        results: results.clone(),
        inconclusive: false,
        failing: Some(Attempt {
            name: "error-rate".into(),
            provider: "datadog".into(),
            query: Some("error-rate(\n  podinfo\n)".into()),
        }),
    };
    let records = check_records(&canary, &results, Some(&failed));
    assert_eq!(records.len(), 2);
    let duration = &records[0];
    assert_eq!(duration.verdict, crate::api::decision::Verdict::Pass);
    assert_eq!(duration.value, Some(200.0), "milliseconds, like the range");
    assert_eq!((duration.min, duration.max), (None, Some(500.0)));
    assert_eq!(
        duration.query.as_deref(),
        Some("request-duration( podinfo )")
    );
    let errors = &records[1];
    assert_eq!(errors.verdict, crate::api::decision::Verdict::Fail);
    assert_eq!(
        (errors.provider.as_str(), errors.value),
        ("datadog", Some(3.0))
    );
    assert_eq!(errors.max, Some(1.0));
    assert_eq!(errors.message.as_deref(), Some(failed.message.as_str()));

    // No values: the failing check has no value; a held read is `held`.
    let held = FailedCheck {
        severity: Severity::Held,
        results: results[..1].to_vec(),
        ..failed.clone()
    };
    let records = check_records(&canary, &results[..1], Some(&held));
    assert_eq!(records[1].verdict, crate::api::decision::Verdict::Held);
    assert_eq!(records[1].value, None);
    // All passed: the legacy success-rate threshold is a minimum.
    let ok = vec![measured("request-success-rate", 99.5, "prometheus")];
    let records = check_records(&canary, &ok, None);
    assert_eq!((records[0].min, records[0].max), (Some(99.0), None));
}
