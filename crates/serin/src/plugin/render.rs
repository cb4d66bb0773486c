//! What `kubectl serin` prints: pure functions of Canaries, events and the time.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;

use crate::api::decision::{CheckRecord, Decision};
use crate::api::request::RequestOutcome;
use crate::api::{Canary, Strategy};

/// Width of the progress bar, in cells.
const BAR: usize = 10;

/// `[###-------] 30/100`: `done` of `total` cells filled (clamped).
pub fn progress_bar(done: i32, total: i32) -> String {
    let total = total.max(1);
    let done_clamped = done.clamp(0, total);
    let filled = usize::try_from(i64::from(done_clamped) * BAR as i64 / i64::from(total))
        .unwrap_or(0)
        .min(BAR);
    format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        "-".repeat(BAR - filled)
    )
}

/// The canary's progress: weight against maxWeight, or iterations for A/B testing and
/// blue/green.
fn progress(canary: &Canary) -> String {
    let status = canary.status.clone().unwrap_or_default();
    let Some(analysis) = canary.spec.analysis() else {
        return "-".to_string();
    };
    match analysis.strategy() {
        Strategy::Canary => progress_bar(status.canary_weight, analysis.max_weight()),
        Strategy::AbTesting | Strategy::BlueGreen => {
            format!(
                "{} it",
                progress_bar(status.iterations, analysis.iterations())
            )
        }
    }
}

/// `5m`, `2h`, `3d`: how long ago `t` was (the `CHANGED` column: since the last status write).
pub fn age(t: Option<Timestamp>, now: Timestamp) -> String {
    let Some(t) = t else {
        return "-".to_string();
    };
    let s = now.as_second().saturating_sub(t.as_second()).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Columns padded to their widest cell, two spaces apart.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `kubectl serin get`: one row per canary.
pub fn table(canaries: &[Canary], with_namespace: bool, now: Timestamp) -> String {
    if canaries.is_empty() {
        return "No canaries found.\n".to_string();
    }
    let mut header = vec![
        "NAME",
        "PHASE",
        "PROGRESS",
        "FAILED",
        "LAST STEP",
        "CHANGED",
    ];
    if with_namespace {
        header.insert(0, "NAMESPACE");
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for c in canaries {
        let status = c.status.clone().unwrap_or_default();
        let threshold = c.spec.analysis().map(|a| a.threshold()).unwrap_or(0);
        let last_step = status
            .decisions
            .as_ref()
            .and_then(|d| d.last())
            .map(|d| d.step.summary.clone())
            .unwrap_or_else(|| "-".to_string());
        let phase = match status.phase.as_str() {
            "" => "-",
            p => p,
        };
        let mut row = vec![
            c.metadata.name.clone().unwrap_or_default(),
            phase.to_string(),
            progress(c),
            format!("{}/{threshold}", status.failed_checks),
            last_step,
            age(status.last_transition_time.map(|t| t.0), now),
        ];
        if with_namespace {
            row.insert(0, c.metadata.namespace.clone().unwrap_or_default());
        }
        rows.push(row);
    }
    columns(&rows)
}

fn id(canary: &Canary) -> String {
    format!(
        "{}.{}",
        canary.metadata.name.as_deref().unwrap_or_default(),
        canary.metadata.namespace.as_deref().unwrap_or_default()
    )
}

/// The first line of `status` and `why`.
fn headline(canary: &Canary) -> String {
    let status = canary.status.clone().unwrap_or_default();
    let threshold = canary.spec.analysis().map(|a| a.threshold()).unwrap_or(0);
    format!(
        "{}  {}  {}  failed checks {}/{threshold}\n",
        id(canary),
        match status.phase.as_str() {
            "" => "-",
            p => p,
        },
        progress(canary),
        status.failed_checks
    )
}

fn time(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .or(e.first_timestamp.as_ref())
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// `kubectl serin status`: the current run (from its last "New revision detected" event) as
/// one timeline of events and recorded steps, oldest first.
pub fn timeline(canary: &Canary, events: &[Event]) -> String {
    let mut lines: Vec<(Timestamp, String)> = Vec::new();
    for e in events {
        let Some(t) = event_time(e) else { continue };
        let count = e.count.unwrap_or(1);
        let repeated = if count > 1 {
            format!(" (x{count})")
        } else {
            String::new()
        };
        let kind = e.type_.as_deref().unwrap_or("Normal");
        lines.push((
            t,
            format!(
                "{kind:<7}  {}{repeated}",
                e.message.as_deref().unwrap_or_default()
            ),
        ));
    }
    let decisions = canary
        .status
        .as_ref()
        .and_then(|s| s.decisions.clone())
        .unwrap_or_default();
    for d in &decisions {
        lines.push((
            d.time.0,
            format!("Step     {}: {}", d.step.action.as_str(), d.step.summary),
        ));
    }
    // Stable: at equal times events come before the step they led to.
    lines.sort_by_key(|(t, _)| *t);
    let start = lines
        .iter()
        .rposition(|(_, l)| l.contains("New revision detected"))
        .unwrap_or(0);
    let mut out = headline(canary);
    if let Some(c) = canary.status.as_ref().and_then(|s| s.promoted_condition()) {
        let _ = writeln!(out, "{}", c.message.as_deref().unwrap_or_default());
    }
    out.push_str(&requests(canary));
    out.push('\n');
    if lines.is_empty() {
        out.push_str("No events or decisions recorded yet.\n");
    }
    for (t, line) in &lines[start.min(lines.len())..] {
        let _ = writeln!(out, "{}  {line}", time(*t));
    }
    out
}

/// The pause and the last `kubectl serin` request, as the controller recorded them.
pub fn requests(canary: &Canary) -> String {
    let mut out = String::new();
    let Some(status) = canary.status.as_ref() else {
        return out;
    };
    if let Some(p) = &status.paused {
        let by = if p.by.is_empty() {
            "an unnamed user"
        } else {
            &p.by
        };
        let _ = writeln!(out, "Paused by {by} since {}.", time(p.since.0));
    }
    if let Some(r) = &status.last_request {
        let action = r.action.map_or("unreadable request", |a| a.as_str());
        let outcome = match r.outcome {
            RequestOutcome::Done => "done".to_string(),
            RequestOutcome::Waiting => "waiting for the confirm-promotion gate".to_string(),
            RequestOutcome::Superseded => "superseded".to_string(),
            RequestOutcome::Refused => match &r.message {
                Some(m) => format!("refused: {m}"),
                None => "refused".to_string(),
            },
        };
        let by = if r.by.is_empty() {
            String::new()
        } else {
            format!(" by {}", r.by)
        };
        let _ = writeln!(
            out,
            "Last request: {action}{by} at {}: {outcome}.",
            time(r.time.0)
        );
    }
    out
}

/// A number as people read it: up to 3 decimals, no trailing zeros.
pub fn number(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// `≥ 99`, `≤ 500`, `99 … 500` or `-`.
pub fn range(check: &CheckRecord) -> String {
    match (check.min, check.max) {
        (Some(min), Some(max)) => format!("{} … {}", number(min), number(max)),
        (Some(min), None) => format!("≥ {}", number(min)),
        (None, Some(max)) => format!("≤ {}", number(max)),
        (None, None) => "-".to_string(),
    }
}

fn decision(out: &mut String, d: &Decision, queries: bool) {
    let _ = writeln!(
        out,
        "{}  {}: {}  (phase {}, weight {}, failed checks {})",
        time(d.time.0),
        d.step.action.as_str(),
        d.step.summary,
        d.phase,
        d.canary_weight,
        d.failed_checks
    );
    if !d.checks.is_empty() {
        let mut rows = vec![
            [
                "  CHECK", "VERDICT", "VALUE", "RANGE", "PROVIDER", "MESSAGE",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for c in &d.checks {
            rows.push(vec![
                format!("  {}", c.name),
                c.verdict.as_str().to_string(),
                c.value.map(number).unwrap_or_else(|| "-".to_string()),
                range(c),
                c.provider.clone(),
                c.message.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&columns(&rows));
        if queries {
            for c in d.checks.iter().filter(|c| c.query.is_some()) {
                let _ = writeln!(
                    out,
                    "  query {}: {}",
                    c.name,
                    c.query.as_deref().unwrap_or_default()
                );
            }
        }
    }
    if !d.webhooks.is_empty() {
        let mut rows = vec![
            ["  WEBHOOK", "TYPE", "RESULT", "MESSAGE"]
                .map(String::from)
                .to_vec(),
        ];
        for h in &d.webhooks {
            let result = match (h.ok, h.status_code) {
                (true, Some(code)) => format!("ok ({code})"),
                (true, None) => "ok".to_string(),
                (false, Some(code)) => format!("failed ({code})"),
                (false, None) => "failed".to_string(),
            };
            rows.push(vec![
                format!("  {}", h.name),
                h.hook_type.clone(),
                result,
                h.message.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&columns(&rows));
    }
}

/// The `MetricsReady` condition while the query pre-flight fails: why the run holds at weight 0.
fn preflight_failure(canary: &Canary) -> Option<String> {
    let status = canary.status.as_ref()?;
    let c = status.condition(crate::api::status::METRICS_READY_CONDITION)?;
    if c.status != crate::api::status::ConditionStatus::False {
        return None;
    }
    Some(format!(
        "MetricsReady False ({}): {}\n",
        c.reason,
        c.message.as_deref().unwrap_or_default()
    ))
}

/// `kubectl serin why`: the failing query pre-flight, if any, and the last `last` decisions,
/// oldest first.
pub fn why(canary: &Canary, last: usize, queries: bool) -> String {
    let mut out = headline(canary);
    if let Some(line) = preflight_failure(canary) {
        out.push_str(&line);
    }
    out.push('\n');
    let decisions = canary
        .status
        .as_ref()
        .and_then(|s| s.decisions.clone())
        .unwrap_or_default();
    if decisions.is_empty() {
        out.push_str(
            "No decisions recorded yet: the record fills once an analysis runs (Serin's controller writes status.decisions).\n",
        );
        return out;
    }
    let from = decisions.len().saturating_sub(last.max(1));
    for (i, d) in decisions[from..].iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        decision(&mut out, d, queries);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canary(status: serde_json::Value, analysis: serde_json::Value) -> Canary {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "analysis": analysis,
            },
            "status": status,
        }))
        .unwrap()
    }

    fn record() -> serde_json::Value {
        serde_json::json!([{
            "time": "2026-01-01T00:01:00Z", "phase": "Progressing", "canaryWeight": 20,
            "iterations": 0, "failedChecks": 1,
            "checks": [
                {"name": "request-success-rate", "provider": "prometheus", "query": "sum(rate(x[1m]))",
                 "value": 99.5, "min": 99.0, "verdict": "pass"},
                {"name": "request-duration", "provider": "prometheus", "value": 612.25,
                 "max": 500.0, "verdict": "fail",
                 "message": "Halt podinfo.test advancement request duration 612ms > 500ms"}
            ],
            "webhooks": [{"name": "load", "type": "rollout", "statusCode": 200, "ok": true}],
            "step": {"action": "failedCheck", "summary": "failed checks 0 → 1 (rollback at 2)"}
        }])
    }

    #[test]
    fn progress_bars_are_clamped() {
        assert_eq!(progress_bar(20, 50), "[####------] 20/50");
        assert_eq!(progress_bar(0, 50), "[----------] 0/50");
        assert_eq!(progress_bar(80, 50), "[##########] 80/50");
        assert_eq!(progress_bar(-5, 0), "[----------] -5/1");
    }

    #[test]
    fn the_table_has_progress_failures_and_the_last_step() {
        let c = canary(
            serde_json::json!({"phase": "Progressing", "canaryWeight": 20, "failedChecks": 1,
                "lastTransitionTime": "2026-01-01T00:01:00Z", "decisions": record()}),
            serde_json::json!({"threshold": 2, "maxWeight": 50, "stepWeight": 10}),
        );
        let now = Timestamp::from_second(1_767_225_600 + 60 + 300).unwrap();
        let text = table(std::slice::from_ref(&c), false, now);
        assert_eq!(
            text,
            "NAME     PHASE        PROGRESS            FAILED  LAST STEP                            CHANGED\n\
             podinfo  Progressing  [####------] 20/50  1/2     failed checks 0 → 1 (rollback at 2)  5m\n"
        );
        assert!(table(&[c], true, now).starts_with("NAMESPACE  NAME"));
        assert_eq!(table(&[], false, now), "No canaries found.\n");
    }

    #[test]
    fn why_shows_values_against_ranges_and_webhooks() {
        let c = canary(
            serde_json::json!({"phase": "Progressing", "canaryWeight": 20, "failedChecks": 1,
                "decisions": record()}),
            serde_json::json!({"threshold": 2, "maxWeight": 50, "stepWeight": 10}),
        );
        let text = why(&c, 3, true);
        let expected = "\
podinfo.test  Progressing  [####------] 20/50  failed checks 1/2

2026-01-01T00:01:00Z  failedCheck: failed checks 0 → 1 (rollback at 2)  (phase Progressing, weight 20, failed checks 1)
  CHECK                 VERDICT  VALUE   RANGE  PROVIDER    MESSAGE
  request-success-rate  pass     99.5    ≥ 99   prometheus
  request-duration      fail     612.25  ≤ 500  prometheus  Halt podinfo.test advancement request duration 612ms > 500ms
  query request-success-rate: sum(rate(x[1m]))
  WEBHOOK  TYPE     RESULT    MESSAGE
  load     rollout  ok (200)
";
        assert_eq!(text, expected);
        let empty = canary(
            serde_json::json!({"phase": "Initialized"}),
            serde_json::json!({}),
        );
        assert!(why(&empty, 3, false).contains("No decisions recorded yet"));
    }

    #[test]
    fn why_names_a_failing_query_preflight() {
        let condition = |status: &str| {
            serde_json::json!({"phase": "Progressing", "conditions": [{
                "type": "MetricsReady", "status": status, "reason": "NoValues",
                "message": "Query pre-flight: metric error-rate (prometheus) returned no values"}]})
        };
        let failing = canary(condition("False"), serde_json::json!({"threshold": 2}));
        let text = why(&failing, 3, false);
        assert!(
            text.lines().nth(1)
                == Some(
                    "MetricsReady False (NoValues): Query pre-flight: metric error-rate (prometheus) returned no values"
                ),
            "{text}"
        );
        let answered = canary(condition("True"), serde_json::json!({"threshold": 2}));
        assert!(!why(&answered, 3, false).contains("MetricsReady"));
    }

    #[test]
    fn the_timeline_starts_at_the_current_run() {
        let c = canary(
            serde_json::json!({"phase": "Progressing", "canaryWeight": 20, "decisions": record()}),
            serde_json::json!({"maxWeight": 50, "stepWeight": 10}),
        );
        let event = |t: &str, msg: &str, count: i32| -> Event {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("e-{t}")},
                "involvedObject": {"kind": "Canary", "name": "podinfo"},
                "type": "Normal", "message": msg, "count": count,
                "lastTimestamp": t,
            }))
            .unwrap()
        };
        let events = vec![
            event(
                "2026-01-01T00:00:30Z",
                "Advance podinfo.test canary weight 10",
                1,
            ),
            event(
                "2025-12-31T23:00:00Z",
                "New revision detected! Scaling up podinfo.test",
                1,
            ),
            event(
                "2026-01-01T00:00:10Z",
                "New revision detected! Scaling up podinfo.test",
                1,
            ),
            event("2026-01-01T00:00:50Z", "Halt advancement", 3),
        ];
        let text = timeline(&c, &events);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "podinfo.test  Progressing  [####------] 20/50  failed checks 0/1"
        );
        assert_eq!(
            lines[2..],
            [
                "2026-01-01T00:00:10Z  Normal   New revision detected! Scaling up podinfo.test",
                "2026-01-01T00:00:30Z  Normal   Advance podinfo.test canary weight 10",
                "2026-01-01T00:00:50Z  Normal   Halt advancement (x3)",
                "2026-01-01T00:01:00Z  Step     failedCheck: failed checks 0 → 1 (rollback at 2)",
            ]
        );
    }

    #[test]
    fn the_timeline_shows_the_pause_and_the_last_request() {
        let c = canary(
            serde_json::json!({
                "phase": "WaitingPromotion", "canaryWeight": 20,
                "paused": {"by": "alice", "since": "2026-01-01T00:02:00Z"},
                "lastRequest": {"id": "r-1", "action": "promote", "by": "bob",
                                "outcome": "waiting", "time": "2026-01-01T00:01:00Z"}
            }),
            serde_json::json!({"maxWeight": 50, "stepWeight": 10}),
        );
        let text = timeline(&c, &[]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1..3],
            [
                "Paused by alice since 2026-01-01T00:02:00Z.",
                "Last request: promote by bob at 2026-01-01T00:01:00Z: waiting for the confirm-promotion gate.",
            ]
        );
        let refused = canary(
            serde_json::json!({"phase": "Succeeded", "lastRequest": {"id": "r-2",
                "action": "retry", "by": "bob", "outcome": "refused", "time": "2026-01-01T00:01:00Z",
                "message": "only a Failed canary can be retried (podinfo.test is in phase Succeeded)"}}),
            serde_json::json!({}),
        );
        assert_eq!(
            requests(&refused),
            "Last request: retry by bob at 2026-01-01T00:01:00Z: refused: only a Failed canary can be retried (podinfo.test is in phase Succeeded).\n"
        );
        assert_eq!(
            requests(&canary(
                serde_json::json!({"phase": "Succeeded"}),
                serde_json::json!({})
            )),
            ""
        );
    }
}
