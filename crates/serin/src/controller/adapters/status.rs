//! [`StatusStore`] over the API server: reads from the Canary watch's cache (`k8s::Cache`, which
//! has Serin's own writes at once), the status written by server-side apply on
//! the `status` subresource (field manager `serin`), and the finalizer patched on the condition
//! of the resourceVersion read. Nothing is read before a write and no conflict is retried here:
//! a failed write goes back to the reconcile, which retries with back-off.
//!
//! An apply removes the status fields Serin stops setting only when Serin's apply is their one
//! owner. A status written before by an update (an older Serin's `replace_status`, Flagger's
//! controller, `kubectl edit`) has fields owned by that update's manager, which an apply leaves
//! in place. So when the new status drops a field of the status as read that another manager
//! (or nobody) owns, the write is one replace of the whole status instead, on the condition of
//! the resourceVersion read; the applies after it find the fields they drop owned by Serin.
//! Cached Canaries carry no managed fields (the cache drops them to save memory), so a write
//! that drops a field of a Canary read from the cache is always that one replace.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::Api;
use kube::Resource;
use kube::api::{Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::{Canary, CanaryStatus};
use crate::controller::finalizer::FINALIZER;
use crate::controller::ports::{PortError, StatusStore};
use crate::k8s::cache::Cache;

/// The field manager of Serin's status writes.
pub const FIELD_MANAGER: &str = "serin";

/// Reads and writes Canaries through the API server.
#[derive(Clone)]
pub struct KubeStatusStore {
    client: kube::Client,
    cache: Cache,
    /// The API server refused an apply for a status field the installed CRD does not declare.
    apply_refused: Arc<AtomicBool>,
}

impl KubeStatusStore {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: Cache::disabled(),
            apply_refused: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Writes the status by replace only (the installed CRD does not declare every status field
    /// Serin sets: see [`undeclared_status_fields`]).
    pub fn with_replace_only(self, replace_only: bool) -> Self {
        self.apply_refused.store(replace_only, Ordering::Relaxed);
        self
    }

    /// Reads Canaries from `cache` (the controller's Canary watch feeds it) and puts every
    /// write's result into it.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    fn api(&self, namespace: &str) -> Api<Canary> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

fn names(canary: &Canary) -> (String, String) {
    (
        canary.metadata.namespace.clone().unwrap_or_default(),
        canary.metadata.name.clone().unwrap_or_default(),
    )
}

/// The applied configuration of Serin's status: the Canary's identity and the status. It
/// borrows the status and is serialized straight into the request body (no JSON tree built
/// and dropped on every write).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyBody<'a> {
    api_version: Cow<'static, str>,
    kind: Cow<'static, str>,
    metadata: ApplyMetadata<'a>,
    status: &'a CanaryStatus,
}

#[derive(Debug, Serialize)]
struct ApplyMetadata<'a> {
    name: &'a str,
    namespace: &'a str,
}

/// [`ApplyBody`] of `status` for the Canary `namespace/name`.
pub fn apply_body<'a>(
    namespace: &'a str,
    name: &'a str,
    status: &'a CanaryStatus,
) -> ApplyBody<'a> {
    ApplyBody {
        api_version: Canary::api_version(&()),
        kind: Canary::kind(&()),
        metadata: ApplyMetadata { name, namespace },
        status,
    }
}

#[async_trait]
impl StatusStore for KubeStatusStore {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Canary>, PortError> {
        self.cache
            .get(&self.api(namespace), name)
            .await
            .map_err(|e| PortError::api(format!("canary {name}.{namespace} get query error"), e))
    }

    async fn write_status(
        &self,
        canary: &Canary,
        status: &CanaryStatus,
    ) -> Result<Option<Canary>, PortError> {
        if canary.status.as_ref() == Some(status) {
            return Ok(None);
        }
        let (ns, name) = names(canary);
        let api = self.api(&ns);
        let replace = || async {
            let mut body = canary.clone();
            body.status = Some(status.clone());
            // The ownership stays as stored (a request that sends managed fields sets them).
            body.metadata.managed_fields = None;
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PostParams::default()
            };
            let replaced = api.replace_status(&name, &params, &body).await;
            if let Ok(stored) = &replaced {
                self.cache.wrote(&api, stored);
            }
            replaced
        };
        let written = if self.apply_refused.load(Ordering::Relaxed)
            || stale_fields_survive_apply(canary, status)
        {
            replace().await
        } else {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let body = apply_body(&ns, &name, status);
            match self
                .cache
                .patch_status(&api, &name, &params, &Patch::Apply(&body))
                .await
            {
                Err(e) if undeclared_field(&e) => {
                    // Flagger's own CRD: it does not declare Serin's status fields (decisions,
                    // lastRequest, ...). An apply must name only declared fields; a replace is
                    // pruned to the schema by the server. Replaces from now on.
                    if !self.apply_refused.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "the Canary CRD does not declare all of Serin's status fields (Flagger's CRD?): status is written by replace from now on, without the fields it does not declare ({})",
                            crate::k8s::error::describe(&e)
                        );
                    }
                    replace().await
                }
                other => other,
            }
        };
        written
            .map(Some)
            .map_err(|e| PortError::api(format!("canary {name}.{ns} status update error"), e))
    }

    async fn set_finalizer(
        &self,
        canary: &Canary,
        present: bool,
    ) -> Result<Option<Canary>, PortError> {
        let (ns, name) = names(canary);
        let current = canary.metadata.finalizers.clone().unwrap_or_default();
        if current.iter().any(|f| f == FINALIZER) == present {
            return Ok(None);
        }
        let wanted: Vec<String> = if present {
            current
                .into_iter()
                .chain(std::iter::once(FINALIZER.to_string()))
                .collect()
        } else {
            current.into_iter().filter(|f| f != FINALIZER).collect()
        };
        // The resourceVersion makes the patch fail with a conflict when the finalizers changed
        // since the read, instead of overwriting someone else's.
        let patch = json!({
            "metadata": {
                "finalizers": wanted,
                "resourceVersion": canary.metadata.resource_version,
            }
        });
        match self
            .cache
            .patch(
                &self.api(&ns),
                &name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(stored) => Ok(Some(stored)),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(PortError::api(
                format!("canary {name}.{ns} finalizer update error"),
                e,
            )),
        }
    }
}

/// The top-level status fields Serin sets that the installed Canary CRD does not declare (an
/// apply naming them is refused; a replace is pruned to the schema), from the API server's
/// OpenAPI v3 document of `flagger.app/v1beta1` (readable by every authenticated client through
/// the `system:discovery` role). `None` when the document cannot be read or has no Canary: then
/// the first refused apply switches the writes to replace.
pub async fn undeclared_status_fields(client: &kube::Client) -> Option<Vec<String>> {
    let request = http::Request::get("/openapi/v3/apis/flagger.app/v1beta1")
        .body(Vec::new())
        .ok()?;
    let document: Value = match client.request(request).await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(
                "the Canary schema cannot be read: {}",
                crate::k8s::error::describe(&e)
            );
            return None;
        }
    };
    let ours = crate::api::crd::schema_for("Canary")?;
    missing_status_fields(&document, &ours)
}

/// The status properties of `ours` (a Canary `openAPIV3Schema`) missing from the Canary schema
/// of an OpenAPI v3 `document`; `None` when the document has no Canary schema.
pub fn missing_status_fields(document: &Value, ours: &Value) -> Option<Vec<String>> {
    let schemas = document.pointer("/components/schemas")?.as_object()?;
    let installed = schemas.values().find(|schema| {
        schema["x-kubernetes-group-version-kind"]
            .as_array()
            .is_some_and(|gvks| {
                gvks.iter()
                    .any(|g| g["group"] == "flagger.app" && g["kind"] == "Canary")
            })
    })?;
    let declared = installed.pointer("/properties/status/properties");
    let wanted = ours.pointer("/properties/status/properties")?.as_object()?;
    Some(
        wanted
            .keys()
            .filter(|field| declared.and_then(|d| d.get(field.as_str())).is_none())
            .cloned()
            .collect(),
    )
}

/// kube-apiserver's answer to an apply naming a field the CRD's schema does not declare (HTTP
/// 500, "failed to create typed patch object ...: .status.decisions: field not declared in
/// schema").
fn undeclared_field(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.message.contains("field not declared in schema"))
}

/// One step of a path into the status: a field, or the condition of a type.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Condition(String),
}

/// Whether an apply of `status` would leave behind a field of the status `canary` holds that
/// `status` drops: a field some other manager owns too, or one Serin's apply does not own.
fn stale_fields_survive_apply(canary: &Canary, status: &CanaryStatus) -> bool {
    let (Ok(old), Ok(new)) = (
        serde_json::to_value(&canary.status),
        serde_json::to_value(status),
    ) else {
        return true;
    };
    let mut dropped = Vec::new();
    dropped_paths(&old, &new, &mut Vec::new(), &mut dropped);
    let entries = canary
        .metadata
        .managed_fields
        .as_deref()
        .unwrap_or_default();
    dropped.iter().any(|path| {
        let (mine, others): (Vec<&ManagedFieldsEntry>, Vec<&ManagedFieldsEntry>) =
            entries.iter().partition(|e| is_serins_apply(e));
        !mine.iter().any(|e| owns(e, path)) || others.iter().any(|e| owns(e, path))
    })
}

/// The paths of `old` that `new` does not have: object fields, and the conditions (the one
/// list of the status whose elements are told apart, by `type`).
fn dropped_paths(old: &Value, new: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (key, value) in o {
                prefix.push(Step::Field(key.clone()));
                match n.get(key) {
                    None | Some(Value::Null) if !value.is_null() => out.push(prefix.clone()),
                    Some(next) if key == "conditions" && prefix.len() == 1 => {
                        dropped_conditions(value, next, prefix, out);
                    }
                    Some(next) => dropped_paths(value, next, prefix, out),
                    None => {}
                }
                prefix.pop();
            }
        }
        (Value::Object(o), _) if !o.is_empty() => out.push(prefix.clone()),
        _ => {}
    }
}

fn dropped_conditions(old: &Value, new: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    let types = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("type").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let kept = types(new);
    for t in types(old) {
        if !kept.contains(&t) {
            prefix.push(Step::Condition(t));
            out.push(prefix.clone());
            prefix.pop();
        }
    }
}

fn is_serins_apply(entry: &ManagedFieldsEntry) -> bool {
    entry.manager.as_deref() == Some(FIELD_MANAGER)
        && entry.operation.as_deref() == Some("Apply")
        && entry.subresource.as_deref() == Some("status")
}

/// Whether `entry` owns `path` of the status or anything below it. A field owned as a whole
/// (an empty set in `fieldsV1`, e.g. an atomic list) owns everything below it.
fn owns(entry: &ManagedFieldsEntry, path: &[Step]) -> bool {
    let Some(fields) = &entry.fields_v1 else {
        return false;
    };
    let Some(mut node) = fields.0.get("f:status") else {
        return false;
    };
    for step in path {
        if node.as_object().is_some_and(|m| m.is_empty()) {
            return true;
        }
        let next = match step {
            Step::Field(f) => node.get(format!("f:{f}")),
            Step::Condition(t) => node.as_object().and_then(|m| {
                m.iter()
                    .find(|(k, _)| {
                        k.strip_prefix("k:")
                            .and_then(|key| serde_json::from_str::<Value>(key).ok())
                            .is_some_and(|key| key.get("type").and_then(Value::as_str) == Some(t))
                    })
                    .map(|(_, v)| v)
            }),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;

    use super::*;
    use crate::api::CanaryPhase;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            subresource: Some("status".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    fn read(status: CanaryStatus, entries: Vec<ManagedFieldsEntry>) -> Canary {
        let mut canary = Canary::new("podinfo", Default::default());
        canary.status = Some(status);
        canary.metadata.managed_fields = Some(entries);
        canary
    }

    fn progressing(spec: Option<&str>) -> CanaryStatus {
        CanaryStatus {
            phase: CanaryPhase::Progressing,
            last_applied_spec: spec.map(str::to_string),
            ..CanaryStatus::default()
        }
    }

    #[test]
    fn an_apply_drops_what_only_serins_apply_owns() {
        let fields = json!({"f:status": {"f:phase": {}, "f:lastAppliedSpec": {}}});
        let canary = read(
            progressing(Some("a")),
            vec![entry("serin", "Apply", fields)],
        );
        assert!(!stale_fields_survive_apply(&canary, &progressing(None)));
        // Nothing dropped: an apply whoever owns the fields.
        let canary = read(progressing(Some("a")), vec![]);
        assert!(!stale_fields_survive_apply(
            &canary,
            &progressing(Some("b"))
        ));
    }

    #[test]
    fn fields_an_update_owns_or_nobody_owns_need_a_replace() {
        let fields = json!({"f:status": {"f:phase": {}, "f:lastAppliedSpec": {}}});
        let by_update = read(
            progressing(Some("a")),
            vec![entry("flagger", "Update", fields.clone())],
        );
        assert!(stale_fields_survive_apply(&by_update, &progressing(None)));
        // Owned by Serin's apply and, with the same value, by an update too.
        let shared = read(
            progressing(Some("a")),
            vec![
                entry("serin", "Apply", fields.clone()),
                entry("serin", "Update", fields),
            ],
        );
        assert!(stale_fields_survive_apply(&shared, &progressing(None)));
        let unowned = read(progressing(Some("a")), vec![]);
        assert!(stale_fields_survive_apply(&unowned, &progressing(None)));
    }

    #[test]
    fn conditions_are_told_apart_by_type() {
        let condition = |t: &str| crate::api::status::CanaryCondition {
            condition_type: t.into(),
            status: crate::api::status::ConditionStatus::True,
            last_update_time: None,
            last_transition_time: None,
            reason: "Succeeded".into(),
            message: None,
        };
        let with = |types: &[&str]| CanaryStatus {
            conditions: Some(types.iter().map(|t| condition(t)).collect()),
            ..progressing(None)
        };
        // An atomic list (a CRD's list without a list type) owned by Serin's apply.
        let atomic = json!({"f:status": {"f:phase": {}, "f:conditions": {}}});
        let canary = read(
            with(&["Promoted", "MetricsReady"]),
            vec![entry("serin", "Apply", atomic)],
        );
        assert!(!stale_fields_survive_apply(&canary, &with(&["Promoted"])));
        // Elements owned by type, the dropped one by an update.
        let keyed = |t: &str| json!({"f:status": {"f:conditions": {format!("k:{{\"type\":\"{t}\"}}"): {".": {}, "f:type": {}}}}});
        let canary = read(
            with(&["Promoted", "MetricsReady"]),
            vec![
                entry("serin", "Apply", keyed("Promoted")),
                entry("kubectl-edit", "Update", keyed("MetricsReady")),
            ],
        );
        assert!(stale_fields_survive_apply(&canary, &with(&["Promoted"])));
        assert!(!stale_fields_survive_apply(
            &canary,
            &with(&["Promoted", "MetricsReady"])
        ));
    }

    #[test]
    fn the_applied_configuration_names_the_canary() {
        let body =
            serde_json::to_value(apply_body("test", "podinfo", &progressing(Some("a")))).unwrap();
        assert_eq!(body["apiVersion"], "flagger.app/v1beta1");
        assert_eq!(body["kind"], "Canary");
        assert_eq!(
            body["metadata"],
            json!({"name": "podinfo", "namespace": "test"})
        );
        assert_eq!(body["status"]["lastAppliedSpec"], "a");
        assert_eq!(body.as_object().unwrap().len(), 4);
    }

    #[test]
    fn status_fields_missing_from_the_installed_crd() {
        let ours = crate::api::crd::schema_for("Canary").unwrap();
        let canary = |status: Value| {
            json!({"components": {"schemas": {
                "app.flagger.v1beta1.CanaryList": {"x-kubernetes-group-version-kind": [
                    {"group": "flagger.app", "kind": "CanaryList", "version": "v1beta1"}]},
                "app.flagger.v1beta1.Canary": {
                    "x-kubernetes-group-version-kind": [
                        {"group": "flagger.app", "kind": "Canary", "version": "v1beta1"}],
                    "properties": {"status": status},
                },
            }}})
        };
        // Serin's own CRD declares everything.
        let declared = ours.pointer("/properties/status").cloned().unwrap();
        assert_eq!(
            missing_status_fields(&canary(declared.clone()), &ours),
            Some(vec![])
        );
        // Flagger's does not declare Serin's additions.
        let mut flaggers = declared;
        let props = flaggers["properties"].as_object_mut().unwrap();
        props.remove("decisions");
        props.remove("lastRequest");
        assert_eq!(
            missing_status_fields(&canary(flaggers), &ours),
            Some(vec!["decisions".to_string(), "lastRequest".to_string()])
        );
        // No Canary in the document: unknown.
        assert_eq!(
            missing_status_fields(&json!({"components": {"schemas": {}}}), &ours),
            None
        );
    }
}
