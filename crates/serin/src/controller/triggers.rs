//! What turns a watch event into a reconcile: which changes of a Canary matter, and which
//! Canaries a Deployment, DaemonSet, Knative Service, ConfigMap or Secret concerns (through
//! [`CanaryIndex`]). Used by the runtime's watches.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Predicate, predicates, watcher};

use k8s_openapi::api::apps::v1::Deployment;

use crate::api::Canary;
use crate::api::apis::knative::KnativeService;
use crate::api::request::{PAUSE_ANNOTATION, REQUEST_ANNOTATION};

/// What of a Canary triggers a reconcile: its spec (the generation, or every version when the
/// server does not keep one), its finalizers, its deletion and Serin's request and pause
/// annotations (`kubectl serin`). Status writes (the scheduler's own, every step) do not: the
/// scheduler's `requeue_after` already schedules the next tick.
pub fn canary_trigger(canary: &Canary) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let deleting = |c: &Canary| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        c.metadata.deletion_timestamp.is_some().hash(&mut h);
        Some(h.finish())
    };
    let requests = |c: &Canary| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let annotations = c.metadata.annotations.as_ref();
        for key in [REQUEST_ANNOTATION, PAUSE_ANNOTATION] {
            annotations.and_then(|a| a.get(key)).hash(&mut h);
        }
        Some(h.finish())
    };
    predicates::generation
        .fallback(predicates::resource_version)
        .combine(predicates::finalizers)
        .combine(deleting)
        .combine(requests)
        .hash_property(canary)
}

/// Which Canaries point at which objects: the reverse of every Canary's `targetRef` and
/// tracked configs (`status.trackedConfigs`), so that a watch event of a Deployment, DaemonSet,
/// Knative Service, ConfigMap or Secret finds its Canaries in one lookup instead of a scan of
/// every Canary (at 10,000 Canaries the scan was most of the controller's CPU). Fed the Canary
/// watch's events by the runtime, relists included.
#[derive(Default)]
pub(super) struct CanaryIndex {
    maps: std::sync::RwLock<Maps>,
    /// The index being rebuilt by a relist (between the watch's `Init` and `InitDone`).
    relist: std::sync::Mutex<Option<Maps>>,
}

type CanaryRef = ObjectRef<Canary>;
/// One Canary's key, shared by every map of the index that names it (an `ObjectRef` is about
/// a hundred bytes and two strings; the index keeps each once).
type SharedRef = Arc<CanaryRef>;

/// What one Canary was indexed under (in its own namespace).
#[derive(Clone, Debug, PartialEq)]
struct Points {
    target_kind: String,
    target: String,
    /// `configmap/NAME` and `secret/NAME` keys of its tracked configs.
    configs: Vec<String>,
}

impl Points {
    fn of(canary: &Canary) -> Self {
        Self {
            target_kind: canary.spec.target_ref.kind.clone(),
            target: canary.spec.target_ref.name.clone(),
            configs: canary
                .status
                .as_ref()
                .and_then(|s| s.tracked_configs.as_ref())
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

/// (namespace, name) of a pointed-at object.
type Pointed = (String, String);

#[derive(Default)]
struct Maps {
    canaries: HashMap<SharedRef, Points>,
    targets: HashMap<Pointed, Vec<SharedRef>>,
    configs: HashMap<Pointed, Vec<SharedRef>>,
}

impl Maps {
    fn insert(&mut self, canary: &Canary) {
        let key = Arc::new(canary_ref(canary));
        let points = Points::of(canary);
        if self.canaries.get(&key) == Some(&points) {
            return;
        }
        self.remove(&key);
        let pointed = |name: &str| (namespace_of(&key), name.to_string());
        let target = pointed(&points.target);
        self.targets.entry(target).or_default().push(key.clone());
        for config in &points.configs {
            self.configs
                .entry(pointed(config))
                .or_default()
                .push(key.clone());
        }
        self.canaries.insert(key, points);
    }

    fn remove(&mut self, key: &CanaryRef) {
        let Some(points) = self.canaries.remove(key) else {
            return;
        };
        drop_from(&mut self.targets, (namespace_of(key), points.target), key);
        for config in points.configs {
            drop_from(&mut self.configs, (namespace_of(key), config), key);
        }
    }
}

fn drop_from(map: &mut HashMap<Pointed, Vec<SharedRef>>, pointed: Pointed, key: &CanaryRef) {
    if let Some(keys) = map.get_mut(&pointed) {
        keys.retain(|k| **k != *key);
        if keys.is_empty() {
            map.remove(&pointed);
        }
    }
}

fn namespace_of(key: &CanaryRef) -> String {
    key.namespace.clone().unwrap_or_default()
}

/// The key of a Canary, without the resource version and UID `ObjectRef::from_obj` keeps.
pub(super) fn canary_ref(canary: &Canary) -> CanaryRef {
    let name = canary.metadata.name.as_deref().unwrap_or_default();
    ObjectRef::new(name).within(canary.metadata.namespace.as_deref().unwrap_or_default())
}

/// Whether a Canary whose `targetRef` has `target_kind` points at an object of `kind` with its
/// name: a Deployment event also reaches the Canaries whose target kind is neither DaemonSet
/// nor Service (an unset kind, for one).
fn kind_matches(target_kind: &str, kind: &str) -> bool {
    target_kind == kind || (kind == "Deployment" && !matches!(target_kind, "DaemonSet" | "Service"))
}

impl CanaryIndex {
    /// Applies one event of the Canary watch.
    pub(super) fn apply(&self, event: &watcher::Event<Canary>) {
        match event {
            watcher::Event::Apply(canary) => self.write().insert(canary),
            watcher::Event::Delete(canary) => self.write().remove(&canary_ref(canary)),
            watcher::Event::Init => *self.pending() = Some(Maps::default()),
            watcher::Event::InitApply(canary) => {
                if let Some(maps) = self.pending().as_mut() {
                    maps.insert(canary);
                }
            }
            watcher::Event::InitDone => {
                if let Some(maps) = self.pending().take() {
                    *self.write() = maps;
                }
            }
        }
    }

    /// The Canaries whose `targetRef` is the `kind` object `namespace/name`.
    pub(super) fn targeting(&self, kind: &str, namespace: &str, name: &str) -> Vec<CanaryRef> {
        let maps = self.read();
        let Some(keys) = maps.targets.get(&(namespace.to_string(), name.to_string())) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|k| {
                maps.canaries
                    .get(*k)
                    .is_some_and(|p| kind_matches(&p.target_kind, kind))
            })
            .map(|k| CanaryRef::clone(k))
            .collect()
    }

    /// Every indexed Canary with the name of its target: `(namespace, name, target)`.
    pub(super) fn targets(&self) -> Vec<(String, String, String)> {
        self.read()
            .canaries
            .iter()
            .map(|(key, points)| (namespace_of(key), key.name.clone(), points.target.clone()))
            .collect()
    }

    /// The Canaries that track the config `prefix/name` (`configmap` or `secret`) of
    /// `namespace`.
    pub(super) fn tracking(&self, prefix: &str, namespace: &str, name: &str) -> Vec<CanaryRef> {
        let pointed = (namespace.to_string(), format!("{prefix}/{name}"));
        self.read()
            .configs
            .get(&pointed)
            .map(|keys| keys.iter().map(|k| CanaryRef::clone(k)).collect())
            .unwrap_or_default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Option<Maps>> {
        self.relist.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether the API server serves Knative Services (`serving.knative.dev/v1`).
pub(super) async fn knative_served(client: &kube::Client) -> bool {
    match client
        .list_api_group_resources("serving.knative.dev/v1")
        .await
    {
        Ok(list) => list.resources.iter().any(|r| r.name == "services"),
        Err(e) => {
            tracing::debug!("Knative Services are not served, not watched: {e}");
            false
        }
    }
}

/// What of a Knative Service triggers a reconcile: its latest created revision.
pub(super) fn latest_created_revision(service: &KnativeService) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    service.latest_created_revision()?.hash(&mut h);
    Some(h.finish())
}

/// What of a Deployment triggers a reconcile of its Canaries: its pod template, i.e. a new
/// revision. A scale changes the generation but not the revision: Serin scales every target up
/// when a run starts and down when it ends, an autoscaler or a user may scale it too. Those
/// are picked up at the next interval, as in Flagger (whose revision is the template's hash
/// as well), instead of costing a reconcile each (at 10,000 Canaries, about one in five
/// reconciles was Serin's own scale coming back). A Deployment without a template (never from
/// a real API server) falls back to its generation.
pub(super) fn pod_template(deployment: &Deployment) -> Option<u64> {
    use std::hash::{DefaultHasher, Hasher};
    /// Feeds serde_json's output to the hasher without building the string.
    struct Feed<'a>(&'a mut DefaultHasher);
    impl std::io::Write for Feed<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let Some(template) = deployment.spec.as_ref().map(|s| &s.template) else {
        return predicates::generation(deployment);
    };
    let mut h = DefaultHasher::new();
    serde_json::to_writer(Feed(&mut h), template).ok()?;
    Some(h.finish())
}

/// An object not seen for this long is forgotten by [`Changes`] (kube-runtime's
/// `predicate_filter` default); its next event passes.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// What [`changed`] remembers: per object, the value of the predicate at its last event.
///
/// kube-runtime's `predicate_filter` does the same with the object's name, namespace and UID
/// as the key, three strings per object: 0.9 MB at 1,000 Canaries (their Deployments included),
/// most of it keys. Here an object is known by a 64-bit hash of the three; two of 100,000
/// objects share one with a probability of about 10^-10, and then one event of one of them
/// may be dropped, which the Canary's next interval makes up for.
pub(super) struct Changes {
    seen: HashMap<u64, (u64, Instant)>,
    hasher: RandomState,
    last_forgot: Instant,
}

impl Changes {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            seen: HashMap::new(),
            hasher: RandomState::new(),
            last_forgot: now,
        }
    }

    /// Whether an event of the object `(namespace, name, uid)` with predicate value `value`
    /// passes: no value, a value other than the last one, or a first event (or the first after
    /// [`FORGET_AFTER`]).
    pub(super) fn passes(
        &mut self,
        object: (Option<&str>, Option<&str>, Option<&str>),
        value: Option<u64>,
        now: Instant,
    ) -> bool {
        if now.duration_since(self.last_forgot) >= FORGET_AFTER {
            self.seen
                .retain(|_, (_, seen)| now.duration_since(*seen) < FORGET_AFTER);
            self.last_forgot = now;
        }
        let Some(value) = value else {
            return true;
        };
        let key = self.hasher.hash_one(object);
        match self.seen.insert(key, (value, now)) {
            Some((last, seen)) => last != value || now.duration_since(seen) >= FORGET_AFTER,
            None => true,
        }
    }
}

/// The objects of `stream` whose `predicate` value changed since their last event (errors
/// pass), as kube-runtime's `predicate_filter` does, with less memory ([`Changes`]).
pub(super) fn changed<K, S>(
    stream: S,
    predicate: impl Fn(&K) -> Option<u64> + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource + Send + 'static,
    S: futures::Stream<Item = Result<K, watcher::Error>> + Send,
{
    let mut changes = Changes::new(Instant::now());
    stream.filter(move |item| {
        let passes = match item {
            Ok(object) => {
                let meta = object.meta();
                let identity = (
                    meta.namespace.as_deref(),
                    meta.name.as_deref(),
                    meta.uid.as_deref(),
                );
                changes.passes(identity, predicate(object), Instant::now())
            }
            Err(_) => true,
        };
        futures::future::ready(passes)
    })
}

/// Logs a watch error of `kind` (the watch retries with back-off by itself).
fn log_watch_error(kind: &str, e: &watcher::Error) {
    tracing::warn!(
        "{kind} watch: {}",
        crate::k8s::cache::describe_watch_error(e)
    );
}

/// The Canaries a stream of `kind` objects points at, through `map`; watch errors are logged.
pub(super) fn triggers_of<K, S, M>(
    kind: &'static str,
    stream: S,
    map: M,
) -> std::pin::Pin<Box<dyn futures::Stream<Item = ObjectRef<Canary>> + Send>>
where
    K: Send + 'static,
    S: futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    M: Fn(&K) -> Vec<ObjectRef<Canary>> + Send + 'static,
{
    stream
        .flat_map(move |r| {
            let refs = match r {
                Ok(obj) => map(&obj),
                Err(e) => {
                    log_watch_error(kind, &e);
                    Vec::new()
                }
            };
            futures::stream::iter(refs)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canary(ns: &str, name: &str, kind: &str, target: &str, configs: &[&str]) -> Canary {
        let tracked: serde_json::Map<String, serde_json::Value> = configs
            .iter()
            .map(|c| (c.to_string(), serde_json::json!("checksum")))
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                "service": {"port": 80},
                "analysis": {"interval": "10s", "threshold": 2}
            },
            "status": {"phase": "Initialized", "trackedConfigs": tracked}
        }))
        .unwrap()
    }

    /// A Canary of namespace `a` targeting the Deployment of its own name.
    fn plain(name: &str) -> Canary {
        canary("a", name, "Deployment", name, &[])
    }

    fn names(refs: Vec<CanaryRef>) -> Vec<String> {
        let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn targets_are_found_by_namespace_name_and_kind() {
        let index = CanaryIndex::default();
        for c in [
            canary("a", "web", "Deployment", "web", &[]),
            canary("a", "web-ds", "DaemonSet", "web", &[]),
            canary("a", "odd", "", "web", &[]),
            canary("b", "web", "Deployment", "web", &[]),
            canary("a", "api", "Deployment", "api", &[]),
        ] {
            index.apply(&watcher::Event::Apply(c));
        }
        assert_eq!(
            names(index.targeting("Deployment", "a", "web")),
            ["odd", "web"]
        );
        assert_eq!(names(index.targeting("DaemonSet", "a", "web")), ["web-ds"]);
        assert_eq!(
            names(index.targeting("Service", "a", "web")),
            Vec::<String>::new()
        );
        assert_eq!(names(index.targeting("Deployment", "b", "web")), ["web"]);
        assert_eq!(
            names(index.targeting("Deployment", "c", "web")),
            Vec::<String>::new()
        );
        let found = index.targeting("Deployment", "b", "web");
        assert_eq!(found[0].namespace.as_deref(), Some("b"));
    }

    #[test]
    fn a_changed_target_or_config_moves_the_canary_and_a_deletion_removes_it() {
        let index = CanaryIndex::default();
        index.apply(&watcher::Event::Apply(canary(
            "a",
            "web",
            "Deployment",
            "web",
            &["configmap/web-config"],
        )));
        assert_eq!(
            names(index.tracking("configmap", "a", "web-config")),
            ["web"]
        );
        index.apply(&watcher::Event::Apply(canary(
            "a",
            "web",
            "Deployment",
            "web-v2",
            &["secret/web-token"],
        )));
        assert!(index.targeting("Deployment", "a", "web").is_empty());
        assert_eq!(names(index.targeting("Deployment", "a", "web-v2")), ["web"]);
        assert!(index.tracking("configmap", "a", "web-config").is_empty());
        assert_eq!(names(index.tracking("secret", "a", "web-token")), ["web"]);
        assert!(index.tracking("configmap", "a", "web-token").is_empty());

        index.apply(&watcher::Event::Delete(canary(
            "a",
            "web",
            "Deployment",
            "web-v2",
            &[],
        )));
        assert!(index.targeting("Deployment", "a", "web-v2").is_empty());
        assert!(index.tracking("secret", "a", "web-token").is_empty());
        let maps = index.read();
        assert!(maps.canaries.is_empty() && maps.targets.is_empty() && maps.configs.is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_once_done() {
        let index = CanaryIndex::default();
        index.apply(&watcher::Event::Apply(plain("gone")));
        index.apply(&watcher::Event::Apply(plain("kept")));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(plain("kept")));
        index.apply(&watcher::Event::InitApply(plain("new")));
        // Until the relist is done, the index answers from before it.
        assert_eq!(names(index.targeting("Deployment", "a", "gone")), ["gone"]);
        assert!(index.targeting("Deployment", "a", "new").is_empty());
        index.apply(&watcher::Event::InitDone);
        assert!(index.targeting("Deployment", "a", "gone").is_empty());
        assert_eq!(names(index.targeting("Deployment", "a", "kept")), ["kept"]);
        assert_eq!(names(index.targeting("Deployment", "a", "new")), ["new"]);
    }

    #[test]
    fn changes_pass_first_events_new_values_and_unvalued_events_only() {
        let start = Instant::now();
        let mut changes = Changes::new(start);
        let web = (Some("a"), Some("web"), Some("uid-1"));
        assert!(changes.passes(web, Some(1), start), "first event");
        assert!(!changes.passes(web, Some(1), start), "same value");
        assert!(changes.passes(web, Some(2), start), "new value");
        assert!(changes.passes(web, None, start), "no value passes");
        assert!(
            !changes.passes(web, Some(2), start),
            "no value did not replace it"
        );
        // Another object (namespace, name or UID) is counted apart.
        for other in [
            (Some("b"), Some("web"), Some("uid-1")),
            (Some("a"), Some("api"), Some("uid-1")),
            (Some("a"), Some("web"), Some("uid-2")),
        ] {
            assert!(changes.passes(other, Some(2), start), "{other:?}");
        }
        assert_eq!(changes.seen.len(), 4);
    }

    #[test]
    fn changes_forget_objects_not_seen_for_an_hour() {
        let start = Instant::now();
        let s = Duration::from_secs;
        let mut changes = Changes::new(start);
        let web = (Some("a"), Some("web"), Some("uid-1"));
        let api = (Some("a"), Some("api"), Some("uid-2"));
        assert!(changes.passes(web, Some(1), start));
        assert!(changes.passes(api, Some(1), start + s(10)));
        // The hourly scan forgets `web` (not seen for an hour) and keeps `api` ...
        assert!(!changes.passes(api, Some(1), start + s(20)));
        assert!(
            changes.passes(web, Some(1), start + FORGET_AFTER),
            "forgotten"
        );
        assert_eq!(changes.seen.len(), 2);
        // ... whose next event, an hour after its last one, passes before the next scan.
        assert!(changes.passes(api, Some(1), start + s(20) + FORGET_AFTER));
        assert!(!changes.passes(web, Some(1), start + s(30) + FORGET_AFTER));
    }

    #[test]
    fn a_deployment_triggers_on_a_new_pod_template_not_on_a_scale() {
        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "podinfo", "namespace": "test", "generation": 1},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {
                    "metadata": {"labels": {"app": "podinfo"}},
                    "spec": {"containers": [{"name": "podinfo", "image": "podinfo:6.0.0"}]}
                }
            }
        }))
        .unwrap();
        let first = pod_template(&d);
        assert!(first.is_some());
        let spec = d.spec.as_mut().unwrap();
        spec.replicas = Some(0);
        d.metadata.generation = Some(2);
        assert_eq!(pod_template(&d), first, "a scale is not a new revision");
        let pod = d.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        pod.containers[0].image = Some("podinfo:6.0.1".into());
        assert_ne!(pod_template(&d), first, "a new image is");
        d.spec = None;
        assert_eq!(pod_template(&d), predicates::generation(&d));
    }

    #[tokio::test]
    async fn changed_filters_a_stream_of_objects_by_their_predicate() {
        let deployment = |name: &str, generation: i64| -> Result<Deployment, watcher::Error> {
            let mut d = Deployment::default();
            d.metadata.name = Some(name.into());
            d.metadata.namespace = Some("a".into());
            d.metadata.generation = Some(generation);
            Ok(d)
        };
        let events = futures::stream::iter([
            deployment("web", 1),
            deployment("web", 1),
            deployment("api", 1),
            deployment("web", 2),
            deployment("api", 1),
        ]);
        let passed: Vec<(String, i64)> = changed(events, predicates::generation)
            .map(|d| {
                let d = d.unwrap();
                (d.metadata.name.unwrap(), d.metadata.generation.unwrap())
            })
            .collect()
            .await;
        assert_eq!(
            passed,
            [("web".into(), 1), ("api".into(), 1), ("web".into(), 2)]
        );
    }
}
