//! `status.decisions` (Serin only): the decision record of the last analysis ticks. Each entry
//! says what one tick measured (every metric check with its rendered query, value and threshold
//! range), what the webhooks answered, and which step followed. Flagger ignores the field (its
//! CRD prunes it); `kubectl get canary -o yaml` and `kubectl serin why` show it.
//!
//! The record never holds secrets: no provider addresses, no webhook URLs or metadata, no
//! Secret data. Messages are cut to [`MAX_MESSAGE_CHARS`] and queries to [`MAX_QUERY_CHARS`];
//! the list keeps the last [`MAX_DECISIONS`] ticks within [`MAX_RECORD_BYTES`] of JSON.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::CanaryPhase;

/// Ticks kept on the status.
pub const MAX_DECISIONS: usize = 20;
/// Metric checks and webhooks kept per tick.
pub const MAX_ENTRIES: usize = 16;
/// Longest rendered query kept (characters).
pub const MAX_QUERY_CHARS: usize = 512;
/// Longest message kept (characters).
pub const MAX_MESSAGE_CHARS: usize = 256;
/// Budget of the whole record as JSON: the oldest ticks go first when it is exceeded.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// One analysis tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// When the tick ran.
    pub time: Time,
    /// Phase after the tick.
    pub phase: CanaryPhase,
    /// Canary weight after the tick.
    #[serde(default)]
    pub canary_weight: i32,
    /// Iterations after the tick.
    #[serde(default)]
    pub iterations: i32,
    /// Failed checks after the tick.
    #[serde(default)]
    pub failed_checks: i32,
    /// The metric checks run, in order (the first failure ends them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRecord>,
    /// The webhooks called, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookRecord>,
    /// The step the tick took.
    pub step: DecisionStep,
}

/// What a metric check concluded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The value is within the threshold range.
    #[default]
    Pass,
    /// Out of range, no values, or the query failed: a failed check.
    Fail,
    /// A comparison had too few samples: the step holds.
    Inconclusive,
    /// Serin's own inputs could not be read: the step holds, not counted.
    Held,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Held => "held",
        }
    }
}

/// One metric check of a tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    /// `analysis.metrics[].name`.
    pub name: String,
    /// The provider type (`prometheus` for the built-in and inline checks).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider: String,
    /// The query as sent, after template rendering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The value compared with the range (request-duration in milliseconds, like its
    /// thresholds; comparisons: the relative effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Lower bound of the range, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Upper bound of the range, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub verdict: Verdict,
    /// Why it failed or held, or a comparison's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One webhook call of a tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRecord {
    pub name: String,
    /// The hook type (`pre-rollout`, `rollout`, `confirm-promotion`, ...).
    #[serde(rename = "type")]
    pub hook_type: String,
    /// The HTTP status of the answer, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Whether the call succeeded (HTTP 200..=202).
    pub ok: bool,
    /// The answer's body or the error, without URLs' paths, queries or credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The kind of step a tick took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StepAction {
    /// Nothing moved (a gate, an inconclusive or held check).
    #[default]
    Hold,
    /// The canary weight went up.
    Advance,
    /// One more iteration (A/B testing, blue/green).
    Iterate,
    /// A failed check was counted.
    FailedCheck,
    /// Waiting for confirm-promotion.
    WaitPromotion,
    /// The analysis passed: the primary is being updated.
    Promote,
    /// Traffic moved back to the primary during promotion.
    ShiftToPrimary,
    /// All traffic on the primary, the canary scaled down next.
    Finalise,
    /// The run finished with the new revision promoted.
    Succeed,
    /// All traffic back to the primary, the canary scaled to zero.
    Rollback,
}

impl StepAction {
    pub fn as_str(self) -> &'static str {
        match self {
            StepAction::Hold => "hold",
            StepAction::Advance => "advance",
            StepAction::Iterate => "iterate",
            StepAction::FailedCheck => "failedCheck",
            StepAction::WaitPromotion => "waitPromotion",
            StepAction::Promote => "promote",
            StepAction::ShiftToPrimary => "shiftToPrimary",
            StepAction::Finalise => "finalise",
            StepAction::Succeed => "succeed",
            StepAction::Rollback => "rollback",
        }
    }
}

/// The step of a tick, with a sentence for people.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionStep {
    pub action: StepAction,
    /// E.g. `canary weight 10 → 20`.
    pub summary: String,
}

/// `text` made fit for the record: any of `secrets` (at least 4 characters) replaced by
/// `[redacted]`, URLs reduced to their scheme, host and port (paths, queries and credentials
/// can hold tokens), whitespace collapsed, and cut to [`MAX_MESSAGE_CHARS`].
pub fn clean_message(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.chars().count() >= 4) {
        out = out.replace(secret, "[redacted]");
    }
    cut(&collapse(&reduce_urls(&out)), MAX_MESSAGE_CHARS)
}

/// A rendered query made fit for the record: whitespace collapsed, cut to [`MAX_QUERY_CHARS`].
pub fn clean_query(query: &str) -> String {
    cut(&collapse(query), MAX_QUERY_CHARS)
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Replaces every `http://` or `https://` URL in `text` by its origin.
fn reduce_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = ["http://", "https://"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>' | ','))
            .unwrap_or(tail.len());
        out.push_str(&origin(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
            (Some(host), None) => format!("{}://{host}", u.scheme()),
            _ => "[url]".to_string(),
        },
        Err(_) => "[url]".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_lose_url_credentials_paths_and_secrets() {
        let text = "POST http://user:pw@hooks.example:8080/services/T0/B0/XYZ?token=abc giving up: \
                    error sending request for url (https://gate.example/approve?key=s3cr3t)";
        let clean = clean_message(text, &["XYZ"]);
        assert_eq!(
            clean,
            "POST http://hooks.example:8080 giving up: error sending request for url (https://gate.example)"
        );
        assert_eq!(
            clean_message("token Bearer abcdefgh rejected", &["abcdefgh", "ab"]),
            "token Bearer [redacted] rejected"
        );
        assert_eq!(clean_message("see http://[broken", &[]), "see [url]");
    }

    #[test]
    fn long_texts_are_cut() {
        let long = "x".repeat(2 * MAX_MESSAGE_CHARS);
        let clean = clean_message(&long, &[]);
        assert_eq!(clean.chars().count(), MAX_MESSAGE_CHARS);
        assert!(clean.ends_with('…'));
        assert_eq!(clean_query("sum(\n  rate(x[1m])\n)"), "sum( rate(x[1m]) )");
        assert_eq!(
            clean_query(&"y".repeat(600)).chars().count(),
            MAX_QUERY_CHARS
        );
    }
}
