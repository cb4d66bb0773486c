//! Watch streams: newline-delimited JSON events, initial events, resume from a resourceVersion,
//! bookmarks (including `k8s.io/initial-events-end`), 410 Gone, timeouts and dropped streams.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::registry::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::status::ApiError;
use crate::store::{Event, EventType, StoreError, namespace_of};
use crate::table::{self, View};

/// A parsed watch request.
pub struct WatchReq {
    pub def: Arc<ResourceDef>,
    pub version: String,
    pub ns: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// None or 0: start with the current state as ADDED events.
    pub rv: Option<u64>,
    pub send_initial: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub view: View,
}

impl WatchReq {
    fn matches(&self, obj: &Value) -> bool {
        self.ns.as_deref().is_none_or(|ns| namespace_of(obj) == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    fn render(&self, etype: &str, obj: &Value) -> Bytes {
        line(&WatchLine {
            object: &table::one(&self.def, &self.version, self.view, obj),
            etype,
        })
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let (kind, api_version) = match self.view {
            View::Meta => (
                "PartialObjectMetadata".to_string(),
                "meta.k8s.io/v1".to_string(),
            ),
            _ => (self.def.kind.clone(), self.def.api_version(&self.version)),
        };
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            &json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": meta}}),
        )
    }

    /// The event this watcher sees for a store event, with selector transitions.
    fn transition<'a>(&self, ev: &'a Event) -> Option<(&'static str, &'a Value)> {
        if ev.res != self.def.store_key() {
            return None;
        }
        let now = self.matches(&ev.object);
        let before = ev.old.as_ref().map(|o| self.matches(o));
        match (ev.etype, before, now) {
            (EventType::Added, _, true) => Some(("ADDED", &ev.object)),
            (EventType::Modified, Some(true), true) => Some(("MODIFIED", &ev.object)),
            (EventType::Modified, Some(false) | None, true) => Some(("ADDED", &ev.object)),
            (EventType::Modified, Some(true), false) => Some(("DELETED", &ev.object)),
            (EventType::Deleted, _, true) => Some(("DELETED", &ev.object)),
            _ => None,
        }
    }
}

/// One watch event as sent: `{"object":…,"type":…}`, the object serialized where it is kept
/// (fields in the order a JSON map of the two would have).
#[derive(Serialize)]
struct WatchLine<'a> {
    object: &'a Value,
    #[serde(rename = "type")]
    etype: &'a str,
}

fn line<T: Serialize>(v: &T) -> Bytes {
    let mut s = serde_json::to_vec(v).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

/// Starts a watch and returns the streaming response.
pub fn start(shared: Arc<Shared>, req: WatchReq) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let prepared = {
        let st = shared.lock();
        let start_rv = st.current_rv();
        let from_state = req.send_initial || req.rv.is_none_or(|r| r == 0);
        let initial: Vec<Value> = if from_state {
            let ns = req.ns.as_deref();
            st.list(&req.def.store_key(), ns, None)
                .map(|(_, o)| o)
                .filter(|o| req.matches(o))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let replay = match req.rv {
            Some(rv) if rv > 0 && !req.send_initial => st.events_since(rv),
            _ => Ok(Vec::new()),
        };
        replay.map(|replay| (initial, replay, st.subscribe(), start_rv))
    };
    match prepared {
        Ok((initial, replay, events, start_rv)) => {
            tokio::spawn(run(shared, req, initial, replay, events, start_rv, tx));
        }
        Err(StoreError::Gone { requested, oldest }) => {
            let err = ApiError::gone(format!("too old resource version: {requested} ({oldest})"));
            let _ = tx.try_send(line(&json!({"type": "ERROR", "object": err.to_status()})));
        }
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn run(
    shared: Arc<Shared>,
    req: WatchReq,
    initial: Vec<Value>,
    replay: Vec<Arc<Event>>,
    mut events: broadcast::Receiver<Arc<Event>>,
    start_rv: u64,
    tx: mpsc::Sender<Bytes>,
) {
    let mut timeout = req.timeout;
    if let Some(max) = shared.max_watch {
        timeout = timeout.min(max);
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut drop_rx = shared.faults.drop_signal();
    drop_rx.borrow_and_update();
    let mut shutdown = shared.shutdown.clone();
    let mut ticker = tokio::time::interval(shared.bookmark_interval);
    ticker.tick().await;
    for o in &initial {
        if tx.send(req.render("ADDED", o)).await.is_err() {
            return;
        }
    }
    if req.send_initial && tx.send(req.bookmark(start_rv, true)).await.is_err() {
        return;
    }
    let mut last_rv = start_rv;
    for ev in &replay {
        last_rv = last_rv.max(ev.rv);
        if let Some((t, o)) = req.transition(ev)
            && tx.send(req.render(t, o)).await.is_err()
        {
            return;
        }
    }
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = drop_rx.changed() => break,
            _ = shutdown.changed() => break,
            _ = tx.closed() => break,
            _ = ticker.tick(), if req.bookmarks => {
                if tx.send(req.bookmark(last_rv, false)).await.is_err() {
                    break;
                }
            }
            r = events.recv() => match r {
                Ok(ev) => {
                    if ev.rv <= last_rv {
                        continue;
                    }
                    last_rv = ev.rv;
                    if let Some((t, o)) = req.transition(&ev)
                        && tx.send(req.render(t, o)).await.is_err() {
                            break;
                        }
                }
                // A slow watcher is cut off; it resumes from its last resourceVersion.
                Err(_) => break,
            },
        }
    }
}
