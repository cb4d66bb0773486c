//! The web dashboard in a real browser: the controller runs with `--dashboard-port=0`, headless
//! Chromium (Debian packages `chromium` and `chromium-driver`) is driven over WebDriver, and the
//! page must show the Canary and gain weight points while the analysis advances, without a
//! reload. A screenshot is saved under `target/test-artefacts/dashboard.png`.
//!
//! Skipped with a printed reason when Chromium or chromedriver is missing; under CI (env `CI`
//! set) a missing browser fails the test: `.ci/run` installs both.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use serin::cli::controller::serve;
use tokio::sync::watch;

use crate::support::*;

const TEST: &str = "dashboard_shows_a_canary_progressing_in_a_browser";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_shows_a_canary_progressing_in_a_browser() {
    if dev_cluster_only("the browser test of the page runs once, on the dev cluster") {
        return;
    }
    let Some(browser) = require_browser() else {
        return;
    };
    guarded(scenario(browser)).await;
}

/// The browser and its driver.
struct Browser {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn require_browser() -> Option<Browser> {
    let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = on_path(&["chromedriver"]);
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some(Browser {
            chromium,
            chromedriver,
        }),
        _ if std::env::var_os("CI").is_some() => panic!(
            "chromium or chromedriver is not installed (apt-get install -y chromium chromium-driver); CI must run {TEST}"
        ),
        _ => {
            eprintln!(
                "\n\n*** SKIPPING {TEST}: chromium or chromedriver is not installed (apt-get install -y chromium chromium-driver) ***\n\n"
            );
            None
        }
    }
}

/// chromedriver on a free loopback port, in its own process group: dropping it kills the
/// driver and every browser it started.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver, up to three times: on a loaded machine it has been seen to exit
    /// before announcing its port, and one such start says nothing about the dashboard.
    fn start(binary: &Path) -> Self {
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            match Self::try_start(binary) {
                Ok(driver) => return driver,
                Err(why) => {
                    eprintln!("chromedriver start {attempt} of 3 failed: {why}");
                    failures.push(why);
                }
            }
        }
        panic!(
            "chromedriver did not start in three attempts:\n{}",
            failures.join("\n")
        );
    }

    fn try_start(binary: &Path) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        // Both streams are read to their end by their own thread, so that the driver never
        // blocks on a full pipe; the channel closes when both are closed.
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            forward_lines(stdout, line_tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            forward_lines(stderr, line_tx);
        }
        // "ChromeDriver was started successfully on port 35637."
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let outcome = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match line_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((_, rest)) = line.split_once("started successfully on port ") {
                        let port = rest.trim_end_matches('.').trim().to_string();
                        return Ok(Self {
                            child,
                            url: format!("http://127.0.0.1:{port}"),
                        });
                    }
                    seen.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    break "did not say which port it listens on within 30 s";
                }
                Err(RecvTimeoutError::Disconnected) => {
                    break "closed its output without saying which port it listens on";
                }
            }
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let status = child
            .wait()
            .map_or_else(|e| format!("wait failed: {e}"), |s| s.to_string());
        Err(format!(
            "chromedriver {outcome} ({status}); its output:\n  {}",
            seen.join("\n  ")
        ))
    }
}

/// Sends each line of `stream` on `lines`, from a thread of its own, until the stream ends.
fn forward_lines(stream: impl Read + Send + 'static, lines: Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

async fn open_browser(browser: &Browser, driver: &Driver, profile: &Path) -> Client {
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": browser.chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-proxy-server", "--window-size=1280,1800",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap()
}

/// What the page shows, read from its DOM.
#[derive(Debug, Default)]
struct Page {
    row: bool,
    live: bool,
    phase: String,
    /// The titles of the weight plot's points (`hh:mm:ss: 10% (Progressing)`).
    weights: Vec<String>,
    metrics: Vec<String>,
    events: Vec<String>,
    decisions: usize,
}

const READ_PAGE: &str = r#"
const q = (s) => [...document.querySelectorAll(s)];
return {
  row: document.querySelector('#canaries tr[data-key="test/podinfo"]') !== null,
  live: document.getElementById('connection').dataset.state === 'live',
  phase: document.getElementById('detail-phase').textContent,
  weights: q('#weight-plot circle.point').map((c) => c.textContent),
  metrics: q('#metric-plots .metric').map((m) => m.dataset.metric),
  events: q('#events li').map((l) => l.textContent),
  decisions: q('#decisions tbody tr').length,
};
"#;

async fn read_page(client: &Client) -> Page {
    let v = client.execute(READ_PAGE, vec![]).await.unwrap();
    let strings = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Page {
        row: v["row"].as_bool().unwrap_or(false),
        live: v["live"].as_bool().unwrap_or(false),
        phase: v["phase"].as_str().unwrap_or_default().to_string(),
        weights: strings("weights"),
        metrics: strings("metrics"),
        events: strings("events"),
        decisions: v["decisions"].as_u64().unwrap_or(0) as usize,
    }
}

/// Polls the page until `done` holds, failing with the last page seen after `timeout`.
async fn wait_page(client: &Client, what: &str, timeout: Duration, done: impl Fn(&Page) -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let page = read_page(client).await;
        if done(&page) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the page to show {what}; it shows {page:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The in-process controller with `--dashboard-port=0`, and where its dashboard listens.
pub struct DashboardController {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), serin::cli::controller::ControllerError>>,
    pub addr: SocketAddr,
}

impl DashboardController {
    pub async fn start(cluster: &Cluster, prom: &FakeProm) -> Self {
        let args = controller_args(&[
            format!("--kubeconfig={}", cluster.kubeconfig.display()),
            format!("--metrics-server={}", prom.url),
            "--port=0".into(),
            "--min-analysis-interval=1s".into(),
            "--dashboard-port=0".into(),
        ]);
        let bound = args.dashboard.bound.clone();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(serve(args, rx));
        let addr = wait_for("the dashboard to listen", Duration::from_secs(10), || {
            let addr = bound.get();
            async move { addr }
        })
        .await;
        assert!(addr.ip().is_loopback(), "binds {addr}, not loopback");
        Self { stop, task, addr }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("controller did not stop")
            .expect("controller task panicked")
            .unwrap();
    }
}

fn artefact_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("test-artefacts")
}

async fn scenario(browser: Browser) {
    let cluster = Cluster::start().await;
    let prom = FakeProm::start(100.0, 100.0).await;
    let hooks = Hooks::start().await;
    cluster
        .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
        .await;
    let ctrl = DashboardController::start(&cluster, &prom).await;
    let addr = ctrl.addr;

    let rec = Recorder::start(&cluster, "podinfo");
    // Five steps of 1 s, so that the page can be seen between them.
    cluster
        .create_canary(podinfo_canary(
            &hooks,
            json!({"maxWeight": 50, "stepWeight": 10}),
        ))
        .await;
    wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;

    let driver = Driver::start(&browser.chromedriver);
    let profile = std::env::temp_dir().join(format!("serin-dashboard-test-{}", std::process::id()));
    let client = open_browser(&browser, &driver, &profile).await;
    client.goto(&format!("http://{addr}/")).await.unwrap();
    wait_page(
        &client,
        "the canary, Initialized, with a live stream",
        Duration::from_secs(10),
        |p| p.row && p.live && p.phase == "Initialized",
    )
    .await;

    // A new revision: the page follows the run without being reloaded.
    cluster
        .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
        .await;
    let progressing = |p: &Page, weight: &str| {
        p.weights
            .iter()
            .any(|t| t.ends_with(&format!(": {weight}% (Progressing)")))
    };
    wait_page(
        &client,
        "weight 10% in the plot",
        Duration::from_secs(20),
        |p| progressing(p, "10"),
    )
    .await;
    let early = read_page(&client).await;
    wait_page(
        &client,
        "weight 30% in the plot, with more points than before",
        Duration::from_secs(20),
        |p| progressing(p, "30") && p.weights.len() > early.weights.len(),
    )
    .await;
    let page = read_page(&client).await;
    assert!(
        page.metrics.iter().any(|m| m == "request-success-rate"),
        "no plot of request-success-rate: {page:#?}"
    );
    assert!(
        page.events
            .iter()
            .any(|e| e.ends_with("Advance podinfo.test canary weight 20")),
        "no event of the advance to 20%: {page:#?}"
    );
    assert!(page.decisions > 0, "no decision record: {page:#?}");
    // What the page plotted is what the controller did: every weight plotted during the run
    // was the canary's weight in the VirtualService.
    let routed: Vec<i64> = rec.weights().iter().map(|(_, canary)| *canary).collect();
    for title in &page.weights {
        let Some(weight) = title
            .split(": ")
            .nth(1)
            .and_then(|rest| rest.split('%').next())
            .and_then(|w| w.parse::<i64>().ok())
        else {
            panic!("unexpected point title {title:?}");
        };
        assert!(
            routed.contains(&weight),
            "the page plots {weight}% but the VirtualService had {routed:?}"
        );
    }

    let png = client.screenshot().await.unwrap();
    let dir = artefact_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    eprintln!("dashboard screenshot: {}", shot.display());

    wait_page(&client, "the promotion", Duration::from_secs(30), |p| {
        p.phase == "Succeeded" && p.events.iter().any(|e| e.contains("Promotion completed!"))
    })
    .await;

    let _ = client.close().await;
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    ctrl.stop().await;
    cluster.shutdown().await;
}
