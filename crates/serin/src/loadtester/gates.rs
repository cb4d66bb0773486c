//! Manual gates: in-memory open/closed flags keyed by canary.
//!
//! As in Flagger, gates live in the memory of one loadtester replica: they are lost on restart,
//! are not shared between replicas, and stay open until explicitly closed (an opened gate also
//! approves the next release).

use std::collections::HashMap;
use std::sync::Mutex;

/// The gate kinds the API exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateKind {
    /// `/gate/*`: key `<name>.<namespace>`.
    Promotion,
    /// `/rollback/*`: key `rollback.<name>.<namespace>`.
    Rollback,
}

impl GateKind {
    /// The storage key of a canary's gate of this kind.
    pub fn key(self, name: &str, namespace: &str) -> String {
        match self {
            GateKind::Promotion => format!("{name}.{namespace}"),
            GateKind::Rollback => format!("rollback.{name}.{namespace}"),
        }
    }
}

/// Open/closed state of every gate seen so far.
#[derive(Debug, Default)]
pub struct GateStore {
    gates: Mutex<HashMap<String, bool>>,
}

impl GateStore {
    /// An empty store (every gate closed).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the gate is open; the first check of an unknown gate creates it closed.
    pub fn is_open(&self, key: &str) -> bool {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        *gates.entry(key.to_owned()).or_insert(false)
    }

    /// Opens the gate.
    pub fn open(&self, key: &str) {
        self.set(key, true);
    }

    /// Closes the gate.
    pub fn close(&self, key: &str) {
        self.set(key, false);
    }

    fn set(&self, key: &str, open: bool) {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.insert(key.to_owned(), open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_start_closed_and_follow_open_close() {
        let store = GateStore::new();
        let key = GateKind::Promotion.key("podinfo", "test");
        assert_eq!(key, "podinfo.test");
        assert!(!store.is_open(&key));
        store.open(&key);
        assert!(store.is_open(&key));
        assert!(store.is_open(&key), "gates stay open until closed");
        store.close(&key);
        assert!(!store.is_open(&key));
    }

    #[test]
    fn rollback_gates_are_separate() {
        let store = GateStore::new();
        let gate = GateKind::Promotion.key("podinfo", "test");
        let rollback = GateKind::Rollback.key("podinfo", "test");
        assert_eq!(rollback, "rollback.podinfo.test");
        store.open(&gate);
        assert!(!store.is_open(&rollback));
    }
}
