//! Helpers for the objects Serin generates, shared by the workload and router modules: label and
//! annotation filtering, owner references, write parameters (field manager `serin`), canonical
//! JSON and hashes, merge patches computed as a difference, and randomness.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use serde_json::{Map, Value};

use crate::api::Canary;

/// Keys containing this marker (Flux's ownership labels) are never copied to generated objects.
pub const TOOLKIT_MARKER: &str = "toolkit.fluxcd.io";
/// Pod-template annotation that forces a rolling update of the primary on every promotion.
pub const FLAGGER_ID_ANNOTATION: &str = "flagger-id";
/// Flux annotations added to generated Services (and routing objects) so Flux does not fight
/// over them.
pub const FLUX_KUSTOMIZE_RECONCILE: &str = "kustomize.toolkit.fluxcd.io/reconcile";
pub const FLUX_HELM_DRIFT_DETECTION: &str = "helm.toolkit.fluxcd.io/driftDetection";
/// `kubectl apply`'s record of the user's configuration.
pub const KUBECTL_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Field manager of every write Serin makes.
pub const FIELD_MANAGER: &str = "serin";

/// Whether a label/annotation key carries Flux's toolkit marker.
pub fn is_toolkit_key(key: &str) -> bool {
    key.contains(TOOLKIT_MARKER)
}

/// A copy of `map` without toolkit keys.
pub fn filter_toolkit(map: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .filter(|(k, _)| !is_toolkit_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The entries of `map` whose key starts with one of `prefixes` (`*` matches every key, an empty
/// prefix matches nothing); toolkit keys are always excluded.
pub fn include_by_prefix(
    map: Option<&BTreeMap<String, String>>,
    prefixes: &[String],
) -> BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .filter(|(k, _)| !is_toolkit_key(k))
        .filter(|(k, _)| {
            prefixes
                .iter()
                .any(|p| p == "*" || (!p.is_empty() && k.starts_with(p.as_str())))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Labels of a primary object: `labels` without toolkit keys, with `label` set to `value`.
pub fn primary_labels(
    labels: Option<&BTreeMap<String, String>>,
    label: &str,
    value: &str,
) -> BTreeMap<String, String> {
    let mut out = filter_toolkit(labels);
    out.insert(label.to_string(), value.to_string());
    out
}

/// Pod-template annotations of a primary: the target's without toolkit keys and without the old
/// `flagger-id`, plus `flagger-id: <flagger_id>`.
pub fn primary_pod_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    flagger_id: &str,
) -> BTreeMap<String, String> {
    let mut out = filter_toolkit(annotations);
    out.remove(FLAGGER_ID_ANNOTATION);
    out.insert(FLAGGER_ID_ANNOTATION.to_string(), flagger_id.to_string());
    out
}

/// The controller owner reference to `canary` (`flagger.app/v1beta1`, `controller` and
/// `blockOwnerDeletion` set). `None` when the Canary has no UID (not read from the API).
pub fn canary_owner_reference(canary: &Canary) -> Option<OwnerReference> {
    let mut owner = canary.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

/// Like [`canary_owner_reference`] but an error for a Canary without UID.
pub fn require_owner_reference(canary: &Canary) -> Result<OwnerReference, String> {
    canary_owner_reference(canary).ok_or_else(|| {
        format!(
            "canary {}.{} has no uid; it must be read from the API server",
            canary.metadata.name.as_deref().unwrap_or_default(),
            canary.metadata.namespace.as_deref().unwrap_or_default()
        )
    })
}

/// Whether `meta` has a controller owner reference to `canary`.
pub fn is_controlled_by(meta: &ObjectMeta, canary: &Canary) -> bool {
    let Some(uid) = canary.metadata.uid.as_deref() else {
        return false;
    };
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Whether `meta` has a controller owner reference to any Canary.
pub fn is_controlled_by_a_canary(meta: &ObjectMeta) -> bool {
    meta.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true)
            && o.kind == "Canary"
            && o.api_version.starts_with("flagger.app/")
    })
}

/// `<name>.<namespace>` of a Canary, as Flagger prints it.
pub fn canary_id(canary: &Canary) -> String {
    format!(
        "{}.{}",
        canary.metadata.name.as_deref().unwrap_or_default(),
        canary.metadata.namespace.as_deref().unwrap_or_default()
    )
}

/// The namespace of a Canary (empty when unset).
/// Patch parameters of every write Serin makes (field manager `serin`).
pub fn patch_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// Create parameters of every object Serin creates (field manager `serin`).
pub fn post_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

pub fn namespace(canary: &Canary) -> String {
    canary.metadata.namespace.clone().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Canonical JSON and hashes

/// Removes `null`s, empty objects and empty arrays from object members, recursively (array
/// elements are kept in place). Absent, empty and null then compare equal.
pub fn prune(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let v = prune(v);
                if !is_empty_value(&v) {
                    out.insert(k.clone(), v);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(prune).collect()),
        other => other.clone(),
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// JSON text with object keys sorted at every level (independent of map implementation).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(*k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Serin's revision hash: the first 16 hex digits of the SHA-256 of the canonical JSON of the
/// pruned value (see docs/routing.md, "Revision hashes").
pub fn revision_hash(value: &Value) -> String {
    let mut hex = sha256_hex(canonical_json(&prune(value)).as_bytes());
    hex.truncate(16);
    hex
}

// ---------------------------------------------------------------------------------------------
// Merge patches

/// The JSON merge patch (RFC 7386) that turns `live` into `desired`, or `None` when they are
/// equal. Members of `live` missing from `desired` become `null` (removed); arrays and scalars
/// are replaced whole. `null` members of `desired` mean "absent".
pub fn merge_patch_diff(live: &Value, desired: &Value) -> Option<Value> {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let mut patch = Map::new();
            for (k, dv) in d {
                match (l.get(k), dv) {
                    (None | Some(Value::Null), Value::Null) => {}
                    (Some(_), Value::Null) => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    (None | Some(Value::Null), dv) => {
                        patch.insert(k.clone(), strip_nulls(dv));
                    }
                    (Some(lv), dv) => {
                        if let Some(p) = merge_patch_diff(lv, dv) {
                            patch.insert(k.clone(), p);
                        }
                    }
                }
            }
            for (k, lv) in l {
                if !d.contains_key(k) && !lv.is_null() {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (l, d) if l == d => None,
        (_, d) => Some(strip_nulls(d)),
    }
}

/// Removes `null` object members (a merge patch would read them as deletions).
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Applies a JSON merge patch (RFC 7386) to `doc`.
pub fn apply_merge_patch(doc: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    if let Value::Object(doc_map) = doc {
        for (k, pv) in patch_map {
            if pv.is_null() {
                doc_map.remove(k);
            } else {
                let entry = doc_map.entry(k.clone()).or_insert(Value::Null);
                apply_merge_patch(entry, pv);
            }
        }
    }
}

/// The merge patch of a metadata map (labels or annotations): sets every desired entry and, when
/// `remove_others` is set, removes live keys that are not desired (except `keep`).
/// The `metadata` part of a merge patch that makes `live`'s labels and annotations exactly
/// `labels` and `annotations`; `None` when they already are.
pub fn exact_metadata_patch(
    live: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Option<Value> {
    let mut meta = Map::new();
    if let Some(p) = metadata_map_patch(live.labels.as_ref(), labels, true, &[]) {
        meta.insert("labels".into(), p);
    }
    if let Some(p) = metadata_map_patch(live.annotations.as_ref(), annotations, true, &[]) {
        meta.insert("annotations".into(), p);
    }
    (!meta.is_empty()).then_some(Value::Object(meta))
}

pub fn metadata_map_patch(
    live: Option<&BTreeMap<String, String>>,
    desired: &BTreeMap<String, String>,
    remove_others: bool,
    keep: &[&str],
) -> Option<Value> {
    let mut patch = Map::new();
    for (k, v) in desired {
        if live.and_then(|l| l.get(k)) != Some(v) {
            patch.insert(k.clone(), Value::String(v.clone()));
        }
    }
    if remove_others {
        for k in live.into_iter().flatten().map(|(k, _)| k) {
            if !desired.contains_key(k) && !keep.contains(&k.as_str()) {
                patch.insert(k.clone(), Value::Null);
            }
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

// ---------------------------------------------------------------------------------------------
// Randomness

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| format!("reading random bytes failed: {e}"))?;
    Ok(buf)
}

/// A random UUID version 4 (the `flagger-id` annotation value).
pub fn uuid_v4() -> Result<String, String> {
    let mut b = random_bytes::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// `n` random ASCII letters, uniformly distributed (session-affinity cookie values).
pub fn random_letters(n: usize) -> Result<String, String> {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in random_bytes::<32>()? {
            // 208 = 4 × 52: rejecting larger bytes keeps the distribution uniform.
            if b < 208 && out.len() < n {
                out.push(char::from(LETTERS[usize::from(b) % LETTERS.len()]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn include_by_prefix_rules() {
        let labels = map(&[
            ("app", "a"),
            ("team", "t"),
            ("kustomize.toolkit.fluxcd.io/name", "k"),
        ]);
        assert!(include_by_prefix(Some(&labels), &[]).is_empty());
        assert!(include_by_prefix(Some(&labels), &["".into()]).is_empty());
        assert_eq!(
            include_by_prefix(Some(&labels), &["*".into()]),
            map(&[("app", "a"), ("team", "t")])
        );
        assert_eq!(
            include_by_prefix(Some(&labels), &["te".into(), "kustomize".into()]),
            map(&[("team", "t")])
        );
    }

    #[test]
    fn primary_labels_and_annotations() {
        let labels = map(&[("app", "podinfo"), ("helm.toolkit.fluxcd.io/name", "x")]);
        assert_eq!(
            primary_labels(Some(&labels), "app", "podinfo-primary"),
            map(&[("app", "podinfo-primary")])
        );
        let ann = map(&[("flagger-id", "old"), ("prometheus.io/scrape", "true")]);
        assert_eq!(
            primary_pod_annotations(Some(&ann), "new"),
            map(&[("flagger-id", "new"), ("prometheus.io/scrape", "true")])
        );
    }

    #[test]
    fn prune_and_canonical_json() {
        let v = json!({"b": [], "a": {"x": null, "y": {}}, "c": [{}, 1], "d": false});
        assert_eq!(canonical_json(&prune(&v)), r#"{"c":[{},1],"d":false}"#);
        let a = json!({"z": 1, "a": {"k": "v", "b": 2}});
        let b: Value = serde_json::from_str(r#"{"a":{"b":2,"k":"v"},"z":1}"#).unwrap();
        assert_eq!(revision_hash(&a), revision_hash(&b));
        assert_eq!(revision_hash(&a).len(), 16);
        assert_ne!(revision_hash(&a), revision_hash(&json!({"z": 2})));
    }

    #[test]
    fn sha256_known_value() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn merge_patch_diff_round_trips() {
        let live = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "gone": "x"});
        let desired = json!({"a": 1, "b": {"c": 5}, "e": [1], "new": {"n": null, "m": 1}});
        let patch = merge_patch_diff(&live, &desired).unwrap();
        assert_eq!(
            patch,
            json!({"b": {"c": 5, "d": null}, "e": [1], "gone": null, "new": {"m": 1}})
        );
        let mut doc = live.clone();
        apply_merge_patch(&mut doc, &patch);
        assert_eq!(
            doc,
            json!({"a": 1, "b": {"c": 5}, "e": [1], "new": {"m": 1}})
        );
        assert_eq!(merge_patch_diff(&doc, &doc), None);
    }

    #[test]
    fn metadata_patch_keeps_listed_keys() {
        let live = map(&[("a", "1"), ("b", "2"), ("keep", "k")]);
        let desired = map(&[("a", "1"), ("c", "3")]);
        assert_eq!(
            metadata_map_patch(Some(&live), &desired, true, &["keep"]),
            Some(json!({"b": null, "c": "3"}))
        );
        assert_eq!(
            metadata_map_patch(Some(&live), &desired, false, &[]),
            Some(json!({"c": "3"}))
        );
        assert_eq!(
            metadata_map_patch(Some(&live), &map(&[("a", "1")]), false, &[]),
            None
        );
    }

    #[test]
    fn random_values_have_the_right_shape() {
        let id = uuid_v4().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(id, uuid_v4().unwrap());
        let cookie = random_letters(10).unwrap();
        assert_eq!(cookie.len(), 10);
        assert!(cookie.chars().all(|c| c.is_ascii_alphabetic()));
    }
}
