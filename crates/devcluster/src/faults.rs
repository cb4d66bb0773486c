//! Fault hooks: added latency, a share of 403/409/500/503 answers per verb, dropped watch
//! streams.
//!
//! Error shares are deterministic: a share of 0.25 fails exactly every fourth matching request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::status::ApiError;

/// A fault specification that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    #[error("unsupported fault status code {0} (use 403, 409, 500 or 503)")]
    Code(u16),
    #[error("share must be between 0 and 1, got {0}")]
    Share(f64),
    #[error(
        "unknown verb {0:?} (get, list, watch, create, update, patch, delete, deletecollection or *)"
    )]
    Verb(String),
    #[error("cannot parse fault {0:?}; expected VERB=CODE:SHARE, e.g. patch=503:0.2")]
    Syntax(String),
}

const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "*",
];

#[derive(Debug, Default)]
struct State {
    latency: Duration,
    /// verb → (code, share, accumulator)
    errors: HashMap<String, Vec<(u16, f64, f64)>>,
}

/// Fault injection controls of one dev cluster.
#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
    drop_tx: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new()
    }
}

impl Faults {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            drop_tx: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `latency` before every API request is answered.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    pub fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// Answers `share` (0..=1) of the requests with `verb` (or `*`) with `code` (403, 409, 500 or
    /// 503; 403 stands in for RBAC, which the dev cluster does not have).
    pub fn set_error_share(&self, verb: &str, code: u16, share: f64) -> Result<(), FaultError> {
        if !VERBS.contains(&verb) {
            return Err(FaultError::Verb(verb.to_string()));
        }
        if ![403, 409, 500, 503].contains(&code) {
            return Err(FaultError::Code(code));
        }
        if !(0.0..=1.0).contains(&share) {
            return Err(FaultError::Share(share));
        }
        let mut st = self.lock();
        let list = st.errors.entry(verb.to_string()).or_default();
        list.retain(|(c, _, _)| *c != code);
        if share > 0.0 {
            list.push((code, share, 0.0));
        }
        Ok(())
    }

    /// Parses and applies `VERB=CODE:SHARE` (the CLI form).
    pub fn add_spec(&self, spec: &str) -> Result<(), FaultError> {
        let syntax = || FaultError::Syntax(spec.to_string());
        let (verb, rest) = spec.split_once('=').ok_or_else(syntax)?;
        let (code, share) = rest.split_once(':').ok_or_else(syntax)?;
        let code: u16 = code.trim().parse().map_err(|_| syntax())?;
        let share: f64 = share.trim().parse().map_err(|_| syntax())?;
        self.set_error_share(verb.trim(), code, share)
    }

    /// Removes every error share and the latency.
    pub fn clear(&self) {
        *self.lock() = State::default();
    }

    /// Ends every open watch stream now (clients see the stream close and re-watch).
    pub fn drop_watches(&self) {
        self.drop_tx.send_modify(|n| *n += 1);
    }

    pub(crate) fn drop_signal(&self) -> watch::Receiver<u64> {
        self.drop_tx.subscribe()
    }

    /// The injected error for this request, if it is one of the unlucky ones.
    pub(crate) fn decide(&self, verb: &str) -> Option<ApiError> {
        let mut st = self.lock();
        for key in [verb, "*"] {
            if let Some(list) = st.errors.get_mut(key) {
                for (code, share, acc) in list.iter_mut() {
                    *acc += *share;
                    if *acc >= 1.0 - 1e-9 {
                        *acc -= 1.0;
                        return Some(match *code {
                            403 => ApiError::new(
                                403,
                                "Forbidden",
                                "injected fault: forbidden: the user may not do this",
                            ),
                            409 => ApiError::new(
                                409,
                                "Conflict",
                                "injected fault: the object has been modified; please apply your changes to the latest version and try again",
                            ),
                            500 => ApiError::internal("injected fault: internal error"),
                            _ => ApiError::unavailable("injected fault: service unavailable"),
                        });
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shares_are_exact_and_specs_parse() {
        let f = Faults::new();
        f.add_spec("patch=503:0.25").unwrap();
        let fails = (0..100).filter(|_| f.decide("patch").is_some()).count();
        assert_eq!(fails, 25);
        assert!(f.decide("get").is_none());
        assert_eq!(f.add_spec("get=418:0.1"), Err(FaultError::Code(418)));
        assert!(f.add_spec("nonsense").is_err());
        f.set_error_share("patch", 403, 1.0).unwrap();
        assert_eq!(f.decide("patch").unwrap().code, 403);
        f.clear();
        f.set_error_share("*", 409, 1.0).unwrap();
        assert_eq!(f.decide("get").unwrap().reason, "Conflict");
        f.clear();
        assert!(f.decide("get").is_none());
    }
}
