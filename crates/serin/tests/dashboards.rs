//! The Grafana dashboards under deploy/dashboards: valid dashboard JSON, every PromQL query
//! parses (promql-parser, after substituting template variables), the Istio dashboard keeps
//! the uid/slug/variables the tutorials link to, and the overview only uses series that Serin's
//! recorder exposes.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;
use serin::metrics::recorder::Recorder;

/// Template variables and the values substituted before parsing (longest names first, so
/// that `$__rate_interval` is not mistaken for a shorter variable).
const VARIABLES: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "1m"),
    ("__range", "1h"),
    ("namespace", "test"),
    ("primary", "podinfo-primary"),
    ("canary", "podinfo"),
    ("target", "podinfo"),
];

fn dashboards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/dashboards")
}

fn load_all() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dashboards_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
        out.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            value,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 2, "expected the Istio and overview dashboards");
    out
}

fn load(uid: &str) -> Value {
    load_all()
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d["uid"] == uid)
        .unwrap_or_else(|| panic!("no dashboard with uid {uid}"))
}

fn substitute(query: &str) -> String {
    let mut out = query.to_owned();
    for (name, value) in VARIABLES {
        out = out.replace(&format!("${{{name}}}"), value);
        out = out.replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "unknown template variable in {query:?}");
    out
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

fn exprs(dashboard: &Value) -> Vec<String> {
    panels(dashboard)
        .into_iter()
        .filter_map(|p| p["targets"].as_array())
        .flatten()
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// The series selector inside `label_values(<selector>, <label>)`.
fn label_values_selector(query: &str) -> Option<String> {
    let inner = query.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    assert!(!label.trim().is_empty(), "{query}");
    Some(selector.trim().to_owned())
}

fn parse(query: &str) -> Expr {
    parser::parse(&substitute(query)).unwrap_or_else(|e| panic!("invalid PromQL {query:?}: {e}"))
}

struct Selectors(Vec<(String, String)>);

impl ExprVisitor for Selectors {
    type Error = ();

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        let name = vs.name.clone().unwrap_or_default();
        self.0.push((name, vs.matchers.to_string()));
        Ok(true)
    }
}

/// (metric name, matchers) of every selector of a query.
fn selectors(query: &str) -> Vec<(String, String)> {
    let mut visitor = Selectors(Vec::new());
    walk_expr(&mut visitor, &parse(query)).unwrap();
    visitor.0
}

#[test]
fn the_parser_rejects_broken_queries() {
    // Guards the tests below against a parser that accepts anything.
    for broken in [
        "sum(rate(istio_requests_total[1m])",
        "rate(istio_requests_total{reporter=\"destination\"})",
        "histogram_quantile(0.99, sum by (le) rate(x[1m]))",
    ] {
        assert!(parser::parse(broken).is_err(), "{broken}");
    }
}

#[test]
fn dashboards_are_well_formed_grafana_json() {
    for (file, d) in load_all() {
        for key in ["uid", "title"] {
            assert!(
                d[key].as_str().is_some_and(|s| !s.is_empty()),
                "{file}: {key}"
            );
        }
        assert!(d["schemaVersion"].as_u64().is_some(), "{file}");
        assert!(d["templating"]["list"].is_array(), "{file}");
        let mut ids = HashSet::new();
        let mut queries = 0;
        for panel in panels(&d) {
            let id = panel["id"].as_u64().unwrap();
            assert!(ids.insert(id), "{file}: duplicate panel id {id}");
            let grid = &panel["gridPos"];
            for key in ["h", "w", "x", "y"] {
                assert!(
                    grid[key].as_u64().is_some(),
                    "{file}: panel {id} gridPos.{key}"
                );
            }
            assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24);
            if panel["type"] == "row" {
                continue;
            }
            assert!(panel["title"].as_str().is_some(), "{file}: panel {id}");
            assert!(panel["datasource"]["uid"].is_string(), "{file}: panel {id}");
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: panel {id} has no query");
            let mut ref_ids = HashSet::new();
            for t in targets {
                assert!(
                    ref_ids.insert(t["refId"].as_str().unwrap()),
                    "{file}: panel {id}"
                );
                assert!(
                    !t["expr"].as_str().unwrap().is_empty(),
                    "{file}: panel {id}"
                );
                queries += 1;
            }
        }
        assert!(queries > 0, "{file}");
    }
}

#[test]
fn every_promql_query_parses() {
    let mut count = 0;
    for (file, d) in load_all() {
        for expr in exprs(&d) {
            parse(&expr);
            count += 1;
        }
        for var in d["templating"]["list"].as_array().unwrap() {
            if var["type"] != "query" {
                continue;
            }
            let query = var["query"]["query"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .unwrap();
            let selector = label_values_selector(query)
                .unwrap_or_else(|| panic!("{file}: unexpected variable query {query}"));
            parse(&selector);
            count += 1;
        }
    }
    assert!(count >= 30, "only {count} queries found");
}

#[test]
fn istio_dashboard_matches_the_tutorial_links() {
    let d = load("flagger-istio");
    // Grafana derives the URL slug from the title: /d/flagger-istio/istio-canary.
    let slug = d["title"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .replace(' ', "-");
    assert_eq!(slug, "istio-canary");
    let names: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for var in ["namespace", "primary", "canary"] {
        assert!(names.contains(&var), "missing variable {var}: {names:?}");
    }

    let mut seen = BTreeSet::new();
    for expr in exprs(&d) {
        for (name, matchers) in selectors(&expr) {
            if !name.starts_with("istio_") {
                continue;
            }
            assert!(
                matchers.contains(r#"destination_workload_namespace=~"test""#),
                "{expr}"
            );
            let workload = if matchers.contains(r#"destination_workload=~"podinfo-primary""#) {
                "primary"
            } else if matchers.contains(r#"destination_workload=~"podinfo""#) {
                "canary"
            } else {
                panic!("{expr}: selects neither $primary nor $canary")
            };
            seen.insert(format!("{name}/{workload}"));
        }
    }
    let want: BTreeSet<String> = [
        "istio_requests_total/primary",
        "istio_requests_total/canary",
        "istio_request_duration_milliseconds_bucket/primary",
        "istio_request_duration_milliseconds_bucket/canary",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(seen, want);

    let all = exprs(&d).join("\n");
    assert!(
        all.contains(r#"response_code!~"5.*""#),
        "success rate panels"
    );
    for q in [
        "histogram_quantile(0.5,",
        "histogram_quantile(0.9,",
        "histogram_quantile(0.99,",
    ] {
        assert!(all.contains(q), "latency percentile {q}");
    }
}

/// Metric names in an exposition, with histogram and counter sample suffixes.
fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn overview_uses_only_series_the_recorder_exposes() {
    let r = Recorder::new();
    r.set_info("0.1.0", "istio");
    r.set_total("test", 1);
    r.set_status("podinfo", "test", 0);
    r.set_weight("podinfo-primary", "podinfo", "test", 90, 10);
    r.observe_duration("podinfo", "test", 1.0);
    r.set_metric_analysis("podinfo", "test", "request-success-rate", 100.0);
    r.inc_successes("podinfo", "test", "canary", "completed");
    r.inc_failures("podinfo", "test", "canary", "completed");
    r.reconcile_succeeded(0.1);
    r.reconcile_failed("Kube", 0.1);
    let exposed = exposed_names(&r.encode().unwrap());

    let d = load("serin-overview");
    let mut used = BTreeSet::new();
    for expr in exprs(&d) {
        for (name, _) in selectors(&expr) {
            assert!(
                exposed.contains(&name),
                "{name} (in {expr}) is not exposed: {exposed:?}"
            );
            used.insert(name);
        }
    }
    for needed in [
        "flagger_canary_status",
        "flagger_canary_weight",
        "flagger_canary_metric_analysis",
        "flagger_canary_duration_seconds_bucket",
        "flagger_canary_successes_total",
        "flagger_canary_failures_total",
        "serin_reconcile_total",
        "serin_reconcile_duration_seconds_bucket",
    ] {
        assert!(used.contains(needed), "overview does not chart {needed}");
    }
}
