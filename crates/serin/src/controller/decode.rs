//! Canaries decoded one by one from the watch.
//!
//! The API server accepts values the CRD schema declares but does not enforce (e.g.
//! `analysis.threshold: 2147483648` for an `int32` field). A typed watch of Canaries fails on
//! the whole list when one object cannot be decoded, which stopped every Canary. The watch is
//! therefore untyped, and each object is decoded on its own: an undecodable Canary is kept out
//! of the cache (so out of the scheduler; a version that was fine before leaves it) and is
//! reported once per version: a Warning Event on it, an error log line naming it, and the gauge
//! `serin_canary_undecodable{name,namespace}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::api::DynamicObject;
use kube::runtime::watcher::Event;

use super::events;
use super::ports::{EventKind, Ports};
use crate::api::json::from_json;
use crate::api::{Canary, CanaryPhase, CanarySpec};
use crate::metrics::recorder::Recorder;

/// A Canary that could not be decoded: its metadata (for the Event and the log) and why.
#[derive(Clone, Debug)]
pub struct Undecodable {
    /// The object's metadata with an empty spec, to name it and record Events on it.
    pub canary: Box<Canary>,
    /// The decoding error, in words.
    pub reason: String,
}

impl Undecodable {
    /// The Warning Event's text.
    pub fn message(&self) -> String {
        format!("canary spec cannot be read: {}", self.reason)
    }
}

fn placeholder(obj: &DynamicObject) -> Canary {
    Canary {
        metadata: obj.metadata.clone(),
        spec: CanarySpec::default(),
        status: None,
    }
}

/// Decodes one object.
pub fn decode(obj: &DynamicObject) -> Result<Canary, Undecodable> {
    from_json::<Canary>(obj).map_err(|reason| Undecodable {
        canary: Box::new(placeholder(obj)),
        reason,
    })
}

/// One watch event of untyped objects as an event of Canaries, plus what could not be decoded.
/// An undecodable object that is applied becomes a deletion (an older version may be cached);
/// during a re-list it is simply left out of the new cache.
pub fn decode_event(event: Event<DynamicObject>) -> (Option<Event<Canary>>, Option<Undecodable>) {
    match event {
        Event::Init => (Some(Event::Init), None),
        Event::InitDone => (Some(Event::InitDone), None),
        Event::InitApply(obj) => match decode(&obj) {
            Ok(c) => (Some(Event::InitApply(c)), None),
            Err(u) => (None, Some(u)),
        },
        Event::Apply(obj) => match decode(&obj) {
            Ok(c) => (Some(Event::Apply(c)), None),
            Err(u) => (Some(Event::Delete((*u.canary).clone())), Some(u)),
        },
        Event::Delete(obj) => (
            Some(Event::Delete(decode(&obj).unwrap_or_else(|u| *u.canary))),
            None,
        ),
    }
}

/// Reports undecodable Canaries once per version and clears the report when they are fixed or
/// deleted.
pub struct Reporter {
    ports: Ports,
    event_webhook: Option<String>,
    recorder: Recorder,
    /// `namespace/name` → resourceVersion reported.
    reported: Mutex<HashMap<String, String>>,
}

fn key_of(c: &Canary) -> String {
    format!(
        "{}/{}",
        c.metadata.namespace.as_deref().unwrap_or_default(),
        c.metadata.name.as_deref().unwrap_or_default()
    )
}

impl Reporter {
    pub fn new(ports: Ports, event_webhook: Option<String>, recorder: Recorder) -> Arc<Self> {
        Arc::new(Self {
            ports,
            event_webhook,
            recorder,
            reported: Mutex::new(HashMap::new()),
        })
    }

    /// Decodes `event`, reporting (in the background) what could not be decoded.
    pub fn decode(self: &Arc<Self>, event: Event<DynamicObject>) -> Option<Event<Canary>> {
        let (decoded, bad) = decode_event(event);
        if let Some(Event::Apply(c) | Event::InitApply(c)) = &decoded {
            self.clear(c);
        }
        if let Some(Event::Delete(c)) = &decoded
            && bad.is_none()
        {
            self.clear(c);
        }
        if let Some(bad) = bad {
            self.report(bad);
        }
        decoded
    }

    fn clear(&self, canary: &Canary) {
        let key = key_of(canary);
        let was = self
            .reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        if was.is_some() {
            self.recorder.set_undecodable(
                canary.metadata.name.as_deref().unwrap_or_default(),
                canary.metadata.namespace.as_deref().unwrap_or_default(),
                false,
            );
        }
    }

    fn report(self: &Arc<Self>, bad: Undecodable) {
        let key = key_of(&bad.canary);
        let version = bad
            .canary
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let first = self
            .reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, version.clone())
            .as_ref()
            != Some(&version);
        if !first {
            return;
        }
        self.recorder.set_undecodable(
            bad.canary.metadata.name.as_deref().unwrap_or_default(),
            bad.canary.metadata.namespace.as_deref().unwrap_or_default(),
            true,
        );
        let this = self.clone();
        tokio::spawn(async move {
            events::record(
                &this.ports,
                this.event_webhook.as_deref(),
                &bad.canary,
                EventKind::Warning,
                CanaryPhase::default(),
                &bad.message(),
            )
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn object(name: &str, threshold: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": name, "namespace": "test", "resourceVersion": "7"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "service": {"port": 80},
                "analysis": {"interval": "10s", "threshold": threshold}
            }
        }))
        .unwrap()
    }

    #[test]
    fn one_undecodable_canary_leaves_the_others_alone() {
        let good = object("good", serde_json::json!(5));
        let bad = object("bad", serde_json::json!(2_147_483_648_u64));
        let (ev, none) = decode_event(Event::InitApply(good.clone()));
        assert!(none.is_none());
        assert!(
            matches!(ev, Some(Event::InitApply(c)) if c.metadata.name.as_deref() == Some("good"))
        );

        let (ev, bad_report) = decode_event(Event::InitApply(bad.clone()));
        assert!(ev.is_none(), "left out of the re-listed cache");
        let u = bad_report.unwrap();
        assert_eq!(u.canary.metadata.name.as_deref(), Some("bad"));
        assert!(u.reason.contains("2147483648"), "{}", u.reason);
        assert!(u.message().starts_with("canary spec cannot be read: "));

        let (ev, report) = decode_event(Event::Apply(bad));
        assert!(report.is_some());
        assert!(
            matches!(ev, Some(Event::Delete(c)) if c.metadata.name.as_deref() == Some("bad")),
            "a version that turned undecodable leaves the cache"
        );
    }

    #[test]
    fn deletions_of_undecodable_canaries_still_name_them() {
        let bad = object("bad", serde_json::json!("many"));
        let (ev, report) = decode_event(Event::Delete(bad));
        assert!(report.is_none());
        assert!(matches!(ev, Some(Event::Delete(c)) if c.metadata.name.as_deref() == Some("bad")));
    }
}
