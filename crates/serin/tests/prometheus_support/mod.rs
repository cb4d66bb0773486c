//! A real Prometheus (Debian package `prometheus`) for tests: its own config and data dir on
//! loopback, scraping one target every second; killed and cleaned up on drop.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `prometheus` binary, or `None` (with a loud message) when it is missing outside CI. In CI
/// (env `CI` set) a missing binary fails the test: `.ci/run` installs it.
pub fn require_prometheus(test: &str) -> Option<PathBuf> {
    match find_prometheus() {
        Some(binary) => Some(binary),
        None if std::env::var_os("CI").is_some() => {
            panic!(
                "prometheus is not installed (apt-get install -y prometheus); CI must run {test}"
            )
        }
        None => {
            eprintln!(
                "\n\n*** SKIPPING {test}: the `prometheus` binary is not installed (apt-get install -y prometheus) ***\n\n"
            );
            None
        }
    }
}

/// A Prometheus process with its own config and data dir; killed and cleaned up on drop
/// (also when the test panics).
pub struct PrometheusProcess {
    child: Child,
    pub dir: PathBuf,
    pub url: String,
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn find_prometheus() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_prometheus(binary: &Path, exporter: &str) -> PrometheusProcess {
    let dir = std::env::temp_dir().join(format!(
        "serin-metrics-prometheus-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n    static_configs:\n      - targets: ['{exporter}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(binary)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    PrometheusProcess {
        child,
        dir,
        url: format!("http://127.0.0.1:{port}"),
    }
}
