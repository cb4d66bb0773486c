//! Validation of a manifest against a CRD's OpenAPI v3 schema, reporting every problem with its
//! field path (what the API server would reject or silently prune).
//!
//! Supports the subset of OpenAPI that structural CRD schemas use: `type`, `nullable`,
//! `properties` (unknown fields are reported), `additionalProperties`, `items`, `required`,
//! `enum`, `minimum`/`maximum`, `pattern`, `x-kubernetes-int-or-string`,
//! `x-kubernetes-preserve-unknown-fields`, and `anyOf`/`oneOf`/`allOf` of `required` lists.

use serde_json::{Map, Value};

/// How bad a problem is: errors make `serin validate` fail and keep the controller from
/// running the canary; warnings point at settings that are ignored or probably not meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem found in a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// Field path, e.g. `spec.analysis.metrics[0].interval` (empty for the document itself).
    pub path: String,
    pub message: String,
}

impl Problem {
    /// An error.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Validates `value` against `schema`; returns every problem found.
pub fn validate(schema: &Value, value: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    check(schema, value, "", &mut problems);
    problems
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn check(schema: &Value, value: &Value, path: &str, problems: &mut Vec<Problem>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    let flag = |key: &str| schema.get(key).and_then(Value::as_bool).unwrap_or(false);

    if value.is_null() {
        if !flag("nullable") && schema.contains_key("type") {
            problems.push(Problem::new(path, "must not be null"));
        }
        return;
    }

    if flag("x-kubernetes-int-or-string") {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            problems.push(Problem::new(
                path,
                format!(
                    "expected an integer or a string, got {} {}",
                    type_name(value),
                    short(value)
                ),
            ));
        }
        return;
    }

    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let ok = match expected {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => {
                value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            "number" => value.is_number(),
            _ => true,
        };
        if !ok {
            problems.push(Problem::new(
                path,
                format!(
                    "expected {expected}, got {} {}",
                    type_name(value),
                    short(value)
                ),
            ));
            return;
        }
    }

    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Value::String(s) if s.is_empty() => "\"\"".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        problems.push(Problem::new(
            path,
            format!(
                "unsupported value {}; must be one of: {}",
                short(value),
                list.join(", ")
            ),
        ));
    }

    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            problems.push(Problem::new(
                path,
                format!("must be at least {} (got {})", trim_num(min), short(value)),
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            problems.push(Problem::new(
                path,
                format!("must be at most {} (got {})", trim_num(max), short(value)),
            ));
        }
    }

    if let (Some(pattern), Some(text)) = (
        schema.get("pattern").and_then(Value::as_str),
        value.as_str(),
    ) && !pattern_matches(pattern, text)
    {
        problems.push(Problem::new(
            path,
            format!("{} does not match the pattern {pattern}", short(value)),
        ));
    }

    match value {
        Value::Object(map) => check_object(schema, map, path, problems),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), problems);
                }
            }
        }
        _ => {}
    }
}

/// Whether `text` matches a schema `pattern`; compiled patterns are cached (schemas use a handful).
/// An invalid pattern matches everything (it is the schema's problem, not the document's).
fn pattern_matches(pattern: &str, text: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let Ok(mut cache) = cache.lock() else {
        return regex::Regex::new(pattern).map_or(true, |re| re.is_match(text));
    };
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    re.as_ref().is_none_or(|re| re.is_match(text))
}

fn trim_num(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn check_object(
    schema: &Map<String, Value>,
    map: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<Problem>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for field in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(field) {
                problems.push(Problem::new(join(path, field), "required field is missing"));
            }
        }
    }
    for (keyword, need) in [
        ("anyOf", Need::Any),
        ("oneOf", Need::One),
        ("allOf", Need::All),
    ] {
        if let Some(branches) = schema.get(keyword).and_then(Value::as_array) {
            check_required_branches(branches, need, map, path, problems);
        }
    }

    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (key, child) in map {
        let child_path = join(path, key);
        if let Some(prop_schema) = properties.and_then(|p| p.get(key)) {
            check(prop_schema, child, &child_path, problems);
        } else if let Some(additional) = additional {
            if additional.is_object() {
                check(additional, child, &child_path, problems);
            }
        } else if properties.is_some() && !preserve {
            problems.push(Problem::new(child_path, "unknown field"));
        }
    }
}

/// Returns a copy of `value` shaped so that it deserializes into the schema's type: values of the
/// wrong type are replaced by the zero value of the expected type and missing required fields are
/// added with zero values. Used to run the semantic checks on documents that failed the schema
/// check, so that one run reports everything; problems under repaired paths are dropped by the
/// caller.
pub fn repair(schema: &Value, value: &Value) -> Value {
    let Some(schema_obj) = schema.as_object() else {
        return value.clone();
    };
    if schema_obj
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return if value.is_string() || value.is_i64() || value.is_u64() {
            value.clone()
        } else {
            Value::from(0)
        };
    }
    let expected = schema_obj.get("type").and_then(Value::as_str);
    let zero = || match expected {
        Some("object") => Value::Object(Map::new()),
        Some("array") => Value::Array(Vec::new()),
        Some("string") => Value::String(String::new()),
        Some("boolean") => Value::Bool(false),
        Some("integer") | Some("number") => Value::from(0),
        _ => value.clone(),
    };
    match (expected, value) {
        (Some("object"), Value::Object(map)) => {
            let properties = schema_obj.get("properties").and_then(Value::as_object);
            let additional = schema_obj
                .get("additionalProperties")
                .filter(|a| a.is_object());
            let mut out = Map::new();
            for (key, child) in map {
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(sub), _) => {
                        out.insert(key.clone(), repair(sub, child));
                    }
                    (None, Some(sub)) => {
                        out.insert(key.clone(), repair(sub, child));
                    }
                    (None, None) => {
                        out.insert(key.clone(), child.clone());
                    }
                }
            }
            for field in schema_obj
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !out.contains_key(field)
                    && let Some(sub) = properties.and_then(|p| p.get(field))
                {
                    out.insert(field.to_string(), repair(sub, &Value::Null));
                }
            }
            Value::Object(out)
        }
        (Some("array"), Value::Array(items)) => {
            let item_schema = schema_obj.get("items");
            Value::Array(
                items
                    .iter()
                    .map(|i| item_schema.map_or_else(|| i.clone(), |s| repair(s, i)))
                    .collect(),
            )
        }
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => value.clone(),
        (Some("integer"), Value::Number(n)) if n.is_i64() || n.is_u64() => value.clone(),
        (Some("integer"), Value::Number(n)) => Value::from(n.as_f64().unwrap_or(0.0) as i64),
        (Some("number"), Value::Number(_)) => value.clone(),
        (_, Value::Null) if schema_obj.get("nullable").and_then(Value::as_bool) == Some(true) => {
            Value::Null
        }
        (None, _) => value.clone(),
        _ => zero(),
    }
}

#[derive(Clone, Copy)]
enum Need {
    Any,
    One,
    All,
}

fn check_required_branches(
    branches: &[Value],
    need: Need,
    map: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<Problem>,
) {
    let sets: Vec<Vec<&str>> = branches
        .iter()
        .filter_map(|b| b.get("required").and_then(Value::as_array))
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .collect();
    if sets.is_empty() {
        return;
    }
    let satisfied = sets
        .iter()
        .filter(|set| set.iter().all(|f| map.contains_key(*f)))
        .count();
    let describe = || {
        sets.iter()
            .map(|set| set.join(" + "))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let ok = match need {
        Need::Any => satisfied >= 1,
        Need::One => satisfied == 1,
        Need::All => satisfied == sets.len(),
    };
    if !ok {
        let message = match need {
            Need::Any | Need::All if satisfied == 0 => format!("must set {}", describe()),
            Need::One if satisfied > 1 => format!("must set exactly one of {}", describe()),
            _ => format!("must set {}", describe()),
        };
        problems.push(Problem::new(path, message));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn problems(schema: Value, value: Value) -> Vec<String> {
        validate(&schema, &value)
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn reports_unknown_fields_types_ranges_enums_patterns_and_required() {
        let schema = json!({
            "type": "object",
            "required": ["port"],
            "properties": {
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "kind": {"type": "string", "enum": ["A", "B"]},
                "interval": {"type": "string", "pattern": "^[0-9]+(m|s)"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "boolean"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "tp": {"x-kubernetes-int-or-string": true}
            }
        });
        let found = problems(
            schema,
            json!({
                "kind": "C", "interval": "1 minute", "labels": {"a": 1},
                "list": [{"x": true}, {"y": 1}], "free": {"anything": [1]}, "tp": true, "extra": 1
            }),
        );
        assert_eq!(
            found,
            [
                "port: required field is missing",
                "extra: unknown field",
                "interval: \"1 minute\" does not match the pattern ^[0-9]+(m|s)",
                "kind: unsupported value \"C\"; must be one of: A, B",
                "labels.a: expected string, got integer 1",
                "list[1].y: unknown field",
                "tp: expected an integer or a string, got boolean true",
            ]
        );
    }

    #[test]
    fn ranges() {
        let schema = json!({"type": "integer", "minimum": 0, "maximum": 100});
        assert_eq!(
            problems(schema.clone(), json!(120)),
            ["must be at most 100 (got 120)"]
        );
        assert_eq!(problems(schema, json!(-1)), ["must be at least 0 (got -1)"]);
    }

    #[test]
    fn required_alternatives() {
        let schema = json!({"type": "object", "anyOf": [{"required": ["a"]}, {"required": ["b"]}], "properties": {"a": {"type": "string"}, "b": {"type": "string"}}});
        assert_eq!(problems(schema.clone(), json!({})), ["must set a or b"]);
        assert!(problems(schema, json!({"b": "x"})).is_empty());
    }
}
