//! What feeds the [`View`]: the controller's Canary watch (through
//! [`CanaryObserver`]) and the events Serin records (through [`EventTee`], wrapped around the
//! controller's event sink). No API read is made for the dashboard.

use std::sync::Arc;

use async_trait::async_trait;
use kube::runtime::watcher;

use super::state::View;
use crate::api::Canary;
use crate::controller::ports::{EventKind, EventSink};
use crate::controller::runtime::CanaryObserver;
use crate::k8s::packed::PackedStore;

impl CanaryObserver for View {
    fn cache(&self, store: PackedStore<Canary>) {
        self.attach(store);
    }

    fn event(&self, event: &watcher::Event<Canary>) {
        match event {
            watcher::Event::Apply(canary) | watcher::Event::InitApply(canary) => {
                self.applied(canary)
            }
            watcher::Event::Delete(canary) => self.deleted(canary),
            watcher::Event::Init => {}
            watcher::Event::InitDone => self.relisted(),
        }
    }
}

/// An [`EventSink`] that shows each event on the dashboard, then passes it on.
pub struct EventTee {
    inner: Arc<dyn EventSink>,
    view: Arc<View>,
}

impl EventTee {
    pub fn new(inner: Arc<dyn EventSink>, view: Arc<View>) -> Self {
        Self { inner, view }
    }
}

#[async_trait]
impl EventSink for EventTee {
    async fn publish(&self, canary: &Canary, kind: EventKind, message: &str) {
        self.view.event(canary, kind, message);
        self.inner.publish(canary, kind, message).await;
    }
}
