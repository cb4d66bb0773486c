//! The plugin's write commands: `promote`, `abort`, `retry`, `pause` and `resume` leave a
//! request on the Canary (annotations, a JSON merge patch with the field manager
//! `kubectl-serin`); the controller acts on it (`controller::actions`).
//!
//! Who asks is the API server's answer to a SelfSubjectReview (`authentication.k8s.io/v1`),
//! else the kubeconfig's user (its `as` when it impersonates, else the context's user name).

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::PluginError;
use crate::api::Canary;
use crate::api::request::{
    PAUSE_ANNOTATION, PLUGIN_FIELD_MANAGER, PauseNote, REQUEST_ANNOTATION, Request, RequestAction,
};
use crate::k8s;

/// A write command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    Promote { force: bool },
    Abort,
    Retry,
    Pause,
    Resume,
}

/// The user the API server says we are, else `fallback` (from the kubeconfig).
pub async fn whoami(client: &kube::Client, fallback: Option<&str>) -> String {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let served = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .ok()
        .and_then(|r| r.status?.user_info?.username)
        .filter(|u| !u.is_empty());
    served
        .or_else(|| fallback.map(str::to_string))
        .unwrap_or_else(|| "an unnamed user".to_string())
}

/// A request id: the time (whole seconds) and 8 random hex digits.
pub fn request_id(now: k8s_openapi::jiff::Timestamp) -> String {
    let mut bytes = [0u8; 4];
    // Without randomness the time alone still tells requests a second apart.
    let _ = getrandom::fill(&mut bytes);
    let seconds = crate::controller::status::whole_seconds(now);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{seconds}-{suffix}")
}

/// What a command does to a canary: the merge patch to send, or `Err` with what to print when
/// there is nothing to do.
pub fn patch_for(write: Write, canary: &Canary, by: &str, id: &str) -> Result<Value, String> {
    let key = key(canary);
    let pause = canary
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSE_ANNOTATION));
    let request = |action: RequestAction, force: bool| Request {
        id: id.to_string(),
        action,
        by: by.to_string(),
        force,
    };
    let one_shot = |r: Request| -> Result<Value, String> {
        let value = serde_json::to_string(&r).map_err(|e| e.to_string())?;
        Ok(json!({"metadata": {"annotations": {REQUEST_ANNOTATION: value}}}))
    };
    match write {
        Write::Promote { force } => one_shot(request(RequestAction::Promote, force)),
        Write::Abort => one_shot(request(RequestAction::Abort, false)),
        Write::Retry => one_shot(request(RequestAction::Retry, false)),
        Write::Pause => match pause {
            Some(v) => Err(format!(
                "{key} is already paused (by {})",
                named(&PauseNote::parse(v).by)
            )),
            None => {
                let note = serde_json::to_string(&PauseNote { by: by.to_string() })
                    .map_err(|e| e.to_string())?;
                Ok(json!({"metadata": {"annotations": {PAUSE_ANNOTATION: note}}}))
            }
        },
        Write::Resume => match pause {
            None => Err(format!("{key} is not paused")),
            Some(_) => {
                let value = serde_json::to_string(&request(RequestAction::Resume, false))
                    .map_err(|e| e.to_string())?;
                Ok(json!({"metadata": {"annotations": {
                    PAUSE_ANNOTATION: null,
                    REQUEST_ANNOTATION: value,
                }}}))
            }
        },
    }
}

fn named(by: &str) -> &str {
    if by.is_empty() { "an unnamed user" } else { by }
}

fn key(canary: &Canary) -> String {
    crate::controller::events::canary_key(canary)
}

/// What the command prints once the request is written.
pub fn confirmation(write: Write, canary: &Canary, by: &str, id: &str) -> String {
    let key = key(canary);
    let name = canary.metadata.name.as_deref().unwrap_or_default();
    let what = match write {
        Write::Promote { force: true } => {
            format!("promotion of {key} (past the confirm-promotion gate) requested")
        }
        Write::Promote { force: false } => format!("promotion of {key} requested"),
        Write::Abort => format!("abort of {key} requested"),
        Write::Retry => format!("retry of {key} requested"),
        Write::Pause => return format!("{key} paused by {by}\n"),
        Write::Resume => return format!("{key} resumed by {by}\n"),
    };
    format!(
        "{what} by {by} (request {id})\nthe controller acts on it at once; `kubectl serin status {name}` shows what it did\n"
    )
}

/// Sends the patch; a refusal is said in words with the user and the verb to ask for.
pub async fn send(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    by: &str,
    patch: &Value,
) -> Result<(), PluginError> {
    let api: Api<Canary> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(PLUGIN_FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match api.patch(name, &params, &Patch::Merge(patch)).await {
        Ok(_) => Ok(()),
        Err(e) => Err(PluginError::Api(match k8s::error::status_code(&e) {
            Some(403) => forbidden(by, namespace),
            Some(404) => format!("canary {name} not found in namespace {namespace}"),
            _ => format!(
                "writing the request on canary {name} in namespace {namespace}: {}",
                k8s::error::describe(&e)
            ),
        })),
    }
}

/// The message for a 403 on the patch.
pub fn forbidden(by: &str, namespace: &str) -> String {
    format!(
        "user \"{by}\" may not patch canaries.flagger.app in namespace \"{namespace}\": ask for the \"patch\" verb on canaries"
    )
}

#[cfg(test)]
mod tests;
