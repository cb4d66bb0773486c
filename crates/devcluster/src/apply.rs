//! Server-side apply and field ownership: fields owned per manager (`Apply` and `Update`
//! operations, per subresource), conflicts worded as the real server words them, `force`,
//! removal of fields an apply manager stops applying, list merging by the list-map keys, and the
//! `metadata.managedFields` entries (`FieldsV1`) that show the ownership.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::patch::merge_key;

/// The operation a managedFields entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// A field manager as the real server tells them apart: name, operation and subresource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Manager {
    pub operation: Operation,
    pub name: String,
    /// `""`, `status` or `scale`.
    pub subresource: String,
}

impl Manager {
    pub fn new(name: &str, operation: Operation, subresource: &str) -> Self {
        Self {
            operation,
            name: name.to_string(),
            subresource: subresource.to_string(),
        }
    }

    /// As the real server prints a manager in a conflict: `"kubectl"`, `"kubectl" with
    /// subresource "scale" using apps/v1` (the manager identity it prints carries no time).
    fn printed(&self, entry: &Entry) -> String {
        let mut out = format!("{:?}", self.name);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", entry.api_version));
        }
        out
    }
}

/// The fields one manager owns, and when and through which version it last wrote them.
///
/// The set is shared: every write copies the object's ownership to change it, and most writes
/// leave most managers' sets as they were. A set is copied only when it changes
/// ([`Entry::retain`], [`Entry::extend`]), and an unchanged set is recognised by its pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub fields: Arc<BTreeSet<FieldPath>>,
    pub api_version: String,
    pub time: String,
}

impl Entry {
    /// Keeps the fields `keep` accepts; the set is copied only if one goes.
    fn retain(&mut self, keep: impl Fn(&FieldPath) -> bool) {
        if !self.fields.iter().all(&keep) {
            Arc::make_mut(&mut self.fields).retain(keep);
        }
    }

    /// Adds `more`; the set is copied only if one is new.
    fn extend(&mut self, more: BTreeSet<FieldPath>) {
        if !more.is_subset(&self.fields) {
            Arc::make_mut(&mut self.fields).extend(more);
        }
    }

    /// Whether `other` owns the same fields (at once when the set is the same one).
    fn same_fields(&self, other: &Entry) -> bool {
        Arc::ptr_eq(&self.fields, &other.fields) || self.fields == other.fields
    }
}

/// Field ownership of one object.
pub type Owners = BTreeMap<Manager, Entry>;

/// Field-ownership conflicts of an apply without `force`.
#[derive(Debug, thiserror::Error)]
#[error("{}", conflict_message(&self.conflicts))]
pub struct ApplyConflict {
    /// (printed manager, field path) pairs.
    pub conflicts: Vec<(String, String)>,
}

/// `getConflictMessage` of the real server's field manager.
fn conflict_message(conflicts: &[(String, String)]) -> String {
    if let [(m, p)] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {m}: {p}");
    }
    let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (m, p) in conflicts {
        by_manager.entry(m).or_default().push(p);
    }
    let mut lines = Vec::new();
    for (m, paths) in by_manager {
        lines.push(format!("conflicts with {m}:"));
        lines.extend(paths.iter().map(|p| format!("- {p}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Field(String),
    /// A list element identified by its key field and the key's JSON value.
    Item(String, String),
}

pub type FieldPath = Vec<Seg>;

pub fn display(path: &FieldPath) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Field(f) => format!(".{f}"),
            Seg::Item(k, v) => format!("[{k}={v}]"),
        })
        .collect()
}

/// The field paths of `new` (a leaf, a list without a merge key, or a keyed list element and
/// the fields in it) whose value differs from `old`'s, list elements only when `old` lacks
/// them; with no `old`, all of them. It does not descend into a subtree equal in both, since
/// every path under it is unchanged: a write changes a few fields of an object, and walking all
/// of them on every write was most of what field tracking cost.
fn collect_changed(
    old: Option<&Value>,
    new: &Value,
    field: Option<&str>,
    prefix: &mut FieldPath,
    out: &mut BTreeSet<FieldPath>,
) {
    if old == Some(new) {
        return;
    }
    match new {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(Seg::Field(k.clone()));
                collect_changed(old.and_then(|o| o.get(k)), c, Some(k), prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let refs: Vec<&Value> = a.iter().collect();
            match field.and_then(|f| merge_key(f, &refs)) {
                Some(key) if a.iter().all(|e| e.get(key).is_some()) => {
                    for e in a {
                        let kv = e.get(key).map(Value::to_string).unwrap_or_default();
                        prefix.push(Seg::Item(key.to_string(), kv));
                        let before = old.and_then(|o| get(o, &prefix[prefix.len() - 1..]));
                        if before.is_none() {
                            out.insert(prefix.clone());
                        }
                        collect_changed(before, e, None, prefix, out);
                        prefix.pop();
                    }
                }
                _ => {
                    out.insert(prefix.clone());
                }
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The fields an applied configuration sets (identity fields excluded).
pub fn field_set(config: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    collect_changed(None, config, None, &mut Vec::new(), &mut out);
    without_identity(out)
}

/// `set` without the fields that name the object rather than configure it.
fn without_identity(mut out: BTreeSet<FieldPath>) -> BTreeSet<FieldPath> {
    let f = |s: &str| Seg::Field(s.to_string());
    for identity in [
        vec![f("apiVersion")],
        vec![f("kind")],
        vec![f("metadata"), f("name")],
        vec![f("metadata"), f("namespace")],
        vec![f("metadata"), f("resourceVersion")],
    ] {
        out.remove(&identity);
    }
    out
}

/// A copy of a stored object for a write to change, without `metadata.managedFields`. Every
/// write builds those again from the ownership the store keeps beside the object
/// (`ops::fields::track_fields`), so copying them into the candidate, comparing them with the
/// stored ones and dropping them was work for nothing (most of a Deployment's size is its
/// managedFields).
pub fn copy_to_change(stored: &Value) -> Value {
    let Some(top) = stored.as_object() else {
        return stored.clone();
    };
    let copy = top
        .iter()
        .map(|(k, v)| {
            let v = match (k.as_str(), v.as_object()) {
                ("metadata", Some(meta)) => Value::Object(
                    meta.iter()
                        .filter(|(k, _)| *k != "managedFields")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    Value::Object(copy)
}

/// Whether `v` written as JSON is `text`: how a list element is found by the key of its path
/// (`k:{"name":"app"}`), compared as it is written, without building the string (this runs
/// for every element on the way to every owned field on every write).
fn prints_as(v: &Value, text: &str) -> bool {
    struct Rest<'a>(&'a str);
    impl std::fmt::Write for Rest<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 = self.0.strip_prefix(s).ok_or(std::fmt::Error)?;
            Ok(())
        }
    }
    let mut rest = Rest(text);
    std::fmt::write(&mut rest, format_args!("{v}")).is_ok() && rest.0.is_empty()
}

pub fn get<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for s in path {
        cur = match s {
            Seg::Field(f) => cur.get(f)?,
            Seg::Item(k, kv) => cur
                .as_array()?
                .iter()
                .find(|e| e.get(k).is_some_and(|v| prints_as(v, kv)))?,
        };
    }
    Some(cur)
}

fn remove(v: &mut Value, path: &[Seg]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for s in parent_path {
        let next = match s {
            Seg::Field(f) => cur.get_mut(f),
            Seg::Item(k, kv) => cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|e| e.get(k).is_some_and(|v| prints_as(v, kv)))
            }),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Seg::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Seg::Item(k, kv) => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|e| !e.get(k).is_some_and(|v| prints_as(v, kv)));
            }
        }
    }
}

/// Merges an applied configuration: maps recursively, keyed lists by key, other lists replaced.
pub fn merge_applied(live: &mut Value, config: &Value, field: Option<&str>) {
    match (live, config) {
        (Value::Object(lm), Value::Object(cm)) => {
            for (k, cv) in cm {
                match lm.get_mut(k) {
                    Some(lv) => merge_applied(lv, cv, Some(k)),
                    None => {
                        lm.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (live @ Value::Array(_), Value::Array(ca)) => {
            let key = {
                let Value::Array(la) = &*live else {
                    return;
                };
                let refs: Vec<&Value> = ca.iter().chain(la.iter()).collect();
                field
                    .and_then(|f| merge_key(f, &refs))
                    .filter(|k| ca.iter().all(|e| e.get(*k).is_some()))
            };
            match (key, live) {
                (Some(key), Value::Array(la)) => {
                    for ce in ca {
                        match la.iter_mut().find(|le| le.get(key) == ce.get(key)) {
                            Some(le) => merge_applied(le, ce, None),
                            None => la.push(ce.clone()),
                        }
                    }
                }
                (_, live) => *live = config.clone(),
            }
        }
        (live, config) => *live = config.clone(),
    }
}

/// Applies `config` for `who` on `live` (or on nothing, for a create). Updates `owners`.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    who: &Manager,
    force: bool,
    owners: &mut Owners,
    stamp: (&str, &str),
) -> Result<Value, ApplyConflict> {
    let new_set = tracked(field_set(config));
    let mut conflicts = Vec::new();
    if let Some(live) = live {
        for p in &new_set {
            if matches!(p.last(), Some(Seg::Item(..))) {
                continue;
            }
            for (m, e) in owners.iter() {
                if m != who && e.fields.contains(p) && get(live, p) != get(config, p) {
                    conflicts.push((m.printed(e), display(p)));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyConflict { conflicts });
    }
    if force {
        for (m, e) in owners.iter_mut() {
            if m != who {
                e.retain(|p| !new_set.contains(p) || matches!(p.last(), Some(Seg::Item(..))));
            }
        }
    }
    // Without the managedFields: the write renders them from `owners`.
    let mut merged = live.map_or_else(|| Value::Object(Map::new()), copy_to_change);
    merge_applied(&mut merged, config, None);
    let old_set = owners.remove(who).map(|e| e.fields).unwrap_or_default();
    let others: BTreeSet<&FieldPath> = owners.values().flat_map(|e| e.fields.iter()).collect();
    // Deepest first, so an element is judged after its fields.
    let mut dropped: Vec<&FieldPath> = old_set.difference(&new_set).collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        let owned_below = others.iter().any(|o| o.starts_with(p));
        let applied_below = new_set.iter().any(|o| o.starts_with(p));
        if !owned_below && !applied_below {
            remove(&mut merged, p);
            // A map the removal left empty goes too, as on the real server (whose removal
            // keeps a map only when something is left in it): dropping a struct the manager
            // owned field by field removes the struct, not just its fields.
            for end in (1..p.len()).rev() {
                let parent = &p[..end];
                if matches!(parent.last(), Some(Seg::Field(_)))
                    && get(&merged, parent)
                        .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
                {
                    remove(&mut merged, parent);
                } else {
                    break;
                }
            }
        }
    }
    owners.retain(|_, e| !e.fields.is_empty());
    owners.insert(
        who.clone(),
        Entry {
            fields: Arc::new(new_set),
            api_version: stamp.0.to_string(),
            time: stamp.1.to_string(),
        },
    );
    Ok(merged)
}

/// Metadata fields the server owns itself; they are never in a manager's set.
fn tracked(mut set: BTreeSet<FieldPath>) -> BTreeSet<FieldPath> {
    set.retain(|p| {
        !matches!(
            p.as_slice(),
            [Seg::Field(m), Seg::Field(f), ..] if m == "metadata" && matches!(
                f.as_str(),
                "uid" | "resourceVersion" | "generation" | "creationTimestamp" | "managedFields"
                    | "selfLink" | "deletionTimestamp" | "deletionGracePeriodSeconds"
            )
        )
    });
    set
}

/// A create, update or patch by `who` (an `Update` manager): the fields it set or changed
/// become its own (taken from any other manager, without conflicts), and fields the object no
/// longer has leave every set.
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    who: &Manager,
    owners: &mut Owners,
    stamp: (&str, &str),
) {
    // The fields set or changed; a list element is owned by who added it, not by who changed a
    // field in it.
    let changed: BTreeSet<FieldPath> = match old {
        None => tracked(field_set(new)),
        Some(old) => {
            let mut out = BTreeSet::new();
            collect_changed(Some(old), new, None, &mut Vec::new(), &mut out);
            tracked(without_identity(out))
        }
    };
    if !changed.is_empty() {
        for (m, e) in owners.iter_mut() {
            if m != who {
                e.retain(|p| !changed.contains(p));
            }
        }
        let entry = owners.entry(who.clone()).or_default();
        entry.extend(changed);
        entry.api_version = stamp.0.to_string();
        entry.time = stamp.1.to_string();
    }
    forget_missing(new, owners);
}

/// A write with no manager (the dev cluster's own): only fields that left the object leave
/// the sets.
pub fn forget_missing(new: &Value, owners: &mut Owners) {
    for e in owners.values_mut() {
        e.retain(|p| get(new, p).is_some());
    }
    owners.retain(|_, e| !e.fields.is_empty());
}

/// `metadata.managedFields` for `owners`, in the API server's order (apimachinery's
/// `sortEncodedManagedFields`): Apply entries first, then by time (whole seconds), manager,
/// API version and subresource.
pub fn managed_fields(owners: &Owners) -> Value {
    managed_fields_after(owners, None)
}

/// [`managed_fields`] of an object written again: `previous` is its ownership before the write
/// with the `metadata.managedFields` rendered from it. A manager whose fields did not change
/// keeps its rendered `fieldsV1` (copied, not built again: most writes change values, not
/// fields).
pub fn managed_fields_after(owners: &Owners, previous: Option<(&Owners, &Value)>) -> Value {
    let rendered = |m: &Manager, e: &Entry| -> Value {
        previous
            .filter(|(before, _)| before.get(m).is_some_and(|b| b.same_fields(e)))
            .and_then(|(_, json)| {
                json.as_array()?.iter().find(|v| {
                    v.get("manager").and_then(Value::as_str) == Some(m.name.as_str())
                        && v.get("operation").and_then(Value::as_str) == Some(m.operation.as_str())
                        && v.get("subresource")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            == m.subresource
                })
            })
            .and_then(|v| v.get("fieldsV1").cloned())
            .unwrap_or_else(|| fields_v1(&e.fields))
    };
    let mut entries: Vec<(&Manager, &Entry)> = owners.iter().collect();
    entries.sort_by(|(ma, ea), (mb, eb)| {
        (
            ma.operation,
            &ea.time,
            &ma.name,
            &ea.api_version,
            &ma.subresource,
        )
            .cmp(&(
                mb.operation,
                &eb.time,
                &mb.name,
                &eb.api_version,
                &mb.subresource,
            ))
    });
    // Built field by field: `json!` would serialise the (possibly copied) `fieldsV1` tree into
    // a second copy.
    let text = |s: &str| Value::String(s.to_string());
    Value::Array(
        entries
            .into_iter()
            .map(|(m, e)| {
                let mut v = Map::new();
                v.insert("manager".into(), text(&m.name));
                v.insert("operation".into(), text(m.operation.as_str()));
                v.insert("apiVersion".into(), text(&e.api_version));
                v.insert("time".into(), text(&e.time));
                v.insert("fieldsType".into(), text("FieldsV1"));
                v.insert("fieldsV1".into(), rendered(m, e));
                if !m.subresource.is_empty() {
                    v.insert("subresource".into(), text(&m.subresource));
                }
                Value::Object(v)
            })
            .collect(),
    )
}

/// Ownership as a client sent it in `metadata.managedFields` (kubectl does when it moves an
/// object from client-side to server-side apply). `[{}]` means none; entries without a manager
/// are skipped. A list element keyed by several fields (`containerPort` and `protocol`) is
/// keyed here by the first of them that is not `protocol`.
pub fn decode_managed_fields(v: &Value) -> Owners {
    let mut owners = Owners::new();
    for e in v.as_array().into_iter().flatten() {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
        if s("manager").is_empty() {
            continue;
        }
        let operation = if s("operation") == "Apply" {
            Operation::Apply
        } else {
            Operation::Update
        };
        let mut fields = BTreeSet::new();
        if let Some(tree) = e.get("fieldsV1") {
            decode_fields(tree, &mut Vec::new(), &mut fields);
        }
        owners.insert(
            Manager::new(s("manager"), operation, s("subresource")),
            Entry {
                fields: Arc::new(fields),
                api_version: s("apiVersion").to_string(),
                time: s("time").to_string(),
            },
        );
    }
    owners.retain(|_, e| !e.fields.is_empty());
    owners
}

fn decode_fields(tree: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Some(m) = tree.as_object() else { return };
    if m.is_empty() && !prefix.is_empty() {
        out.insert(prefix.clone());
        return;
    }
    for (k, child) in m {
        if k == "." {
            if matches!(prefix.last(), Some(Seg::Item(..))) {
                out.insert(prefix.clone());
            }
        } else if let Some(f) = k.strip_prefix("f:") {
            prefix.push(Seg::Field(f.to_string()));
            decode_fields(child, prefix, out);
            prefix.pop();
        } else if let Some(key) = k.strip_prefix("k:") {
            let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(key) else {
                continue;
            };
            let chosen = keys
                .iter()
                .find(|(name, _)| name.as_str() != "protocol")
                .or_else(|| keys.iter().next());
            if let Some((name, value)) = chosen {
                prefix.push(Seg::Item(name.clone(), value.to_string()));
                decode_fields(child, prefix, out);
                prefix.pop();
            }
        } else if k.starts_with("v:") && !prefix.is_empty() {
            // An element of a list of scalars: the list as a whole.
            out.insert(prefix.clone());
        }
    }
}

/// The `FieldsV1` trie of a field set: `f:name` for fields, `k:{"name":"app"}` for list
/// elements (with `.` when the element itself is owned), `{}` for leaves.
pub fn fields_v1(set: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in set {
        insert_path(&mut root, path);
    }
    Value::Object(root)
}

fn insert_path(node: &mut Map<String, Value>, path: &[Seg]) {
    let Some((seg, rest)) = path.split_first() else {
        return;
    };
    let key = match seg {
        Seg::Field(f) => format!("f:{f}"),
        Seg::Item(k, kv) => format!("k:{{{}:{kv}}}", json!(k)),
    };
    let child = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = child {
        if rest.is_empty() && matches!(seg, Seg::Item(..)) {
            m.insert(".".into(), json!({}));
        }
        insert_path(m, rest);
    }
}

#[cfg(test)]
mod tests;
