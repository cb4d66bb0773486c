//! DELETE of one object: its options, preconditions, propagation policy and finalizers.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{existing_or_404, finalizers, remove_object};
use crate::registry::ResourceDef;
use crate::status::ApiError;
use crate::store::{Store, meta_str, now_rfc3339, rv_of, set_meta, uid_of};

/// Options of a delete request.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// What a delete did.
#[derive(Debug)]
pub enum Deleted {
    /// Still there, with a deletionTimestamp, waiting for finalizers.
    Pending(Value),
    /// Removed.
    Gone(Value),
}

/// DELETE of one object, honouring finalizers and the propagation policy.
pub fn delete(
    st: &mut Store,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
) -> Result<Deleted, ApiError> {
    let existing = Arc::unwrap_or_clone(existing_or_404(st, def, ns, name)?);
    if opts
        .precondition_uid
        .as_deref()
        .is_some_and(|u| u != uid_of(&existing))
    {
        return Err(ApiError::conflict_msg(
            &def.group,
            &def.plural,
            name,
            "Precondition failed: UID in precondition does not match the UID in record",
        ));
    }
    if opts
        .precondition_rv
        .as_deref()
        .is_some_and(|r| r != rv_of(&existing).to_string())
    {
        return Err(ApiError::conflict(&def.group, &def.plural, name));
    }
    if meta_str(&existing, "deletionTimestamp").is_some() {
        return Ok(Deleted::Pending(existing));
    }
    let mut fins = finalizers(&existing);
    match opts.propagation.as_deref() {
        Some("Foreground") => fins.push("foregroundDeletion".into()),
        Some("Orphan") => fins.push("orphan".into()),
        Some("Background") | None => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "",
                &format!(
                    "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
            ));
        }
    }
    let is_namespace = def.group.is_empty() && def.plural == "namespaces";
    if fins.is_empty() && !is_namespace {
        if opts.dry_run {
            return Ok(Deleted::Gone(existing));
        }
        let removed = remove_object(st, def, ns, name).unwrap_or(existing);
        return Ok(Deleted::Gone(removed));
    }
    let mut next = existing.clone();
    set_meta(&mut next, "deletionTimestamp", Value::String(now_rfc3339()));
    set_meta(&mut next, "deletionGracePeriodSeconds", json!(0));
    if !fins.is_empty() {
        set_meta(&mut next, "finalizers", json!(fins));
    }
    if is_namespace {
        next["status"] = json!({"phase": "Terminating"});
    }
    if opts.dry_run {
        return Ok(Deleted::Pending(next));
    }
    Ok(Deleted::Pending(st.put(def, next)))
}
