//! `serin demo`: seed 000's Flux + Istio workshop on one machine, with real traffic and real
//! metrics. The demo process hosts the dev cluster, the dev mesh (whose pods are `serin
//! sample-app` processes), a Slack-compatible receiver and the users' traffic; it starts a real
//! Prometheus scraping the mesh, `serin loadtester` and `serin controller -mesh-provider=istio`
//! as child processes, then tells the story: bootstrap, a backend promotion, a frontend A/B
//! test, a bad backend rolled back. See docs/demo.md.

pub mod apply;
mod live;
pub mod manifests;
pub mod platform;
pub mod processes;
mod screen;
pub mod slack;
mod story;
pub mod traffic;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devcluster::mesh::MeshError;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use manifests::Pace;
use platform::{Platform, PlatformOptions};
use processes::SpawnError;
use screen::Screen;
use traffic::{Traffic, Users};

use crate::tls::{Alpn, Verification};

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct Options {
    /// Shortest safe intervals, no pauses.
    pub fast: bool,
    /// Leave everything running at the end until Ctrl-C.
    pub keep: bool,
    /// Write the outcome as JSON here.
    pub summary: Option<PathBuf>,
    /// The `serin` binary (for `sample-app`, `loadtester`, `controller`).
    pub serin: PathBuf,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "prometheus is not installed: run `sudo apt-get install -y prometheus` (Debian/Ubuntu) or put a prometheus binary on PATH (https://prometheus.io/download/)"
    )]
    NoPrometheus,
    #[error(
        "curl is not installed (the seed's conformance-test webhooks run it): `sudo apt-get install -y curl`"
    )]
    NoCurl,
    #[error("starting the dev cluster: {0}")]
    Cluster(#[from] devcluster::Error),
    #[error("starting the dev mesh: {0}")]
    Mesh(#[from] MeshError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error("{0}")]
    Step(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("interrupted (Ctrl-C): every process the demo started was stopped")]
    Interrupted,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |source| DemoError::Io { what, source }
}

/// The outcome, also written as JSON with `--summary`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// `primary` images after each chapter.
    pub backend_after_promotion: String,
    pub frontend_after_ab: String,
    pub backend_after_rollback: String,
    /// Final phases.
    pub backend_phase: String,
    pub frontend_phase: String,
    /// During the frontend A/B analysis: users → workload/version → requests.
    pub ab_counts: Vec<AbCount>,
    /// Every canary event, in order: `<canary>: <message>`.
    pub events: Vec<String>,
    /// The notifications the Slack receiver got.
    pub notifications: Vec<slack::Notification>,
    /// Process ids of every child the demo started (controller, loadtester, Prometheus, pods).
    pub pids: Vec<u32>,
    pub seconds: f64,
}

/// One row of the A/B table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AbCount {
    pub users: Users,
    pub workload: String,
    pub version: String,
    pub requests: u64,
}

const NS: &str = "prod";

/// The `prometheus` binary on PATH (or /usr/bin, /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|c| c.is_file())
}

/// The Prometheus binary, after checking that curl is there too (`find` looks a program up).
pub fn prerequisites(find: impl Fn(&str) -> Option<PathBuf>) -> Result<PathBuf, DemoError> {
    let prometheus = find("prometheus").ok_or(DemoError::NoPrometheus)?;
    find("curl").ok_or(DemoError::NoCurl)?;
    Ok(prometheus)
}

fn free_port() -> Result<u16, DemoError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io("finding a free port on 127.0.0.1"))
}

fn canary_api(client: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flagger.app", "v1beta1", "Canary"),
        "canaries",
    );
    Api::namespaced_with(client.clone(), NS, &ar)
}

/// Everything running: the platform and the demo's own parts.
struct Stack {
    platform: Platform,
    slack: slack::Receiver,
    http: reqwest::Client,
    templates: Vec<(String, String)>,
    pace: Pace,
    fast: bool,
    screen: Screen,
    traffic: Option<Traffic>,
    started: Instant,
    last_counts: BTreeMap<String, (u64, u64)>,
    last_counts_at: Instant,
    pids_seen: BTreeSet<u32>,
}

/// Runs the demo to the end (or until Ctrl-C).
pub async fn run(opts: &Options) -> Result<Summary, DemoError> {
    let prometheus_bin = prerequisites(find_program)?;
    let pace = if opts.fast {
        Pace::fast()
    } else {
        Pace::normal()
    };
    let work = std::env::temp_dir().join(format!(
        "serin-demo-{}-{}",
        std::process::id(),
        free_port()?
    ));
    std::fs::create_dir_all(work.join("prometheus-data"))
        .map_err(io(format!("creating {}", work.display())))?;
    let mut stack = start(opts, &prometheus_bin, &work, pace).await;
    let result = match &mut stack {
        Ok(stack) => {
            tokio::select! {
                r = story::story(stack, opts) => r,
                _ = processes::shutdown_signal() => Err(DemoError::Interrupted),
            }
        }
        Err(_) => Ok(Summary::default()),
    };
    let result = match stack {
        Ok(mut stack) => {
            let mut result = result;
            if let (Ok(_), true) = (&result, opts.keep) {
                keep_running(&mut stack).await;
            }
            let pids: Vec<u32> = stack.pids_seen.iter().copied().collect();
            stop(stack).await;
            if let Ok(summary) = &mut result {
                summary.pids = pids;
            }
            result
        }
        Err(e) => Err(e),
    };
    let summary = match result {
        Ok(s) => {
            let _ = std::fs::remove_dir_all(&work);
            s
        }
        Err(DemoError::Interrupted) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(DemoError::Interrupted);
        }
        Err(e) => {
            return Err(DemoError::Step(format!(
                "{e} (logs kept in {})",
                work.display()
            )));
        }
    };
    if let Some(path) = &opts.summary {
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| DemoError::Step(format!("writing the summary: {e}")))?;
        std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(summary)
}

async fn start(
    opts: &Options,
    prometheus_bin: &Path,
    work: &Path,
    pace: Pace,
) -> Result<Stack, DemoError> {
    let mut screen = Screen::new();
    screen.say(&[format!(
        "Serin demo: seed 000's Flux + Istio workshop on this machine ({}: analysis every {}, metrics over {}).",
        if opts.fast { "fast mode" } else { "intervals shortened from the seed's" },
        pace.analysis_interval,
        pace.metric_interval
    )]);
    screen.say(&["== Starting: dev cluster, dev mesh, Prometheus, loadtester, controller".into()]);
    let slack = slack::Receiver::start()
        .await
        .map_err(io("starting the Slack receiver on 127.0.0.1"))?;
    let platform = Platform::start(&PlatformOptions {
        serin: opts.serin.clone(),
        prometheus: prometheus_bin.to_path_buf(),
        work: work.to_path_buf(),
        scrape: pace.scrape.to_string(),
        loadtester_namespace: NS.to_string(),
        controller_args: vec![
            format!("--slack-url=http://{}/", slack.addr),
            "--slack-channel=general".into(),
            "--cluster-name=serin-demo".into(),
            "--min-analysis-interval=1s".into(),
        ],
    })
    .await?;
    let http = crate::tls::http_client(Verification::Platform, Alpn::Http2OrHttp1)
        .map_err(|e| DemoError::Step(format!("building the HTTP client: {e}")))?
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| DemoError::Step(format!("building the HTTP client: {e}")))?;
    let templates = manifests::metric_templates(&pace)
        .map_err(|e| DemoError::Step(format!("the demo's metric templates: {e}")))?;
    let pids_seen = platform.children.pids().into_iter().collect();
    let mut stack = Stack {
        platform,
        slack,
        http,
        templates,
        pace,
        fast: opts.fast,
        screen,
        traffic: None,
        started: Instant::now(),
        last_counts: BTreeMap::new(),
        last_counts_at: Instant::now(),
        pids_seen,
    };
    stack.platform.wait_ready().await?;
    let dashboard = format!(
        "  dashboard: {} (live in a browser while the demo runs)",
        stack.platform.dashboard
    );
    stack.screen.say(&[dashboard]);
    Ok(stack)
}

fn check_children(stack: &mut Stack) -> Result<(), DemoError> {
    stack.platform.check()
}

async fn stop(stack: Stack) {
    let Stack {
        platform,
        slack,
        traffic,
        ..
    } = stack;
    if let Some(t) = traffic {
        t.stop().await;
    }
    platform.stop().await;
    slack.stop().await;
}

async fn keep_running(stack: &mut Stack) {
    let p = &stack.platform;
    let lines = [
        String::new(),
        "== Still running (--keep); Ctrl-C stops every process the demo started.".into(),
        format!("  export KUBECONFIG={}", p.kubeconfig.display()),
        format!("  ingress gateway: http://{}/", p.mesh.addr()),
        format!("  Prometheus:      {}", p.prometheus),
        format!("  dashboard:       {}", p.dashboard),
        format!("  logs:            {}", p.work.display()),
    ];
    stack.screen.say(&lines);
    processes::shutdown_signal().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_prerequisite_is_one_line_saying_what_to_install() {
        let only = |have: &'static [&'static str]| {
            move |name: &str| {
                have.contains(&name)
                    .then(|| PathBuf::from("/usr/bin").join(name))
            }
        };
        let err =
            |r: Result<PathBuf, DemoError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        let none = err(prerequisites(only(&[])));
        assert!(
            none.starts_with(
                "prometheus is not installed: run `sudo apt-get install -y prometheus`"
            )
        );
        assert!(!none.contains('\n'));
        assert!(err(prerequisites(only(&["prometheus"]))).contains("apt-get install -y curl"));
        assert_eq!(
            prerequisites(only(&["prometheus", "curl"])).ok(),
            Some(PathBuf::from("/usr/bin/prometheus"))
        );
    }
}
