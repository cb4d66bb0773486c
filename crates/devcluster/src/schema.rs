//! What a real kube-apiserver does to a custom resource with the CRD's structural schema
//! (`openAPIV3Schema`) before it stores it: `null`s of non-nullable fields dropped, `default`s
//! filled in, unknown fields pruned (unless `x-kubernetes-preserve-unknown-fields`), then the
//! value checks, with the field errors worded as the real server words them.
//!
//! Pure functions over `serde_json::Value`; `ops` calls them on every write of a custom resource.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use serde_json::{Map, Value};

/// One field error, as `k8s.io/apimachinery/pkg/util/validation/field.Error` renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `spec.analysis.interval`, `spec.metrics[0].name`.
    pub field: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, ... (the `reason` of a Status cause).
    pub reason: &'static str,
    /// The message without the field: `Invalid value: "1x": spec.x in body should match '…'`.
    pub body: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body)
    }
}

/// Where a value sits in the object (`spec.metrics[0].name`), put into words only when an
/// error or a pruned field names it: writing it out for every field walked was a visible part
/// of each write's cost.
#[derive(Clone, Copy)]
enum Path<'a> {
    Field(&'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Field(k) => f.write_str(k),
            Path::Key(p, k) => write!(f, "{p}.{k}"),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// What happened to an object: the unknown fields that were pruned (for `fieldValidation`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub unknown_fields: Vec<String>,
}

/// Drops `null`s, fills defaults and prunes unknown fields of `obj` in place (everything but
/// `apiVersion`, `kind` and `metadata`), as the CRD's codec does on decoding.
pub fn normalise(schema: &Value, obj: &mut Value) -> Outcome {
    let mut out = Outcome::default();
    let (Some(props), Some(m)) = (
        schema.get("properties").and_then(Value::as_object),
        obj.as_object_mut(),
    ) else {
        return out;
    };
    let mut unknown = Vec::new();
    for (k, v) in m.iter_mut() {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.get(k) {
            Some(sub) => walk(sub, v, &Path::Field(k), &mut out),
            None if preserves(schema) => {}
            None => {
                out.unknown_fields.push(k.clone());
                unknown.push(k.clone());
            }
        }
    }
    for k in unknown {
        m.remove(&k);
    }
    drop_nulls_and_default(schema, m);
    out
}

fn preserves(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable") == Some(&Value::Bool(true))
}

/// Drops the `null`s of non-nullable properties, then sets the defaults of absent properties
/// (a default object is then defaulted and normalised itself).
fn drop_nulls_and_default(schema: &Value, m: &mut Map<String, Value>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (k, sub) in props {
        if m.get(k).is_some_and(Value::is_null) && !nullable(sub) {
            m.remove(k);
        }
        if !m.contains_key(k)
            && let Some(d) = sub.get("default")
        {
            let mut d = d.clone();
            let mut ignored = Outcome::default();
            walk(sub, &mut d, &Path::Field(k), &mut ignored);
            m.insert(k.clone(), d);
        }
    }
}

/// Normalises one value against its schema.
fn walk(schema: &Value, v: &mut Value, path: &Path, out: &mut Outcome) {
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let embedded = schema.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
            let mut unknown = Vec::new();
            for (k, cv) in m.iter_mut() {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props.and_then(|p| p.get(k)).or(match additional {
                    Some(a @ Value::Object(_)) => Some(a),
                    _ => None,
                });
                match sub {
                    // A null is dropped (and possibly defaulted) below.
                    Some(sub) if cv.is_null() && !nullable(sub) => {}
                    Some(sub) => walk(sub, cv, &Path::Key(path, k), out),
                    None if preserves(schema) || additional == Some(&Value::Bool(true)) => {}
                    None => {
                        out.unknown_fields.push(Path::Key(path, k).to_string());
                        unknown.push(k.clone());
                    }
                }
            }
            for k in unknown {
                m.remove(&k);
            }
            drop_nulls_and_default(schema, m);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &Path::Index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// Checks `obj` (everything but `apiVersion`, `kind`, `metadata`) against the schema.
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(m) = obj.as_object() else {
        return errs;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in m {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(k)) {
            check(sub, v, &Path::Field(k), &mut errs);
        }
    }
    // As kube-openapi's object validator: the properties first, then `required`.
    for req in strings(schema.get("required")) {
        if matches!(req, "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if !m.contains_key(req) {
            errs.push(required(&Path::Field(req)));
        }
    }
    errs
}

fn strings(v: Option<&Value>) -> impl Iterator<Item = &str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn required(path: &Path) -> FieldError {
    FieldError {
        field: path.to_string(),
        reason: "FieldValueRequired",
        body: "Required value".into(),
    }
}

/// A bad value as `field.Error` prints it: strings quoted, numbers and booleans plain,
/// anything else as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        Value::Null => "\"null\"".into(),
        other => other.to_string(),
    }
}

/// Go's `%q` for the strings that occur here.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Go's `%v` of a float64 limit (`100`, `0.5`).
fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => v.to_string(),
    }
}

fn invalid(path: &Path, v: &Value, detail: String) -> FieldError {
    FieldError {
        field: path.to_string(),
        reason: "FieldValueInvalid",
        body: format!("Invalid value: {}: {detail}", show(v)),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    let got = json_type(v);
    got == want || (want == "number" && got == "integer")
}

fn check(schema: &Value, v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    if v.is_null() && nullable(schema) {
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if int_or_string {
        if !matches!(json_type(v), "integer" | "string") {
            let t = json_type(v);
            errs.push(FieldError {
                field: path.to_string(),
                reason: "FieldValueTypeInvalid",
                body: format!(
                    "Invalid value: {}: {path} in body must be of type integer,string: {}",
                    quote(t),
                    quote(t)
                ),
            });
            return;
        }
    } else if let Some(want) = schema.get("type").and_then(Value::as_str)
        && !type_ok(want, v)
    {
        let t = json_type(v);
        errs.push(FieldError {
            field: path.to_string(),
            reason: "FieldValueTypeInvalid",
            body: format!(
                "Invalid value: {}: {path} in body must be of type {want}: {}",
                quote(t),
                quote(t)
            ),
        });
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let values: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => quote(s),
                other => quote(&other.to_string()),
            })
            .collect();
        errs.push(FieldError {
            field: path.to_string(),
            reason: "FieldValueNotSupported",
            body: format!(
                "Unsupported value: {}: supported values: {}",
                show(v),
                values.join(", ")
            ),
        });
    }
    match v {
        Value::String(s) => check_string(schema, s, v, path, errs),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(0.0), v, path, errs),
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                let noun = if max == 1 { "item" } else { "items" };
                errs.push(FieldError {
                    field: path.to_string(),
                    reason: "FieldValueTooMany",
                    body: format!("Too many: {}: must have at most {max} {noun}", items.len()),
                });
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errs.push(invalid(
                    path,
                    v,
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &Path::Index(path, i), errs);
                }
            }
        }
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let embedded = schema.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
            for (k, cv) in m {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(sub) = props.and_then(|p| p.get(k)).or(additional) {
                    check(sub, cv, &Path::Key(path, k), errs);
                }
            }
            for req in strings(schema.get("required")) {
                if !m.contains_key(req) {
                    errs.push(required(&Path::Key(path, req)));
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn check_string(schema: &Value, s: &str, v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        let noun = if max == 1 { "byte" } else { "bytes" };
        errs.push(FieldError {
            field: path.to_string(),
            reason: "FieldValueTooLong",
            body: format!("Too long: may not be more than {max} {noun}"),
        });
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errs.push(invalid(
            path,
            v,
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        // A pattern the regex engine cannot compile is not enforced (the real server refuses
        // such a CRD when it is created).
        if let Some(re) = pattern(p)
            && !re.is_match(s)
        {
            errs.push(invalid(
                path,
                v,
                format!("{path} in body should match '{p}'"),
            ));
        }
    }
}

fn check_number(schema: &Value, n: f64, v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let excl = |k: &str| schema.get(k) == Some(&Value::Bool(true));
    if let Some(min) = schema.get("minimum") {
        let m = min.as_f64().unwrap_or(f64::MIN);
        if excl("exclusiveMinimum") && n <= m {
            errs.push(invalid(
                path,
                v,
                format!("{path} in body should be greater than {}", num(min)),
            ));
        } else if n < m {
            errs.push(invalid(
                path,
                v,
                format!(
                    "{path} in body should be greater than or equal to {}",
                    num(min)
                ),
            ));
        }
    }
    if let Some(max) = schema.get("maximum") {
        let m = max.as_f64().unwrap_or(f64::MAX);
        if excl("exclusiveMaximum") && n >= m {
            errs.push(invalid(
                path,
                v,
                format!("{path} in body should be less than {}", num(max)),
            ));
        } else if n > m {
            errs.push(invalid(
                path,
                v,
                format!(
                    "{path} in body should be less than or equal to {}",
                    num(max)
                ),
            ));
        }
    }
}

/// The compiled form of a schema `pattern` (None when it does not compile). Compiled once per
/// pattern: validation runs on every write, and compiling was a visible part of each one.
fn pattern(p: &str) -> Option<regex::Regex> {
    static COMPILED: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> =
        LazyLock::new(Mutex::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(re) = compiled.get(p) {
        return re.clone();
    }
    let re = regex::Regex::new(p).ok();
    compiled.insert(p.to_string(), re.clone());
    re
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["targetRef"],
                    "properties": {
                        "targetRef": {"type": "object", "properties": {"name": {"type": "string"}}},
                        "provider": {"type": "string", "enum": ["istio", "linkerd"]},
                        "progressDeadlineSeconds": {"type": "integer", "default": 600},
                        "port": {"x-kubernetes-int-or-string": true},
                        "analysis": {
                            "type": "object",
                            "properties": {
                                "interval": {"type": "string", "pattern": "^[0-9]+(m|s)"},
                                "stepWeight": {"type": "number", "minimum": 0, "maximum": 100},
                                "threshold": {"type": "integer", "default": 5},
                                "metrics": {
                                    "type": "array",
                                    "maxItems": 2,
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "name": {"type": "string", "maxLength": 5},
                                            "thresholdRange": {"type": "object", "nullable": true}
                                        }
                                    }
                                }
                            }
                        },
                        "service": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {"port": {"type": "integer"}}
                        },
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }

    #[test]
    fn prunes_unknown_fields_keeps_preserved_ones_and_defaults() {
        let mut obj = json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "p", "whatever": 1},
            "extra": true,
            "spec": {
                "targetRef": {"name": "podinfo", "bogus": 1},
                "analysis": {"interval": "1m", "metrics": [{"name": "rate", "x": 1, "thresholdRange": null}]},
                "service": {"port": 9898, "gateways": ["public"]},
                "labels": {"a": "b"},
                "provider": null
            },
            "status": {"phase": "Initialized"}
        });
        let out = normalise(&schema(), &mut obj);
        assert_eq!(
            out.unknown_fields,
            [
                "extra",
                "spec.analysis.metrics[0].x",
                "spec.targetRef.bogus"
            ]
        );
        assert_eq!(
            obj,
            json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
                "metadata": {"name": "p", "whatever": 1},
                "spec": {
                    "targetRef": {"name": "podinfo"},
                    "analysis": {"interval": "1m", "threshold": 5, "metrics": [{"name": "rate", "thresholdRange": null}]},
                    "service": {"port": 9898, "gateways": ["public"]},
                    "labels": {"a": "b"},
                    "progressDeadlineSeconds": 600
                },
                "status": {"phase": "Initialized"}
            })
        );
        assert!(validate(&schema(), &obj).is_empty());
    }

    #[test]
    fn errors_are_worded_as_a_real_server_words_them() {
        let obj = json!({
            "spec": {
                "provider": "nginx",
                "port": 1.5,
                "analysis": {
                    "interval": "1x",
                    "stepWeight": 120,
                    "threshold": "five",
                    "metrics": [{"name": "toolong"}, {}, {}]
                }
            }
        });
        let got: Vec<String> = validate(&schema(), &obj)
            .iter()
            .map(ToString::to_string)
            .collect();
        let want = [
            "spec.analysis.interval: Invalid value: \"1x\": spec.analysis.interval in body should match '^[0-9]+(m|s)'",
            "spec.analysis.metrics: Too many: 3: must have at most 2 items",
            "spec.analysis.metrics[0].name: Too long: may not be more than 5 bytes",
            "spec.analysis.stepWeight: Invalid value: 120: spec.analysis.stepWeight in body should be less than or equal to 100",
            "spec.analysis.threshold: Invalid value: \"string\": spec.analysis.threshold in body must be of type integer: \"string\"",
            "spec.port: Invalid value: \"number\": spec.port in body must be of type integer,string: \"number\"",
            "spec.provider: Unsupported value: \"nginx\": supported values: \"istio\", \"linkerd\"",
            "spec.targetRef: Required value",
        ];
        assert_eq!(got, want);
        let neg = json!({"spec": {"targetRef": {}, "analysis": {"stepWeight": -1}}});
        assert_eq!(
            validate(&schema(), &neg)[0].to_string(),
            "spec.analysis.stepWeight: Invalid value: -1: spec.analysis.stepWeight in body should be greater than or equal to 0"
        );
    }
}
