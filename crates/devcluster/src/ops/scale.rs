//! The scale subresource: the autoscaling/v1 Scale view of an object and the object a Scale
//! write makes.

use serde_json::{Map, Value, json};

use crate::defaults::{get_path, set_path};
use crate::registry::ResourceDef;
use crate::selectors::LabelSelector;
use crate::status::ApiError;
use crate::store::name_of;

/// The autoscaling/v1 Scale view of an object.
pub fn scale_of(def: &ResourceDef, obj: &Value) -> Result<Value, ApiError> {
    let Some(paths) = &def.scale else {
        return Err(ApiError::no_resource());
    };
    let selector = paths
        .label_selector
        .as_deref()
        .and_then(|p| get_path(obj, p));
    let selector = match selector {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => LabelSelector::from_label_selector(v).to_selector_string(),
        _ => String::new(),
    };
    let mut meta = Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj.get("metadata").and_then(|m| m.get(k)) {
            meta.insert(k.to_string(), v.clone());
        }
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": get_path(obj, &paths.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": get_path(obj, &paths.status_replicas).and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    }))
}

pub(super) fn scale_to_object(
    def: &ResourceDef,
    existing: &Value,
    scale: &Value,
) -> Result<Value, ApiError> {
    let Some(paths) = &def.scale else {
        return Err(ApiError::no_resource());
    };
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            name_of(existing),
            "spec.replicas: Invalid value: must be greater than or equal to 0",
        ));
    }
    let mut next = existing.clone();
    set_path(&mut next, &paths.spec_replicas, json!(replicas));
    Ok(next)
}
