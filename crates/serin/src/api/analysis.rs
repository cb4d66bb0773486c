//! `spec.analysis` of a Canary: schedule, strategy, metric checks, webhooks, alerts and session
//! affinity, with Flagger's defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::apis::istio::HttpMatchRequest;
use super::{duration, schema};

/// Default analysis interval and the lower clamp Flagger applies.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Default query window of built-in and inline metrics.
pub const DEFAULT_METRIC_INTERVAL: &str = "1m";
/// The upper clamp of the analysis interval (Serin's; Flagger has none, so `interval: 100000000m`
/// would park a canary for 190 years).
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Default webhook timeout.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The upper clamp of a webhook's per-attempt timeout (Serin's; Flagger has none).
pub const MAX_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default Max-Age of the canary session-affinity cookie.
pub const DEFAULT_COOKIE_MAX_AGE: i32 = 86_400;

/// `spec.analysis`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAnalysis {
    /// Schedule interval (default 60s, at least 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::interval")]
    pub interval: Option<String>,
    /// Number of failed checks before rollback (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub threshold: Option<i32>,
    /// Number of iterations (A/B testing with `match`, blue/green without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub iterations: Option<i32>,
    /// Mirror traffic to the canary (Istio; Gateway API in blue/green mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<bool>,
    /// Percentage of mirrored traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub mirror_weight: Option<i32>,
    /// Max traffic percentage routed to the canary (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_weight: Option<i32>,
    /// Canary weight increment per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub step_weight: Option<i32>,
    /// Explicit canary weight ladder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(range(min = 1, max = 100)))]
    pub step_weights: Option<Vec<i32>>,
    /// Primary weight increment per step during promotion (default: all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub step_weight_promotion: Option<i32>,
    /// Percentage of primary replicas that must be available (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub primary_ready_threshold: Option<i32>,
    /// Percentage of canary replicas that must be available (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub canary_ready_threshold: Option<i32>,
    /// Alert routing for this canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<CanaryAlert>>,
    /// Metric checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<CanaryMetric>>,
    /// Webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<CanaryWebhook>>,
    /// A/B testing match conditions (HTTP headers, cookies, query parameters, source labels).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<HttpMatchRequest>>,
    /// Session affinity for the canary strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    /// Serin only: run every metric query once for the primary before the first traffic step
    /// and hold the run at weight 0 (at most `progressDeadlineSeconds`) while one errors or
    /// returns no series (default true; set false for a service whose primary has no traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<bool>,
}

/// The deployment strategy a Canary's analysis selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Progressive weights (`stepWeight`/`stepWeights`/`maxWeight`).
    Canary,
    /// `iterations` with `match`.
    AbTesting,
    /// `iterations` without `match`.
    BlueGreen,
}

impl Strategy {
    /// The label value used by Flagger's metrics (`deployment_strategy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::AbTesting => "ab-testing",
            Strategy::BlueGreen => "blue-green",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CanaryAnalysis {
    /// The tick period: `interval` parsed as a Go duration; unparseable → 60s; below 10s → 10s;
    /// above [`MAX_INTERVAL`] → 24h.
    pub fn interval(&self) -> Duration {
        self.interval_with_min(MIN_INTERVAL)
    }

    /// The analysis interval with another lower bound than [`MIN_INTERVAL`] (the controller's
    /// hidden `--min-analysis-interval`, for tests).
    pub fn interval_with_min(&self, min: Duration) -> Duration {
        let parsed = self
            .interval
            .as_deref()
            .and_then(duration::parse)
            .unwrap_or(DEFAULT_INTERVAL);
        parsed.max(min).min(MAX_INTERVAL.max(min))
    }

    /// Failed checks tolerated before rollback (values ≤ 0 mean 1).
    pub fn threshold(&self) -> i32 {
        match self.threshold {
            Some(t) if t > 0 => t,
            _ => 1,
        }
    }

    pub fn iterations(&self) -> i32 {
        self.iterations.unwrap_or(0).max(0)
    }

    pub fn mirror(&self) -> bool {
        self.mirror.unwrap_or(false)
    }

    pub fn step_weight(&self) -> i32 {
        self.step_weight.unwrap_or(0)
    }

    pub fn step_weights(&self) -> &[i32] {
        self.step_weights.as_deref().unwrap_or(&[])
    }

    pub fn step_weight_promotion(&self) -> i32 {
        self.step_weight_promotion.unwrap_or(0)
    }

    /// The promotion weight: `min(100, last stepWeights)` when `stepWeights` is set, else
    /// `min(100, maxWeight)` when positive, else 100.
    pub fn max_weight(&self) -> i32 {
        if let Some(last) = self.step_weights().last() {
            return (*last).min(100);
        }
        match self.max_weight {
            Some(w) if w > 0 => w.min(100),
            _ => 100,
        }
    }

    pub fn primary_ready_threshold(&self) -> i32 {
        self.primary_ready_threshold.unwrap_or(100)
    }

    pub fn canary_ready_threshold(&self) -> i32 {
        self.canary_ready_threshold.unwrap_or(100)
    }

    pub fn matches(&self) -> &[HttpMatchRequest] {
        self.matches.as_deref().unwrap_or(&[])
    }

    pub fn metrics(&self) -> &[CanaryMetric] {
        self.metrics.as_deref().unwrap_or(&[])
    }

    /// Serin's query pre-flight (`preflight`, default on).
    pub fn preflight(&self) -> bool {
        self.preflight.unwrap_or(true)
    }

    pub fn webhooks(&self) -> &[CanaryWebhook] {
        self.webhooks.as_deref().unwrap_or(&[])
    }

    pub fn alerts(&self) -> &[CanaryAlert] {
        self.alerts.as_deref().unwrap_or(&[])
    }

    /// Flagger's `DeploymentStrategy()`.
    pub fn strategy(&self) -> Strategy {
        let iterations = self.iterations();
        if !self.matches().is_empty() && iterations > 0 {
            Strategy::AbTesting
        } else if iterations > 0 {
            Strategy::BlueGreen
        } else {
            Strategy::Canary
        }
    }

    /// The weight step after `canary_weight` (Flagger's `nextStepWeight`).
    pub fn next_step_weight(&self, canary_weight: i32) -> i32 {
        let step_weights = self.step_weights();
        if self.step_weight() > 0 || step_weights.is_empty() {
            return self.step_weight();
        }
        let max_step = 100i32.saturating_sub(canary_weight);
        if max_step <= 0 {
            return 1;
        }
        if canary_weight == 0 {
            return max_step.min(step_weights[0]);
        }
        for (i, w) in step_weights.iter().enumerate() {
            if *w == canary_weight && i + 1 < step_weights.len() {
                return max_step.min(step_weights[i + 1].saturating_sub(canary_weight));
            }
        }
        max_step
    }
}

/// `analysis.metrics[].thresholdRange`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CanaryThresholdRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A reference to an object in the canary's namespace or another one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CrossNamespaceObjectReference {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl CrossNamespaceObjectReference {
    /// The namespace, defaulting to `default_namespace` when unset or empty.
    pub fn namespace_or<'a>(&'a self, default_namespace: &'a str) -> &'a str {
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => default_namespace,
        }
    }
}

/// The built-in checks Flagger runs by metric name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinMetric {
    RequestSuccessRate,
    RequestDuration,
}

impl BuiltinMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinMetric::RequestSuccessRate => "request-success-rate",
            BuiltinMetric::RequestDuration => "request-duration",
        }
    }
}

/// `analysis.metrics[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryMetric {
    /// Name of the metric; `request-success-rate` and `request-duration` select the built-in
    /// checks.
    pub name: String,
    /// Query window (default 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::interval")]
    pub interval: Option<String>,
    /// Deprecated single threshold (minimum for the success rate, maximum otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Inclusive bounds: the check fails when the value is below `min` or above `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<CanaryThresholdRange>,
    /// Deprecated inline Prometheus query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// MetricTemplate reference (namespace defaults to the canary's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<CrossNamespaceObjectReference>,
    /// Values exposed to the template as `{{ variables.<key> }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::string_map")]
    pub template_variables: Option<BTreeMap<String, String>>,
    /// Serin only: compare the canary with its primary instead of a fixed threshold
    /// (docs/analysis.md). Flagger ignores the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<super::comparison::MetricComparison>,
}

impl CanaryMetric {
    /// The built-in check this metric selects by name. The legacy names
    /// `istio_requests_total` and `istio_request_duration_seconds_bucket` (Flagger < 1.0) mean
    /// the success rate and the request duration.
    pub fn builtin(&self) -> Option<BuiltinMetric> {
        match self.name.as_str() {
            "request-success-rate" | "istio_requests_total" => {
                Some(BuiltinMetric::RequestSuccessRate)
            }
            "request-duration" | "istio_request_duration_seconds_bucket" => {
                Some(BuiltinMetric::RequestDuration)
            }
            _ => None,
        }
    }

    /// The query window; defaults to 1m for every metric kind (Flagger leaves it empty for
    /// templates, which breaks providers that parse it — see docs/compatibility.md).
    pub fn interval(&self) -> &str {
        match self.interval.as_deref() {
            Some(i) if !i.is_empty() => i,
            _ => DEFAULT_METRIC_INTERVAL,
        }
    }

    /// Whether this metric has something to evaluate.
    pub fn is_usable(&self) -> bool {
        self.builtin().is_some() || self.has_query() || self.template_ref.is_some()
    }

    pub fn has_query(&self) -> bool {
        self.query.as_deref().is_some_and(|q| !q.trim().is_empty())
    }
}

/// When a webhook is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookType {
    ConfirmRollout,
    PreRollout,
    /// `rollout` or empty.
    Rollout,
    ConfirmTrafficIncrease,
    ConfirmPromotion,
    PostRollout,
    Rollback,
    Event,
}

impl HookType {
    pub const ALL: [HookType; 8] = [
        HookType::ConfirmRollout,
        HookType::PreRollout,
        HookType::Rollout,
        HookType::ConfirmTrafficIncrease,
        HookType::ConfirmPromotion,
        HookType::PostRollout,
        HookType::Rollback,
        HookType::Event,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookType::ConfirmRollout => "confirm-rollout",
            HookType::PreRollout => "pre-rollout",
            HookType::Rollout => "rollout",
            HookType::ConfirmTrafficIncrease => "confirm-traffic-increase",
            HookType::ConfirmPromotion => "confirm-promotion",
            HookType::PostRollout => "post-rollout",
            HookType::Rollback => "rollback",
            HookType::Event => "event",
        }
    }
}

/// A webhook `type` Flagger does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown webhook type {0:?}; expected one of: confirm-rollout, pre-rollout, rollout, confirm-traffic-increase, confirm-promotion, post-rollout, rollback, event"
)]
pub struct UnknownHookType(pub String);

impl FromStr for HookType {
    type Err = UnknownHookType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(HookType::Rollout);
        }
        HookType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownHookType(s.to_string()))
    }
}

impl fmt::Display for HookType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `analysis.webhooks[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryWebhook {
    pub name: String,
    /// When the hook runs (default `rollout`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::webhook_type")]
    pub hook_type: Option<String>,
    /// URL the payload is POSTed to.
    pub url: String,
    /// Per-attempt timeout (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::interval")]
    pub timeout: Option<String>,
    /// Extra attempts after a retriable failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub retries: Option<i32>,
    /// Metadata sent in the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::string_map")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Mute the alerts this hook causes: the "waiting for approval" alerts of confirm-* hooks
    /// and the failure alert of a pre-rollout hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute_alert: Option<bool>,
    /// Skip TLS certificate verification.
    #[serde(
        default,
        rename = "disableTLS",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_tls: Option<bool>,
}

impl CanaryWebhook {
    pub fn hook_type(&self) -> Result<HookType, UnknownHookType> {
        self.hook_type.as_deref().unwrap_or("").parse()
    }

    /// Per-attempt timeout: default 10s, also when the value is shorter than two characters or
    /// unparseable (as Flagger); at most [`MAX_WEBHOOK_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        match self.timeout.as_deref() {
            Some(t) if t.len() >= 2 => duration::parse(t)
                .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT)
                .min(MAX_WEBHOOK_TIMEOUT),
            _ => DEFAULT_WEBHOOK_TIMEOUT,
        }
    }

    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(0).max(0) as u32
    }
}

/// Severity of an alert, and of a canary alert entry (`info` receives everything).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertSeverity {
    #[default]
    Info,
    Warn,
    Error,
}

impl AlertSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Info => "info",
            AlertSeverity::Warn => "warn",
            AlertSeverity::Error => "error",
        }
    }
}

impl fmt::Display for AlertSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity other than info, warn or error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown alert severity {0:?}: expected info, warn or error")]
pub struct UnknownAlertSeverity(pub String);

impl FromStr for AlertSeverity {
    type Err = UnknownAlertSeverity;

    /// Parses `info`, `warn` or `error`. The empty string is `info`: Flagger documents `info` as
    /// the default but its code lets an alert with an empty severity receive nothing;
    /// Serin follows the documentation.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "info" => Ok(AlertSeverity::Info),
            "warn" => Ok(AlertSeverity::Warn),
            "error" => Ok(AlertSeverity::Error),
            other => Err(UnknownAlertSeverity(other.to_string())),
        }
    }
}

/// `analysis.alerts[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAlert {
    pub name: String,
    /// `info` (default), `warn` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::alert_severity")]
    pub severity: Option<String>,
    pub provider_ref: CrossNamespaceObjectReference,
}

impl CanaryAlert {
    /// The severity; empty or absent means `info` (Flagger sends nothing in that case, a bug).
    pub fn severity(&self) -> Option<AlertSeverity> {
        self.severity.as_deref().unwrap_or("").parse().ok()
    }
}

/// `analysis.sessionAffinity`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinity {
    /// Name of the canary stickiness cookie.
    pub cookie_name: String,
    /// Name of the primary stickiness cookie (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_cookie_name: Option<String>,
    /// Max-Age of the canary cookie in seconds (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_age: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::same_site")]
    pub same_site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioned: Option<bool>,
}

impl SessionAffinity {
    pub fn max_age(&self) -> i32 {
        match self.max_age {
            Some(age) if age != 0 => age,
            _ => DEFAULT_COOKIE_MAX_AGE,
        }
    }

    /// The cookie attributes appended after `Max-Age`, in Flagger's order.
    pub fn cookie_attributes(&self) -> String {
        let mut out = String::new();
        if let Some(domain) = self.domain.as_deref().filter(|d| !d.is_empty()) {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        if self.http_only == Some(true) {
            out.push_str("; HttpOnly");
        }
        if self.partitioned == Some(true) {
            out.push_str("; Partitioned");
        }
        if let Some(path) = self.path.as_deref().filter(|p| !p.is_empty()) {
            out.push_str("; Path=");
            out.push_str(path);
        }
        if let Some(same_site) = self.same_site.as_deref().filter(|s| !s.is_empty()) {
            out.push_str("; SameSite=");
            out.push_str(same_site);
        }
        if self.secure == Some(true) {
            out.push_str("; Secure");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn analysis(json: serde_json::Value) -> CanaryAnalysis {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn interval_defaults_and_clamps() {
        assert_eq!(
            analysis(serde_json::json!({})).interval(),
            Duration::from_secs(60)
        );
        assert_eq!(
            analysis(serde_json::json!({"interval": "5s"})).interval(),
            Duration::from_secs(10)
        );
        assert_eq!(
            analysis(serde_json::json!({"interval": "2m"})).interval(),
            Duration::from_secs(120)
        );
        assert_eq!(
            analysis(serde_json::json!({"interval": "bogus"})).interval(),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn strategy_selection() {
        assert_eq!(
            analysis(serde_json::json!({"stepWeight": 10})).strategy(),
            Strategy::Canary
        );
        assert_eq!(
            analysis(serde_json::json!({"iterations": 5})).strategy(),
            Strategy::BlueGreen
        );
        let ab = analysis(
            serde_json::json!({"iterations": 5, "match": [{"headers": {"x": {"exact": "y"}}}]}),
        );
        assert_eq!(ab.strategy(), Strategy::AbTesting);
        let canary_with_match = analysis(
            serde_json::json!({"stepWeight": 5, "match": [{"headers": {"x": {"exact": "y"}}}]}),
        );
        assert_eq!(canary_with_match.strategy(), Strategy::Canary);
    }

    #[test]
    fn max_weight_rules() {
        assert_eq!(analysis(serde_json::json!({})).max_weight(), 100);
        assert_eq!(
            analysis(serde_json::json!({"maxWeight": 50})).max_weight(),
            50
        );
        assert_eq!(
            analysis(serde_json::json!({"maxWeight": 50, "stepWeights": [1, 20, 80]})).max_weight(),
            80
        );
    }

    #[test]
    fn next_step_weight_follows_the_ladder() {
        let a = analysis(serde_json::json!({"stepWeights": [1, 2, 10, 80]}));
        assert_eq!(a.next_step_weight(0), 1);
        assert_eq!(a.next_step_weight(1), 1);
        assert_eq!(a.next_step_weight(2), 8);
        assert_eq!(a.next_step_weight(10), 70);
        assert_eq!(a.next_step_weight(80), 20);
        assert_eq!(a.next_step_weight(100), 1);
        let linear = analysis(serde_json::json!({"stepWeight": 10}));
        assert_eq!(linear.next_step_weight(30), 10);
    }

    #[test]
    fn absurd_intervals_and_timeouts_are_clamped() {
        let a = analysis(serde_json::json!({"interval": "100000000m"}));
        assert_eq!(a.interval(), MAX_INTERVAL);
        assert_eq!(
            analysis(serde_json::json!({"interval": "2h"})).interval(),
            Duration::from_secs(7200)
        );
        let hook: CanaryWebhook = serde_json::from_value(
            serde_json::json!({"name": "h", "url": "http://x/", "timeout": "100000000m"}),
        )
        .unwrap();
        assert_eq!(hook.timeout(), MAX_WEBHOOK_TIMEOUT);
    }

    #[test]
    fn out_of_range_weights_do_not_overflow() {
        let ladder = analysis(serde_json::json!({"stepWeights": [1, 2147483647]}));
        assert_eq!(ladder.next_step_weight(1), 99);
        assert_eq!(ladder.next_step_weight(i32::MIN), i32::MAX);
        assert_eq!(ladder.max_weight(), 100);
        let negative = analysis(serde_json::json!({"stepWeights": [-2147483648, 5]}));
        assert_eq!(negative.next_step_weight(i32::MIN), i32::MAX);
        let huge = analysis(serde_json::json!({"maxWeight": 2147483647, "stepWeight": 2147483647}));
        assert_eq!(huge.max_weight(), 100);
        assert_eq!(
            analysis(serde_json::json!({"maxWeight": 1000})).max_weight(),
            100
        );
    }

    #[test]
    fn legacy_metric_names_are_builtins() {
        let m = |name: &str| CanaryMetric {
            name: name.into(),
            ..Default::default()
        };
        assert_eq!(
            m("istio_requests_total").builtin(),
            Some(BuiltinMetric::RequestSuccessRate)
        );
        assert_eq!(
            m("istio_request_duration_seconds_bucket").builtin(),
            Some(BuiltinMetric::RequestDuration)
        );
        assert_eq!(
            m("request-success-rate").builtin(),
            Some(BuiltinMetric::RequestSuccessRate)
        );
        assert_eq!(m("error-rate").builtin(), None);
        assert!(!m("error-rate").is_usable());
    }

    #[test]
    fn webhook_defaults() {
        let hook: CanaryWebhook =
            serde_json::from_value(serde_json::json!({"name": "a", "url": "http://x/"})).unwrap();
        assert_eq!(hook.hook_type().unwrap(), HookType::Rollout);
        assert_eq!(hook.timeout(), Duration::from_secs(10));
        let hook: CanaryWebhook =
            serde_json::from_value(serde_json::json!({"name": "a", "url": "http://x/", "type": "pre-rollout", "timeout": "30s"})).unwrap();
        assert_eq!(hook.hook_type().unwrap(), HookType::PreRollout);
        assert_eq!(hook.timeout(), Duration::from_secs(30));
        let bad: CanaryWebhook =
            serde_json::from_value(serde_json::json!({"name": "a", "url": "u", "type": "pre"}))
                .unwrap();
        assert!(bad.hook_type().is_err());
    }

    #[test]
    fn cookie_attributes_in_flagger_order() {
        let sa = SessionAffinity {
            cookie_name: "c".into(),
            domain: Some("example.com".into()),
            path: Some("/".into()),
            same_site: Some("Strict".into()),
            http_only: Some(true),
            secure: Some(true),
            partitioned: Some(true),
            ..Default::default()
        };
        assert_eq!(
            sa.cookie_attributes(),
            "; Domain=example.com; HttpOnly; Partitioned; Path=/; SameSite=Strict; Secure"
        );
        assert_eq!(sa.max_age(), 86_400);
    }

    #[test]
    fn empty_severity_means_info() {
        let alert = |s: Option<&str>| CanaryAlert {
            name: "a".into(),
            severity: s.map(String::from),
            ..Default::default()
        };
        assert_eq!(alert(None).severity(), Some(AlertSeverity::Info));
        assert_eq!(alert(Some("")).severity(), Some(AlertSeverity::Info));
        assert_eq!(alert(Some("warn")).severity(), Some(AlertSeverity::Warn));
        assert_eq!(alert(Some("fatal")).severity(), None);
    }
}
