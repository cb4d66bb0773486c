//! Watch caches of the objects Serin reads, so that a reconcile observes the cluster without
//! asking the API server.
//!
//! A [`Cache`] holds one kube-runtime reflector store per kind. The controller's own watches
//! (Canaries, Deployments, DaemonSets) feed theirs through [`Cache::reflect`]; any other kind
//! gets a watch the first time a reconcile reads it ([`Cache::get`]), scoped like the
//! controller (`-namespace`), so only kinds Serin actually reads are watched. Until a kind's
//! watch has listed everything, its reads go to the API server.
//!
//! Memory stays bounded by what Serin manages: a store keeps only the objects a reconcile has
//! read or written (and the Canaries, all of them); the watch's events for other objects of the
//! kind (other teams' Services, Deployments without a Canary) still trigger what they trigger
//! but are not kept. `metadata.managedFields` is dropped from kept objects (Serin never reads
//! it); the rest is kept because the routers and workloads compare whole specs and metadata,
//! as compressed JSON rather than decoded (k8s-openapi's structs are mostly unset fields; a
//! Deployment's compressed JSON is several times smaller than its decoded struct). The
//! Canaries are kept the same way, all of them ([`PackedStore`]).
//!
//! Freshness rules, in one place rather than at every read:
//!
//! * **Read your writes.** The result of a write made through [`Cache::patch`],
//!   [`Cache::create`], [`Cache::replace`] or [`Cache::delete`] (or reported with
//!   [`Cache::wrote`]) goes into the store at once, so a step that writes the routes and reads
//!   them back, or a rollback right after a step, never decides on the version from before its
//!   own write.
//! * **Never back in time.** A store does not take a version of an object older than the one it
//!   has (`resourceVersion`s compared as numbers, which is how kube-apiserver (etcd) and the dev
//!   cluster number them; when they are not numbers every event is taken).
//! * **Absent means absent.** An object missing from a store is confirmed with one GET (it may
//!   not have been of interest before, or the watch has not delivered a create made a moment
//!   ago); what the GET finds is kept. In steady state every object a step reads is kept, so
//!   this costs nothing per step.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::NamespaceScope;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub mod journal;

use super::packed::{
    Key, Packed, PackedStore, is_current, is_later, key, key_of, resource_version,
};

/// What a kind must be to be cached.
pub trait Cacheable:
    Resource<DynamicType: Clone + Eq + Hash + Send + Sync + 'static, Scope: NamespaceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
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
        + Serialize
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

struct Inner {
    namespace: Option<String>,
    kinds: Mutex<HashMap<KindKey, Arc<dyn Any + Send + Sync>>>,
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

/// One kind's objects and whether its watch has listed everything once.
struct Kind<K: Cacheable> {
    objects: Objects<K>,
    synced: AtomicBool,
}

/// How a kind's objects are held.
enum Objects<K: Cacheable> {
    /// Every object: the Canaries, which the dashboard and the controller's periodic checks
    /// list. The store is shared by the watch and Serin's own writes.
    All(PackedStore<K>),
    /// Only the objects a reconcile has read or written.
    Managed(Mutex<Managed>),
}

/// The managed objects of a kind, by `namespace/name`.
#[derive(Default)]
struct Managed {
    /// Every object a reconcile has read or written; `None` until the watch or a GET has
    /// delivered it (or while it does not exist).
    objects: HashMap<Key, Option<Packed>>,
    /// During a relist, the managed objects listed so far.
    relist: Option<HashMap<Key, Packed>>,
    /// The kind's compression dictionary (see [`Packed`]): the JSON of the first object kept
    /// (empty until then).
    dictionary: Arc<[u8]>,
}

impl<K: Cacheable> Kind<K> {
    /// A kind of which every object is kept; also returns its store.
    fn all() -> (Self, PackedStore<K>) {
        let store = PackedStore::default();
        (Self::with(Objects::All(store.clone())), store)
    }

    /// A kind of which only what Serin manages is kept.
    fn managed() -> Self {
        Self::with(Objects::Managed(Mutex::new(Managed::default())))
    }

    fn with(objects: Objects<K>) -> Self {
        Self {
            objects,
            synced: AtomicBool::new(false),
        }
    }

    /// Marks `namespace/name` as managed: the store keeps it from now on.
    fn keep(&self, namespace: &str, name: &str) {
        if let Objects::Managed(managed) = &self.objects {
            lock(managed).slot(namespace, name);
        }
    }

    /// The kept version of `namespace/name`, if any, decoded as `T` (`K` itself, or another
    /// type its JSON reads as), with its `resourceVersion`; marks it as managed.
    fn cached<T: DeserializeOwned>(&self, namespace: &str, name: &str) -> Option<(T, Option<u64>)> {
        match &self.objects {
            Objects::All(store) => store.find_versioned(namespace, name),
            Objects::Managed(managed) => {
                let (packed, dictionary) = {
                    let mut managed = lock(managed);
                    let packed = managed.slot(namespace, name).clone()?;
                    (packed, managed.dictionary.clone())
                };
                let version = packed.version;
                Some((packed.read(&dictionary, namespace, name)?, version))
            }
        }
    }

    /// Takes `namespace/name` out of the store (Serin deleted it).
    fn forget(&self, namespace: &str, name: &str) {
        match &self.objects {
            Objects::All(store) => store.remove(namespace, name),
            Objects::Managed(managed) => {
                lock(managed).objects.remove(&key(namespace, name));
            }
        }
    }

    /// How many objects the store holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        match &self.objects {
            Objects::All(store) => store.len(),
            Objects::Managed(managed) => lock(managed).objects.values().flatten().count(),
        }
    }

    /// Applies one event of the watch, or one of Serin's own writes.
    fn apply(&self, event: &watcher::Event<K>) {
        match &self.objects {
            Objects::All(store) => store.apply(event),
            Objects::Managed(managed) => lock(managed).apply(event),
        }
        if matches!(event, watcher::Event::InitDone) {
            self.synced.store(true, Ordering::Release);
        }
    }
}

impl<K: Cacheable> journal::Versions for Kind<K> {
    fn version(&self, key: &str) -> Option<u64> {
        match &self.objects {
            Objects::All(store) => store.version_of(key),
            Objects::Managed(managed) => lock(managed).objects.get(key)?.as_ref()?.version,
        }
    }
}

impl Managed {
    /// The slot of `namespace/name`, made managed if it was not.
    fn slot(&mut self, namespace: &str, name: &str) -> &mut Option<Packed> {
        self.objects.entry(key(namespace, name)).or_insert(None)
    }

    fn apply<K: Cacheable>(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => {
                if let Some(slot) = self.objects.get_mut(&key_of(object)) {
                    if slot
                        .as_ref()
                        .is_some_and(|kept| is_current(kept.version, resource_version(object)))
                    {
                        return;
                    }
                    *slot = Packed::of(object, &mut self.dictionary);
                }
            }
            watcher::Event::Delete(object) => {
                // No longer managed: a re-created object is kept again once read.
                let key = key_of(object);
                self.objects.remove(&key);
                if let Some(relist) = &mut self.relist {
                    relist.remove(&key);
                }
            }
            watcher::Event::Init => self.relist = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                let key = key_of(object);
                if self.objects.contains_key(&key)
                    && let Some(kept) = Packed::of(object, &mut self.dictionary)
                {
                    self.relist.get_or_insert_default().insert(key, kept);
                }
            }
            watcher::Event::InitDone => {
                // What the list did not return is gone, unless Serin wrote a later version
                // while it ran.
                let mut listed = self.relist.take().unwrap_or_default();
                for (key, slot) in &mut self.objects {
                    let listed = listed.remove(key);
                    *slot = match (slot.take(), listed) {
                        (Some(kept), Some(new)) if is_later(kept.version, new.version) => {
                            Some(kept)
                        }
                        (_, listed) => listed,
                    };
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
                tasks: Mutex::new(Vec::new()),
            })),
        }
    }

    /// Reads `name` through `api`: from the kind's watch when it has synced, else with a GET.
    pub async fn get<K: Cacheable>(
        &self,
        api: &Api<K>,
        name: &str,
    ) -> Result<Option<K>, kube::Error> {
        self.read(api, name).await.map(|(object, _)| object)
    }

    /// [`Cache::get`], also saying where the answer came from.
    pub async fn read<K: Cacheable>(
        &self,
        api: &Api<K>,
        name: &str,
    ) -> Result<(Option<K>, Source), kube::Error> {
        self.lookup(api, name, Ok).await
    }

    /// [`Cache::get`], as `T` rather than `K`: a kind read untyped (so that what is written back
    /// keeps every field as stored) is decoded from the kept JSON into a `serde_json::Value`
    /// and from that into `T`, not into the untyped object first and then copied into a
    /// `Value`. Going through `Value` keeps one JSON deserialiser per type in the binary, the
    /// one that reads a `Value` (a type's deserialiser from text is as large again).
    pub async fn get_as<K: Cacheable, T: DeserializeOwned>(
        &self,
        api: &Api<K>,
        name: &str,
    ) -> Result<Option<T>, kube::Error> {
        let convert = |object: K| serde_json::to_value(object).map_err(kube::Error::SerdeError);
        let (value, _) = self.lookup::<K, Value>(api, name, convert).await?;
        value
            .map(serde_json::from_value)
            .transpose()
            .map_err(kube::Error::SerdeError)
    }

    /// The read behind [`Cache::read`] and [`Cache::get_as`]; `convert` turns what the API
    /// server answered into `T`.
    async fn lookup<K: Cacheable, T: DeserializeOwned>(
        &self,
        api: &Api<K>,
        name: &str,
        convert: impl Fn(K) -> Result<T, kube::Error>,
    ) -> Result<(Option<T>, Source), kube::Error> {
        let answered = |live: Option<K>| {
            journal::spoil();
            Ok((live.map(&convert).transpose()?, Source::Api))
        };
        let Some(inner) = &self.inner else {
            return answered(api.get_opt(name).await?);
        };
        let Some(kind) = inner.kind(api) else {
            return answered(api.get_opt(name).await?);
        };
        let ns = api.namespace().unwrap_or_default();
        if !kind.synced.load(Ordering::Acquire) {
            kind.keep(ns, name);
            return answered(api.get_opt(name).await?);
        }
        if let Some((object, version)) = kind.cached(ns, name) {
            journal::read(&kind, ns, name, version);
            return Ok((Some(object), Source::Cache));
        }
        // Not kept yet, or a create the watch has not delivered: confirm, and keep it.
        let live = api.get_opt(name).await?;
        if let Some(object) = &live {
            kind.apply(&watcher::Event::Apply(strip(object.clone())));
        }
        answered(live)
    }

    /// Puts a write's result into the store (when the kind is cached): later reads see it
    /// even before the watch delivers it.
    pub fn wrote<K: Cacheable>(&self, api: &Api<K>, object: &K) {
        let Some(kind) = self.cached_kind(api) else {
            journal::spoil();
            return;
        };
        let ns = api.namespace().unwrap_or_default();
        let name = object.name_any();
        kind.keep(ns, &name);
        kind.apply(&watcher::Event::Apply(strip(object.clone())));
        journal::wrote(&kind, ns, &name, resource_version(object));
    }

    /// Takes `name` out of the store (when the kind is cached).
    pub fn deleted<K: Cacheable>(&self, api: &Api<K>, name: &str) {
        journal::spoil();
        if let Some(kind) = self.cached_kind(api) {
            kind.forget(api.namespace().unwrap_or_default(), name);
        }
    }

    fn cached_kind<K: Cacheable>(&self, api: &Api<K>) -> Option<Arc<Kind<K>>> {
        let inner = self.inner.as_ref()?;
        let kinds = lock(&inner.kinds);
        kinds
            .get(&kind_key::<K>(api))?
            .clone()
            .downcast::<Kind<K>>()
            .ok()
    }

    /// `api.patch`, kept ([`Cache::wrote`]).
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

    /// `api.patch_status`, kept ([`Cache::wrote`]).
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

    /// `api.create`, kept ([`Cache::wrote`]).
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

    /// `api.replace`, kept ([`Cache::wrote`]).
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

    /// `api.delete`, kept out ([`Cache::deleted`]); a missing object is not an error here
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
    /// also trigger reconciles), keeping every object: the returned stream applies
    /// every event to the kind's store and passes it on unchanged; the caller must poll it.
    /// Returns the store too (the Canaries: the reconciles and the dashboard read it).
    pub fn reflect_all<K, S>(
        &self,
        api: &Api<K>,
        events: S,
    ) -> (
        PackedStore<K>,
        impl Stream<Item = S::Item> + Send + use<K, S>,
    )
    where
        K: Cacheable,
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    {
        let (kind, store) = Kind::all();
        (store, reflect_into(self.register(api, kind), events))
    }

    /// [`Cache::reflect_all`] for a kind of which only what Serin manages is kept (the
    /// workloads: the watch sees every Deployment, the store keeps targets and primaries).
    pub fn reflect<K, S>(
        &self,
        api: &Api<K>,
        events: S,
    ) -> impl Stream<Item = S::Item> + Send + use<K, S>
    where
        K: Cacheable,
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    {
        reflect_into(self.register(api, Kind::managed()), events)
    }

    fn register<K: Cacheable>(&self, api: &Api<K>, kind: Kind<K>) -> Arc<Kind<K>> {
        let kind = Arc::new(kind);
        if let Some(inner) = &self.inner {
            lock(&inner.kinds).insert(kind_key::<K>(api), kind.clone());
        }
        kind
    }
}

/// `object` as kept: without managed fields.
fn strip<K: Resource>(mut object: K) -> K {
    object.meta_mut().managed_fields = None;
    object
}

/// Applies the watch's events to the kind's store (kept objects, without managed fields) and
/// passes them on.
fn reflect_into<K, S>(kind: Arc<Kind<K>>, events: S) -> impl Stream<Item = S::Item> + Send
where
    K: Cacheable,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    events
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
        .inspect(move |event| {
            if let Ok(event) = event {
                kind.apply(event);
            }
        })
}

impl Inner {
    /// The kind's cache, started on first use; `None` when `api` reads outside the
    /// controller's namespace (such reads always go to the API server).
    fn kind<K: Cacheable>(&self, api: &Api<K>) -> Option<Arc<Kind<K>>> {
        let ns = api.namespace();
        if let (Some(scope), Some(ns)) = (&self.namespace, ns)
            && scope != ns
        {
            return None;
        }
        let key = kind_key::<K>(api);
        let mut kinds = lock(&self.kinds);
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
        let kind = Arc::new(Kind::managed());
        kinds.insert(key.clone(), kind.clone());
        drop(kinds);
        let what = key.1.clone();
        tracing::debug!("watching {what} for the cache");
        let events = watcher(watch_api, watch_config()).default_backoff();
        let stream = reflect_into(kind.clone(), events);
        let task = tokio::spawn(async move {
            let mut reported = false;
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Err(e) if !reported => {
                        // Reads keep going to the API server meanwhile; the watch retries.
                        tracing::warn!(
                            "cannot watch {what} for the cache, reading it with GETs meanwhile: {}",
                            describe_watch_error(&e)
                        );
                        reported = true;
                    }
                    Err(e) => {
                        tracing::debug!("cache watch of {what}: {}", describe_watch_error(&e))
                    }
                    Ok(_) => reported = false,
                }
            }
        });
        lock(&self.tasks).push(task);
        Some(kind)
    }
}

/// How Serin's watches list: in pages of 100 objects, so that the first list of a kind with
/// thousands of objects (every Deployment of the cluster) is never decoded all at once (kube's
/// default page is 500; the list's peak is what sets the controller's peak memory).
pub fn watch_config() -> watcher::Config {
    watcher::Config::default().page_size(100)
}

/// A watch error in words (the API error described, not kube-rs' debug form).
pub fn describe_watch_error(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => crate::k8s::error::describe(e).to_string(),
        watcher::Error::WatchError(status) => {
            format!(
                "the API server ended the watch: HTTP {} {}",
                status.code, status.message
            )
        }
        watcher::Error::NoResourceVersion => e.to_string(),
    }
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

#[cfg(test)]
mod tests;
