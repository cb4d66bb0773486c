//! An opt-in log of the API requests a dev cluster answered, for tests that assert which
//! requests (e.g. which writes) a client made.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

/// One request to a resource (discovery and health requests are not logged).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: String,
    pub method: String,
    /// The URL path, e.g. `/api/v1/namespaces/test/services/podinfo`.
    pub path: String,
    /// The raw query string (empty when there is none).
    pub query: String,
    pub content_type: String,
    /// Request headers (lower-case names; values that are not text are left out).
    pub headers: Vec<(String, String)>,
    /// The body as JSON (YAML bodies are parsed too); Null when empty or unparseable, or when
    /// the log keeps no bodies ([`RequestLog::set_bodies`]).
    pub body: Value,
}

impl RecordedRequest {
    /// Whether the request asked for a change (anything but get, list and watch).
    pub fn is_write(&self) -> bool {
        !matches!(self.verb.as_str(), "get" | "list" | "watch")
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The request log of one dev cluster; off until enabled. Requests failed by fault hooks are not
/// logged (they never reach the handlers).
#[derive(Debug, Default)]
pub struct RequestLog {
    enabled: AtomicBool,
    /// Set when only the requests, not their bodies, are wanted (a benchmark counting them).
    without_bodies: AtomicBool,
    entries: Mutex<Vec<RecordedRequest>>,
}

impl RequestLog {
    fn lock(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts (true) or stops (false) logging; the log is kept either way.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// Logs requests without their bodies (`body` is Null), when only the requests are
    /// counted: parsing every body again costs the API server's CPU.
    pub fn set_bodies(&self, keep: bool) {
        self.without_bodies.store(!keep, Ordering::SeqCst);
    }

    pub(crate) fn keeps_bodies(&self) -> bool {
        !self.without_bodies.load(Ordering::SeqCst)
    }

    /// The logged requests, oldest first.
    pub fn entries(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    /// The logged write requests (see [`RecordedRequest::is_write`]), oldest first.
    pub fn writes(&self) -> Vec<RecordedRequest> {
        self.lock()
            .iter()
            .filter(|r| r.is_write())
            .cloned()
            .collect()
    }

    /// Removes and returns the logged requests, oldest first (nothing is lost between reading
    /// and clearing, unlike `entries` followed by `clear`).
    pub fn take(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut *self.lock())
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Logs a request when logging is on (`make` is not called otherwise).
    pub(crate) fn record(&self, make: impl FnOnce() -> RecordedRequest) {
        if self.is_enabled() {
            let r = make();
            self.lock().push(r);
        }
    }
}
