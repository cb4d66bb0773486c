//! Response views: full objects, PartialObjectMetadata, and `meta.k8s.io/v1` Tables for `kubectl get`.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::registry::{PrinterColumn, ResourceDef};
use crate::store::meta_str;

mod cells;
mod columns;

use cells::{builtin_cells, s};
use columns::{age_col, builtin_columns, col, name_col};

/// What the client asked for in its Accept header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Full,
    Meta,
    /// A Table; rows carry `includeObject` (None, Metadata or Object).
    Table(Include),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl View {
    pub fn from_accept(accept: &str, include_object: Option<&str>) -> Self {
        // The first acceptable entry wins; protobuf is answered as JSON.
        for part in accept.split(',') {
            let p = part.replace(' ', "");
            if p.contains("as=Table") {
                let inc = match include_object {
                    Some("None") => Include::None,
                    Some("Object") => Include::Object,
                    _ => Include::Metadata,
                };
                return Self::Table(inc);
            }
            if p.contains("as=PartialObjectMetadata") {
                return Self::Meta;
            }
            if p.starts_with("application/json") || p.starts_with("*/*") || p.is_empty() {
                return Self::Full;
            }
        }
        Self::Full
    }
}

/// The object as served in `version` (CRD versions and HPA versions share one stored form;
/// `events.k8s.io` events are converted from the stored core form): copied only when that
/// changes it, which a watch event or a write's reply mostly is not.
pub fn versioned<'a>(def: &ResourceDef, version: &str, obj: &'a Value) -> Cow<'a, Value> {
    let mut o = crate::convert::from_storage(def, obj);
    if o.is_object() {
        let api_version = def.api_version(version);
        let served = |field: &str, want: &str| o.get(field).and_then(Value::as_str) == Some(want);
        if !served("apiVersion", &api_version) || !served("kind", &def.kind) {
            let m = o.to_mut();
            m["apiVersion"] = Value::String(api_version);
            m["kind"] = Value::String(def.kind.clone());
        }
    }
    o
}

/// One object as `view` asks for it (a GET, a write's reply, a watch event).
pub fn one<'a>(def: &ResourceDef, version: &str, view: View, obj: &'a Value) -> Cow<'a, Value> {
    match view {
        View::Full => versioned(def, version, obj),
        View::Meta => Cow::Owned(partial_metadata(obj)),
        View::Table(inc) => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null);
            Cow::Owned(table(
                def,
                version,
                std::slice::from_ref(obj),
                json!({"resourceVersion": rv}),
                inc,
            ))
        }
    }
}

pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Human age like kubectl prints (`5s`, `3m20s`, `4h`, `2d3h`).
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age_of(ts: Option<&str>) -> Value {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return Value::String("<unknown>".into());
    };
    Value::String(human_age(
        jiff::Timestamp::now().as_second() - t.as_second(),
    ))
}

/// Evaluates the simple JSONPath used by printer columns: `.a.b`, `[0]`, `['x.y']`,
/// `[?(@.type=="Ready")]`. Returns every match.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur: Vec<&Value> = vec![obj];
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let field: String = chars[start..i].iter().collect();
                if !field.is_empty() {
                    cur = cur.into_iter().filter_map(|v| v.get(&field)).collect();
                }
            }
            '[' => {
                let start = i + 1;
                let mut depth = 1;
                i += 1;
                while i < chars.len() && depth > 0 {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                let inner: String = chars[start..i.saturating_sub(1)].iter().collect();
                cur = step_bracket(cur, inner.trim());
            }
            _ => {
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let field: String = chars[start..i].iter().collect();
                cur = cur.into_iter().filter_map(|v| v.get(&field)).collect();
            }
        }
    }
    cur
}

fn step_bracket<'a>(cur: Vec<&'a Value>, inner: &str) -> Vec<&'a Value> {
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let (lhs, rhs) = filter.split_once("==").unwrap_or((filter, ""));
        let field = lhs.trim().trim_start_matches("@.");
        let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
        return cur
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter(|e| {
                let got = json_path(e, &format!(".{field}"));
                got.first().is_some_and(|g| match g {
                    Value::String(s) => s == want,
                    other => *other == want,
                })
            })
            .collect();
    }
    if inner == "*" {
        return cur
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .collect();
    }
    if let Ok(n) = inner.parse::<i64>() {
        return cur
            .into_iter()
            .filter_map(Value::as_array)
            .filter_map(|a| {
                let idx = if n < 0 { a.len() as i64 + n } else { n };
                usize::try_from(idx).ok().and_then(|i| a.get(i))
            })
            .collect();
    }
    let key = inner.trim_matches(|c| c == '"' || c == '\'');
    cur.into_iter().filter_map(|v| v.get(key)).collect()
}

fn crd_cell(c: &PrinterColumn, o: &Value) -> Value {
    let found = json_path(o, &c.json_path);
    let Some(v) = found.first() else {
        return Value::Null;
    };
    if c.type_ == "date" {
        return age_of(v.as_str());
    }
    match v {
        Value::Object(_) | Value::Array(_) => Value::String(v.to_string()),
        other => (*other).clone(),
    }
}

/// Column definitions of a resource in one version.
pub fn columns(def: &ResourceDef, version: &str) -> Vec<Value> {
    if def.crd {
        let cols = def.columns.get(version).cloned().unwrap_or_default();
        if cols.is_empty() {
            return vec![name_col(), age_col()];
        }
        let mut out = vec![name_col()];
        out.extend(cols.iter().map(|c| {
            let t = if c.type_ == "date" {
                "date"
            } else {
                c.type_.as_str()
            };
            col(&c.name, t, &c.format, &c.description, c.priority)
        }));
        return out;
    }
    builtin_columns(def).unwrap_or_else(|| vec![name_col(), age_col()])
}

fn cells(def: &ResourceDef, version: &str, o: &Value) -> Vec<Value> {
    if def.crd {
        let cols = def.columns.get(version).cloned().unwrap_or_default();
        if cols.is_empty() {
            return vec![
                Value::String(s(o, "/metadata/name")),
                age_of(meta_str(o, "creationTimestamp")),
            ];
        }
        let mut out = vec![Value::String(s(o, "/metadata/name"))];
        out.extend(cols.iter().map(|c| crd_cell(c, o)));
        return out;
    }
    builtin_cells(def, o)
}

/// A `meta.k8s.io/v1` Table of `objs`.
pub fn table(
    def: &ResourceDef,
    version: &str,
    objs: &[Value],
    list_meta: Value,
    include: Include,
) -> Value {
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(def, version, o)});
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial_metadata(o),
                Include::Object => row["object"] = versioned(def, version, o).into_owned(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(def, version),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests;
