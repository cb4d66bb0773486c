//! The analysis' part of the decision record: one [`CheckRecord`] per check run, with its
//! rendered query, provider type, value, threshold range and verdict.

use super::{FailedCheck, MetricResult, Severity, builtin_of, threshold_range};
use crate::api::Canary;
use crate::api::analysis::{BuiltinMetric, CanaryMetric};
use crate::api::decision::{CheckRecord, Verdict, clean_message, clean_query};

/// The checks of one analysis: those that measured a value pass, except the failing one, which
/// carries the failure's verdict and message. A failure outside any check (the Knative Service
/// or the Prometheus client) is recorded under the name `analysis`.
pub fn check_records(
    canary: &Canary,
    results: &[MetricResult],
    failed: Option<&FailedCheck>,
) -> Vec<CheckRecord> {
    let metrics = canary
        .spec
        .analysis()
        .map(|a| a.metrics().to_vec())
        .unwrap_or_default();
    let spec = |name: &str| metrics.iter().find(|m| m.name == name);
    let mut passed: Vec<&MetricResult> = results.iter().collect();
    let mut failing_value = None;
    if let Some(f) = failed
        && let Some(attempt) = &f.failing
        && passed.last().is_some_and(|r| r.name == attempt.name)
    {
        // A threshold failure: the value was measured, then found out of range.
        failing_value = passed.pop().map(|r| r.value);
    }
    let mut out: Vec<CheckRecord> = passed
        .into_iter()
        .map(|r| {
            let mut record = CheckRecord {
                name: r.name.clone(),
                provider: r.provider.clone(),
                query: Some(clean_query(&r.query)).filter(|q| !q.is_empty()),
                verdict: Verdict::Pass,
                message: r.verdict.as_deref().map(|m| clean_message(m, &[])),
                ..Default::default()
            };
            bounds(&mut record, spec(&r.name), Some(r.value));
            record
        })
        .collect();
    if let Some(f) = failed {
        let verdict = if f.inconclusive {
            Verdict::Inconclusive
        } else if f.severity == Severity::Held {
            Verdict::Held
        } else {
            Verdict::Fail
        };
        let attempt = f.failing.clone().unwrap_or_default();
        let name = if attempt.name.is_empty() {
            "analysis".to_string()
        } else {
            attempt.name.clone()
        };
        let mut record = CheckRecord {
            provider: attempt.provider.clone(),
            query: attempt.query.as_deref().map(clean_query),
            verdict,
            message: Some(clean_message(&f.message, &[])),
            name,
            ..Default::default()
        };
        bounds(&mut record, spec(&attempt.name), failing_value);
        out.push(record);
    }
    out
}

/// The value in the thresholds' unit and the range, from the metric's spec.
fn bounds(record: &mut CheckRecord, metric: Option<&CanaryMetric>, value: Option<f64>) {
    let Some(metric) = metric else {
        record.value = value.filter(|v| v.is_finite());
        return;
    };
    let builtin = builtin_of(metric);
    // The gauge has the request duration in seconds; its thresholds are in milliseconds.
    let scale = if builtin == Some(BuiltinMetric::RequestDuration) {
        1000.0
    } else {
        1.0
    };
    record.value = value.map(|v| v * scale).filter(|v| v.is_finite());
    if metric.compare.is_none() {
        let (min, max) =
            threshold_range(metric, builtin == Some(BuiltinMetric::RequestSuccessRate));
        record.min = min;
        record.max = max;
    }
}
