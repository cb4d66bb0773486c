//! Write semantics shared by the HTTP handlers and the in-process actors (simulator, GC):
//! create, update, patch, delete, status and scale subresources, generation rules, finalizers.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::apply::{self, copy_to_change};
use crate::convert;
use crate::defaults::{
    apply_defaults, check_body, get_path, initial_status, set_path, validate_labels, validate_name,
};
use crate::patch::{self, PatchType};
use crate::registry::{GenRule, ResourceDef};
use crate::status::ApiError;
use crate::store::{
    Store, meta_str, name_of, namespace_of, new_uid, now_rfc3339, random_suffix, remove_meta,
    rv_of, same_except, set_meta, uid_of,
};

mod delete;
mod fields;
mod scale;

pub use delete::{DeleteOpts, Deleted, delete};
use fields::{sync_last_applied, track_fields};
pub use scale::scale_of;
use scale::scale_to_object;

/// Which part of an object a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
    Scale,
}

/// Options of a write request.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub force: bool,
    /// `fieldValidation=Strict`: unknown fields of a custom resource are an error.
    pub strict: bool,
    /// The client's `User-Agent` (empty when it sent none; `None` for the dev cluster's own
    /// writes); its first word names the field manager of an update that gives no
    /// `fieldManager`, as on a real server.
    pub user_agent: Option<String>,
    /// The ownership an apply computed (then it is not recorded as an update).
    pub(crate) applied: Option<apply::Owners>,
    /// The write came through the scale subresource.
    pub(crate) scale: bool,
}

/// The stored resource when `def` is another view of it (`events.k8s.io` events).
fn storage_def(st: &Store, def: &ResourceDef) -> Option<Arc<ResourceDef>> {
    def.storage.as_deref().and_then(|k| st.registry.by_key(k))
}

fn is_crd(def: &ResourceDef) -> bool {
    def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions"
}

/// Checks that `ns` exists and is not terminating (for creates in a namespace).
fn check_namespace(st: &Store, ns: &str) -> Result<(), ApiError> {
    let Some(n) = st.get("/namespaces", "", ns) else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    if meta_str(n, "deletionTimestamp").is_some() {
        return Err(ApiError::forbidden(format!(
            "unable to create new content in namespace {ns} because it is being terminated"
        )));
    }
    Ok(())
}

/// POST: creates an object.
pub fn create(
    st: &mut Store,
    def: &ResourceDef,
    version: &str,
    ns: &str,
    mut body: Value,
    opts: &WriteOpts,
) -> Result<Arc<Value>, ApiError> {
    check_body(def, version, ns, &body)?;
    if let Some(sdef) = storage_def(st, def) {
        let body = convert::to_storage(def, body);
        return create(st, &sdef, sdef.preferred_version(), ns, body, opts);
    }
    let ns = if def.namespaced { ns } else { "" };
    let mut name = meta_str(&body, "name").unwrap_or_default().to_string();
    if name.is_empty() {
        let gen_name = meta_str(&body, "generateName").unwrap_or_default();
        if gen_name.is_empty() {
            return Err(ApiError::invalid(
                &def.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        name = format!("{gen_name}{}", random_suffix(5));
    }
    validate_name(def, &name)?;
    validate_labels(def, &body)?;
    if def.namespaced {
        check_namespace(st, ns)?;
    }
    if st.get(&def.store_key(), ns, &name).is_some() {
        return Err(ApiError::already_exists(&def.group, &def.plural, &name));
    }
    body["apiVersion"] = Value::String(def.api_version(def.preferred_version()));
    set_meta(&mut body, "name", Value::String(name.clone()));
    if def.namespaced {
        set_meta(&mut body, "namespace", Value::String(ns.to_string()));
    } else {
        remove_meta(&mut body, "namespace");
    }
    for k in [
        "resourceVersion",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        remove_meta(&mut body, k);
    }
    set_meta(&mut body, "uid", Value::String(new_uid()));
    set_meta(&mut body, "creationTimestamp", Value::String(now_rfc3339()));
    if def.generation != GenRule::None {
        set_meta(&mut body, "generation", json!(1));
    }
    if def.status
        && let Some(m) = body.as_object_mut()
    {
        m.remove("status");
    }
    if let Some(s) = initial_status(def, &body) {
        body["status"] = s;
    }
    apply_defaults(def, &mut body);
    if def.group.is_empty() && def.plural == "services" {
        allocate_cluster_ip(st, &mut body, opts.dry_run);
    }
    conform(def, version, &name, &mut body, opts)?;
    let owners = track_fields(st, None, None, &mut body, Sub::Main, opts);
    if is_crd(def) {
        // Validate (and on a real write, register) the new resource.
        let mut scratch = st.registry.clone();
        scratch.register_crd(&body)?;
        if !opts.dry_run {
            st.registry = scratch;
        }
    }
    if opts.dry_run {
        return Ok(Arc::new(body));
    }
    if !owners.is_empty() {
        st.owners.insert(uid_of(&body).to_string(), owners);
    }
    Ok(st.put_shared(def, body))
}

fn generation_changes(def: &ResourceDef, old: &Value, new: &Value) -> bool {
    match def.generation {
        GenRule::None => false,
        GenRule::Apps => {
            old.get("spec") != new.get("spec")
                || old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations")
        }
        GenRule::Spec => !same_except(old, new, &["metadata", "status"]),
        GenRule::NonMetadata => !same_except(old, new, &["metadata"]),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Turns a candidate for an existing object into the stored form, checks the write rules and
/// stores it (or removes it when a deleting object lost its last finalizer).
pub fn finish_update(
    st: &mut Store,
    def: &ResourceDef,
    existing: &Value,
    mut cand: Value,
    sub: Sub,
    opts: &WriteOpts,
) -> Result<Arc<Value>, ApiError> {
    if !cand.is_object() || cand.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(ApiError::bad_request(
            "the object must be a JSON object with object metadata",
        ));
    }
    let name = name_of(existing).to_string();
    if sub == Sub::Status {
        // A status write keeps everything else as stored. The candidate of a patch mostly is
        // the stored object with a new status already; only one that changed more is rebuilt.
        if !only_status_differs(existing, &cand) {
            let mut next = copy_to_change(existing);
            match cand.get_mut("status").map(Value::take) {
                Some(s) => next["status"] = s,
                None => {
                    if let Some(m) = next.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            cand = next;
        }
    } else if def.status {
        match existing.get("status") {
            // A patch's candidate already has it (unchanged: no copy).
            Some(s) if cand.get("status") == Some(s) => {}
            Some(s) => cand["status"] = s.clone(),
            None => {
                if let Some(m) = cand.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    cand["apiVersion"] = existing.get("apiVersion").cloned().unwrap_or(Value::Null);
    cand["kind"] = Value::String(def.kind.clone());
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match existing.get("metadata").and_then(|m| m.get(k)) {
            Some(v) => set_meta(&mut cand, k, v.clone()),
            None => {
                remove_meta(&mut cand, k);
            }
        }
    }
    if def.group.is_empty() && def.plural == "services" && sub == Sub::Main {
        // `patchAllocatedValues`: an update that leaves the cluster IPs out keeps them.
        for f in ["clusterIP", "clusterIPs"] {
            let unset = get_path(&cand, &format!("spec.{f}"))
                .is_none_or(|v| v.is_null() || v.as_str() == Some(""));
            if unset && let Some(v) = get_path(existing, &format!("spec.{f}")).cloned() {
                set_path(&mut cand, &format!("spec.{f}"), v);
            }
        }
    }
    let sent_fields = remove_meta(&mut cand, "managedFields");
    remove_meta(&mut cand, "selfLink");
    validate_labels(def, &cand)?;
    apply_defaults(def, &mut cand);
    let deleting = meta_str(existing, "deletionTimestamp").is_some();
    let new_finalizers = finalizers(&cand);
    if deleting {
        let old = finalizers(existing);
        if let Some(added) = new_finalizers.iter().find(|f| !old.contains(f)) {
            return Err(ApiError::invalid(
                &def.kind,
                &name,
                &format!(
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{added}\"]"
                ),
            ));
        }
    }
    if sub != Sub::Status && generation_changes(def, existing, &cand) {
        let g = existing
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        set_meta(&mut cand, "generation", json!(g + 1));
    }
    if is_crd(def) && sub == Sub::Main {
        let mut scratch = st.registry.clone();
        scratch.register_crd(&cand)?;
        if !opts.dry_run && !only_status_differs(existing, &cand) {
            st.registry = scratch;
        }
    }
    let owners = track_fields(st, Some(existing), sent_fields, &mut cand, sub, opts);
    if opts.dry_run {
        return Ok(Arc::new(cand));
    }
    let uid = uid_of(existing).to_string();
    if owners.is_empty() {
        st.owners.remove(&uid);
    } else {
        st.owners.insert(uid, owners);
    }
    if deleting
        && new_finalizers.is_empty()
        && !(def.group.is_empty() && def.plural == "namespaces")
    {
        let ns = namespace_of(existing).to_string();
        return Ok(Arc::new(remove_object(st, def, &ns, &name).unwrap_or(cand)));
    }
    Ok(st.put_shared(def, cand))
}

/// Whether a status write's candidate changes nothing but the status. A candidate without
/// `metadata.managedFields` ([`copy_to_change`]) leaves them as stored; one that has them must
/// have them as stored.
fn only_status_differs(stored: &Value, cand: &Value) -> bool {
    let leaves_managed_fields = cand
        .get("metadata")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.contains_key("managedFields"));
    if !leaves_managed_fields {
        return same_except(stored, cand, &["status"]);
    }
    same_except(stored, cand, &["status", "metadata"])
        && match (stored.get("metadata"), cand.get("metadata")) {
            (Some(a), Some(b)) => same_except(a, b, &["managedFields"]),
            (a, b) => a == b,
        }
}

/// A new Service gets a cluster IP (from 10.96.0.10 on) unless it is headless (`None`) or an
/// `ExternalName`; `clusterIPs` follows `clusterIP`, as on a real server.
fn allocate_cluster_ip(st: &mut Store, svc: &mut Value, dry_run: bool) {
    if get_path(svc, "spec.type") == Some(&json!("ExternalName")) {
        return;
    }
    let ip = match get_path(svc, "spec.clusterIP").and_then(Value::as_str) {
        Some(ip) if !ip.is_empty() => ip.to_string(),
        _ => {
            let n = 10 + st.cluster_ips;
            if !dry_run {
                st.cluster_ips += 1;
            }
            let ip = format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff);
            set_path(svc, "spec.clusterIP", json!(ip));
            ip
        }
    };
    if get_path(svc, "spec.clusterIPs").is_none_or(Value::is_null) {
        set_path(svc, "spec.clusterIPs", json!([ip]));
    }
}

/// A custom resource as the CRD's schema of `version` makes it: `null`s dropped, defaults set,
/// unknown fields pruned (an error with `fieldValidation=Strict`), then validated.
fn conform(
    def: &ResourceDef,
    version: &str,
    name: &str,
    obj: &mut Value,
    opts: &WriteOpts,
) -> Result<(), ApiError> {
    let Some(schema) = def.schemas.get(version).filter(|_| def.crd) else {
        return Ok(());
    };
    let out = crate::schema::normalise(schema, obj);
    if opts.strict && !out.unknown_fields.is_empty() {
        let list: Vec<String> = out
            .unknown_fields
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            list.join(", "),
            kind = def.kind
        )));
    }
    let errs = crate::schema::validate(schema, obj);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(&def.group, &def.kind, name, &errs))
    }
}

/// Removes an object for good, with the side effects of removing a CRD.
pub fn remove_object(st: &mut Store, def: &ResourceDef, ns: &str, name: &str) -> Option<Value> {
    let removed = st.remove(def, ns, name)?;
    if is_crd(def) {
        let group = removed
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = removed
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = format!("{group}/{plural}");
        if let Some(cr_def) = st.registry.by_key(&key) {
            st.remove_all(&cr_def);
            st.registry.unregister(&key);
        }
    }
    Some(removed)
}

/// The stored object (shared, not copied: a write builds its next state from it).
fn existing_or_404(
    st: &Store,
    def: &ResourceDef,
    ns: &str,
    name: &str,
) -> Result<Arc<Value>, ApiError> {
    st.get_shared(&def.store_key(), ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))
}

fn check_rv(def: &ResourceDef, existing: &Value, cand: &Value) -> Result<(), ApiError> {
    match meta_str(cand, "resourceVersion") {
        Some(rv) if !rv.is_empty() && rv != rv_of(existing).to_string() => Err(ApiError::conflict(
            &def.group,
            &def.plural,
            name_of(existing),
        )),
        _ => Ok(()),
    }
}

/// PUT on an object or its status/scale subresource.
#[allow(clippy::too_many_arguments)]
pub fn update(
    st: &mut Store,
    def: &ResourceDef,
    version: &str,
    ns: &str,
    name: &str,
    mut body: Value,
    sub: Sub,
    opts: &WriteOpts,
) -> Result<Arc<Value>, ApiError> {
    let existing = existing_or_404(st, def, ns, name)?;
    if sub == Sub::Scale {
        check_rv(def, &existing, &body)?;
        let next = scale_to_object(def, &existing, &body)?;
        let scale_opts = WriteOpts {
            scale: true,
            ..opts.clone()
        };
        let stored = finish_update(st, def, &existing, next, Sub::Main, &scale_opts)?;
        return scale_of(def, &stored).map(Arc::new);
    }
    check_body(def, version, ns, &body)?;
    let body_name = name_of(&body);
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    check_rv(def, &existing, &body)?;
    conform(def, version, name, &mut body, opts)?;
    match storage_def(st, def) {
        Some(sdef) => finish_update(
            st,
            &sdef,
            &existing,
            convert::to_storage(def, body),
            sub,
            opts,
        ),
        None => finish_update(st, def, &existing, body, sub, opts),
    }
}

/// PATCH of any type on an object or a subresource. Apply patches create missing objects.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    st: &mut Store,
    def: &ResourceDef,
    version: &str,
    ns: &str,
    name: &str,
    ptype: PatchType,
    body: &Value,
    sub: Sub,
    opts: &WriteOpts,
) -> Result<Arc<Value>, ApiError> {
    if ptype == PatchType::Strategic && !def.strategic {
        return Err(ApiError::unsupported_media(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    let manager = opts.field_manager.clone().unwrap_or_default();
    if ptype == PatchType::Apply && manager.is_empty() {
        return Err(ApiError::invalid(
            &def.kind,
            name,
            "metadata.managedFields.fieldManager: Required value: is required for apply patch",
        ));
    }
    let existing = st.get_shared(&def.store_key(), ns, name).cloned();
    let Some(existing) = existing else {
        if ptype == PatchType::Apply && sub == Sub::Main {
            let mut owners = apply::Owners::new();
            let who = apply::Manager::new(&manager, apply::Operation::Apply, "");
            let stamp = (def.api_version(version), now_rfc3339());
            let mut obj = apply::apply(
                None,
                body,
                &who,
                opts.force,
                &mut owners,
                (&stamp.0, &stamp.1),
            )
            .map_err(|c| ApiError::apply_conflict(&c))?;
            set_meta(&mut obj, "name", Value::String(name.to_string()));
            let applied = WriteOpts {
                applied: Some(owners),
                ..opts.clone()
            };
            return create(st, def, version, ns, obj, &applied);
        }
        return Err(ApiError::not_found(&def.group, &def.plural, name));
    };
    if ptype == PatchType::Apply {
        if !body.is_object() {
            return Err(ApiError::bad_request("apply body must be an object"));
        }
        if sub == Sub::Main {
            check_body(def, version, ns, body)?;
            if !name_of(body).is_empty() && name_of(body) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    name_of(body)
                )));
            }
        }
    }
    // A patch applies to the object as served through `def` (an apply reads it and builds
    // the result, the other patches change a copy).
    let served = match sub {
        Sub::Scale => Cow::Owned(scale_of(def, &existing)?),
        _ => convert::from_storage(def, &existing),
    };
    let mut new_owners = None;
    let mut target = match (ptype, served) {
        (PatchType::Apply | PatchType::Json, served) => served,
        // A merge patch (strategic or not) of `metadata.managedFields` replaces the list
        // whatever it held, so the copy it changes need not carry it.
        (_, Cow::Borrowed(stored)) => Cow::Owned(copy_to_change(stored)),
        (_, Cow::Owned(mut converted)) => {
            remove_meta(&mut converted, "managedFields");
            Cow::Owned(converted)
        }
    };
    match ptype {
        PatchType::Merge => patch::merge(target.to_mut(), body),
        PatchType::Json => patch::json_patch(target.to_mut(), body)
            .map_err(|e| ApiError::invalid(&def.kind, name, &e.to_string()))?,
        PatchType::Strategic => patch::strategic_merge(target.to_mut(), body)
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        PatchType::Apply => {
            let mut owners = st
                .owners
                .get(uid_of(&existing))
                .cloned()
                .unwrap_or_default();
            let subresource = match sub {
                Sub::Status => "status",
                Sub::Scale => "scale",
                Sub::Main => "",
            };
            let who = apply::Manager::new(&manager, apply::Operation::Apply, subresource);
            let stamp = (def.api_version(version), now_rfc3339());
            let mut applied = apply::apply(
                Some(&target),
                body,
                &who,
                opts.force,
                &mut owners,
                (&stamp.0, &stamp.1),
            )
            .map_err(|c| ApiError::apply_conflict(&c))?;
            if manager == "kubectl" && sub == Sub::Main {
                sync_last_applied(&mut applied, body);
            }
            target = Cow::Owned(applied);
            new_owners = Some(owners);
        }
    }
    let mut target = target.into_owned();
    let opts = &WriteOpts {
        applied: new_owners,
        scale: sub == Sub::Scale,
        ..opts.clone()
    };
    // The object as served (the scale or the events view) keeps the stored resourceVersion.
    if meta_str(&target, "resourceVersion") != meta_str(&existing, "resourceVersion") {
        check_rv(def, &existing, &target)?;
    }
    if name_of(&target) != name {
        return Err(ApiError::bad_request(
            "metadata.name cannot be changed by a patch",
        ));
    }
    if sub != Sub::Scale {
        conform(def, version, name, &mut target, opts)?;
    }
    let result = if sub == Sub::Scale {
        let next = scale_to_object(def, &existing, &target)?;
        let stored = finish_update(st, def, &existing, next, Sub::Main, opts)?;
        Arc::new(scale_of(def, &stored)?)
    } else if let Some(sdef) = storage_def(st, def) {
        let target = convert::to_storage(def, target);
        finish_update(st, &sdef, &existing, target, sub, opts)?
    } else {
        finish_update(st, def, &existing, target, sub, opts)?
    };
    Ok(result)
}

#[cfg(test)]
mod tests;
