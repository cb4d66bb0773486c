//! The `serin controller` processes under test: started with the dev cluster's kubeconfig (two
//! under leader election), SIGKILLed and restarted, their logs kept.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{BoxError, NS};

pub struct Controller {
    child: tokio::process::Child,
    log: PathBuf,
    started: Instant,
}

pub struct Controllers {
    pub serin: PathBuf,
    pub kubeconfig: PathBuf,
    pub metrics_server: String,
    pub leader: bool,
    pub work: PathBuf,
    pub running: Vec<Controller>,
    pub starts: usize,
}

impl Controllers {
    pub fn spawn(&mut self) -> Result<(), BoxError> {
        self.starts += 1;
        let log = self.work.join(format!("controller-{}.log", self.starts));
        let file = std::fs::File::create(&log)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = tokio::process::Command::new(&self.serin);
        cmd.arg("controller")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--port", &port.to_string()])
            .args(["--log-level", "info"])
            .args(["--metrics-server", &self.metrics_server])
            .args(["--min-analysis-interval", "1s"])
            .args(["--control-loop-interval", "2s"]);
        if self.leader {
            cmd.args([
                "--enable-leader-election",
                "--leader-election-namespace",
                NS,
            ])
            .args(["--leader-election-lease-duration", "3s"])
            .args(["--leader-election-renew-deadline", "2s"])
            .args(["--leader-election-retry-period", "500ms"]);
        }
        let child = cmd
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()?;
        self.running.push(Controller {
            child,
            log,
            started: Instant::now(),
        });
        Ok(())
    }

    /// SIGKILLs one controller (the leader when two run) and starts a new one.
    pub async fn kill_one(&mut self) -> Result<String, BoxError> {
        let index = if self.leader {
            self.running
                .iter()
                .position(|c| log_text(&c.log).contains("successfully acquired lease"))
                .unwrap_or(0)
        } else {
            0
        };
        if index >= self.running.len() {
            self.spawn()?;
            return Ok("no controller was running".into());
        }
        let mut victim = self.running.remove(index);
        victim.child.start_kill()?;
        let _ = victim.child.wait().await;
        let alive = victim.started.elapsed().as_secs_f64();
        self.spawn()?;
        Ok(format!(
            "SIGKILL {} after {alive:.1} s{}",
            victim.log.display(),
            if self.leader { " (the leader)" } else { "" }
        ))
    }

    pub async fn stop_all(&mut self) {
        for c in &mut self.running {
            let _ = c.child.start_kill();
            let _ = c.child.wait().await;
        }
        self.running.clear();
    }

    pub fn logs(&self) -> Vec<PathBuf> {
        (1..=self.starts)
            .map(|i| self.work.join(format!("controller-{i}.log")))
            .collect()
    }
}

pub fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
