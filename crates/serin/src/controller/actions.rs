//! Serin only: what a `kubectl serin` request means for a Canary, decided without I/O.
//!
//! * [`incoming`]: the one-shot request the annotation holds that is still to be handled
//!   (a new one, or a promotion waiting at its gate), from the annotations and
//!   `status.lastRequest`.
//! * [`pause_change`]: whether the pause annotation starts, holds or ends a pause, from the
//!   annotation and `status.paused`.
//! * [`plan`]: what a request does in a phase, or why it is refused.
//! * The event texts of the requests.
//!
//! The scheduler acts on these in [`super::requests`]. A Canary without the annotations gets
//! `None` / [`PauseChange::Running`] everywhere and behaves exactly as without this module.

use std::collections::BTreeMap;

use crate::api::CanaryPhase;
use crate::api::request::{
    HandledRequest, MAX_ID_CHARS, PAUSE_ANNOTATION, PauseNote, PauseStatus, REQUEST_ANNOTATION,
    Request, RequestAction, RequestOutcome,
};

/// A one-shot request still to be handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Not handled yet.
    New(Request),
    /// A promotion accepted earlier that waits for the confirm-promotion gate.
    Waiting(Request),
    /// An annotation that is not a request: refused once, acknowledged by its value.
    Unreadable { id: String, error: String },
}

/// The request of `annotations` that `last` (`status.lastRequest`) has not finished.
pub fn incoming(
    annotations: Option<&BTreeMap<String, String>>,
    last: Option<&HandledRequest>,
) -> Option<Incoming> {
    let value = annotations?.get(REQUEST_ANNOTATION)?;
    let request = match serde_json::from_str::<Request>(value) {
        Ok(r) => r,
        Err(e) => {
            let id: String = value.chars().take(MAX_ID_CHARS).collect();
            if last.is_some_and(|l| l.id == id) {
                return None;
            }
            return Some(Incoming::Unreadable {
                id,
                error: format!("{REQUEST_ANNOTATION} is not a kubectl serin request: {e}"),
            });
        }
    };
    match last.filter(|l| l.id == request.id) {
        None => Some(Incoming::New(request)),
        Some(l) if l.outcome == RequestOutcome::Waiting => Some(Incoming::Waiting(request)),
        Some(_) => None,
    }
}

/// What the pause annotation does in this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PauseChange {
    /// Not paused.
    Running,
    /// Paused just now, by this user.
    Pause(PauseNote),
    /// Paused before and still paused.
    Hold,
    /// The annotation is gone: the pause ends.
    Resume,
}

impl PauseChange {
    /// Whether the canary is (still or newly) paused.
    pub fn paused(&self) -> bool {
        matches!(self, PauseChange::Pause(_) | PauseChange::Hold)
    }
}

/// Compares the pause annotation with the pause the status records.
pub fn pause_change(
    annotations: Option<&BTreeMap<String, String>>,
    recorded: Option<&PauseStatus>,
) -> PauseChange {
    let note = annotations
        .and_then(|a| a.get(PAUSE_ANNOTATION))
        .map(|v| PauseNote::parse(v));
    match (note, recorded) {
        (None, None) => PauseChange::Running,
        (Some(note), None) => PauseChange::Pause(note),
        (Some(_), Some(_)) => PauseChange::Hold,
        (None, Some(_)) => PauseChange::Resume,
    }
}

/// Whether a reconcile must act now rather than wait for the analysis interval: a new (or
/// unreadable) request, or a pause starting or ending. `last` and `paused` are what the
/// controller recorded (`status.lastRequest`, `status.paused`).
pub fn urgent(
    annotations: Option<&BTreeMap<String, String>>,
    last: Option<&HandledRequest>,
    paused: Option<&PauseStatus>,
) -> bool {
    let request = incoming(annotations, last);
    let pause = pause_change(annotations, paused);
    matches!(
        request,
        Some(Incoming::New(_) | Incoming::Unreadable { .. })
    ) || matches!(pause, PauseChange::Pause(_) | PauseChange::Resume)
}

/// What a request does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Skip the rest of the analysis and promote; `force` skips the confirm-promotion gate.
    Promote { force: bool },
    /// Roll back now.
    Abort,
    /// Start the analysis of the current (Failed) revision again.
    Retry,
    /// End the pause.
    Resume,
    /// Not in this phase: the reason, for the Warning event.
    Refuse(String),
    /// A waiting promotion whose run ended otherwise: recorded as superseded, quietly.
    Drop,
}

/// What `request` does to a canary `key` in `phase`; `paused` is the pause as it is after this
/// reconcile ([`PauseChange::paused`]), `resuming` whether this reconcile ends a pause, and
/// `waiting` whether the request is a promotion accepted earlier (the caller leaves those alone
/// while paused).
pub fn plan(
    request: &Request,
    key: &str,
    phase: CanaryPhase,
    paused: bool,
    resuming: bool,
    waiting: bool,
) -> Plan {
    use CanaryPhase as P;
    let analysing = phase.is_analysing();
    if waiting {
        return if analysing && request.action == RequestAction::Promote {
            Plan::Promote {
                force: request.force,
            }
        } else {
            Plan::Drop
        };
    }
    let refuse = |why: String| Plan::Refuse(why);
    let no_run = || refuse(format!("{key} has no analysis in progress (phase {phase})"));
    let resume_first = || refuse(format!("{key} is paused: resume it first"));
    match request.action {
        RequestAction::Promote => match phase {
            _ if paused && analysing => resume_first(),
            P::Progressing | P::WaitingPromotion => Plan::Promote {
                force: request.force,
            },
            P::Waiting => refuse(format!(
                "{key} has not started its analysis (waiting for confirm-rollout)"
            )),
            P::Promoting | P::Finalising => refuse(format!("{key} is already being promoted")),
            P::Empty
            | P::Initializing
            | P::Initialized
            | P::Succeeded
            | P::Failed
            | P::Terminating
            | P::Terminated => no_run(),
        },
        RequestAction::Abort => match phase {
            P::Waiting | P::Progressing | P::WaitingPromotion => Plan::Abort,
            P::Promoting | P::Finalising => refuse(format!(
                "{key} is being promoted: its primary already runs the new revision"
            )),
            P::Empty
            | P::Initializing
            | P::Initialized
            | P::Succeeded
            | P::Failed
            | P::Terminating
            | P::Terminated => no_run(),
        },
        RequestAction::Retry => match phase {
            P::Failed if paused => resume_first(),
            P::Failed => Plan::Retry,
            P::Empty
            | P::Initializing
            | P::Initialized
            | P::Waiting
            | P::Progressing
            | P::WaitingPromotion
            | P::Promoting
            | P::Finalising
            | P::Succeeded
            | P::Terminating
            | P::Terminated => refuse(format!(
                "only a Failed canary can be retried ({key} is {})",
                phase_words(phase)
            )),
        },
        RequestAction::Resume if resuming => Plan::Resume,
        RequestAction::Resume if paused => refuse(format!(
            "{key} is still paused: remove the {PAUSE_ANNOTATION} annotation (kubectl serin resume does)"
        )),
        RequestAction::Resume => refuse(format!("{key} is not paused")),
    }
}

fn phase_words(phase: CanaryPhase) -> String {
    match phase {
        CanaryPhase::Empty => "not initialized yet".to_string(),
        other => format!("in phase {other}"),
    }
}

/// `<name> requested by <user> via kubectl serin`.
fn requested(action: RequestAction, force: bool, by: &str) -> String {
    let what = match action {
        RequestAction::Promote if force => "Promotion past the confirm-promotion gate",
        RequestAction::Promote => "Promotion",
        RequestAction::Abort => "Abort",
        RequestAction::Retry => "Retry",
        RequestAction::Resume => "Resume",
    };
    format!("{what} requested by {} via kubectl serin", who(by))
}

fn who(by: &str) -> &str {
    if by.trim().is_empty() {
        "an unnamed user"
    } else {
        by
    }
}

/// The Normal (Warning for an abort) event of an accepted request.
pub fn accepted(request: &Request, key: &str) -> String {
    let head = requested(request.action, request.force, &request.by);
    match request.action {
        RequestAction::Promote => format!("{head}: skipping the rest of the analysis of {key}"),
        RequestAction::Abort => format!("{head}: rolling back {key}"),
        RequestAction::Retry => format!("{head}: analysing {key} again from the start"),
        RequestAction::Resume => format!("{head}: {key} carries on"),
    }
}

/// The Warning event of a refused request.
pub fn refused(request: &Request, why: &str) -> String {
    let head = requested(request.action, request.force, &request.by);
    format!("{head} ignored: {why}")
}

/// The Warning event of an unreadable request annotation.
pub fn unreadable(error: &str) -> String {
    format!("Request ignored: {error}")
}

/// The event of a pause.
pub fn paused(note: &PauseNote, key: &str) -> String {
    format!(
        "{key} paused by {} via kubectl serin: no step, no check and no weight change until it is resumed",
        who(&note.by)
    )
}

/// The event of a pause ended by removing the annotation without `kubectl serin resume`.
pub fn resumed_by_hand(key: &str) -> String {
    format!("{key} resumed: the {PAUSE_ANNOTATION} annotation was removed")
}

/// The alert of an abort.
pub fn aborted_alert(key: &str, by: &str) -> String {
    format!(
        "Canary {key} rolled back: abort requested by {} via kubectl serin",
        who(by)
    )
}

/// The record of a request handled at `time`.
pub fn handled(
    request: &Request,
    outcome: RequestOutcome,
    message: Option<String>,
    time: k8s_openapi::jiff::Timestamp,
) -> HandledRequest {
    HandledRequest {
        id: request.id.clone(),
        action: Some(request.action),
        by: request.by.clone(),
        outcome,
        message,
        time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(time),
    }
}

#[cfg(test)]
mod tests;
