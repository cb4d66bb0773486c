//! `serin demo`: seed 000's Flux + Istio workshop on one machine, with real traffic and real
//! metrics. The demo process hosts the dev cluster, the dev mesh (whose pods are `serin
//! sample-app` processes), a Slack-compatible receiver and the users' traffic; it starts a real
//! Prometheus scraping the mesh, `serin loadtester` and `serin controller -mesh-provider=istio`
//! as child processes, then tells the story: bootstrap, a backend promotion, a frontend A/B
//! test, a bad backend rolled back. See docs/demo.md.

pub mod apply;
mod live;
pub mod manifests;
pub mod processes;
mod screen;
pub mod slack;
mod story;
pub mod traffic;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devcluster::mesh::pods::Launcher;
use devcluster::mesh::route::ServiceRef;
use devcluster::mesh::{Mesh, MeshConfig, MeshError};
use devcluster::{Config as ClusterConfig, DevCluster};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use manifests::Pace;
use processes::{Children, SpawnError};
use screen::Screen;
use traffic::{Traffic, Users};

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

/// Everything running.
struct Stack {
    cluster: DevCluster,
    mesh: Mesh,
    slack: slack::Receiver,
    children: Children,
    prometheus: String,
    kubeconfig: PathBuf,
    work: PathBuf,
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
    let cluster = DevCluster::start_with(ClusterConfig {
        ready_delay: Duration::from_millis(300),
        ..ClusterConfig::default()
    })
    .await?;
    let kubeconfig = work.join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig)?;
    let mesh = cluster
        .start_mesh(MeshConfig {
            launcher: Launcher::Process {
                program: opts.serin.clone(),
                args: vec!["sample-app".into()],
            },
            ..MeshConfig::default()
        })
        .await?;
    // What the seed's Flux installs first: the CRDs of Flagger (Serin's) and Istio.
    let crds = crate::api::crd::render_yaml()
        .map_err(|e| DemoError::Step(format!("rendering Serin's CRDs: {e}")))?;
    let client = cluster.client();
    for text in [crds.as_str(), manifests::ISTIO_CRDS] {
        let docs = manifests::documents(text, &pace)
            .map_err(|e| DemoError::Step(format!("the demo's CRDs: {e}")))?;
        apply::apply_all(&client, &docs).await?;
    }
    let slack = slack::Receiver::start()
        .await
        .map_err(io("starting the Slack receiver on 127.0.0.1"))?;
    let mut children = Children::default();

    let prom_port = free_port()?;
    let prom_config = work.join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: {s}\n  evaluation_interval: {s}\nscrape_configs:\n  - job_name: istio-mesh\n    scrape_interval: {s}\n    static_configs:\n      - targets: ['{}']\n",
            mesh.metrics_addr(),
            s = pace.scrape
        ),
    )
    .map_err(io("writing prometheus.yml"))?;
    children.spawn(
        "prometheus",
        prometheus_bin,
        &[
            format!("--config.file={}", prom_config.display()),
            format!(
                "--storage.tsdb.path={}",
                work.join("prometheus-data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--log.level=warn".into(),
        ],
        &[],
        work.join("prometheus.log"),
    )?;
    let prometheus = format!("http://127.0.0.1:{prom_port}");
    let proxy = format!("http://{}", mesh.addr());
    let proxy_env = vec![
        ("HTTP_PROXY".to_string(), proxy.clone()),
        ("http_proxy".to_string(), proxy.clone()),
        ("NO_PROXY".to_string(), "127.0.0.1,localhost".to_string()),
        ("no_proxy".to_string(), "127.0.0.1,localhost".to_string()),
        (
            crate::loadtester::loadgen::PROXY_FROM_ENV.to_string(),
            "true".to_string(),
        ),
    ];
    let lt_port = free_port()?;
    children.spawn(
        "loadtester",
        &opts.serin,
        &[
            "loadtester".into(),
            format!("--port={lt_port}"),
            "--log-level=info".into(),
        ],
        &proxy_env,
        work.join("loadtester.log"),
    )?;
    let ctl_port = free_port()?;
    children.spawn(
        "controller",
        &opts.serin,
        &[
            "controller".into(),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--mesh-provider=istio".into(),
            format!("--metrics-server={prometheus}"),
            format!("--port={ctl_port}"),
            "--log-level=info".into(),
            format!("--slack-url=http://{}/", slack.addr),
            "--slack-channel=general".into(),
            "--cluster-name=serin-demo".into(),
            "--min-analysis-interval=1s".into(),
        ],
        &proxy_env,
        work.join("controller.log"),
    )?;
    mesh.add_static(
        ServiceRef {
            name: "prometheus".into(),
            namespace: "istio-system".into(),
        },
        SocketAddr::from(([127, 0, 0, 1], prom_port)),
    );
    mesh.add_static(
        ServiceRef {
            name: "flagger-loadtester".into(),
            namespace: NS.into(),
        },
        SocketAddr::from(([127, 0, 0, 1], lt_port)),
    );
    crate::loadtester::install_crypto_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| DemoError::Step(format!("building the HTTP client: {e}")))?;
    let templates = manifests::metric_templates(&pace)
        .map_err(|e| DemoError::Step(format!("the demo's metric templates: {e}")))?;
    let pids_seen = children.pids().into_iter().collect();
    let mut stack = Stack {
        cluster,
        mesh,
        slack,
        children,
        prometheus,
        kubeconfig,
        work: work.to_path_buf(),
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
    for (what, url) in [
        ("Prometheus", format!("{}/-/ready", stack.prometheus)),
        (
            "the loadtester",
            format!("http://127.0.0.1:{lt_port}/healthz"),
        ),
        (
            "the controller",
            format!("http://127.0.0.1:{ctl_port}/healthz"),
        ),
    ] {
        wait_http(&mut stack, what, &url).await?;
    }
    Ok(stack)
}

async fn wait_http(stack: &mut Stack, what: &str, url: &str) -> Result<(), DemoError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = stack.http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        check_children(stack)?;
        if Instant::now() > deadline {
            return Err(DemoError::Step(format!(
                "{what} did not answer {url} within 30 s (logs in {})",
                stack.work.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn check_children(stack: &mut Stack) -> Result<(), DemoError> {
    let pod_errors = stack.mesh.pod_errors();
    if !pod_errors.is_empty() {
        return Err(DemoError::Step(format!(
            "sample-app pods did not start: {pod_errors}"
        )));
    }
    if let Some((what, log)) = stack.children.exited().into_iter().next() {
        let tail = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        return Err(DemoError::Step(format!(
            "{what} exited: {}",
            if tail.is_empty() {
                "no output".to_string()
            } else {
                tail
            }
        )));
    }
    Ok(())
}

async fn stop(stack: Stack) {
    let Stack {
        cluster,
        mesh,
        slack,
        mut children,
        traffic,
        ..
    } = stack;
    if let Some(t) = traffic {
        t.stop().await;
    }
    children.stop_all().await;
    mesh.shutdown().await;
    slack.stop().await;
    cluster.shutdown().await;
}

async fn keep_running(stack: &mut Stack) {
    let ingress = format!("http://{}/", stack.mesh.addr());
    stack.screen.say(&[
        String::new(),
        "== Still running (--keep); Ctrl-C stops every process the demo started.".into(),
        format!("  export KUBECONFIG={}", stack.kubeconfig.display()),
        format!("  ingress gateway: {ingress}"),
        format!("  Prometheus:      {}", stack.prometheus),
        format!("  logs:            {}", stack.work.display()),
    ]);
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
