//! Label and field selectors, as in `?labelSelector=` and `?fieldSelector=`.

use std::collections::BTreeSet;

use serde_json::Value;

/// A selector that could not be parsed or names an unsupported field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Parse(String),
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn set_of(inner: &str, whole: &str) -> Result<BTreeSet<String>, SelectorError> {
    let inner = inner
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Parse(whole.to_string()))?;
    let vals: BTreeSet<String> = inner.split(',').map(|s| s.trim().to_string()).collect();
    if vals.iter().any(|v| !valid_value(v)) {
        return Err(SelectorError::Parse(whole.to_string()));
    }
    Ok(vals)
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let err = || SelectorError::Parse(part.clone());
            let req = if let Some(k) = part.strip_prefix('!') {
                LabelReq::NotExists(k.trim().to_string())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                LabelReq::NotIn(k.trim().to_string(), set_of(rest, &part)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                LabelReq::In(k.trim().to_string(), set_of(rest, &part)?)
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelReq::NotIn(k.trim().to_string(), BTreeSet::from([v.trim().to_string()]))
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                LabelReq::In(k.trim().to_string(), BTreeSet::from([v.trim().to_string()]))
            } else if let Some((k, v)) = part.split_once('>') {
                LabelReq::Gt(k.trim().to_string(), v.trim().parse().map_err(|_| err())?)
            } else if let Some((k, v)) = part.split_once('<') {
                LabelReq::Lt(k.trim().to_string(), v.trim().parse().map_err(|_| err())?)
            } else {
                LabelReq::Exists(part.clone())
            };
            let (key, values): (&str, Option<&BTreeSet<String>>) = match &req {
                LabelReq::Exists(k)
                | LabelReq::NotExists(k)
                | LabelReq::Gt(k, _)
                | LabelReq::Lt(k, _) => (k, None),
                LabelReq::In(k, v) | LabelReq::NotIn(k, v) => (k, Some(v)),
            };
            if !valid_key(key) || values.is_some_and(|v| v.iter().any(|x| !valid_value(x))) {
                return Err(err());
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// A selector from a `{matchLabels, matchExpressions}` object.
    pub fn from_label_selector(sel: &Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(LabelReq::In(
                    k.clone(),
                    BTreeSet::from([v.as_str().unwrap_or_default().to_string()]),
                ));
            }
        }
        for e in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let vals: BTreeSet<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str) {
                Some("In") => reqs.push(LabelReq::In(key, vals)),
                Some("NotIn") => reqs.push(LabelReq::NotIn(key, vals)),
                Some("Exists") => reqs.push(LabelReq::Exists(key)),
                Some("DoesNotExist") => reqs.push(LabelReq::NotExists(key)),
                _ => {}
            }
        }
        Self(reqs)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::In(k, vs) => get(k).is_some_and(|v| vs.contains(v)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(v)),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    /// The selector in its string form (`a=b,c in (d,e)`).
    pub fn to_selector_string(&self) -> String {
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        self.0
            .iter()
            .map(|r| match r {
                LabelReq::Exists(k) => k.clone(),
                LabelReq::NotExists(k) => format!("!{k}"),
                LabelReq::In(k, v) if v.len() == 1 => format!("{k}={}", join(v)),
                LabelReq::In(k, v) => format!("{k} in ({})", join(v)),
                LabelReq::NotIn(k, v) if v.len() == 1 => format!("{k}!={}", join(v)),
                LabelReq::NotIn(k, v) => format!("{k} notin ({})", join(v)),
                LabelReq::Gt(k, n) => format!("{k}>{n}"),
                LabelReq::Lt(k, n) => format!("{k}<{n}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A parsed field selector: (path in the stored object, `=` or `!=`, value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// Fields a real server accepts in field selectors, per resource key (`group/plural`).
fn supported_fields(resource_key: &str) -> &'static [&'static str] {
    match resource_key {
        "/events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "events.k8s.io/events" => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        "/pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "/secrets" => &["type"],
        "/namespaces" => &["status.phase"],
        "apps/replicasets" => &["status.replicas"],
        _ => &[],
    }
}

impl FieldSelector {
    pub fn parse(s: &str, resource_key: &str) -> Result<Self, SelectorError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k, true, v)
            } else {
                return Err(SelectorError::Parse(part.to_string()));
            };
            let k = k.trim();
            if k != "metadata.name"
                && k != "metadata.namespace"
                && !supported_fields(resource_key).contains(&k)
            {
                return Err(SelectorError::UnsupportedField(k.to_string()));
            }
            out.push((
                crate::convert::field_path(resource_key, k),
                eq,
                v.trim().to_string(),
            ));
        }
        Ok(Self(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, eq, v)| {
            let mut cur = Some(obj);
            for p in k.split('.') {
                cur = cur.and_then(|c| c.get(p));
            }
            let actual = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *v) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_selector_full_syntax() {
        let o = obj(json!({"app": "web", "tier": "fe", "n": "5"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, api)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier in (fe,be)", true),
            ("n>3", true),
            ("n<3", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
    }

    #[test]
    fn match_labels_to_string() {
        let s = LabelSelector::from_label_selector(&json!({"matchLabels": {"app": "web"}}));
        assert_eq!(s.to_selector_string(), "app=web");
        assert!(s.matches(&obj(json!({"app": "web"}))));
    }

    #[test]
    fn field_selectors() {
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}});
        let s = FieldSelector::parse("involvedObject.kind=Pod,involvedObject.name!=q", "/events")
            .unwrap();
        assert!(s.matches(&ev));
        assert!(
            !FieldSelector::parse("metadata.name=x", "/events")
                .unwrap()
                .matches(&ev)
        );
        assert_eq!(
            FieldSelector::parse("spec.foo=x", "apps/deployments").unwrap_err(),
            SelectorError::UnsupportedField("spec.foo".into())
        );
    }
}
