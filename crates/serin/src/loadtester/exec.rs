//! Running external processes for tasks: combined stdout/stderr captured up to a bound, the
//! whole process group killed at the timeout.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// At most this many bytes of a command's combined output are kept.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// Errors of starting or running a process.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program is not installed (not on `PATH`).
    #[error("{program} is not installed (not found on PATH)")]
    NotInstalled {
        /// The program name.
        program: String,
    },
    /// The process could not be started.
    #[error("failed to start {program}: {source}")]
    Spawn {
        /// The program name.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Waiting for the process failed.
    #[error("failed to wait for {program}: {source}")]
    Wait {
        /// The program name.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What a finished (or killed) process left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutcome {
    /// Exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    /// Whether it was killed because the timeout expired.
    pub timed_out: bool,
    /// Combined stdout and stderr (at most [`MAX_OUTPUT_BYTES`], lossily decoded).
    pub output: String,
    /// Bytes of output that were dropped because of the bound.
    pub truncated_bytes: u64,
}

impl ProcessOutcome {
    /// Exit code 0 within the timeout.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Go-like description of how the process ended, e.g. `exit status 1`.
    pub fn status_text(&self, timeout: Duration) -> String {
        if self.timed_out {
            format!(
                "killed after the timeout of {}",
                crate::loadtester::format_duration(timeout)
            )
        } else {
            match self.code {
                Some(code) => format!("exit status {code}"),
                None => "signal: killed".to_owned(),
            }
        }
    }
}

/// Runs `program args…` with stdin closed, in its own process group, capturing combined output.
/// At `timeout` the whole group gets SIGKILL.
pub async fn run(
    program: &str,
    args: &[String],
    timeout: Duration,
) -> Result<ProcessOutcome, ExecError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ExecError::NotInstalled {
                program: program.to_owned(),
            }
        } else {
            ExecError::Spawn {
                program: program.to_owned(),
                source,
            }
        }
    })?;
    let pid = child.id();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut collected = Collected::default();

    let finished = {
        let collect = collect_output(&mut stdout, &mut stderr, &mut collected);
        let wait = child.wait();
        tokio::time::timeout(timeout, async { tokio::join!(collect, wait).1 }).await
    };
    let (status, timed_out) = match finished {
        Ok(status) => (status, false),
        Err(_elapsed) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // The group may already be gone; nothing else to do then.
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            (child.wait().await, true)
        }
    };
    let status = status.map_err(|source| ExecError::Wait {
        program: program.to_owned(),
        source,
    })?;
    Ok(ProcessOutcome {
        code: status.code(),
        timed_out,
        output: String::from_utf8_lossy(&collected.bytes).into_owned(),
        truncated_bytes: collected.dropped,
    })
}

#[derive(Default)]
struct Collected {
    bytes: Vec<u8>,
    dropped: u64,
}

impl Collected {
    fn push(&mut self, chunk: &[u8]) {
        let room = MAX_OUTPUT_BYTES.saturating_sub(self.bytes.len());
        let keep = room.min(chunk.len());
        self.bytes.extend_from_slice(&chunk[..keep]);
        self.dropped += (chunk.len() - keep) as u64;
    }
}

async fn collect_output(
    stdout: &mut Option<tokio::process::ChildStdout>,
    stderr: &mut Option<tokio::process::ChildStderr>,
    collected: &mut Collected,
) {
    let mut out_buf = [0u8; 8192];
    let mut err_buf = [0u8; 8192];
    loop {
        tokio::select! {
            read = async { match stdout.as_mut() { Some(s) => s.read(&mut out_buf).await, None => std::future::pending().await } } => {
                match read {
                    Ok(0) | Err(_) => *stdout = None,
                    Ok(n) => collected.push(&out_buf[..n]),
                }
            }
            read = async { match stderr.as_mut() { Some(s) => s.read(&mut err_buf).await, None => std::future::pending().await } } => {
                match read {
                    Ok(0) | Err(_) => *stderr = None,
                    Ok(n) => collected.push(&err_buf[..n]),
                }
            }
            else => break,
        }
        if stdout.is_none() && stderr.is_none() {
            break;
        }
    }
}

/// Cuts text for a log line at `max` bytes (on a char boundary), noting what was left out.
pub fn bounded_for_log(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [{} more bytes not logged]",
        &text[..end],
        text.len() - end
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Instant;

    fn sh(cmd: &str) -> Vec<String> {
        vec!["-c".into(), cmd.into()]
    }

    #[tokio::test]
    async fn captures_combined_output_and_exit_code() {
        let out = run(
            "sh",
            &sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert!(!out.success());
        assert!(
            out.output.contains("out\n") && out.output.contains("err\n"),
            "{:?}",
            out.output
        );
        assert_eq!(out.status_text(Duration::from_secs(1)), "exit status 3");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let start = Instant::now();
        // The background sleep keeps the pipes open: only a group kill ends it.
        let out = run(
            "sh",
            &sh("sleep 30 & sleep 30; echo never"),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        assert!(out.timed_out);
        assert!(!out.success());
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
        assert!(!out.output.contains("never"));
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let out = run(
            "sh",
            &sh("head -c 1200000 /dev/zero"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert!(out.success());
        assert_eq!(out.output.len(), MAX_OUTPUT_BYTES);
        assert_eq!(out.truncated_bytes, 1_200_000 - MAX_OUTPUT_BYTES as u64);
    }

    #[tokio::test]
    async fn missing_program_is_reported_as_not_installed() {
        let err = run("serin-no-such-program", &[], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "serin-no-such-program is not installed (not found on PATH)"
        );
    }

    #[test]
    fn log_bound_respects_char_boundaries() {
        assert_eq!(bounded_for_log("abc", 10), "abc");
        assert_eq!(bounded_for_log("ééé", 3), "é… [4 more bytes not logged]");
    }
}
