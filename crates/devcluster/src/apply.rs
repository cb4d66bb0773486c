//! Server-side apply, approximated: fields owned per apply manager, conflicts, `force`, removal of
//! fields a manager stops applying, and list merging by the list-map keys.
//!
//! Only `Apply` operations own fields here; plain updates (PUT, merge patches) do not take
//! ownership as they do on a real server.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::patch::merge_key;

/// Field-ownership conflicts of an apply without `force`.
#[derive(Debug, thiserror::Error)]
#[error("{}", conflicts.iter().map(|(m, f)| format!("conflict with \"{m}\": {f}")).collect::<Vec<_>>().join("; "))]
pub struct ApplyConflict {
    /// (manager, field path) pairs.
    pub conflicts: Vec<(String, String)>,
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Field(String),
    /// A list element identified by its key field and the key's JSON value.
    Item(String, String),
}

pub type FieldPath = Vec<Seg>;

/// Fields owned by each apply manager of one object.
pub type Owners = BTreeMap<String, BTreeSet<FieldPath>>;

pub fn display(path: &FieldPath) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Field(f) => format!(".{f}"),
            Seg::Item(k, v) => format!("[{k}={v}]"),
        })
        .collect()
}

fn collect(v: &Value, field: Option<&str>, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(Seg::Field(k.clone()));
                collect(c, Some(k), prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let refs: Vec<&Value> = a.iter().collect();
            match field.and_then(|f| merge_key(f, &refs)) {
                Some(key) if a.iter().all(|e| e.get(key).is_some()) => {
                    for e in a {
                        let kv = e.get(key).map(Value::to_string).unwrap_or_default();
                        prefix.push(Seg::Item(key.to_string(), kv));
                        out.insert(prefix.clone());
                        collect(e, None, prefix, out);
                        prefix.pop();
                    }
                }
                _ => {
                    out.insert(prefix.clone());
                }
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The fields an applied configuration sets (identity fields excluded).
pub fn field_set(config: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    collect(config, None, &mut Vec::new(), &mut out);
    let f = |s: &str| Seg::Field(s.to_string());
    for identity in [
        vec![f("apiVersion")],
        vec![f("kind")],
        vec![f("metadata"), f("name")],
        vec![f("metadata"), f("namespace")],
        vec![f("metadata"), f("resourceVersion")],
    ] {
        out.remove(&identity);
    }
    out
}

pub fn get<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for s in path {
        cur = match s {
            Seg::Field(f) => cur.get(f)?,
            Seg::Item(k, kv) => cur
                .as_array()?
                .iter()
                .find(|e| e.get(k).map(Value::to_string).as_deref() == Some(kv.as_str()))?,
        };
    }
    Some(cur)
}

fn remove(v: &mut Value, path: &[Seg]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for s in parent_path {
        let next = match s {
            Seg::Field(f) => cur.get_mut(f),
            Seg::Item(k, kv) => cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|e| e.get(k).map(Value::to_string).as_deref() == Some(kv.as_str()))
            }),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Seg::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Seg::Item(k, kv) => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|e| e.get(k).map(Value::to_string).as_deref() != Some(kv.as_str()));
            }
        }
    }
}

/// Merges an applied configuration: maps recursively, keyed lists by key, other lists replaced.
pub fn merge_applied(live: &mut Value, config: &Value, field: Option<&str>) {
    match (live, config) {
        (Value::Object(lm), Value::Object(cm)) => {
            for (k, cv) in cm {
                match lm.get_mut(k) {
                    Some(lv) => merge_applied(lv, cv, Some(k)),
                    None => {
                        lm.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (live @ Value::Array(_), Value::Array(ca)) => {
            let key = {
                let Value::Array(la) = &*live else {
                    return;
                };
                let refs: Vec<&Value> = ca.iter().chain(la.iter()).collect();
                field
                    .and_then(|f| merge_key(f, &refs))
                    .filter(|k| ca.iter().all(|e| e.get(*k).is_some()))
            };
            match (key, live) {
                (Some(key), Value::Array(la)) => {
                    for ce in ca {
                        match la.iter_mut().find(|le| le.get(key) == ce.get(key)) {
                            Some(le) => merge_applied(le, ce, None),
                            None => la.push(ce.clone()),
                        }
                    }
                }
                (_, live) => *live = config.clone(),
            }
        }
        (live, config) => *live = config.clone(),
    }
}

/// Applies `config` for `manager` on `live` (or on nothing, for a create). Updates `owners`.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    owners: &mut Owners,
) -> Result<Value, ApplyConflict> {
    let new_set = field_set(config);
    let mut conflicts = Vec::new();
    if let Some(live) = live {
        for p in &new_set {
            if matches!(p.last(), Some(Seg::Item(..))) {
                continue;
            }
            for (m, set) in owners.iter() {
                if m != manager && set.contains(p) && get(live, p) != get(config, p) {
                    conflicts.push((m.clone(), display(p)));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyConflict { conflicts });
    }
    if force {
        for (m, set) in owners.iter_mut() {
            if m != manager {
                set.retain(|p| !new_set.contains(p) || matches!(p.last(), Some(Seg::Item(..))));
            }
        }
    }
    let mut merged = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    merge_applied(&mut merged, config, None);
    let old_set = owners.remove(manager).unwrap_or_default();
    let others: BTreeSet<&FieldPath> = owners.values().flatten().collect();
    // Deepest first, so an element is judged after its fields.
    let mut dropped: Vec<&FieldPath> = old_set.difference(&new_set).collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        let owned_below = others.iter().any(|o| o.starts_with(p));
        let applied_below = new_set.iter().any(|o| o.starts_with(p));
        if !owned_below && !applied_below {
            remove(&mut merged, p);
        }
    }
    owners.retain(|_, s| !s.is_empty());
    owners.insert(manager.to_string(), new_set);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn ownership_conflicts_force_and_removal() {
        let mut owners = Owners::new();
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"x": "1", "y": "2"}});
        let live = apply(None, &a, "alice", false, &mut owners).unwrap();
        assert_eq!(live["data"], json!({"x": "1", "y": "2"}));
        // Bob sets a different value for x: conflict; same value: shared.
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "9"}});
        let err = apply(Some(&live), &b, "bob", false, &mut owners).unwrap_err();
        assert_eq!(
            err.conflicts,
            vec![("alice".to_string(), ".data.x".to_string())]
        );
        let live = apply(Some(&live), &b, "bob", true, &mut owners).unwrap();
        assert_eq!(live["data"]["x"], "9");
        // Alice stops applying y: removed. x is bob's now, so it stays.
        let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"z": "3"}});
        let live = apply(Some(&live), &a2, "alice", false, &mut owners).unwrap();
        assert_eq!(live["data"], json!({"x": "9", "z": "3"}));
    }

    #[test]
    fn keyed_lists_merge_by_name() {
        let mut owners = Owners::new();
        let live = json!({"spec": {"containers": [{"name": "app", "image": "a:1"}, {"name": "mesh", "image": "m"}]}});
        owners.insert(
            "injector".into(),
            field_set(&json!({"spec": {"containers": [{"name": "mesh", "image": "m"}]}})),
        );
        let cfg = json!({"spec": {"containers": [{"name": "app", "image": "a:2"}]}});
        let out = apply(Some(&live), &cfg, "me", false, &mut owners).unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "a:2");
        assert_eq!(out["spec"]["containers"][1]["name"], "mesh");
    }
}
