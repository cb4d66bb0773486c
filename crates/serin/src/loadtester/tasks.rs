//! The task API behind `POST /`: payload decoding, task selection by `metadata.type`, the
//! command allow-list, the deduplicating runner for long-running (`cmd`, `ngrinder`) tasks and
//! the blocking ones (`bash`, `helm`, `helmv3`, `kubectl`, `concord`).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::loadtester::concord::{ConcordError, ConcordTask};
use crate::loadtester::exec::{self, ExecError, ProcessOutcome, bounded_for_log};
use crate::loadtester::hey::{self, HeyError};
use crate::loadtester::loadgen::{self, StopSignal};
use crate::loadtester::ngrinder::{NgrinderError, NgrinderTask};
use crate::loadtester::summary;

/// At most this many bytes of a command's output go into one log line.
pub const MAX_LOGGED_OUTPUT: usize = 16 * 1024;

/// Errors answering a task request; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The body is not a webhook payload.
    #[error("decoding the request body failed: {0}")]
    BadPayload(String),
    /// No metadata in the payload.
    #[error("metadata not found in payload")]
    NoMetadata,
    /// `cmd` missing for a command task.
    #[error("cmd not found in metadata")]
    NoCmd,
    /// A `type` Serin does not know (Flagger crashes the handler here).
    #[error("unknown task type {0}")]
    UnknownType(String),
    /// The command is not covered by `--allow-cmd`.
    #[error(
        "command {0:?} is not allowed: it must start with one of the --allow-cmd prefixes and use no shell operators after it"
    )]
    NotAllowed(String),
    /// A `hey` command that does not parse.
    #[error("invalid hey command: {0}")]
    Hey(#[from] HeyError),
    /// A blocking command failed.
    #[error("command {command} failed: {output}: {status}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its (bounded) output.
        output: String,
        /// How it ended.
        status: String,
    },
    /// The program could not be run.
    #[error("command {command} failed: {source}")]
    Exec {
        /// The command line.
        command: String,
        /// Why.
        source: ExecError,
    },
    /// A concord task failed or was misconfigured.
    #[error(transparent)]
    Concord(#[from] ConcordError),
    /// An ngrinder task is misconfigured.
    #[error(transparent)]
    Ngrinder(#[from] NgrinderError),
}

impl TaskError {
    /// The HTTP status Flagger's loadtester answers with (400 for unknown types instead of a
    /// dropped connection).
    pub fn status(&self) -> u16 {
        match self {
            TaskError::BadPayload(_)
            | TaskError::NoMetadata
            | TaskError::NoCmd
            | TaskError::UnknownType(_)
            | TaskError::Hey(_)
            | TaskError::Ngrinder(_) => 400,
            TaskError::NotAllowed(_) => 403,
            TaskError::CommandFailed { .. } | TaskError::Exec { .. } | TaskError::Concord(_) => 500,
        }
    }
}

/// Flagger's webhook payload (`{"name","namespace","phase","checksum","metadata"}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// Canary phase.
    pub phase: String,
    /// Revision checksum.
    pub checksum: String,
    /// Hook metadata (values that are JSON scalars other than strings are taken as their text).
    pub metadata: BTreeMap<String, String>,
}

impl Payload {
    /// Decodes a request body.
    pub fn parse(body: &[u8]) -> Result<Self, TaskError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            namespace: Option<String>,
            #[serde(default)]
            phase: Option<String>,
            #[serde(default)]
            checksum: Option<String>,
            #[serde(default)]
            metadata: Option<BTreeMap<String, Value>>,
        }
        let raw: Raw =
            serde_json::from_slice(body).map_err(|e| TaskError::BadPayload(e.to_string()))?;
        let mut metadata = BTreeMap::new();
        for (k, v) in raw.metadata.unwrap_or_default() {
            let text = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(TaskError::BadPayload(format!(
                        "metadata.{k} must be a string, got {other}"
                    )));
                }
            };
            metadata.insert(k, text);
        }
        Ok(Self {
            name: raw.name.unwrap_or_default(),
            namespace: raw.namespace.unwrap_or_default(),
            phase: raw.phase.unwrap_or_default(),
            checksum: raw.checksum.unwrap_or_default(),
            metadata,
        })
    }

    /// `<name>.<namespace>`, the canary key used by logs, dedup and gates.
    pub fn canary(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }

    fn flag(&self, key: &str) -> bool {
        self.metadata.get(key).is_some_and(|v| parse_go_bool(v))
    }
}

fn parse_go_bool(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// The answer to a task request that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 202: started in the background (or already running).
    Accepted,
    /// 200 with this body.
    Done(String),
}

/// Policy and state shared by all task requests.
#[derive(Debug)]
pub struct TaskRunner {
    timeout: Duration,
    allow_cmd: Vec<String>,
    running: Mutex<HashSet<String>>,
    started: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerStats {
    /// Background tasks started.
    pub started: u64,
    /// Requests dropped because the same task was running.
    pub skipped: u64,
    /// Tasks (background or blocking) that failed.
    pub failed: u64,
    /// Background tasks running now.
    pub running: u64,
}

struct Claim {
    runner: Arc<TaskRunner>,
    key: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut running = self
            .runner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        running.remove(&self.key);
    }
}

/// Whether `command` is covered by one of the allowed prefixes: it starts with the prefix and
/// what follows the prefix contains no shell operator that could chain another command.
pub fn command_allowed(allow: &[String], command: &str) -> bool {
    if allow.is_empty() {
        return true;
    }
    let command = command.trim_start();
    allow.iter().any(|prefix| {
        command.strip_prefix(prefix.as_str()).is_some_and(|rest| {
            !rest.chars().any(|c| {
                matches!(
                    c,
                    ';' | '&' | '|' | '`' | '$' | '<' | '>' | '(' | ')' | '\n' | '\r'
                )
            })
        })
    })
}

impl TaskRunner {
    /// A runner killing tasks after `timeout`; `allow_cmd` empty = every command allowed.
    pub fn new(timeout: Duration, allow_cmd: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            timeout,
            allow_cmd,
            running: Mutex::new(HashSet::new()),
            started: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// The task timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Current counters.
    pub fn stats(&self) -> RunnerStats {
        RunnerStats {
            started: self.started.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            running: self.running.lock().unwrap_or_else(|p| p.into_inner()).len() as u64,
        }
    }

    /// Whether a task with this identity is running.
    pub fn is_running(&self, key: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    fn claim(self: &Arc<Self>, key: String) -> Option<Claim> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.insert(key.clone()) {
            Some(Claim {
                runner: self.clone(),
                key,
            })
        } else {
            None
        }
    }

    fn check_allowed(&self, command: &str) -> Result<(), TaskError> {
        if command_allowed(&self.allow_cmd, command) {
            Ok(())
        } else {
            Err(TaskError::NotAllowed(command.to_owned()))
        }
    }

    /// Handles one task request.
    pub async fn handle(
        self: &Arc<Self>,
        payload: &Payload,
        http: &reqwest::Client,
    ) -> Result<Answer, TaskError> {
        if payload.metadata.is_empty() {
            return Err(TaskError::NoMetadata);
        }
        let typ = payload.metadata.get("type").map_or("cmd", String::as_str);
        let result = match typ {
            "cmd" => self.start_cmd(payload),
            "bash" => {
                let cmd = payload.metadata.get("cmd").ok_or(TaskError::NoCmd)?;
                self.check_allowed(cmd)?;
                info!(canary = payload.canary(), "bash command {cmd}");
                self.blocking(payload, "bash", vec!["-c".into(), cmd.clone()], cmd)
                    .await
            }
            "helm" | "helmv3" | "kubectl" => {
                let program = if typ == "kubectl" { "kubectl" } else { "helm" };
                let cmd = payload.metadata.get("cmd").ok_or(TaskError::NoCmd)?;
                let line = format!("{program} {cmd}");
                self.check_allowed(&line)?;
                info!(canary = payload.canary(), "running command {typ} {cmd}");
                let args = cmd.split_whitespace().map(str::to_owned).collect();
                self.blocking(payload, program, args, &line).await
            }
            "concord" => {
                let task = ConcordTask::from_metadata(&payload.metadata)?;
                let canary = payload.canary();
                match tokio::time::timeout(self.timeout, task.run(http, &canary)).await {
                    Ok(Ok(())) => Ok(Answer::Done(String::new())),
                    Ok(Err(e)) => Err(e.into()),
                    Err(_) => Err(ConcordError::Timeout(self.timeout.as_secs()).into()),
                }
            }
            "ngrinder" => self.start_ngrinder(payload, http),
            other => Err(TaskError::UnknownType(other.to_owned())),
        };
        if let Err(e) = &result
            && e.status() == 500
        {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn blocking(
        &self,
        payload: &Payload,
        program: &str,
        args: Vec<String>,
        line: &str,
    ) -> Result<Answer, TaskError> {
        let canary = payload.canary();
        let outcome = exec::run(program, &args, self.timeout)
            .await
            .map_err(|source| TaskError::Exec {
                command: line.to_owned(),
                source,
            })?;
        log_output(&canary, &outcome.output, outcome.truncated_bytes);
        if outcome.success() {
            info!(canary, "command finished {line}");
            Ok(Answer::Done(if payload.flag("returnCmdOutput") {
                outcome.output
            } else {
                String::new()
            }))
        } else {
            let status = outcome.status_text(self.timeout);
            error!(
                canary,
                "command failed {line} {status} {}",
                bounded_for_log(&outcome.output, MAX_LOGGED_OUTPUT)
            );
            Err(TaskError::CommandFailed {
                command: line.to_owned(),
                output: outcome.output,
                status,
            })
        }
    }

    fn start_cmd(self: &Arc<Self>, payload: &Payload) -> Result<Answer, TaskError> {
        let cmd = payload.metadata.get("cmd").ok_or(TaskError::NoCmd)?.clone();
        self.check_allowed(&cmd)?;
        // Validate a hey command now so that a typo is a 400, not a log line.
        let hey_opts = match hey::hey_invocation(&cmd) {
            Some(args) => Some(hey::parse_args(&args)?),
            None => None,
        };
        let canary = payload.canary();
        let key = format!("{canary}{cmd}");
        let Some(claim) = self.claim(key) else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            info!(canary, "command skipped {cmd} is already running");
            return Ok(Answer::Accepted);
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        let log_output_flag = payload.flag("logCmdOutput");
        let runner = self.clone();
        tokio::spawn(async move {
            let _claim = claim;
            info!(canary, "task starting {cmd}");
            let ok = match hey_opts {
                Some(opts) => runner.run_hey(&canary, &cmd, &opts, log_output_flag).await,
                None => runner.run_shell(&canary, &cmd, log_output_flag).await,
            };
            if !ok {
                runner.failed.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Answer::Accepted)
    }

    async fn run_shell(&self, canary: &str, cmd: &str, log_cmd_output: bool) -> bool {
        match exec::run("sh", &["-c".to_owned(), cmd.to_owned()], self.timeout).await {
            Ok(outcome) if outcome.success() => {
                if log_cmd_output {
                    log_output(canary, &outcome.output, outcome.truncated_bytes);
                }
                info!(canary, "command finished {cmd}");
                true
            }
            Ok(outcome) => {
                report_failure(canary, cmd, &outcome, self.timeout);
                false
            }
            Err(e) => {
                error!(canary, "command failed {cmd} {e}");
                false
            }
        }
    }

    async fn run_hey(
        &self,
        canary: &str,
        cmd: &str,
        opts: &hey::HeyOptions,
        log_cmd_output: bool,
    ) -> bool {
        let stop = StopSignal::new();
        let run = loadgen::run(opts, stop.clone());
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(report)) => {
                if log_cmd_output {
                    let text = if opts.csv {
                        summary::format_csv(&report)
                    } else {
                        summary::format_summary(&report)
                    };
                    info!(canary, "{}", bounded_for_log(&text, MAX_LOGGED_OUTPUT));
                }
                info!(
                    canary,
                    requests = report.responses + report.error_count,
                    errors = report.error_count,
                    rps = report.requests_per_sec(),
                    "command finished {cmd}"
                );
                true
            }
            Ok(Err(e)) => {
                error!(canary, "command failed {cmd} {e}");
                false
            }
            Err(_) => {
                stop.stop();
                error!(
                    canary,
                    "command failed {cmd} killed after the timeout of {}",
                    crate::loadtester::format_duration(self.timeout)
                );
                false
            }
        }
    }

    fn start_ngrinder(
        self: &Arc<Self>,
        payload: &Payload,
        http: &reqwest::Client,
    ) -> Result<Answer, TaskError> {
        let task = NgrinderTask::from_metadata(&payload.metadata)?;
        let canary = payload.canary();
        let key = format!("{canary}{}", task.clone_id);
        let Some(claim) = self.claim(key) else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            info!(
                canary,
                "command skipped ngrinder test {} is already running", task.clone_id
            );
            return Ok(Answer::Accepted);
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        let runner = self.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let _claim = claim;
            info!(canary, "task starting ngrinder test {}", task.clone_id);
            match task.run(&http, runner.timeout, &canary).await {
                Ok(()) => info!(canary, "command finished ngrinder test {}", task.clone_id),
                Err(e) => {
                    runner.failed.fetch_add(1, Ordering::Relaxed);
                    error!(canary, "command failed ngrinder test {} {e}", task.clone_id);
                }
            }
        });
        Ok(Answer::Accepted)
    }
}

fn log_output(canary: &str, output: &str, truncated: u64) {
    if output.is_empty() {
        return;
    }
    info!(canary, "{}", bounded_for_log(output, MAX_LOGGED_OUTPUT));
    if truncated > 0 {
        warn!(canary, "{truncated} bytes of command output were not kept");
    }
}

fn report_failure(canary: &str, cmd: &str, outcome: &ProcessOutcome, timeout: Duration) {
    error!(
        canary,
        "command failed {cmd} {} {}",
        outcome.status_text(timeout),
        bounded_for_log(&outcome.output, MAX_LOGGED_OUTPUT)
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn payload_decoding_is_lenient_on_scalar_metadata() {
        let p = Payload::parse(br#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"abc","metadata":{"type":"bash","cmd":"true","returnCmdOutput":true,"n":3}}"#).unwrap();
        assert_eq!(p.canary(), "podinfo.test");
        assert_eq!(p.metadata["returnCmdOutput"], "true");
        assert_eq!(p.metadata["n"], "3");
        assert!(p.flag("returnCmdOutput"));
        assert!(matches!(
            Payload::parse(b"not json"),
            Err(TaskError::BadPayload(_))
        ));
        assert!(matches!(
            Payload::parse(br#"{"metadata":{"a":[1]}}"#),
            Err(TaskError::BadPayload(_))
        ));
        assert!(
            Payload::parse(br#"{"name":"x"}"#)
                .unwrap()
                .metadata
                .is_empty()
        );
    }

    #[test]
    fn allow_list_matches_prefixes_without_chaining() {
        let allow = vec![
            "hey ".to_owned(),
            "curl -sd 'test' http://podinfo-canary/token | grep token".to_owned(),
        ];
        assert!(command_allowed(&[], "rm -rf /"));
        assert!(command_allowed(&allow, "hey -z 1m http://x/"));
        assert!(command_allowed(&allow, "  hey -z 1m http://x/"));
        assert!(!command_allowed(&allow, "hey http://x/; rm -rf /"));
        assert!(!command_allowed(&allow, "hey $(cat /etc/passwd)"));
        assert!(!command_allowed(&allow, "curl http://evil/"));
        assert!(command_allowed(
            &allow,
            "curl -sd 'test' http://podinfo-canary/token | grep token"
        ));
        assert!(!command_allowed(
            &allow,
            "curl -sd 'test' http://podinfo-canary/token | grep token | sh"
        ));
    }

    #[test]
    fn error_statuses() {
        assert_eq!(TaskError::UnknownType("x".into()).status(), 400);
        assert_eq!(
            TaskError::UnknownType("x".into()).to_string(),
            "unknown task type x"
        );
        assert_eq!(TaskError::NotAllowed("x".into()).status(), 403);
        assert_eq!(
            TaskError::NoMetadata.to_string(),
            "metadata not found in payload"
        );
        assert_eq!(TaskError::NoCmd.to_string(), "cmd not found in metadata");
    }
}
