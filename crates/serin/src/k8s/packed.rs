//! Objects kept as compressed JSON, and a store of every object of a kind kept that way.
//!
//! Decoded, a Kubernetes object costs several times its JSON: every string, map and list is
//! its own allocation, and the typed structs carry every field the kind has, set or not. A
//! Canary in the middle of an analysis (spec, conditions, a few decision records) is about
//! 2 KB of JSON; kept decoded, 10,000 of them were most of the controller's memory. Objects of
//! one kind repeat each other's keys, labels and values, so each is compressed (LZ4) against a
//! dictionary: the JSON of the first object the kind kept. A read decodes the object again,
//! which costs about what cloning the decoded object did.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, RwLock};

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One object: its JSON, LZ4-compressed against its kind's dictionary, and its
/// `resourceVersion` (as a number, when it is one).
#[derive(Clone)]
pub(super) struct Packed {
    pub(super) version: Option<u64>,
    bytes: Arc<[u8]>,
}

impl Packed {
    /// Compresses `object` against `dictionary`, which the first object packed becomes.
    pub(super) fn of<K: Resource + Serialize>(
        object: &K,
        dictionary: &mut Arc<[u8]>,
    ) -> Option<Self> {
        let json = serde_json::to_vec(object).ok()?;
        if dictionary.is_empty() {
            *dictionary = json.as_slice().into();
        }
        Some(Self {
            version: resource_version(object),
            bytes: lz4_flex::block::compress_prepend_size_with_dict(&json, dictionary).into(),
        })
    }

    /// The object again.
    pub(super) fn decode<K: DeserializeOwned>(&self, dictionary: &[u8]) -> Result<K, String> {
        let json = lz4_flex::block::decompress_size_prepended_with_dict(&self.bytes, dictionary)
            .map_err(|e| e.to_string())?;
        // Read as a `str`, as kube's client reads every answer: the deserialiser of each
        // Kubernetes type the store holds (a Deployment's is 0.5 MB of code) is then built
        // once for both, not once for text and once for bytes. The check costs a pass over
        // bytes `serde_json` wrote.
        let json = std::str::from_utf8(&json).map_err(|e| e.to_string())?;
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    /// [`Packed::decode`] for a read of `namespace/name`: `None` when it cannot be decoded,
    /// which cannot happen for what the store encoded itself; the caller reads it again.
    pub(super) fn read<K: DeserializeOwned>(
        &self,
        dictionary: &[u8],
        namespace: &str,
        name: &str,
    ) -> Option<K> {
        self.decode(dictionary)
            .inspect_err(|e| tracing::debug!("cache: cannot decode {namespace}/{name}: {e}"))
            .ok()
    }

    /// Bytes it takes.
    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// Whether version `kept` is later than `new` (when both are numbers: kube-apiserver (etcd)
/// and the dev cluster number them; when they are not, every version is taken).
pub(super) fn is_later(kept: Option<u64>, new: Option<u64>) -> bool {
    matches!((kept, new), (Some(kept), Some(new)) if kept > new)
}

/// Whether version `kept` is `new` or later: an `Apply` of `new` would change nothing (one
/// `resourceVersion` is one content; the watch delivers Serin's own writes after their replies
/// were kept), so it is not packed again.
pub(super) fn is_current(kept: Option<u64>, new: Option<u64>) -> bool {
    matches!((kept, new), (Some(kept), Some(new)) if kept >= new)
}

pub(super) fn resource_version<K: Resource>(object: &K) -> Option<u64> {
    object.meta().resource_version.as_deref()?.parse().ok()
}

/// `namespace/name` of an object as one string (neither can contain `/`; a cluster-scoped
/// object's is `/name`): the stores keep one allocation per object for it, not two.
pub(super) type Key = Box<str>;

pub(super) fn key(namespace: &str, name: &str) -> Key {
    format!("{namespace}/{name}").into()
}

pub(super) fn key_of<K: Resource>(object: &K) -> Key {
    let meta = object.meta();
    key(
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// Who an object of a [`PackedStore`] is, without decoding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

struct Entry {
    uid: Option<String>,
    packed: Packed,
}

impl Entry {
    fn of<K: Resource + Serialize>(object: &K, dictionary: &mut Arc<[u8]>) -> Option<Self> {
        Some(Self {
            uid: object.meta().uid.clone(),
            packed: Packed::of(object, dictionary)?,
        })
    }
}

type Entries = HashMap<Key, Entry>;

struct Shared {
    objects: RwLock<Entries>,
    /// During a relist (between the watch's `Init` and `InitDone`), the objects listed so far;
    /// readers keep seeing `objects` until the list is complete.
    relist: Mutex<Option<Entries>>,
    dictionary: RwLock<Arc<[u8]>>,
    /// Whether the watch has listed everything once.
    ready: tokio::sync::watch::Sender<bool>,
}

/// Every object of a kind (the Canaries), each kept compressed ([`Packed`]), fed the events
/// of the kind's watch and the results of Serin's own writes; cheap to clone, all clones
/// share it. What kube-runtime's reflector `Store` does, at a fraction of the memory: a read
/// decodes the object.
pub struct PackedStore<K> {
    shared: Arc<Shared>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for PackedStore<K> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Default for PackedStore<K> {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                objects: RwLock::new(HashMap::new()),
                relist: Mutex::new(None),
                dictionary: RwLock::new(Arc::from(Vec::new())),
                ready: tokio::sync::watch::Sender::new(false),
            }),
            kind: PhantomData,
        }
    }
}

impl<K> PackedStore<K>
where
    K: Resource + Serialize + DeserializeOwned,
{
    /// The object `reference` points at (its namespace and name), decoded.
    pub fn get(&self, reference: &ObjectRef<K>) -> Option<Arc<K>> {
        self.find(
            reference.namespace.as_deref().unwrap_or(""),
            &reference.name,
        )
        .map(Arc::new)
    }

    /// The object `namespace/name`, decoded.
    pub fn find(&self, namespace: &str, name: &str) -> Option<K> {
        self.find_as(namespace, name)
    }

    /// The object `namespace/name`, decoded as `T` (`K`, or another type its JSON reads as).
    pub fn find_as<T: DeserializeOwned>(&self, namespace: &str, name: &str) -> Option<T> {
        self.find_versioned(namespace, name)
            .map(|(object, _)| object)
    }

    /// [`PackedStore::find_as`], with the kept `resourceVersion` (as a number, when it is one).
    pub(super) fn find_versioned<T: DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<(T, Option<u64>)> {
        let packed = {
            let objects = read(&self.shared.objects);
            // One allocation per read for the key; the map is keyed by owned strings.
            objects.get(&key(namespace, name))?.packed.clone()
        };
        let dictionary = read(&self.shared.dictionary).clone();
        let version = packed.version;
        Some((packed.read(&dictionary, namespace, name)?, version))
    }

    /// The kept `resourceVersion` of `key` (`namespace/name`), without decoding the object.
    pub(super) fn version_of(&self, key: &str) -> Option<u64> {
        read(&self.shared.objects).get(key)?.packed.version
    }

    /// Every object, decoded (the dashboard's list).
    pub fn state(&self) -> Vec<Arc<K>> {
        let packed: Vec<Packed> = read(&self.shared.objects)
            .values()
            .map(|entry| entry.packed.clone())
            .collect();
        let dictionary = read(&self.shared.dictionary).clone();
        packed
            .iter()
            .filter_map(|p| p.decode(&dictionary).ok())
            .map(Arc::new)
            .collect()
    }

    /// Who every object is, without decoding any.
    pub fn list(&self) -> Vec<Listed> {
        read(&self.shared.objects)
            .iter()
            .map(|(key, entry)| {
                let (namespace, name) = key.split_once('/').unwrap_or(("", key));
                Listed {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    uid: entry.uid.clone(),
                }
            })
            .collect()
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        read(&self.shared.objects).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the kept objects take (their compressed JSON, without the keys).
    #[cfg(test)]
    pub fn packed_bytes(&self) -> usize {
        read(&self.shared.objects)
            .values()
            .map(|entry| entry.packed.size())
            .sum()
    }

    /// Takes `namespace/name` out (Serin deleted it).
    pub fn remove(&self, namespace: &str, name: &str) {
        write(&self.shared.objects).remove(&key(namespace, name));
    }

    /// Waits until the watch has listed every object once.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.shared.ready.subscribe();
        // The sender lives as long as this store: waiting cannot fail.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// Applies one event of the watch, or one of Serin's own writes (as an `Apply`). A version
    /// older than the one kept is not taken (the watch may deliver a write's result after the
    /// write's reply was applied).
    pub fn apply(&self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => {
                let key = key_of(object);
                let version = resource_version(object);
                let kept = |objects: &Entries| {
                    objects
                        .get(&key)
                        .is_some_and(|kept| is_current(kept.packed.version, version))
                };
                // The watch's copy of Serin's own write, already kept: not packed again.
                if kept(&read(&self.shared.objects)) {
                    return;
                }
                let Some(entry) = self.entry(object) else {
                    return;
                };
                let mut objects = write(&self.shared.objects);
                if !kept(&objects) {
                    objects.insert(key, entry);
                }
            }
            watcher::Event::Delete(object) => {
                let key = key_of(object);
                write(&self.shared.objects).remove(&key);
                if let Some(relist) = lock(&self.shared.relist).as_mut() {
                    relist.remove(&key);
                }
            }
            watcher::Event::Init => *lock(&self.shared.relist) = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                if let Some(entry) = self.entry(object) {
                    lock(&self.shared.relist)
                        .get_or_insert_default()
                        .insert(key_of(object), entry);
                }
            }
            watcher::Event::InitDone => {
                let mut listed = lock(&self.shared.relist).take().unwrap_or_default();
                let mut objects = write(&self.shared.objects);
                // What the list did not return is gone; what Serin wrote while the list ran
                // (a later version than the one listed) stays.
                for (key, kept) in objects.drain() {
                    if let Some(new) = listed.get(&key)
                        && is_later(kept.packed.version, new.packed.version)
                    {
                        listed.insert(key, kept);
                    }
                }
                *objects = listed;
                drop(objects);
                self.shared.ready.send_replace(true);
            }
        }
    }

    fn entry(&self, object: &K) -> Option<Entry> {
        let mut dictionary = read(&self.shared.dictionary).clone();
        if dictionary.is_empty() {
            // The first object becomes the dictionary (unless another one just did).
            return Entry::of(object, &mut write(&self.shared.dictionary));
        }
        Entry::of(object, &mut dictionary)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
