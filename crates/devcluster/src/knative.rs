//! A small emulation of Knative Serving's controller for `serving.knative.dev/v1` Services, so
//! that Knative canaries run without Knative. Used by the dev cluster's simulator and by
//! `serin simulate-workloads` (against a real API server where the Knative CRD is installed but
//! Knative is not).
//!
//! What it plays: every new `spec.template` is a new revision `<name>-0000N` (N counts the
//! templates, starting at 1), which is at once the latest created and the latest ready revision
//! (revisions are ready immediately; there are no pods); when the Revision CRD is installed too,
//! a `Ready` Revision object of that name, owned by the Service; the Service is `Ready`; and
//! `status.traffic` mirrors `spec.traffic` with each `latestRevision: true` entry resolved to the
//! latest revision's name (100% to the latest revision when `spec.traffic` is empty). Nothing
//! else of Knative (routes, configurations, scaling) is emulated.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

/// The store key of Knative Services in the dev cluster (`group/plural`).
pub const SERVICES_KEY: &str = "serving.knative.dev/services";
/// The store key of Knative Revisions.
pub const REVISIONS_KEY: &str = "serving.knative.dev/revisions";

/// The Revision `name` Knative would create for `service` (a Knative Service as JSON): the
/// template's spec, the service label, owned by the Service (Knative's owner is the
/// Configuration, which is not emulated). Its status is [`revision_status`].
pub fn revision_object(service: &Value, name: &str) -> Value {
    let service_name = text(service, "/metadata/name");
    json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {
            "name": name,
            "namespace": text(service, "/metadata/namespace"),
            "labels": {"serving.knative.dev/service": service_name},
            "ownerReferences": [{
                "apiVersion": "serving.knative.dev/v1", "kind": "Service",
                "name": service_name, "uid": text(service, "/metadata/uid"), "controller": true
            }]
        },
        "spec": service.pointer("/spec/template/spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The status of a ready Revision.
pub fn revision_status() -> Value {
    let now = crate::store::now_rfc3339();
    json!({"conditions": [
        {"type": "Active", "status": "True", "lastTransitionTime": now},
        {"type": "ContainerHealthy", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": "True", "lastTransitionTime": now},
        {"type": "ResourcesAvailable", "status": "True", "lastTransitionTime": now}
    ]})
}

/// The revision of each Knative Service (by uid): the hash of its `spec.template` and its
/// number. Call [`KnativeModel::retain`] with the Services that still exist.
#[derive(Debug, Default)]
pub struct KnativeModel {
    revisions: HashMap<String, (u64, u32)>,
}

fn template_hash(o: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    o.pointer("/spec/template")
        .map(Value::to_string)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

fn text<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The number of the revision `<name>-0000N` named in `status.latestCreatedRevisionName`.
fn stored_revision_number(o: &Value) -> Option<u32> {
    let name = text(o, "/metadata/name");
    text(o, "/status/latestCreatedRevisionName")
        .strip_prefix(name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// `<name>-0000N`, as Knative names revisions it generates.
pub fn revision_name(service: &str, n: u32) -> String {
    format!("{service}-{n:05}")
}

impl KnativeModel {
    /// Forgets the Services whose uid `keep` rejects.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.revisions.retain(|uid, _| keep(uid));
    }

    /// The status Knative would give `o` (a Knative Service as JSON). A Service seen for the
    /// first time keeps the revision its status names (the simulator may have restarted); a
    /// changed template makes the next revision.
    pub fn status(&mut self, o: &Value) -> Value {
        let hash = template_hash(o);
        let uid = text(o, "/metadata/uid").to_string();
        let entry = self
            .revisions
            .entry(uid)
            .or_insert_with(|| (hash, stored_revision_number(o).unwrap_or(1)));
        if entry.0 != hash {
            *entry = (hash, entry.1 + 1);
        }
        service_status(o, &revision_name(text(o, "/metadata/name"), entry.1))
    }
}

fn condition(o: &Value, type_: &str) -> Value {
    let since = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter().find(|c| {
                c.get("type").and_then(Value::as_str) == Some(type_)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
        .and_then(|c| c.get("lastTransitionTime"))
        .cloned()
        .unwrap_or_else(|| json!(crate::store::now_rfc3339()));
    json!({"type": type_, "status": "True", "lastTransitionTime": since})
}

/// `spec.traffic` resolved against the latest revision `latest`.
fn traffic(o: &Value, latest: &str) -> Value {
    let spec = o
        .pointer("/spec/traffic")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty());
    let Some(spec) = spec else {
        return json!([{"latestRevision": true, "revisionName": latest, "percent": 100}]);
    };
    let resolved = spec
        .iter()
        .map(|entry| {
            let mut out: Map<String, Value> = entry.as_object().cloned().unwrap_or_default();
            let is_latest = entry.get("latestRevision").and_then(Value::as_bool) == Some(true);
            out.insert("latestRevision".into(), json!(is_latest));
            if is_latest {
                out.insert("revisionName".into(), json!(latest));
            }
            Value::Object(out)
        })
        .collect();
    Value::Array(resolved)
}

fn service_status(o: &Value, latest: &str) -> Value {
    let name = text(o, "/metadata/name");
    let namespace = text(o, "/metadata/namespace");
    let generation = o
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    json!({
        "observedGeneration": generation,
        "latestCreatedRevisionName": latest,
        "latestReadyRevisionName": latest,
        "url": format!("http://{name}.{namespace}.example.com"),
        "conditions": [
            condition(o, "ConfigurationsReady"),
            condition(o, "Ready"),
            condition(o, "RoutesReady"),
        ],
        "traffic": traffic(o, latest),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn service(image: &str, traffic: Value) -> Value {
        json!({"metadata": {"name": "podinfo", "namespace": "test", "uid": "u1", "generation": 3},
               "spec": {"template": {"spec": {"containers": [{"image": image}]}}, "traffic": traffic}})
    }

    #[test]
    fn a_new_template_is_a_new_revision_and_traffic_is_resolved() {
        let mut model = KnativeModel::default();
        let first = model.status(&service("podinfo:6.0.0", json!(null)));
        assert_eq!(first["latestCreatedRevisionName"], "podinfo-00001");
        assert_eq!(first["latestReadyRevisionName"], "podinfo-00001");
        assert_eq!(first["observedGeneration"], 3);
        assert_eq!(first["conditions"][1]["type"], "Ready");
        assert_eq!(
            first["traffic"],
            json!([{"latestRevision": true, "revisionName": "podinfo-00001", "percent": 100}])
        );

        // A traffic change is not a new revision.
        let split = json!([
            {"latestRevision": true, "percent": 10, "tag": "canary"},
            {"revisionName": "podinfo-00001", "percent": 90}
        ]);
        let mut svc = service("podinfo:6.0.0", split.clone());
        svc["status"] = first;
        let same = model.status(&svc);
        assert_eq!(same["latestCreatedRevisionName"], "podinfo-00001");
        assert_eq!(
            same["conditions"], svc["status"]["conditions"],
            "transition times are kept"
        );

        let next = model.status(&service("podinfo:6.0.1", split));
        assert_eq!(next["latestCreatedRevisionName"], "podinfo-00002");
        assert_eq!(
            next["traffic"],
            json!([
                {"latestRevision": true, "revisionName": "podinfo-00002", "percent": 10, "tag": "canary"},
                {"latestRevision": false, "revisionName": "podinfo-00001", "percent": 90}
            ])
        );
    }

    #[test]
    fn revisions_belong_to_their_service() {
        let rev = revision_object(&service("podinfo:6.0.1", json!(null)), "podinfo-00002");
        assert_eq!(rev["metadata"]["name"], "podinfo-00002");
        assert_eq!(rev["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(rev["spec"]["containers"][0]["image"], "podinfo:6.0.1");
        assert_eq!(revision_status()["conditions"][2]["type"], "Ready");
    }

    #[test]
    fn a_restarted_emulation_continues_from_the_stored_revision() {
        let mut model = KnativeModel::default();
        let mut svc = service("podinfo:6.0.3", json!(null));
        svc["status"] = json!({"latestCreatedRevisionName": "podinfo-00004"});
        assert_eq!(
            model.status(&svc)["latestCreatedRevisionName"],
            "podinfo-00004"
        );
        model.retain(|_| false);
        svc["status"] = json!({});
        assert_eq!(
            model.status(&svc)["latestCreatedRevisionName"],
            "podinfo-00001"
        );
    }
}
