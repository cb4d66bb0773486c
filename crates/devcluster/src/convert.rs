//! Resources that are two views of the same stored objects, as on a real API server.
//!
//! `events.k8s.io/v1` Events are stored as core `v1` Events (the server's storage form) and
//! converted on every read and write, so an event written through either API group is listed,
//! watched and field-selected through both.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::registry::ResourceDef;

/// The store key of the resource that `group/plural` is another view of, if any.
pub fn storage_of(group: &str, plural: &str) -> Option<&'static str> {
    match (group, plural) {
        ("events.k8s.io", "events") => Some("/events"),
        _ => None,
    }
}

/// `events.k8s.io/v1` field ↔ core `v1` field. Fields outside this table (and outside
/// `apiVersion`, `kind`, `metadata`) do not exist in the other version and are dropped, as the
/// conversion through a real server's internal type drops them.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("deprecatedCount", "count"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
];

/// Copies the mapped fields of `from` (a `(source name, target name)` list) into a new object.
fn remap(from: &Value, api_version: &str, kind: &str, fields: &[(&str, &str)]) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String(kind.into()));
    if let Some(meta) = from.get("metadata") {
        out.insert("metadata".into(), meta.clone());
    }
    for (src, dst) in fields {
        if let Some(v) = from.get(*src).filter(|v| !v.is_null()) {
            out.insert((*dst).to_string(), v.clone());
        }
    }
    Value::Object(out)
}

fn is_events_view(def: &ResourceDef) -> bool {
    def.group == "events.k8s.io" && def.plural == "events"
}

/// An object written through `def` in its stored form (unchanged unless `def` is a view).
pub fn to_storage(def: &ResourceDef, obj: Value) -> Value {
    if !is_events_view(def) || !obj.is_object() {
        return obj;
    }
    remap(&obj, "v1", "Event", EVENT_FIELDS)
}

/// A stored object as served through `def` (unchanged, so not copied, unless `def` is a view).
pub fn from_storage<'a>(def: &ResourceDef, obj: &'a Value) -> Cow<'a, Value> {
    if !is_events_view(def) || !obj.is_object() {
        return Cow::Borrowed(obj);
    }
    let back: Vec<(&str, &str)> = EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)).collect();
    Cow::Owned(remap(
        obj,
        &def.api_version(def.preferred_version()),
        "Event",
        &back,
    ))
}

/// The path in the stored object that a field-selector label of `resource_key` selects on.
pub fn field_path(resource_key: &str, label: &str) -> String {
    match (resource_key, label) {
        // A real server selects `source` on the source component.
        ("/events", "source") => "source.component".into(),
        ("events.k8s.io/events", "reportingController") => "reportingComponent".into(),
        ("events.k8s.io/events", l) if l.starts_with("regarding.") => {
            format!("involvedObject.{}", &l["regarding.".len()..])
        }
        _ => label.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_the_two_versions() {
        let reg = Registry::new();
        let view = reg.by_key("events.k8s.io/events").unwrap();
        assert_eq!(view.store_key(), "/events");
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e1", "namespace": "d"},
            "regarding": {"kind": "Canary", "name": "podinfo", "namespace": "d", "uid": "u1"},
            "note": "promotion started", "reason": "Synced", "type": "Normal",
            "reportingController": "serin", "reportingInstance": "serin-0", "action": "Sync",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"},
            "deprecatedCount": 3, "deprecatedSource": {"component": "old"},
            "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2026-01-01T00:00:02Z",
        });
        let core = to_storage(&view, v1.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "podinfo");
        assert_eq!(core["message"], "promotion started");
        assert_eq!(core["reportingComponent"], "serin");
        assert_eq!(core["count"], 3);
        assert_eq!(core["source"]["component"], "old");
        assert_eq!(core["firstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(core["lastTimestamp"], "2026-01-01T00:00:02Z");
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("note").is_none() && core.get("regarding").is_none());
        assert_eq!(*from_storage(&view, &core), v1);
        // The core view is the stored form itself.
        let core_def = reg.by_key("/events").unwrap();
        assert_eq!(*from_storage(&core_def, &core), core);
        assert_eq!(to_storage(&core_def, core.clone()), core);
    }

    #[test]
    fn field_labels_map_to_stored_paths() {
        assert_eq!(
            field_path("events.k8s.io/events", "regarding.name"),
            "involvedObject.name"
        );
        assert_eq!(
            field_path("events.k8s.io/events", "reportingController"),
            "reportingComponent"
        );
        assert_eq!(field_path("events.k8s.io/events", "type"), "type");
        assert_eq!(field_path("/events", "source"), "source.component");
        assert_eq!(
            field_path("/events", "involvedObject.uid"),
            "involvedObject.uid"
        );
    }
}
