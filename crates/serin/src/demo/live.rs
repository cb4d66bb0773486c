//! The live part of the view: new canary events and notifications, the canaries' status, the
//! metric values (the same MetricTemplate queries the controller runs, against Prometheus) and
//! the requests per second per workload (from the mesh's counters).

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use super::view::{self, CanaryRow, MetricRow, Rate};
use super::{NS, Stack, canary_api};
use crate::metrics::template::{QueryModel, render as render_query};

/// Prints new events and notifications and redraws the live block.
pub(super) async fn refresh(stack: &mut Stack, names: &[&str]) {
    let client = stack.platform.cluster.client();
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let mut new_lines = Vec::new();
    if let Ok(list) = events.list(&ListParams::default()).await {
        let mut items: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| e.involved_object.kind.as_deref() == Some("Canary"))
            .collect();
        items.sort_by_key(|e| {
            e.metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        });
        for e in items {
            let key = (
                e.metadata.uid.clone().unwrap_or_default(),
                e.count.unwrap_or(1),
            );
            if stack.screen.seen_events.insert(key) {
                let who = e.involved_object.name.clone().unwrap_or_default();
                let msg = e.message.clone().unwrap_or_default();
                let warn = e.type_.as_deref() == Some("Warning");
                new_lines.push(format!("  {} {who}: {msg}", if warn { "!" } else { "-" }));
                stack.screen.events.push(format!("{who}: {msg}"));
            }
        }
    }
    let notes = stack.slack.received();
    for n in notes.iter().skip(stack.screen.seen_notifications) {
        new_lines.push(format!(
            "  [slack #general] {} ({}): {}",
            n.subject,
            if n.color == "danger" {
                "danger"
            } else {
                "good"
            },
            n.text
        ));
    }
    stack.screen.seen_notifications = notes.len();
    if !new_lines.is_empty() {
        stack.screen.say(&new_lines);
    }
    let rates = rates(stack);
    let mut block = Vec::new();
    for name in names {
        if let Ok(c) = canary_api(&client).get(name).await {
            let row = canary_row(stack, name, &c.data, &rates).await;
            block.extend(view::render(&row));
        }
    }
    stack.screen.block(block);
}

/// Requests per second per workload since the last refresh, from the mesh's counters.
fn rates(stack: &mut Stack) -> Vec<Rate> {
    let elapsed = stack.last_counts_at.elapsed().as_secs_f64().max(0.001);
    stack.last_counts_at = Instant::now();
    let pods = stack.platform.mesh.pods();
    for p in &pods {
        if let Some(pid) = p.pid {
            stack.pids_seen.insert(pid);
        }
    }
    let mut out = Vec::new();
    for w in ["backend-primary", "backend", "frontend-primary", "frontend"] {
        let by_code = stack.platform.mesh.metrics().count(NS, w);
        let total: u64 = by_code.values().sum();
        let errors: u64 = by_code
            .iter()
            .filter(|(c, _)| **c >= 500)
            .map(|(_, n)| *n)
            .sum();
        let (t0, e0) = stack
            .last_counts
            .insert(w.to_string(), (total, errors))
            .unwrap_or((total, errors));
        let (dt, de) = (total.saturating_sub(t0), errors.saturating_sub(e0));
        let version = pods
            .iter()
            .find(|p| p.workload == w)
            .map(|p| p.version.clone());
        if let Some(version) = version {
            out.push(Rate {
                workload: w.to_string(),
                version,
                rps: dt as f64 / elapsed,
                errors_pct: if dt == 0 {
                    0.0
                } else {
                    de as f64 * 100.0 / dt as f64
                },
            });
        }
    }
    out
}

async fn canary_row(stack: &Stack, name: &str, c: &Value, rates: &[Rate]) -> CanaryRow {
    let a = c.pointer("/spec/analysis").cloned().unwrap_or(Value::Null);
    let int = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_i64);
    let mut metrics = Vec::new();
    for m in a
        .get("metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let metric_name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let template = m
            .pointer("/templateRef/name")
            .and_then(Value::as_str)
            .and_then(|t| stack.templates.iter().find(|(n, _)| n == t))
            .map(|(_, q)| q.clone());
        let value = match template {
            Some(q) => {
                let model = QueryModel {
                    name: name.to_string(),
                    namespace: NS.to_string(),
                    target: name.to_string(),
                    service: name.to_string(),
                    ingress: name.to_string(),
                    route: name.to_string(),
                    interval: stack.pace.metric_interval.to_string(),
                    variables: BTreeMap::new(),
                };
                match render_query(&q, &model) {
                    Ok(query) => prometheus_value(stack, &query).await,
                    Err(_) => None,
                }
            }
            None => None,
        };
        metrics.push(MetricRow {
            name: metric_name,
            value,
            max: m.pointer("/thresholdRange/max").and_then(Value::as_f64),
            min: m.pointer("/thresholdRange/min").and_then(Value::as_f64),
        });
    }
    CanaryRow {
        name: name.to_string(),
        phase: c
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        weight: int(c, "/status/canaryWeight").unwrap_or(0),
        max_weight: int(&a, "/maxWeight"),
        iterations: int(c, "/status/iterations").unwrap_or(0),
        total_iterations: int(&a, "/iterations"),
        failed_checks: int(c, "/status/failedChecks").unwrap_or(0),
        threshold: int(&a, "/threshold").unwrap_or(0),
        metrics,
        rates: rates
            .iter()
            .filter(|r| r.workload == name || r.workload == format!("{name}-primary"))
            .cloned()
            .collect(),
    }
}

async fn prometheus_value(stack: &Stack, query: &str) -> Option<f64> {
    let resp = stack
        .http
        .get(format!("{}/api/v1/query", stack.platform.prometheus))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?;
    let body: Value = resp.json().await.ok()?;
    let v: f64 = body
        .pointer("/data/result/0/value/1")?
        .as_str()?
        .parse()
        .ok()?;
    v.is_finite().then_some(v)
}
