//! [`EventSink`] writing core/v1 Events on the Canary (reason `Synced`, source and reporting
//! component `flagger`), so `kubectl describe canary` shows them as it does for Flagger.
//! Repeats of the same event are aggregated like client-go's recorder does: the existing Event's
//! `count` and `lastTimestamp` are bumped instead of creating a new object.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use crate::k8s;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::api::Canary;
use crate::controller::ports::{EventKind, EventSink};

/// The reason of every event (Flagger's).
pub const REASON: &str = "Synced";
/// The source and reporting component (Flagger's, so existing tooling keeps matching).
pub const COMPONENT: &str = "flagger";
/// Aggregation entries kept before the cache is reset (bounds memory).
const CACHE_LIMIT: usize = 4096;

/// What makes two events repeats of each other: the Canary, the type and the message.
#[derive(Hash)]
struct EventKey<'a> {
    namespace: &'a str,
    uid: &'a str,
    event_type: &'static str,
    message: &'a str,
}

/// The Event a series of repeats is counted on.
#[derive(Clone, Debug)]
struct Seen {
    name: Box<str>,
    count: i32,
}

/// Writes Kubernetes Events through the workload cluster's client.
pub struct KubeEventSink {
    client: kube::Client,
    instance: String,
    /// Series by the 64-bit hash of their [`EventKey`], not the key: the namespaces, UIDs and
    /// messages were most of a full cache's memory, and two of its 4,096 keys share a hash
    /// with a probability of about 10^-12.
    seen: Mutex<HashMap<u64, Seen>>,
    hasher: RandomState,
}

impl KubeEventSink {
    /// `instance` is the `reportingInstance` (the host name).
    pub fn new(client: kube::Client, instance: String) -> Self {
        Self {
            client,
            instance,
            seen: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_event(&self, canary: &Canary, kind: EventKind, message: &str, now: Timestamp) -> Event {
        let name = canary.name_any();
        let namespace = canary.namespace().unwrap_or_default();
        let nanos = now.as_nanosecond();
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{nanos:x}")),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(Canary::api_version(&()).into_owned()),
                kind: Some(Canary::kind(&()).into_owned()),
                name: Some(name),
                namespace: Some(namespace),
                uid: canary.metadata.uid.clone(),
                resource_version: canary.metadata.resource_version.clone(),
                ..ObjectReference::default()
            },
            reason: Some(REASON.to_string()),
            message: Some(message.to_string()),
            type_: Some(kind.event_type().to_string()),
            source: Some(EventSource {
                component: Some(COMPONENT.to_string()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.to_string()),
            reporting_instance: Some(self.instance.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Event::default()
        }
    }

    async fn create(
        &self,
        canary: &Canary,
        namespace: &str,
        kind: EventKind,
        message: &str,
        key: u64,
    ) {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let event = self.new_event(canary, kind, message, Timestamp::now());
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                let mut seen = self.seen();
                if seen.len() >= CACHE_LIMIT {
                    seen.clear();
                }
                seen.insert(
                    key,
                    Seen {
                        name: created.metadata.name.unwrap_or_default().into(),
                        count: 1,
                    },
                );
            }
            Err(e) => tracing::warn!(
                canary = %format!("{}.{namespace}", canary.name_any()),
                "event recording failed: {}",
                k8s::error::describe(&e)
            ),
        }
    }
}

#[async_trait]
impl EventSink for KubeEventSink {
    async fn publish(&self, canary: &Canary, kind: EventKind, message: &str) {
        let namespace = canary.namespace().unwrap_or_default();
        let key = self.hasher.hash_one(EventKey {
            namespace: &namespace,
            uid: canary.metadata.uid.as_deref().unwrap_or_default(),
            event_type: kind.event_type(),
            message,
        });
        let previous = self.seen().get(&key).cloned();
        let Some(previous) = previous else {
            self.create(canary, &namespace, kind, message, key).await;
            return;
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let count = previous.count.saturating_add(1);
        let patch = json!({"count": count, "lastTimestamp": Time(Timestamp::now())});
        match api
            .patch(
                &previous.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                if let Some(entry) = self.seen().get_mut(&key) {
                    entry.count = count;
                }
            }
            Err(_) => {
                // Gone (expired or deleted) or unreadable: start a new series.
                self.seen().remove(&key);
                self.create(canary, &namespace, kind, message, key).await;
            }
        }
    }
}
