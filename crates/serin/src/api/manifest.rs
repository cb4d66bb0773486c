//! Checking manifests: YAML documents → schema check → typed object → semantic checks.
//! Used by `serin validate` and by the fuzz target.

use serde_json::Value;

use super::json::from_json;
use super::structural::{self, Problem};
use super::validation::{self, Options};
use super::{AlertProvider, Canary, GROUP, LEGACY_VERSION, MetricTemplate, VERSION, crd};

/// The kinds Serin checks.
pub const KINDS: &[&str] = &["Canary", "MetricTemplate", "AlertProvider"];

/// The result of checking one document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DocumentReport {
    /// 1-based position in the stream.
    pub index: usize,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// Whether the document is one of Serin's kinds (others are skipped).
    pub checked: bool,
    pub problems: Vec<Problem>,
}

impl DocumentReport {
    /// `Canary test/podinfo`, `MetricTemplate latency`, or `document 3`.
    pub fn describe(&self) -> String {
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => match &self.namespace {
                Some(ns) => format!("{kind} {ns}/{name}"),
                None => format!("{kind} {name}"),
            },
            (Some(kind), None) => kind.clone(),
            _ => format!("document {}", self.index),
        }
    }
}

/// A YAML stream that cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(pub String);

/// Parses a YAML (or JSON) stream into documents; empty documents are dropped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, YamlError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| YamlError(e.to_string()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Checks every document of a YAML stream.
pub fn check_yaml(text: &str, options: &Options) -> Result<Vec<DocumentReport>, YamlError> {
    let docs = parse_documents(text)?;
    let mut reports = Vec::new();
    let mut index = 0;
    for doc in &docs {
        // A `kind: List` holds its documents in `items`.
        if doc.get("kind").and_then(Value::as_str) == Some("List") {
            for item in doc
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                index += 1;
                reports.push(check_document(item, index, options));
            }
        } else {
            index += 1;
            reports.push(check_document(doc, index, options));
        }
    }
    Ok(reports)
}

/// Checks one document.
pub fn check_document(doc: &Value, index: usize, options: &Options) -> DocumentReport {
    let mut report = DocumentReport {
        index,
        ..Default::default()
    };
    let Some(obj) = doc.as_object() else {
        report.checked = true;
        report.problems.push(Problem::new(
            "",
            "not a Kubernetes object (expected a mapping with apiVersion and kind)",
        ));
        return report;
    };
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    report.kind = (!kind.is_empty()).then(|| kind.to_string());
    report.name = obj.pointer_str("/metadata/name");
    report.namespace = obj.pointer_str("/metadata/namespace");

    let group = api_version.split('/').next().unwrap_or("");
    if group != GROUP {
        if api_version.is_empty() || kind.is_empty() {
            report.checked = true;
            report.problems.push(Problem::new(
                "",
                "not a Kubernetes object: apiVersion and kind are required",
            ));
        }
        return report;
    }
    report.checked = true;
    if !KINDS.contains(&kind) {
        report.problems.push(Problem::new(
            "kind",
            format!(
                "unknown kind {kind:?} in {GROUP}; expected one of: {}",
                KINDS.join(", ")
            ),
        ));
        return report;
    }
    let version = api_version.split('/').nth(1).unwrap_or("");
    if version != VERSION && version != LEGACY_VERSION {
        report.problems.push(Problem::new(
            "apiVersion",
            format!(
                "{api_version} is not served; use {GROUP}/{VERSION} (or {GROUP}/{LEGACY_VERSION})"
            ),
        ));
    }
    if version == LEGACY_VERSION {
        report.problems.push(Problem::warning(
            "apiVersion",
            format!("{GROUP}/{LEGACY_VERSION} is deprecated; use {GROUP}/{VERSION}"),
        ));
    }
    check_metadata(obj.get("metadata"), &mut report.problems);

    let Some(schema) = crd::schema_for(kind) else {
        report
            .problems
            .push(Problem::new("", format!("no schema for {kind}")));
        return report;
    };
    for (key, value) in obj {
        match key.as_str() {
            "apiVersion" | "kind" | "metadata" => {}
            "spec" | "status" => match schema.pointer(&format!("/properties/{key}")) {
                Some(sub) => report.problems.extend(
                    structural::validate(sub, value)
                        .into_iter()
                        .map(|p| prefix(key, p)),
                ),
                None => report
                    .problems
                    .push(Problem::new(key.clone(), "unknown field")),
            },
            other => report.problems.push(Problem::new(other, "unknown field")),
        }
    }
    if !obj.contains_key("spec") {
        report
            .problems
            .push(Problem::new("spec", "required field is missing"));
        return report;
    }

    // Run the semantic checks even when the schema check failed, on a copy whose broken fields
    // are replaced by zero values, so one run reports everything.
    let mut typed = doc.clone();
    if let (Some(spec_schema), Some(spec)) = (schema.pointer("/properties/spec"), doc.get("spec")) {
        typed["spec"] = structural::repair(spec_schema, spec);
    }
    if let Some(obj) = typed.as_object_mut() {
        obj.remove("status");
    }
    let semantic = match kind {
        "Canary" => from_json::<Canary>(&typed).map(|c| validation::validate_canary(&c, options)),
        "MetricTemplate" => {
            from_json::<MetricTemplate>(&typed).map(|t| validation::validate_metric_template(&t))
        }
        _ => from_json::<AlertProvider>(&typed).map(|a| validation::validate_alert_provider(&a)),
    };
    match semantic {
        Ok(problems) => {
            for problem in problems {
                // The schema check already reported this field (or one it lives in); don't say
                // it twice.
                let covered = report.problems.iter().any(|p| {
                    let value_broken = p.message.starts_with("expected ")
                        || p.message == "required field is missing";
                    p.is_error()
                        && (problem.path == p.path
                            || (value_broken
                                && !p.path.is_empty()
                                && problem.path.starts_with(&format!("{}.", p.path))))
                });
                if !covered {
                    report.problems.push(problem);
                }
            }
        }
        Err(err) => {
            if !report.problems.iter().any(Problem::is_error) {
                report
                    .problems
                    .push(Problem::new("", format!("cannot read the {kind}: {err}")));
            }
        }
    }
    report
}

fn prefix(key: &str, mut problem: Problem) -> Problem {
    problem.path = if problem.path.is_empty() {
        key.to_string()
    } else {
        format!("{key}.{}", problem.path)
    };
    problem
}

fn check_metadata(metadata: Option<&Value>, problems: &mut Vec<Problem>) {
    let Some(meta) = metadata.and_then(Value::as_object) else {
        problems.push(Problem::new("metadata", "required field is missing"));
        return;
    };
    let name = meta.get("name").and_then(Value::as_str);
    let generate = meta.get("generateName").and_then(Value::as_str);
    match (name, generate) {
        (None, None) => problems.push(Problem::new("metadata.name", "required field is missing")),
        (Some(name), _) if !is_dns_subdomain(name) => problems.push(Problem::new(
            "metadata.name",
            format!("{name:?} is not a valid name (lower-case letters, digits, '-' and '.', at most 253 characters)"),
        )),
        _ => {}
    }
    if let Some(ns) = meta.get("namespace") {
        match ns.as_str() {
            Some(ns) if is_dns_label(ns) => {}
            _ => problems.push(Problem::new(
                "metadata.namespace",
                format!("{ns} is not a valid namespace name"),
            )),
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

trait PointerStr {
    fn pointer_str(&self, pointer: &str) -> Option<String>;
}

impl PointerStr for serde_json::Map<String, Value> {
    fn pointer_str(&self, pointer: &str) -> Option<String> {
        let mut parts = pointer.trim_start_matches('/').split('/');
        let first = parts.next()?;
        let mut current = self.get(first)?;
        for part in parts {
            current = current.get(part)?;
        }
        current.as_str().map(str::to_string)
    }
}

/// Runs the whole check on arbitrary bytes; never panics (the fuzz target's body).
pub fn fuzz_check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = check_yaml(text, &Options::default());
    }
}
