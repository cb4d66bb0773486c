//! Watch caches of the objects Serin reads, so that a reconcile observes the cluster without
//! asking the API server.
//!
//! A [`Cache`] holds one kube-runtime reflector store per kind. The controller's own watches
//! (Canaries, Deployments, DaemonSets) feed theirs through [`Cache::reflect`]; any other kind
//! gets a watch the first time a reconcile reads it ([`Cache::get`]), scoped like the
//! controller (`-namespace`), so only kinds Serin actually reads are watched. Until a kind's
//! watch has listed everything, its reads go to the API server.
//!
//! Freshness rules, in one place rather than at every read:
//!
//! * **Read your writes.** A write made through [`Cache::patch`], [`Cache::create`],
//!   [`Cache::replace`] or [`Cache::delete`] (or reported with [`Cache::wrote`]) is what later
//!   reads return until the watch has delivered that version or a later one (compared by
//!   `resourceVersion`, which kube-apiserver and the dev cluster number in order) or
//!   [`WRITE_TTL`] has passed. A step that writes the routes and reads them back, or a rollback
//!   right after a step, never decides on the version from before its own write.
//! * **Absent means absent.** An object missing from a synced store is confirmed with one GET
//!   (the watch may not have delivered a create made a moment ago by a user or another
//!   controller); what the GET finds is kept like a write. In steady state every object a step
//!   reads exists, so this costs nothing per step.
//!
//! Memory: `metadata.managedFields` is dropped from cached objects (Serin never reads it); the
//! rest is kept because the routers and workloads compare whole specs and metadata.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::NamespaceScope;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long a write of Serin's own stands in for the watch's version of the object at most
/// (when the watch is slower than this, or `resourceVersion`s do not compare as numbers).
pub const WRITE_TTL: Duration = Duration::from_secs(10);
/// Remembered writes beyond which expired ones are dropped at the next write.
const WRITES_PRUNE_AT: usize = 1024;

/// What a kind must be to be cached.
pub trait Cacheable:
    Resource<DynamicType: Clone + Eq + Hash + Send + Sync + 'static, Scope: NamespaceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Cacheable for K where
    K: Resource<DynamicType: Clone + Eq + Hash + Send + Sync + 'static, Scope: NamespaceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// Watch caches shared by every reconcile; cheap to clone. [`Cache::disabled`] reads everything
/// from the API server (tools and tests of a single adapter).
#[derive(Clone, Default)]
pub struct Cache {
    inner: Option<Arc<Inner>>,
}

impl Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(inner) => f
                .debug_struct("Cache")
                .field("namespace", &inner.namespace)
                .finish_non_exhaustive(),
            None => f.write_str("Cache(disabled)"),
        }
    }
}

/// A kind: `TypeId` of the Rust type and its collection path without namespace
/// (`/apis/apps/v1/deployments`).
type KindKey = (TypeId, String);
/// An object: its kind, namespace (empty when cluster-scoped) and name.
type ObjectKey = (TypeId, String, String, String);

struct Inner {
    namespace: Option<String>,
    kinds: Mutex<HashMap<KindKey, Arc<dyn Any + Send + Sync>>>,
    writes: Mutex<HashMap<ObjectKey, Written>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// One kind's store and whether its watch has listed everything once.
struct Kind<K: Cacheable> {
    store: Store<K>,
    dyntype: K::DynamicType,
    synced: Arc<AtomicBool>,
}

/// A write of Serin's own (or an object confirmed with a GET): the object, `None` when deleted.
struct Written {
    object: Option<Arc<dyn Any + Send + Sync>>,
    resource_version: Option<u64>,
    at: Instant,
}

/// Where a read was answered (for tests and the benchmark's accounting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Cache,
    Api,
}

impl Cache {
    /// No caching: every read is a GET.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Caches whose watches are restricted to `namespace` when set (the controller's
    /// `-namespace`). Watches start when a kind is first read.
    pub fn new(namespace: Option<String>) -> Self {
        Self {
            inner: Some(Arc::new(Inner {
                namespace: namespace.filter(|ns| !ns.is_empty()),
                kinds: Mutex::new(HashMap::new()),
                writes: Mutex::new(HashMap::new()),
                tasks: Mutex::new(Vec::new()),
            })),
        }
    }

    /// Whether reads can be answered from watches at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Reads `name` through `api` (a typed kind).
    pub async fn get<K>(&self, api: &Api<K>, name: &str) -> Result<Option<K>, kube::Error>
    where
        K: Cacheable,
        K::DynamicType: Default,
    {
        self.get_with(api, &K::DynamicType::default(), name).await
    }

    /// Reads `name` through `api` (`dyntype` describes the kind, e.g. the `ApiResource` of a
    /// `DynamicObject`): from the kind's watch when it has synced, else with a GET.
    pub async fn get_with<K: Cacheable>(
        &self,
        api: &Api<K>,
        dyntype: &K::DynamicType,
        name: &str,
    ) -> Result<Option<K>, kube::Error> {
        self.read(api, dyntype, name)
            .await
            .map(|(object, _)| object)
    }

    /// [`Cache::get_with`], also saying where the answer came from.
    pub async fn read<K: Cacheable>(
        &self,
        api: &Api<K>,
        dyntype: &K::DynamicType,
        name: &str,
    ) -> Result<(Option<K>, Source), kube::Error> {
        let Some(inner) = &self.inner else {
            return api.get_opt(name).await.map(|o| (o, Source::Api));
        };
        let Some(kind) = inner.kind(api, dyntype) else {
            return api.get_opt(name).await.map(|o| (o, Source::Api));
        };
        if !kind.synced.load(Ordering::Acquire) {
            return api.get_opt(name).await.map(|o| (o, Source::Api));
        }
        let ns = api.namespace().unwrap_or_default();
        let key = object_key::<K>(api, name);
        let reference = ObjectRef::new_with(name, kind.dyntype.clone());
        let reference = if ns.is_empty() {
            reference
        } else {
            reference.within(ns)
        };
        let cached = kind.store.get(&reference);
        if let Some(written) = inner.written::<K>(&key, cached.as_deref()) {
            return Ok((written, Source::Cache));
        }
        match cached {
            Some(object) => Ok(((*object).clone(), Source::Cache)).map(|(o, s)| (Some(o), s)),
            None => {
                // Absent from the watch: confirm, the watch may not have delivered a create yet.
                let live = api.get_opt(name).await?;
                if let Some(object) = &live {
                    inner.remember(key, Some(object));
                }
                Ok((live, Source::Api))
            }
        }
    }

    /// Records a write's result so that reads return it until the watch catches up.
    pub fn wrote<K: Cacheable>(&self, api: &Api<K>, object: &K) {
        if let Some(inner) = &self.inner
            && inner.caches::<K>(api)
        {
            inner.remember(object_key::<K>(api, &object.name_any()), Some(object));
        }
    }

    /// Records that `name` was deleted.
    pub fn deleted<K: Cacheable>(&self, api: &Api<K>, name: &str) {
        if let Some(inner) = &self.inner
            && inner.caches::<K>(api)
        {
            inner.remember::<K>(object_key::<K>(api, name), None);
        }
    }

    /// `api.patch`, remembered ([`Cache::wrote`]).
    pub async fn patch<K, P>(
        &self,
        api: &Api<K>,
        name: &str,
        params: &PatchParams,
        patch: &Patch<P>,
    ) -> Result<K, kube::Error>
    where
        K: Cacheable,
        P: Serialize + Debug,
    {
        let object = api.patch(name, params, patch).await?;
        self.wrote(api, &object);
        Ok(object)
    }

    /// `api.patch_status`, remembered ([`Cache::wrote`]).
    pub async fn patch_status<K, P>(
        &self,
        api: &Api<K>,
        name: &str,
        params: &PatchParams,
        patch: &Patch<P>,
    ) -> Result<K, kube::Error>
    where
        K: Cacheable,
        P: Serialize + Debug,
    {
        let object = api.patch_status(name, params, patch).await?;
        self.wrote(api, &object);
        Ok(object)
    }

    /// `api.create`, remembered ([`Cache::wrote`]).
    pub async fn create<K>(
        &self,
        api: &Api<K>,
        params: &PostParams,
        object: &K,
    ) -> Result<K, kube::Error>
    where
        K: Cacheable + Serialize,
    {
        let created = api.create(params, object).await?;
        self.wrote(api, &created);
        Ok(created)
    }

    /// `api.replace`, remembered ([`Cache::wrote`]).
    pub async fn replace<K>(
        &self,
        api: &Api<K>,
        name: &str,
        params: &PostParams,
        object: &K,
    ) -> Result<K, kube::Error>
    where
        K: Cacheable + Serialize,
    {
        let replaced = api.replace(name, params, object).await?;
        self.wrote(api, &replaced);
        Ok(replaced)
    }

    /// `api.delete`, remembered ([`Cache::deleted`]); a missing object is not an error here
    /// either way, the caller decides.
    pub async fn delete<K>(
        &self,
        api: &Api<K>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<(), kube::Error>
    where
        K: Cacheable,
    {
        api.delete(name, params).await?;
        self.deleted(api, name);
        Ok(())
    }

    /// Caches `api`'s kind from a watch the caller runs (the controller's own watches, which
    /// also trigger reconciles): the returned stream applies every event to the kind's store
    /// and passes it on; the caller must poll it. Returns the store too.
    pub fn reflect<K, S>(
        &self,
        api: &Api<K>,
        dyntype: K::DynamicType,
        events: S,
    ) -> (Store<K>, impl Stream<Item = S::Item> + Send + use<K, S>)
    where
        K: Cacheable,
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    {
        let writer = Writer::new(dyntype.clone());
        let store = writer.as_reader();
        let synced = Arc::new(AtomicBool::new(false));
        if let Some(inner) = &self.inner {
            let kind = Kind {
                store: store.clone(),
                dyntype,
                synced: synced.clone(),
            };
            inner
                .kinds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(kind_key::<K>(api), Arc::new(kind));
        }
        (store, reflect_into(writer, synced, events))
    }
}

/// Applies the watch's events to `writer` (without managed fields) and marks the kind synced
/// once the first list is complete.
fn reflect_into<K, S>(
    mut writer: Writer<K>,
    synced: Arc<AtomicBool>,
    events: S,
) -> impl Stream<Item = S::Item> + Send
where
    K: Cacheable,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    events
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
        .inspect(move |event| {
            if let Ok(event) = event {
                writer.apply_watcher_event(event);
                if matches!(event, watcher::Event::InitDone) {
                    synced.store(true, Ordering::Release);
                }
            }
        })
}

impl Inner {
    /// The kind's cache, started on first use; `None` when `api` reads outside the
    /// controller's namespace (such reads always go to the API server).
    fn kind<K: Cacheable>(&self, api: &Api<K>, dyntype: &K::DynamicType) -> Option<Arc<Kind<K>>> {
        let ns = api.namespace();
        if let (Some(scope), Some(ns)) = (&self.namespace, ns)
            && scope != ns
        {
            return None;
        }
        let key = kind_key::<K>(api);
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kind) = kinds.get(&key) {
            return kind.clone().downcast::<Kind<K>>().ok();
        }
        // Namespaced reads watch the controller's namespace, or every namespace; a
        // cluster-scoped kind (read without a namespace) is watched as such.
        let watch_api = match (ns, &self.namespace) {
            (None, _) => api.clone(),
            (Some(_), Some(scope)) => api.clone().constrain(scope),
            (Some(_), None) => api.clone().unconstrain(),
        };
        let writer = Writer::new(dyntype.clone());
        let synced = Arc::new(AtomicBool::new(false));
        let kind = Arc::new(Kind {
            store: writer.as_reader(),
            dyntype: dyntype.clone(),
            synced: synced.clone(),
        });
        kinds.insert(key.clone(), kind.clone());
        drop(kinds);
        let what = key.1.clone();
        tracing::debug!("watching {what} for the cache");
        let events = watcher(watch_api, watcher::Config::default()).default_backoff();
        let stream = reflect_into(writer, synced, events);
        let task = tokio::spawn(async move {
            let mut reported = false;
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Err(e) if !reported => {
                        // Reads keep going to the API server meanwhile; the watch retries.
                        tracing::warn!("cache watch of {what}: {e}");
                        reported = true;
                    }
                    Err(e) => tracing::debug!("cache watch of {what}: {e}"),
                    Ok(_) => reported = false,
                }
            }
        });
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        Some(kind)
    }

    /// Whether `api`'s kind has a cache (writes of other kinds need not be remembered).
    fn caches<K: Cacheable>(&self, api: &Api<K>) -> bool {
        self.kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&kind_key::<K>(api))
    }

    fn remember<K: Cacheable>(&self, key: ObjectKey, object: Option<&K>) {
        let now = Instant::now();
        let written = Written {
            resource_version: object.and_then(resource_version),
            object: object.map(|o| Arc::new(o.clone()) as Arc<dyn Any + Send + Sync>),
            at: now,
        };
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        if writes.len() >= WRITES_PRUNE_AT {
            writes.retain(|_, w| now.duration_since(w.at) < WRITE_TTL);
        }
        writes.insert(key, written);
    }

    /// The remembered write of `key` when it is still newer than what the watch delivered
    /// (`cached`): `Some(None)` = deleted. Forgets it once the watch caught up.
    fn written<K: Cacheable>(&self, key: &ObjectKey, cached: Option<&K>) -> Option<Option<K>> {
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let written = writes.get(key)?;
        let caught_up = match (&written.object, cached) {
            (_, _) if written.at.elapsed() >= WRITE_TTL => true,
            // Deleted, and gone from the watch too.
            (None, None) => true,
            (Some(_), Some(cached)) => match (written.resource_version, resource_version(cached)) {
                (Some(w), Some(c)) => c >= w,
                _ => false,
            },
            _ => false,
        };
        if caught_up {
            writes.remove(key);
            return None;
        }
        match &written.object {
            None => Some(None),
            Some(object) => match object.clone().downcast::<K>() {
                Ok(object) => Some(Some((*object).clone())),
                Err(_) => {
                    writes.remove(key);
                    None
                }
            },
        }
    }
}

fn resource_version<K: Resource>(object: &K) -> Option<u64> {
    object.meta().resource_version.as_deref()?.parse().ok()
}

/// `/apis/apps/v1/namespaces/x/deployments` → `/apis/apps/v1/deployments`.
fn collection(url: &str) -> String {
    let segments: Vec<&str> = url.split('/').collect();
    match segments.iter().position(|s| *s == "namespaces") {
        Some(i) if i + 3 == segments.len() => {
            let mut out: Vec<&str> = segments[..i].to_vec();
            out.push(segments[i + 2]);
            out.join("/")
        }
        _ => url.to_string(),
    }
}

fn kind_key<K: Resource + 'static>(api: &Api<K>) -> KindKey {
    (TypeId::of::<K>(), collection(api.resource_url()))
}

fn object_key<K: Resource + 'static>(api: &Api<K>, name: &str) -> ObjectKey {
    (
        TypeId::of::<K>(),
        collection(api.resource_url()),
        api.namespace().unwrap_or_default().to_string(),
        name.to_string(),
    )
}

#[cfg(test)]
mod tests;
