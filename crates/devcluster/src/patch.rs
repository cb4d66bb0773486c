//! Patches: JSON merge (RFC 7386), JSON patch (RFC 6902) and strategic merge for built-in kinds.

use serde_json::{Map, Value};

/// A patch body that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("invalid JSON patch: {0}")]
    JsonPatch(String),
    #[error("{0}")]
    Strategic(String),
}

/// The patch flavours selected by the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let ct = ct.split(';').next().unwrap_or_default().trim();
        match ct {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// RFC 7386 merge of `patch` into `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let p: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::JsonPatch(e.to_string()))?;
    json_patch::patch(target, &p).map_err(|e| PatchError::JsonPatch(e.to_string()))
}

/// The patch merge key of a list field in the built-in types (a field-name table; see the
/// contract's merge-key list). `None` means the list is replaced as a whole.
pub fn merge_key(field: &str, elements: &[&Value]) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "ports" => {
            if elements.iter().any(|e| e.get("containerPort").is_some()) {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Lists merged as sets of primitive values.
fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

/// Removes `$`-directives from a value that is inserted as new content.
pub fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn patch_directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

/// Strategic merge patch of `patch` into `target` (built-in kinds).
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(pm) = patch else {
        return Err(PatchError::Strategic(
            "strategic merge patch must be a JSON object".into(),
        ));
    };
    match patch_directive(patch) {
        Some("replace") => {
            *target = strip_directives(patch);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(PatchError::Strategic(format!(
                "unknown patch type: {other}"
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tm) = target else {
        return Ok(());
    };
    merge_map(tm, pm)
}

fn merge_map(tm: &mut Map<String, Value>, pm: &Map<String, Value>) -> Result<(), PatchError> {
    for (k, pv) in pm {
        if k.starts_with('$') {
            continue;
        }
        match pv {
            Value::Null => {
                tm.remove(k);
            }
            Value::Object(_) if patch_directive(pv) == Some("delete") => {
                tm.remove(k);
            }
            Value::Object(_) => {
                let entry = tm.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(entry, pv)?;
            }
            Value::Array(items) => {
                let entry = tm.entry(k.clone()).or_insert(Value::Null);
                merge_list(entry, items, k)?;
            }
            other => {
                tm.insert(k.clone(), other.clone());
            }
        }
    }
    for (k, pv) in pm {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (tm.get_mut(field), pv.as_array()) {
                list.retain(|x| !del.contains(x));
            }
        } else if let Some(field) = k.strip_prefix("$setElementOrder/")
            && let (Some(Value::Array(list)), Some(order)) = (tm.get_mut(field), pv.as_array())
        {
            reorder(list, order, field);
        }
    }
    if let Some(retain) = pm.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        tm.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn reorder(list: &mut Vec<Value>, order: &[Value], field: &str) {
    let refs: Vec<&Value> = order.iter().chain(list.iter()).collect();
    let key = merge_key(field, &refs);
    let same = |a: &Value, b: &Value| match key {
        Some(k) => a.get(k).is_some() && a.get(k) == b.get(k),
        None => a == b,
    };
    let mut rest = std::mem::take(list);
    for o in order {
        if let Some(pos) = rest.iter().position(|e| same(o, e)) {
            list.push(rest.remove(pos));
        }
    }
    list.extend(rest);
}

fn merge_list(target: &mut Value, items: &[Value], field: &str) -> Result<(), PatchError> {
    if items.iter().any(|i| patch_directive(i) == Some("replace")) {
        *target = Value::Array(
            items
                .iter()
                .filter(|i| patch_directive(i) != Some("replace"))
                .map(strip_directives)
                .collect(),
        );
        return Ok(());
    }
    let existing: Vec<Value> = match target {
        Value::Array(a) => std::mem::take(a),
        _ => Vec::new(),
    };
    let refs: Vec<&Value> = items.iter().chain(existing.iter()).collect();
    let result = match merge_key(field, &refs) {
        Some(key) if items.iter().all(Value::is_object) => {
            let mut out = existing;
            for item in items {
                let kv = item.get(key);
                let pos = kv.and_then(|kv| out.iter().position(|e| e.get(key) == Some(kv)));
                match (patch_directive(item), pos) {
                    (Some("delete"), Some(p)) => {
                        out.remove(p);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(p)) => strategic_merge(&mut out[p], item)?,
                    (_, None) => out.push(strip_directives(item)),
                }
            }
            out
        }
        _ if is_set_list(field) => {
            let mut out = existing;
            for item in items {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            out
        }
        _ => items.iter().map(strip_directives).collect(),
    };
    *target = Value::Array(result);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "proxy:1"}
        ]}}}})
    }

    #[test]
    fn set_image_keeps_the_sidecar_and_order() {
        let mut d = deploy();
        let p = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"image": "app:2", "name": "app"}]}}}});
        strategic_merge(&mut d, &p).unwrap();
        let cs = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "app:2");
        assert_eq!(cs[0]["ports"][0]["containerPort"], 80);
        assert_eq!(cs[1]["name"], "sidecar");
    }

    #[test]
    fn delete_directives_and_nulls() {
        let mut d = deploy();
        let p = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "sidecar", "$patch": "delete"}, {"name": "new", "image": "n", "$x": 1}],
            "$setElementOrder/containers": [{"name": "new"}, {"name": "app"}]}}}});
        strategic_merge(&mut d, &p).unwrap();
        let cs = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0], json!({"name": "new", "image": "n"}));
        let mut m = json!({"a": {"b": 1, "c": 2}, "f": ["x", "y"]});
        strategic_merge(
            &mut m,
            &json!({"a": {"b": null}, "$deleteFromPrimitiveList/f": ["x"]}),
        )
        .unwrap();
        assert_eq!(m, json!({"a": {"c": 2}, "f": ["y"]}));
        let mut r = json!({"s": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}});
        strategic_merge(
            &mut r,
            &json!({"s": {"$retainKeys": ["type"], "type": "Recreate"}}),
        )
        .unwrap();
        assert_eq!(r, json!({"s": {"type": "Recreate"}}));
        let mut l = json!({"args": ["a", "b"], "finalizers": ["f1"]});
        strategic_merge(&mut l, &json!({"args": ["c"], "finalizers": ["f2"]})).unwrap();
        assert_eq!(l, json!({"args": ["c"], "finalizers": ["f1", "f2"]}));
        let mut rep = json!({"m": {"a": 1}});
        strategic_merge(&mut rep, &json!({"m": {"$patch": "replace", "b": 2}})).unwrap();
        assert_eq!(rep, json!({"m": {"b": 2}}));
    }

    #[test]
    fn json_and_merge_patches() {
        let mut d = json!({"a": [1, 2], "b": {"c": 1}});
        json_patch(
            &mut d,
            &json!([{"op": "add", "path": "/a/-", "value": 3}, {"op": "remove", "path": "/b"}]),
        )
        .unwrap();
        assert_eq!(d, json!({"a": [1, 2, 3]}));
        assert!(json_patch(&mut d, &json!([{"op": "test", "path": "/a/0", "value": 9}])).is_err());
        merge(&mut d, &json!({"a": null, "z": 1}));
        assert_eq!(d, json!({"z": 1}));
    }
}
