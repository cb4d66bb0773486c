//! The child processes of `serin demo` (Prometheus, the loadtester, the controller): started
//! with their output in log files, stopped (and waited for) together.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A child that did not start.
#[derive(Debug, thiserror::Error)]
#[error("starting {what} ({program}): {source}")]
pub struct SpawnError {
    pub what: String,
    pub program: String,
    pub source: std::io::Error,
}

/// One started child.
pub struct Started {
    pub what: String,
    pub log: PathBuf,
    child: Child,
}

/// The children of one demo; each is killed when the set is stopped or dropped.
#[derive(Default)]
pub struct Children {
    started: Vec<Started>,
}

impl Children {
    /// Starts `program args` with extra `env`, stdout and stderr to `log`.
    pub fn spawn(
        &mut self,
        what: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: PathBuf,
    ) -> Result<u32, SpawnError> {
        let err = |source| SpawnError {
            what: what.to_string(),
            program: program.display().to_string(),
            source,
        };
        let out = std::fs::File::create(&log).map_err(err)?;
        let out2 = out.try_clone().map_err(err)?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(out2)
            .kill_on_drop(true)
            .spawn()
            .map_err(err)?;
        let pid = child.id().unwrap_or(0);
        self.started.push(Started {
            what: what.to_string(),
            log,
            child,
        });
        Ok(pid)
    }

    /// Children that exited on their own: (what, log file).
    pub fn exited(&mut self) -> Vec<(String, PathBuf)> {
        self.started
            .iter_mut()
            .filter_map(|s| (!matches!(s.child.try_wait(), Ok(None))).then_some(&*s))
            .map(|s| (s.what.clone(), s.log.clone()))
            .collect()
    }

    /// The process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.started.iter().filter_map(|s| s.child.id()).collect()
    }

    /// Stops every child, newest first, and waits for each to exit.
    pub async fn stop_all(&mut self) {
        while let Some(mut s) = self.started.pop() {
            if let Some(pid) = s.child.id().and_then(|p| i32::try_from(p).ok()) {
                // SIGTERM first so they shut down cleanly; SIGKILL after a grace period.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            if tokio::time::timeout(Duration::from_secs(5), s.child.wait())
                .await
                .is_err()
            {
                let _ = s.child.start_kill();
                let _ = s.child.wait().await;
            }
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Whether a process id is still running (for the demo's "nothing left behind" check).
pub fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
}
