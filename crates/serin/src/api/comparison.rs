//! `analysis.metrics[].compare`: Serin's canary-versus-primary comparison of a metric (Flagger
//! ignores the field and runs the metric as a plain threshold check). What the fields mean and
//! how the check runs: docs/analysis.md.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::analysis::CanaryMetric;
use super::duration;
use super::structural::Problem;
use crate::stats::Settings;

/// Default confidence of a failure.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;
/// Default fewest samples per version for the rank test.
pub const DEFAULT_MIN_SAMPLES: usize = 10;
/// Default fewest events counted per version for the proportion test.
pub const DEFAULT_MIN_EVENTS: usize = 100;
/// Default resolution of the range query that gives the rank test its samples.
pub const DEFAULT_STEP: Duration = Duration::from_secs(10);

/// `analysis.metrics[].compare`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricComparison {
    /// What the canary is compared with: `primary` (the default and only value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
    /// `mann-whitney` (default): a rank test on the values of a range query over the metric's
    /// interval; `proportion`: the query counts bad events and `totalQuery` all events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    /// Allowed degradation relative to the primary's level (0.05: 5 % worse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_degradation: Option<f64>,
    /// Allowed degradation in the metric's unit; the larger of the two allowances applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute_degradation: Option<f64>,
    /// Confidence required to fail the canary (default 0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Fewest samples (mann-whitney, default 10) or events counted (proportion, default 100)
    /// per version; fewer holds the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub min_samples: Option<i64>,
    /// Resolution of the range query (mann-whitney; default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The count of all events (proportion), rendered like the metric's query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_query: Option<String>,
    /// Which direction is worse: `higher` (default) or `lower` (mann-whitney only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worse: Option<String>,
}

/// The test a comparison runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    MannWhitney,
    Proportion,
}

impl MetricComparison {
    /// The statistic; `None` for an unknown name.
    pub fn statistic(&self) -> Option<Statistic> {
        match self.statistic.as_deref().unwrap_or("mann-whitney") {
            "mann-whitney" | "" => Some(Statistic::MannWhitney),
            "proportion" => Some(Statistic::Proportion),
            _ => None,
        }
    }

    /// Whether lower values are worse (`worse: lower`).
    pub fn lower_is_worse(&self) -> bool {
        self.worse.as_deref() == Some("lower")
    }

    /// The range-query resolution.
    pub fn step(&self) -> Duration {
        self.step
            .as_deref()
            .and_then(duration::parse)
            .filter(|d| *d >= Duration::from_secs(1))
            .unwrap_or(DEFAULT_STEP)
    }

    /// The judgement's settings, with the defaults filled in.
    pub fn settings(&self) -> Settings {
        let default_min = match self.statistic() {
            Some(Statistic::Proportion) => DEFAULT_MIN_EVENTS,
            _ => DEFAULT_MIN_SAMPLES,
        };
        Settings {
            confidence: self
                .confidence
                .filter(|c| *c > 0.0 && *c < 1.0)
                .unwrap_or(DEFAULT_CONFIDENCE),
            min_samples: self
                .min_samples
                .and_then(|m| usize::try_from(m).ok())
                .filter(|m| *m > 0)
                .unwrap_or(default_min),
            relative: self.relative_degradation.unwrap_or(0.0),
            absolute: self.absolute_degradation.unwrap_or(0.0),
        }
    }
}

/// Checks `metric.compare` (path `mp` is the metric's, e.g. `spec.analysis.metrics[0]`).
pub fn validate(mp: &str, metric: &CanaryMetric, out: &mut Vec<Problem>) {
    let Some(c) = &metric.compare else {
        return;
    };
    let cp = format!("{mp}.compare");
    if let Some(against) = c.against.as_deref()
        && against != "primary"
    {
        out.push(Problem::new(
            format!("{cp}.against"),
            format!("unknown value {against:?}; the canary can only be compared with \"primary\""),
        ));
    }
    let statistic = c.statistic();
    if statistic.is_none() {
        out.push(Problem::new(
            format!("{cp}.statistic"),
            format!(
                "unknown statistic {:?}; must be mann-whitney or proportion",
                c.statistic.as_deref().unwrap_or_default()
            ),
        ));
    }
    if metric.template_ref.is_none() && !metric.has_query() {
        out.push(Problem::new(
            cp.clone(),
            "a comparison needs the metric's own query or templateRef (built-in checks cannot be compared)",
        ));
    }
    for (field, value) in [
        ("relativeDegradation", c.relative_degradation),
        ("absoluteDegradation", c.absolute_degradation),
    ] {
        if let Some(v) = value
            && !(v.is_finite() && v >= 0.0)
        {
            out.push(Problem::new(
                format!("{cp}.{field}"),
                format!("must be a number of 0 or more, not {v}"),
            ));
        }
    }
    if let Some(confidence) = c.confidence
        && !(confidence > 0.0 && confidence < 1.0)
    {
        out.push(Problem::new(
            format!("{cp}.confidence"),
            format!("must be between 0 and 1 (e.g. 0.95), not {confidence}"),
        ));
    }
    if let Some(min) = c.min_samples
        && min < 1
    {
        out.push(Problem::new(
            format!("{cp}.minSamples"),
            format!("must be at least 1, not {min}"),
        ));
    }
    if let Some(step) = c.step.as_deref() {
        match duration::parse(step) {
            Some(d) if d >= Duration::from_secs(1) => {}
            _ => out.push(Problem::new(
                format!("{cp}.step"),
                format!("cannot parse {step:?} as a duration of at least 1s (e.g. 10s)"),
            )),
        }
    }
    if let Some(worse) = c.worse.as_deref()
        && worse != "higher"
        && worse != "lower"
    {
        out.push(Problem::new(
            format!("{cp}.worse"),
            format!("unknown value {worse:?}; must be higher or lower"),
        ));
    }
    let has_total = c
        .total_query
        .as_deref()
        .is_some_and(|q| !q.trim().is_empty());
    match statistic {
        Some(Statistic::Proportion) => {
            if !has_total {
                out.push(Problem::new(
                    format!("{cp}.totalQuery"),
                    "the proportion statistic needs totalQuery (the count of all events; the metric's query counts the bad ones)",
                ));
            }
            if c.lower_is_worse() {
                out.push(Problem::new(
                    format!("{cp}.worse"),
                    "the proportion statistic counts bad events: more is always worse",
                ));
            }
        }
        Some(Statistic::MannWhitney) if has_total => out.push(Problem::warning(
            format!("{cp}.totalQuery"),
            "ignored by the mann-whitney statistic",
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn metric(compare: serde_json::Value) -> CanaryMetric {
        serde_json::from_value(serde_json::json!({
            "name": "latency",
            "query": "histogram_quantile(0.5, rate(x{pod=~\"{{ target }}-.*\"}[30s]))",
            "compare": compare,
        }))
        .unwrap()
    }

    fn problems(m: &CanaryMetric) -> Vec<String> {
        let mut out = Vec::new();
        validate("m", m, &mut out);
        out.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults() {
        let m = metric(serde_json::json!({}));
        let c = m.compare.as_ref().unwrap();
        assert_eq!(c.statistic(), Some(Statistic::MannWhitney));
        assert_eq!(c.step(), DEFAULT_STEP);
        let s = c.settings();
        assert_eq!((s.confidence, s.min_samples), (0.95, 10));
        assert_eq!((s.relative, s.absolute), (0.0, 0.0));
        assert!(problems(&m).is_empty());
        let p = metric(serde_json::json!({"statistic": "proportion", "totalQuery": "sum(x)"}));
        assert_eq!(p.compare.as_ref().unwrap().settings().min_samples, 100);
        assert!(problems(&p).is_empty());
    }

    #[test]
    fn every_bad_field_is_reported() {
        let m = metric(serde_json::json!({
            "against": "baseline", "statistic": "t-test", "relativeDegradation": -1.0,
            "confidence": 1.5, "minSamples": 0, "step": "soon", "worse": "sideways"
        }));
        let p = problems(&m).join("\n");
        for field in [
            "compare.against",
            "compare.statistic",
            "compare.relativeDegradation",
            "compare.confidence",
            "compare.minSamples",
            "compare.step",
            "compare.worse",
        ] {
            assert!(p.contains(field), "{field} not reported in:\n{p}");
        }
        let no_total = metric(serde_json::json!({"statistic": "proportion"}));
        assert!(problems(&no_total).join("\n").contains("needs totalQuery"));
        let builtin: CanaryMetric = serde_json::from_value(serde_json::json!({
            "name": "request-duration", "compare": {}
        }))
        .unwrap();
        assert!(
            problems(&builtin)
                .join("\n")
                .contains("needs the metric's own query")
        );
    }
}
