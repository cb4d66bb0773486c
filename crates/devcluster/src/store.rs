//! The in-memory store: objects by resource, one global resourceVersion counter, an event log with
//! a compaction horizon, a broadcast of changes to watchers, and no-op write detection.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio::sync::{Notify, broadcast};

use crate::apply::Owners;
use crate::registry::{Registry, ResourceDef};

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as logged and broadcast.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    /// Store key of the resource (`group/plural`).
    pub res: String,
    pub etype: EventType,
    pub object: Arc<Value>,
    /// The state before a modification (to turn selector changes into ADDED/DELETED).
    pub old: Option<Arc<Value>>,
}

/// Errors of the store itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
}

/// The whole cluster state. Guarded by one mutex; every method is short and synchronous.
pub struct Store {
    rv: u64,
    pub registry: Registry,
    /// Shared with the events that carry them: a write copies an object once, not once for
    /// the store, once for its event and once for the state it replaced.
    objects: HashMap<String, BTreeMap<String, Arc<Value>>>,
    log: VecDeque<Arc<Event>>,
    log_cap: usize,
    /// Watches may resume from any resourceVersion >= this.
    compacted: u64,
    tx: broadcast::Sender<Arc<Event>>,
    /// Server-side apply ownership, by object uid.
    pub owners: HashMap<String, Owners>,
    /// Woken when the garbage collector may have work: a deletion, an object being deleted,
    /// or an owner reference to an object that does not exist.
    pub gc_notify: Arc<Notify>,
    /// The uids of the stored objects, so that a write with owner references wakes the
    /// collector only when an owner is missing (a full collection scans every object).
    uids: HashSet<String>,
    /// Service cluster IPs handed out so far (from 10.96.0.10 on).
    pub cluster_ips: u32,
}

/// `ns/name` (empty namespace for cluster-scoped objects).
pub fn obj_key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

pub fn name_of(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or_default()
}

pub fn namespace_of(obj: &Value) -> &str {
    meta_str(obj, "namespace").unwrap_or_default()
}

pub fn uid_of(obj: &Value) -> &str {
    meta_str(obj, "uid").unwrap_or_default()
}

pub fn rv_of(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Sets `metadata.<key>` (creating `metadata` if needed; no-op on non-objects).
pub fn set_meta(obj: &mut Value, key: &str, v: Value) {
    if let Some(o) = obj.as_object_mut() {
        let m = o
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !m.is_object() {
            *m = Value::Object(serde_json::Map::new());
        }
        if let Some(m) = m.as_object_mut() {
            m.insert(key.to_string(), v);
        }
    }
}

/// Removes `metadata.<key>`.
pub fn remove_meta(obj: &mut Value, key: &str) -> Option<Value> {
    obj.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(key))
}

/// A random UUID-shaped string (v4 layout).
pub fn new_uid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Lower-case alphanumerics for `generateName` suffixes and tokens.
pub fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = RandomState::new().build_hasher();
    let mut out = String::new();
    let mut x = 0u64;
    for i in 0..len {
        if i % 8 == 0 {
            h.write_usize(i);
            x = h.finish();
        }
        out.push(char::from(ALPHABET[(x % ALPHABET.len() as u64) as usize]));
        x /= ALPHABET.len() as u64;
    }
    out
}

/// Now, RFC 3339 with second precision (as on the wire).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Objects equal apart from their resourceVersion (compared in place: every write asks).
fn same_content(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    a.len() == b.len()
        && a.iter().all(|(k, va)| match b.get(k) {
            Some(vb) if k == "metadata" => same_but_version(va, vb),
            Some(vb) => va == vb,
            None => false,
        })
}

/// Metadata equal apart from `resourceVersion`.
fn same_but_version(a: &Value, b: &Value) -> bool {
    same_except(a, b, &["resourceVersion"])
}

/// Whether two objects are equal apart from their top-level fields `skip` (compared in place,
/// without copies).
pub(crate) fn same_except(a: &Value, b: &Value, skip: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let kept = |m: &serde_json::Map<String, Value>| {
        m.keys().filter(|k| !skip.contains(&k.as_str())).count()
    };
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .all(|(k, va)| b.get(k) == Some(va))
}

impl Store {
    pub fn new(log_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(16384);
        Self {
            rv: 1,
            registry: Registry::new(),
            objects: HashMap::new(),
            log: VecDeque::new(),
            log_cap: log_cap.max(1),
            compacted: 1,
            tx,
            owners: HashMap::new(),
            cluster_ips: 0,
            gc_notify: Arc::new(Notify::new()),
            uids: HashSet::new(),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    pub fn get(&self, res: &str, ns: &str, name: &str) -> Option<&Value> {
        self.get_shared(res, ns, name).map(|o| &**o)
    }

    /// The stored object itself, to keep past a write without copying it.
    pub fn get_shared(&self, res: &str, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(res)
            .and_then(|m| m.get(&obj_key(ns, name)))
    }

    /// Objects of a resource, sorted by `ns/name`, optionally in one namespace, starting after a key.
    pub fn list<'a>(
        &'a self,
        res: &str,
        ns: Option<&'a str>,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        let map = self.objects.get(res);
        let start = match (ns, after) {
            (_, Some(a)) => std::ops::Bound::Excluded(a.to_string()),
            (Some(ns), None) => std::ops::Bound::Included(format!("{ns}/")),
            (None, None) => std::ops::Bound::Unbounded,
        };
        map.into_iter()
            .flat_map(move |m| m.range((start.clone(), std::ops::Bound::Unbounded)))
            .take_while(move |(k, _)| ns.is_none_or(|ns| k.starts_with(&format!("{ns}/"))))
            .map(|(k, v)| (k, &**v))
    }

    /// Every object of every resource (for GC and dumps).
    pub fn all_objects(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.objects
            .iter()
            .flat_map(|(res, m)| m.values().map(move |v| (res, &**v)))
    }

    pub fn count(&self, res: &str) -> usize {
        self.objects.get(res).map_or(0, BTreeMap::len)
    }

    fn record(&mut self, res: &str, etype: EventType, object: Arc<Value>, old: Option<Arc<Value>>) {
        let ev = Arc::new(Event {
            rv: self.rv,
            res: res.to_string(),
            etype,
            object,
            old,
        });
        self.log.push_back(ev.clone());
        while self.log.len() > self.log_cap {
            if let Some(old) = self.log.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine.
        let _ = self.tx.send(ev);
    }

    /// Stores `obj` (its metadata names the key). A write equal to what is stored is a no-op:
    /// no resourceVersion bump and no event. Returns the stored object.
    pub fn put(&mut self, def: &ResourceDef, obj: Value) -> Value {
        Value::clone(&self.put_shared(def, obj))
    }

    /// [`Store::put`] answering with the stored object itself, shared: the API server's
    /// replies serialise it without a copy.
    pub fn put_shared(&mut self, def: &ResourceDef, mut obj: Value) -> Arc<Value> {
        let key = obj_key(namespace_of(&obj), name_of(&obj));
        let res = def.store_key();
        let existing = self.objects.get(&res).and_then(|m| m.get(&key));
        if let Some(e) = existing
            && same_content(e, &obj)
        {
            return Arc::clone(e);
        }
        let old = existing.cloned();
        self.rv += 1;
        set_meta(
            &mut obj,
            "resourceVersion",
            Value::String(self.rv.to_string()),
        );
        let stored = Arc::new(obj);
        self.objects
            .entry(res.clone())
            .or_default()
            .insert(key, stored.clone());
        let obj = &*stored;
        let uid = uid_of(obj);
        if !uid.is_empty() && !self.uids.contains(uid) {
            self.uids.insert(uid.to_string());
        }
        if meta_str(obj, "deletionTimestamp").is_some() || self.has_missing_owner(obj) {
            self.gc_notify.notify_one();
        }
        let etype = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        let reply = Arc::clone(&stored);
        self.record(&res, etype, stored, old);
        reply
    }

    /// Whether one of `obj`'s owner references names no stored object.
    fn has_missing_owner(&self, obj: &Value) -> bool {
        obj.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter().any(|r| {
                    r.get("uid")
                        .and_then(Value::as_str)
                        .is_none_or(|u| !self.uids.contains(u))
                })
            })
    }

    /// Removes an object; the DELETED event carries its last state with a new resourceVersion.
    pub fn remove(&mut self, def: &ResourceDef, ns: &str, name: &str) -> Option<Value> {
        let res = def.store_key();
        let mut obj = Arc::unwrap_or_clone(self.objects.get_mut(&res)?.remove(&obj_key(ns, name))?);
        self.rv += 1;
        set_meta(
            &mut obj,
            "resourceVersion",
            Value::String(self.rv.to_string()),
        );
        self.owners.remove(uid_of(&obj));
        self.uids.remove(uid_of(&obj));
        self.gc_notify.notify_one();
        let obj = Arc::new(obj);
        self.record(&res, EventType::Deleted, obj.clone(), None);
        Some(Value::clone(&obj))
    }

    /// Drops every object of a resource (CRD removal), with DELETED events.
    pub fn remove_all(&mut self, def: &ResourceDef) {
        let keys: Vec<String> = self
            .objects
            .get(&def.store_key())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for k in keys {
            if let Some((ns, name)) = k.split_once('/') {
                let (ns, name) = (ns.to_string(), name.to_string());
                self.remove(def, &ns, &name);
            }
        }
    }

    /// Logged events after `rv`, or Gone when `rv` is older than the compaction horizon.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<Event>>, StoreError> {
        Ok(self.changes_since(rv)?.cloned().collect())
    }

    /// The logged events after `rv`, oldest first, without copying them out of the log (which
    /// is in resourceVersion order, so finding the first one is a binary search, not a scan of
    /// the whole log).
    pub fn changes_since(
        &self,
        rv: u64,
    ) -> Result<impl Iterator<Item = &Arc<Event>> + '_, StoreError> {
        if rv < self.compacted {
            return Err(StoreError::Gone {
                requested: rv,
                oldest: self.compacted,
            });
        }
        let first = self.log.partition_point(|e| e.rv <= rv);
        Ok(self.log.range(first..))
    }

    /// Forgets the whole event log: watches from any older resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.log.clear();
        self.compacted = self.rv;
    }

    pub fn compacted_rv(&self) -> u64 {
        self.compacted
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    /// Whether the collector was woken since the last call (takes the stored permit).
    fn woken(st: &Store) -> bool {
        use futures::FutureExt;
        st.gc_notify.notified().now_or_never().is_some()
    }

    #[test]
    fn the_collector_wakes_only_when_it_may_have_work() {
        let mut st = Store::new(100);
        let def = st.registry.by_key("/configmaps").unwrap();
        let owner = json!({"metadata": {"name": "owner", "namespace": "d", "uid": "u-1"}});
        st.put(&def, owner.clone());
        assert!(!woken(&st), "a plain object");
        let owned = |name: &str, uid: &str| {
            json!({"metadata": {"name": name, "namespace": "d", "uid": format!("{name}-uid"),
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}})
        };
        st.put(&def, owned("child", "u-1"));
        assert!(
            !woken(&st),
            "owned by a live object (every write of a canary's objects)"
        );
        st.put(&def, owned("orphan", "u-gone"));
        assert!(woken(&st), "owner missing");
        let mut deleting = owner.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        st.put(&def, deleting);
        assert!(woken(&st), "being deleted");
        st.remove(&def, "d", "owner").unwrap();
        assert!(woken(&st), "removed");
        st.put(&def, owned("child2", "u-1"));
        assert!(woken(&st), "its owner is gone now");
    }

    #[test]
    fn noop_writes_do_not_bump_or_emit() {
        let mut st = Store::new(100);
        let def = st.registry.by_key("/configmaps").unwrap();
        let mut rx = st.subscribe();
        let a = st.put(
            &def,
            json!({"metadata": {"name": "a", "namespace": "d"}, "data": {"k": "v"}}),
        );
        assert_eq!(rv_of(&a), 2);
        let b = st.put(&def, a.clone());
        assert_eq!(rv_of(&b), 2);
        assert_eq!(rx.try_recv().unwrap().etype, EventType::Added);
        assert!(rx.try_recv().is_err());
        let mut c = a.clone();
        c["data"]["k"] = json!("w");
        assert_eq!(rv_of(&st.put(&def, c)), 3);
        assert_eq!(st.events_since(2).unwrap().len(), 1);
        st.remove(&def, "d", "a").unwrap();
        assert_eq!(st.current_rv(), 4);
        st.compact();
        assert!(st.events_since(3).is_err());
        assert!(st.events_since(4).unwrap().is_empty());
    }

    #[test]
    fn same_content_ignores_only_the_resource_version() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "2", "labels": {"x": "1"}}, "data": {"k": "v"}});
        let mut b = a.clone();
        b["metadata"]["resourceVersion"] = json!("7");
        assert!(same_content(&a, &b));
        b["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        assert!(same_content(&a, &b), "a write without a resourceVersion");
        let mut c = b.clone();
        c["metadata"]["labels"]["x"] = json!("2");
        assert!(!same_content(&a, &c), "a label");
        let mut d = b.clone();
        d["metadata"]["generation"] = json!(1);
        assert!(!same_content(&a, &d), "a new metadata field");
        let mut e = b.clone();
        e["status"] = json!({});
        assert!(!same_content(&a, &e), "a new top-level field");
        assert!(!same_content(
            &a,
            &json!({"metadata": {"name": "a"}, "data": {"k": "v"}, "x": 1})
        ));
    }

    #[test]
    fn uids_are_unique_and_shaped() {
        let a = new_uid();
        assert_eq!(a.len(), 36);
        assert_ne!(a, new_uid());
        assert_eq!(random_suffix(5).len(), 5);
    }
}
