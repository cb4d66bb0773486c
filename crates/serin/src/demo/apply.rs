//! Server-side apply of manifest documents (what `kubectl apply --server-side` does), with the
//! kind's resource found through discovery.

use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Scope, pinned_kind};
use serde_json::Value;

/// A document that could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("applying {what}: {reason}")]
pub struct ApplyError {
    pub what: String,
    pub reason: String,
}

fn describe(doc: &Value) -> String {
    let s = |p: &str| doc.pointer(p).and_then(Value::as_str).unwrap_or("?");
    match doc.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{} {ns}/{}", s("/kind"), s("/metadata/name")),
        None => format!("{} {}", s("/kind"), s("/metadata/name")),
    }
}

/// Applies one document as field manager `serin-demo`.
pub async fn apply(client: &kube::Client, doc: &Value) -> Result<(), ApplyError> {
    let what = describe(doc);
    let err = |reason: String| ApplyError {
        what: what.clone(),
        reason,
    };
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| err("no apiVersion".into()))?;
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| err("no kind".into()))?;
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or_else(|| err("no metadata.name".into()))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) = pinned_kind(client, &gvk)
        .await
        .map_err(|e| err(format!("the API server does not serve it: {e}")))?;
    let api: Api<DynamicObject> = match (caps.scope, doc.pointer("/metadata/namespace")) {
        (Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(client.clone(), ns.as_str().unwrap_or("default"), &ar)
        }
        (Scope::Namespaced, None) => Api::namespaced_with(client.clone(), "default", &ar),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        name,
        &PatchParams::apply("serin-demo").force(),
        &Patch::Apply(doc),
    )
    .await
    .map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Applies documents in order.
pub async fn apply_all(client: &kube::Client, docs: &[Value]) -> Result<(), ApplyError> {
    for d in docs {
        apply(client, d).await?;
    }
    Ok(())
}
