//! Field ownership of writes: the `Update` manager of a request, `metadata.managedFields`, and
//! kubectl's client-side-apply annotation after a server-side apply.

use serde_json::Value;

use super::{Sub, WriteOpts};
use crate::apply;
use crate::store::{Store, now_rfc3339, remove_meta, set_meta, uid_of};

/// The `Update` manager of a write: `fieldManager`, else the first word of the user agent,
/// else `unknown` (kube-rs sends no user agent). Writes of the dev cluster itself (simulator,
/// collector: no user agent at all) have none and own nothing.
fn update_manager(opts: &WriteOpts, sub: Sub) -> Option<apply::Manager> {
    let ua = opts.user_agent.as_deref()?;
    let name = opts
        .field_manager
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| {
            ua.split('/')
                .next()
                .filter(|s| !s.is_empty())
                .map(|s| s.chars().take(128).collect())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let subresource = if opts.scale {
        "scale"
    } else if sub == Sub::Status {
        "status"
    } else {
        ""
    };
    Some(apply::Manager::new(
        &name,
        apply::Operation::Update,
        subresource,
    ))
}

/// Works out the ownership after a write (from an apply, or as an update by its manager) and
/// shows it in `metadata.managedFields`.
/// `sent` is the `metadata.managedFields` of the request: when it differs from the stored
/// object's, the client set the ownership itself (as kubectl does when it moves an object from
/// client-side to server-side apply), and the write's own changes are recorded on top of it.
pub(super) fn track_fields(
    st: &Store,
    old: Option<&Value>,
    sent: Option<Value>,
    obj: &mut Value,
    sub: Sub,
    opts: &WriteOpts,
) -> apply::Owners {
    let owners = match &opts.applied {
        Some(o) => o.clone(),
        None => {
            let stored = old.and_then(|e| e.pointer("/metadata/managedFields"));
            let mut o = match sent
                .filter(|s| s.as_array().is_some_and(|a| !a.is_empty()) && Some(s) != stored)
            {
                Some(s) => apply::decode_managed_fields(&s),
                None => old
                    .and_then(|e| st.owners.get(uid_of(e)))
                    .cloned()
                    .unwrap_or_default(),
            };
            let api_version = obj
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let now = now_rfc3339();
            match update_manager(opts, sub) {
                Some(who) => apply::record_update(old, obj, &who, &mut o, (&api_version, &now)),
                None => apply::forget_missing(obj, &mut o),
            }
            o
        }
    };
    if owners.is_empty() {
        remove_meta(obj, "managedFields");
    } else {
        let previous = old.and_then(|e| {
            let before = st.owners.get(uid_of(e))?;
            Some((before, e.pointer("/metadata/managedFields")?))
        });
        set_meta(
            obj,
            "managedFields",
            apply::managed_fields_after(&owners, previous),
        );
    }
    owners
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `lastAppliedUpdater`: a server-side apply by the manager `kubectl` of an object that has a
/// client-side-apply annotation rewrites that annotation to the applied configuration, so that
/// a later client-side apply still works.
pub(super) fn sync_last_applied(obj: &mut Value, config: &Value) {
    let has = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(LAST_APPLIED));
    if !has {
        return;
    }
    let mut cfg = config.clone();
    if let Some(a) = cfg
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
    }
    let text = format!("{}\n", cfg);
    if let Some(a) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.insert(LAST_APPLIED.to_string(), Value::String(text));
    }
}
