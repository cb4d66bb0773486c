//! Serin only: the requests `kubectl serin` leaves on a Canary, as annotations, and what the
//! controller records of them in the status (docs/operations.md).
//!
//! * [`REQUEST_ANNOTATION`] holds one one-shot [`Request`] (promote, abort, retry, resume) as
//!   JSON. The controller handles each request id once and records it in
//!   `status.lastRequest` ([`HandledRequest`]), in the same status write as the action's effect.
//! * [`PAUSE_ANNOTATION`] is a state: present means paused. Its value ([`PauseNote`]) names
//!   who paused; the controller records the pause it honours in `status.paused`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The annotation of the one-shot request.
pub const REQUEST_ANNOTATION: &str = "serin.dev/request";
/// The annotation of a pause: present = paused.
pub const PAUSE_ANNOTATION: &str = "serin.dev/paused";
/// The field manager of the plugin's writes.
pub const PLUGIN_FIELD_MANAGER: &str = "kubectl-serin";
/// Longest request id the controller keeps (an unreadable annotation is acknowledged by its
/// value, cut to this length).
pub const MAX_ID_CHARS: usize = 128;

/// What a one-shot request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestAction {
    /// Skip the rest of the analysis and promote (through the confirm-promotion gate unless
    /// forced).
    Promote,
    /// Roll back now.
    Abort,
    /// Analyse a Failed revision again from the start.
    Retry,
    /// End a pause (sent with the removal of the pause annotation, to say who resumed).
    Resume,
}

impl RequestAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestAction::Promote => "promote",
            RequestAction::Abort => "abort",
            RequestAction::Retry => "retry",
            RequestAction::Resume => "resume",
        }
    }
}

/// The value of [`REQUEST_ANNOTATION`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Unique per request: the time it was made and a random suffix.
    pub id: String,
    pub action: RequestAction,
    /// The user who asked (from the API server, else the kubeconfig).
    pub by: String,
    /// Promote only: past the confirm-promotion gate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// The value of [`PAUSE_ANNOTATION`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseNote {
    /// The user who paused.
    #[serde(default)]
    pub by: String,
}

impl PauseNote {
    /// Reads the annotation's value; a value that is not the plugin's JSON (e.g. `true`, set by
    /// hand) is still a pause, by an unnamed user.
    pub fn parse(value: &str) -> Self {
        serde_json::from_str(value).unwrap_or_default()
    }
}

/// How the controller handled a one-shot request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RequestOutcome {
    /// Acted on.
    Done,
    /// A promotion accepted and waiting for the confirm-promotion gate.
    Waiting,
    /// Not possible in the canary's phase (or unreadable): a Warning event says why.
    Refused,
    /// A waiting promotion ended by something else (a new revision, a rollback).
    Superseded,
}

/// `status.lastRequest`: the last one-shot request the controller handled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandledRequest {
    /// The request's id (the annotation's value when it could not be read).
    pub id: String,
    /// The action asked for (absent when the annotation could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RequestAction>,
    /// Who asked.
    #[serde(default)]
    pub by: String,
    pub outcome: RequestOutcome,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the controller handled it.
    pub time: Time,
}

/// `status.paused`: the pause the controller honours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStatus {
    /// Who paused.
    #[serde(default)]
    pub by: String,
    /// Since when.
    pub since: Time,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn request_round_trips_as_the_plugin_writes_it() {
        let r = Request {
            id: "20261205T024011.123Z-1a2b".into(),
            action: RequestAction::Promote,
            by: "alice".into(),
            force: false,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"id":"20261205T024011.123Z-1a2b","action":"promote","by":"alice"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        let forced: Request =
            serde_json::from_str(r#"{"id":"x","action":"promote","by":"bob","force":true}"#)
                .unwrap();
        assert!(forced.force);
    }

    #[test]
    fn a_pause_set_by_hand_is_still_a_pause() {
        assert_eq!(PauseNote::parse(r#"{"by":"alice"}"#).by, "alice");
        assert_eq!(PauseNote::parse("true"), PauseNote::default());
    }
}
