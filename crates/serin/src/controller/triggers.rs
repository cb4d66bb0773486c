//! What turns a watch event into a reconcile: which changes of a Canary matter, and which
//! Canaries a Deployment, DaemonSet, Knative Service, ConfigMap or Secret points at (through the
//! Canary cache). Used by the runtime's watches.

use futures::StreamExt;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Predicate, predicates, watcher};

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

pub(super) fn targeting(
    store: &Store<Canary>,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<Canary>> {
    canaries_where(store, namespace, |c| {
        c.spec.target_ref.name == name
            && (c.spec.target_ref.kind == kind
                || (kind == "Deployment"
                    && !matches!(c.spec.target_ref.kind.as_str(), "DaemonSet" | "Service")))
    })
}

pub(super) fn tracking(
    store: &Store<Canary>,
    prefix: &str,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<Canary>> {
    let key = format!("{prefix}/{name}");
    canaries_where(store, namespace, |c| {
        c.status
            .as_ref()
            .and_then(|s| s.tracked_configs.as_ref())
            .is_some_and(|t| t.contains_key(&key))
    })
}

/// The Canaries of `namespace` for which `matches` holds.
fn canaries_where(
    store: &Store<Canary>,
    namespace: &str,
    matches: impl Fn(&Canary) -> bool,
) -> Vec<ObjectRef<Canary>> {
    store
        .state()
        .iter()
        .filter(|c| c.namespace().as_deref() == Some(namespace) && matches(c))
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
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
