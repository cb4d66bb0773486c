//! `serin demo`: seed 000's Flux + Istio workshop on one machine, with real traffic and real
//! metrics. The demo process hosts the dev cluster, the dev mesh (whose pods are `serin
//! sample-app` processes), a Slack-compatible receiver and the users' traffic; it starts a real
//! Prometheus scraping the mesh, `serin loadtester` and `serin controller -mesh-provider=istio`
//! as child processes, then tells the story: bootstrap, a backend promotion, a frontend A/B
//! test, a bad backend rolled back. See docs/demo.md.

pub mod apply;
pub mod manifests;
pub mod processes;
pub mod slack;
pub mod traffic;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devcluster::mesh::pods::Launcher;
use devcluster::mesh::route::ServiceRef;
use devcluster::mesh::{Mesh, MeshConfig, MeshError};
use devcluster::{Config as ClusterConfig, DevCluster};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::metrics::template::{QueryModel, render as render_query};
use manifests::Pace;
use processes::{Children, SpawnError};
use traffic::{Counts, Targets, Traffic, Users};
use view::{CanaryRow, MetricRow, Rate};

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

/// What the screen shows and the summary collects.
struct Screen {
    tty: bool,
    drawn: usize,
    seen_events: BTreeSet<(String, i32)>,
    seen_notifications: usize,
    events: Vec<String>,
    last_block: Vec<String>,
}

impl Screen {
    fn new() -> Self {
        Self {
            tty: std::io::stdout().is_terminal(),
            drawn: 0,
            seen_events: BTreeSet::new(),
            seen_notifications: 0,
            events: Vec::new(),
            last_block: Vec::new(),
        }
    }

    /// Prints lines above the live block.
    fn say(&mut self, lines: &[String]) {
        let mut out = std::io::stdout().lock();
        if self.tty && self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        if self.tty && !self.last_block.is_empty() {
            for l in &self.last_block {
                let _ = writeln!(out, "{l}");
            }
            self.drawn = self.last_block.len();
        }
        let _ = out.flush();
    }

    /// Redraws the live block (on a terminal), or prints it when a canary's line changes.
    fn block(&mut self, lines: Vec<String>) {
        if self.tty {
            let mut out = std::io::stdout().lock();
            if self.drawn > 0 {
                let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn);
            }
            for l in &lines {
                let _ = writeln!(out, "{l}");
            }
            let _ = out.flush();
            self.drawn = lines.len();
            self.last_block = lines;
        } else {
            let heads = |ls: &[String]| -> Vec<String> {
                ls.iter().filter(|l| !l.starts_with(' ')).cloned().collect()
            };
            if heads(&lines) != heads(&self.last_block) {
                let mut out = std::io::stdout().lock();
                for l in &lines {
                    let _ = writeln!(out, "  | {l}");
                }
                let _ = out.flush();
            }
            self.last_block = lines;
        }
    }

    /// Ends the live block (it stays on screen as drawn).
    fn freeze(&mut self) {
        self.drawn = 0;
        self.last_block.clear();
    }
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
    let prometheus_bin = find_program("prometheus").ok_or(DemoError::NoPrometheus)?;
    find_program("curl").ok_or(DemoError::NoCurl)?;
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
                r = story(stack, opts) => r,
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

// ---------------------------------------------------------------------------------------------
// The story

async fn story(stack: &mut Stack, opts: &Options) -> Result<Summary, DemoError> {
    let client = stack.cluster.client();
    let pace = stack.pace.clone();
    let docs = |text: &str| {
        manifests::documents(text, &pace)
            .map_err(|e| DemoError::Step(format!("the demo's manifests: {e}")))
    };
    let mut summary = Summary::default();

    chapter(stack, "1. Bootstrap: namespaces, gateway, loadtester, frontend and backend with HPAs and Canaries").await;
    for text in [
        manifests::ISTIO_SYSTEM,
        manifests::PROD,
        manifests::BACKEND,
        manifests::FRONTEND,
    ] {
        apply_retrying(&client, &docs(text)?).await?;
    }
    publish_ingress_address(&client, stack.mesh.addr()).await?;
    follow(stack, &["backend", "frontend"], &["Initialized"], None).await?;
    show_kubectl_get(stack).await;
    stack.traffic = Some(
        Traffic::start(&Targets {
            ingress: format!("http://{}/", stack.mesh.addr()),
            proxy: format!("http://{}", stack.mesh.addr()),
            rate: 10,
        })
        .map_err(|e| DemoError::Step(format!("starting the users' traffic: {e}")))?,
    );
    stack.screen.say(&["  users now send 10 req/s to the frontend through the ingress gateway (1 in 4 with Firefox, 1 in 4 with the type=insider cookie) and 10 req/s to backend.prod:9898 through the mesh".to_string()]);
    pause(stack).await;

    chapter(
        stack,
        "2. Ship backend 5.0.1: weights advance on real traffic, then promotion",
    )
    .await;
    set_image(
        &client,
        "backend",
        "ghcr.io/stefanprodan/podinfo:5.0.1",
        &[],
    )
    .await?;
    follow(stack, &["backend"], &["Progressing"], None).await?;
    let phase = follow(stack, &["backend"], &["Succeeded", "Failed"], None).await?;
    summary.backend_after_promotion = primary_image(&client, "backend").await;
    expect(
        &phase,
        "Succeeded",
        "backend 5.0.1",
        &summary.backend_after_promotion,
    )?;
    pause(stack).await;

    chapter(stack, "3. Ship frontend 5.0.1 as an A/B test: only Firefox users and type=insider reach the canary").await;
    set_image(
        &client,
        "frontend",
        "ghcr.io/stefanprodan/podinfo:5.0.1",
        &[],
    )
    .await?;
    follow(stack, &["frontend"], &["Progressing"], None).await?;
    // Count from the first iteration on: the match routes are in place by then.
    wait_iteration(stack, "frontend").await?;
    if let Some(t) = &stack.traffic {
        t.count_window(true);
    }
    let phase = follow(
        stack,
        &["frontend"],
        &["Succeeded", "Failed"],
        Some("Progressing"),
    )
    .await?;
    let window = stack
        .traffic
        .as_ref()
        .map(Traffic::window)
        .unwrap_or_default();
    summary.ab_counts = ab_rows(&window);
    summary.frontend_after_ab = primary_image(&client, "frontend").await;
    let table = ab_table(&summary.ab_counts);
    stack.screen.say(&table);
    expect(
        &phase,
        "Succeeded",
        "frontend 5.0.1",
        &summary.frontend_after_ab,
    )?;
    pause(stack).await;

    chapter(stack, "4. Ship a bad backend 5.0.2 (30% errors, 600 ms latency): the analysis halts and rolls back").await;
    set_image(
        &client,
        "backend",
        "ghcr.io/stefanprodan/podinfo:5.0.2",
        &[
            (devcluster::sampleapp::ENV_ERROR_PERCENT, "30"),
            (devcluster::sampleapp::ENV_DELAY_MS, "600"),
        ],
    )
    .await?;
    follow(stack, &["backend"], &["Progressing"], None).await?;
    let phase = follow(stack, &["backend"], &["Failed", "Succeeded"], None).await?;
    summary.backend_after_rollback = primary_image(&client, "backend").await;
    // The last notifications arrive just after the phase changes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && !stack
            .slack
            .received()
            .iter()
            .any(|n| n.subject.starts_with("backend") && n.color == "danger")
    {
        refresh(stack, &["backend", "frontend"]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    refresh(stack, &["backend", "frontend"]).await;
    stack.screen.freeze();
    if phase != "Failed" {
        return Err(DemoError::Step(format!(
            "the bad backend ended {phase}, not Failed (logs in {})",
            stack.work.display()
        )));
    }

    summary.backend_phase = phase;
    summary.frontend_phase = canary_phase(&client, "frontend").await;
    summary.events = stack.screen.events.clone();
    summary.notifications = stack.slack.received();
    summary.seconds = stack.started.elapsed().as_secs_f64();
    for p in stack.mesh.pods() {
        if let Some(pid) = p.pid {
            stack.pids_seen.insert(pid);
        }
    }
    let lines = final_lines(stack, &summary, opts);
    stack.screen.say(&lines);
    Ok(summary)
}

fn expect(phase: &str, want: &str, what: &str, image: &str) -> Result<(), DemoError> {
    if phase == want {
        Ok(())
    } else {
        Err(DemoError::Step(format!(
            "{what} ended {phase}, not {want} (primary runs {image})"
        )))
    }
}

async fn chapter(stack: &mut Stack, title: &str) {
    stack.screen.freeze();
    stack.screen.say(&[String::new(), format!("== {title}")]);
}

async fn pause(stack: &mut Stack) {
    let until = Instant::now() + stack.pace.pause;
    while Instant::now() < until {
        refresh(stack, &["backend", "frontend"]).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Applies documents, retrying for a while: a CRD's kinds are served a moment after it is
/// created, as in Kubernetes.
async fn apply_retrying(client: &kube::Client, docs: &[Value]) -> Result<(), DemoError> {
    for d in docs {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match apply::apply(client, d).await {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(())
}

/// Writes the dev mesh's address as the ingress gateway Service's load balancer, where the
/// seed looks it up (`kubectl -n istio-system get svc istio-ingressgateway`).
async fn publish_ingress_address(client: &kube::Client, addr: SocketAddr) -> Result<(), DemoError> {
    let api: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "istio-system");
    let status = json!({"status": {"loadBalancer": {"ingress": [
        {"ip": addr.ip().to_string(), "ports": [{"port": addr.port(), "protocol": "TCP"}]}
    ]}}});
    api.patch_status(
        "istio-ingressgateway",
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .map_err(|e| DemoError::Step(format!("publishing the ingress gateway address: {e}")))?;
    Ok(())
}

async fn set_image(
    client: &kube::Client,
    name: &str,
    image: &str,
    env: &[(&str, &str)],
) -> Result<(), DemoError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let mut container = json!({"name": name, "image": image});
    if !env.is_empty() {
        container["env"] = Value::Array(env);
    }
    let patch = json!({"spec": {"template": {"spec": {"containers": [container]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(|e| DemoError::Step(format!("setting the image of deployment/{name}: {e}")))?;
    let mut line = format!("  $ kubectl -n {NS} set image deployment/{name} {name}={image}");
    if let Some(c) = patch.pointer("/spec/template/spec/containers/0/env") {
        line.push_str(&format!("   # and env {c}"));
    }
    println!("{line}");
    Ok(())
}

async fn primary_image(client: &kube::Client, name: &str) -> String {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    api.get(&format!("{name}-primary"))
        .await
        .ok()
        .and_then(|d| d.spec?.template.spec?.containers.first()?.image.clone())
        .unwrap_or_default()
}

async fn canary_phase(client: &kube::Client, name: &str) -> String {
    canary_api(client)
        .get(name)
        .await
        .ok()
        .and_then(|c| {
            c.data
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default()
}

async fn show_kubectl_get(stack: &mut Stack) {
    let client = stack.cluster.client();
    let mut lines = vec![format!("  $ kubectl -n {NS} get canaries")];
    lines.push(format!("  {:<10} {:<13} {}", "NAME", "STATUS", "WEIGHT"));
    for name in ["backend", "frontend"] {
        if let Ok(c) = canary_api(&client).get(name).await {
            let p = |k: &str| c.data.pointer(k).cloned().unwrap_or(Value::Null);
            lines.push(format!(
                "  {:<10} {:<13} {}",
                name,
                p("/status/phase").as_str().unwrap_or(""),
                p("/status/canaryWeight").as_i64().unwrap_or(0)
            ));
        }
    }
    stack.screen.freeze();
    stack.screen.say(&lines);
}

/// Refreshes the view until the canary's analysis has advanced one iteration.
async fn wait_iteration(stack: &mut Stack, name: &str) -> Result<(), DemoError> {
    let client = stack.cluster.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        refresh(stack, &["backend", "frontend"]).await;
        check_children(stack)?;
        let status = canary_api(&client)
            .get(name)
            .await
            .ok()
            .and_then(|c| c.data.get("status").cloned())
            .unwrap_or(Value::Null);
        let iterations = status
            .get("iterations")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let phase = status.get("phase").and_then(Value::as_str).unwrap_or("");
        if iterations >= 1 || phase != "Progressing" {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DemoError::Step(format!(
                "{name} did not start its analysis within 60 s (controller log: {})",
                stack.work.join("controller.log").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Refreshes the view until every named canary is in one of `phases`; returns the phase of the
/// first. With `left`, also returns as soon as the first canary leaves that phase.
async fn follow(
    stack: &mut Stack,
    names: &[&str],
    phases: &[&str],
    left: Option<&str>,
) -> Result<String, DemoError> {
    let timeout = Duration::from_secs(if stack.fast { 120 } else { 240 });
    let deadline = Instant::now() + timeout;
    let client = stack.cluster.client();
    loop {
        refresh(stack, &["backend", "frontend"]).await;
        check_children(stack)?;
        let mut all = true;
        let mut first = String::new();
        for (i, n) in names.iter().enumerate() {
            let phase = canary_phase(&client, n).await;
            if i == 0 {
                first = phase.clone();
            }
            all &= phases.contains(&phase.as_str());
        }
        if let Some(l) = left
            && !first.is_empty()
            && first != l
        {
            if let Some(t) = &stack.traffic {
                t.count_window(false);
            }
            if phases.contains(&first.as_str()) {
                return Ok(first);
            }
            // Promoting / Finalising: keep following to the end.
            return Box::pin(follow(stack, names, phases, None)).await;
        }
        if all {
            return Ok(first);
        }
        if Instant::now() > deadline {
            return Err(DemoError::Step(format!(
                "{} did not reach {} within {} s (controller log: {})",
                names.join(", "),
                phases.join(" or "),
                timeout.as_secs(),
                stack.work.join("controller.log").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Prints new events and notifications and redraws the live block.
async fn refresh(stack: &mut Stack, names: &[&str]) {
    let client = stack.cluster.client();
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let mut new_lines = Vec::new();
    if let Ok(list) = events.list(&ListParams::default()).await {
        let mut items: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| e.involved_object.kind.as_deref() == Some("Canary"))
            .collect();
        items.sort_by_key(|e| {
            e.metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        });
        for e in items {
            let key = (
                e.metadata.uid.clone().unwrap_or_default(),
                e.count.unwrap_or(1),
            );
            if stack.screen.seen_events.insert(key) {
                let who = e.involved_object.name.clone().unwrap_or_default();
                let msg = e.message.clone().unwrap_or_default();
                let warn = e.type_.as_deref() == Some("Warning");
                new_lines.push(format!("  {} {who}: {msg}", if warn { "!" } else { "-" }));
                stack.screen.events.push(format!("{who}: {msg}"));
            }
        }
    }
    let notes = stack.slack.received();
    for n in notes.iter().skip(stack.screen.seen_notifications) {
        new_lines.push(format!(
            "  [slack #general] {} ({}): {}",
            n.subject,
            if n.color == "danger" {
                "danger"
            } else {
                "good"
            },
            n.text
        ));
    }
    stack.screen.seen_notifications = notes.len();
    if !new_lines.is_empty() {
        stack.screen.say(&new_lines);
    }
    let rates = rates(stack);
    let mut block = Vec::new();
    for name in names {
        if let Ok(c) = canary_api(&client).get(name).await {
            let row = canary_row(stack, name, &c.data, &rates).await;
            block.extend(view::render(&row));
        }
    }
    stack.screen.block(block);
}

/// Requests per second per workload since the last refresh, from the mesh's counters.
fn rates(stack: &mut Stack) -> Vec<Rate> {
    let elapsed = stack.last_counts_at.elapsed().as_secs_f64().max(0.001);
    stack.last_counts_at = Instant::now();
    let pods = stack.mesh.pods();
    for p in &pods {
        if let Some(pid) = p.pid {
            stack.pids_seen.insert(pid);
        }
    }
    let mut out = Vec::new();
    for w in ["backend-primary", "backend", "frontend-primary", "frontend"] {
        let by_code = stack.mesh.metrics().count(NS, w);
        let total: u64 = by_code.values().sum();
        let errors: u64 = by_code
            .iter()
            .filter(|(c, _)| **c >= 500)
            .map(|(_, n)| *n)
            .sum();
        let (t0, e0) = stack
            .last_counts
            .insert(w.to_string(), (total, errors))
            .unwrap_or((total, errors));
        let (dt, de) = (total.saturating_sub(t0), errors.saturating_sub(e0));
        let version = pods
            .iter()
            .find(|p| p.workload == w)
            .map(|p| p.version.clone());
        if let Some(version) = version {
            out.push(Rate {
                workload: w.to_string(),
                version,
                rps: dt as f64 / elapsed,
                errors_pct: if dt == 0 {
                    0.0
                } else {
                    de as f64 * 100.0 / dt as f64
                },
            });
        }
    }
    out
}

async fn canary_row(stack: &Stack, name: &str, c: &Value, rates: &[Rate]) -> CanaryRow {
    let a = c.pointer("/spec/analysis").cloned().unwrap_or(Value::Null);
    let int = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_i64);
    let mut metrics = Vec::new();
    for m in a
        .get("metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let metric_name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let template = m
            .pointer("/templateRef/name")
            .and_then(Value::as_str)
            .and_then(|t| stack.templates.iter().find(|(n, _)| n == t))
            .map(|(_, q)| q.clone());
        let value = match template {
            Some(q) => {
                let model = QueryModel {
                    name: name.to_string(),
                    namespace: NS.to_string(),
                    target: name.to_string(),
                    service: name.to_string(),
                    ingress: name.to_string(),
                    route: name.to_string(),
                    interval: stack.pace.metric_interval.to_string(),
                    variables: BTreeMap::new(),
                };
                match render_query(&q, &model) {
                    Ok(query) => prometheus_value(stack, &query).await,
                    Err(_) => None,
                }
            }
            None => None,
        };
        metrics.push(MetricRow {
            name: metric_name,
            value,
            max: m.pointer("/thresholdRange/max").and_then(Value::as_f64),
            min: m.pointer("/thresholdRange/min").and_then(Value::as_f64),
        });
    }
    CanaryRow {
        name: name.to_string(),
        phase: c
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        weight: int(c, "/status/canaryWeight").unwrap_or(0),
        max_weight: int(&a, "/maxWeight"),
        iterations: int(c, "/status/iterations").unwrap_or(0),
        total_iterations: int(&a, "/iterations"),
        failed_checks: int(c, "/status/failedChecks").unwrap_or(0),
        threshold: int(&a, "/threshold").unwrap_or(0),
        metrics,
        rates: rates
            .iter()
            .filter(|r| r.workload == name || r.workload == format!("{name}-primary"))
            .cloned()
            .collect(),
    }
}

async fn prometheus_value(stack: &Stack, query: &str) -> Option<f64> {
    let resp = stack
        .http
        .get(format!("{}/api/v1/query", stack.prometheus))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?;
    let body: Value = resp.json().await.ok()?;
    let v: f64 = body
        .pointer("/data/result/0/value/1")?
        .as_str()?
        .parse()
        .ok()?;
    v.is_finite().then_some(v)
}

fn ab_rows(counts: &Counts) -> Vec<AbCount> {
    counts
        .iter()
        .filter(|((u, _), _)| *u != Users::Backend)
        .map(|((users, answer), n)| AbCount {
            users: *users,
            workload: answer.workload.clone(),
            version: answer.version.clone(),
            requests: *n,
        })
        .collect()
}

fn ab_table(rows: &[AbCount]) -> Vec<String> {
    let mut lines = vec!["  Requests at the ingress gateway during the A/B analysis:".to_string()];
    for r in rows {
        lines.push(format!(
            "    {:<22} -> {:<17} {:<6} {:>5}",
            r.users.label(),
            r.workload,
            r.version,
            r.requests
        ));
    }
    lines
}

fn final_lines(stack: &Stack, summary: &Summary, opts: &Options) -> Vec<String> {
    let ingress = format!("http://{}", stack.mesh.addr());
    let mut lines = vec![
        String::new(),
        format!("== Summary ({:.0} s)", summary.seconds),
        format!(
            "  backend:  5.0.1 promoted (primary {}); bad 5.0.2 rolled back, primary still {} ({})",
            summary.backend_after_promotion, summary.backend_after_rollback, summary.backend_phase
        ),
        format!(
            "  frontend: 5.0.1 promoted after the A/B test (primary {}, {})",
            summary.frontend_after_ab, summary.frontend_phase
        ),
        format!(
            "  notifications received by the Slack receiver: {}",
            summary.notifications.len()
        ),
    ];
    let users = stack
        .traffic
        .as_ref()
        .map(Traffic::total)
        .unwrap_or_default();
    let backend_errors: u64 = users
        .iter()
        .filter(|((u, a), _)| *u == Users::Backend && a.workload.starts_with("HTTP 5"))
        .map(|(_, n)| *n)
        .sum();
    let backend_total: u64 = users
        .iter()
        .filter(|((u, _), _)| *u == Users::Backend)
        .map(|(_, n)| *n)
        .sum();
    lines.push(format!(
        "  backend callers: {backend_errors} errors in {backend_total} requests while the bad release was analysed on a share of the traffic"
    ));
    lines.push(String::new());
    let (ingress, prometheus) = if opts.keep {
        lines.push("== Explore (everything keeps running):".to_string());
        lines.push(format!(
            "  export KUBECONFIG={}",
            stack.kubeconfig.display()
        ));
        (ingress, stack.prometheus.clone())
    } else {
        lines.push(
            "== Explore: `serin demo --keep` leaves everything running and prints its KUBECONFIG, then:"
                .to_string(),
        );
        (
            "http://$INGRESS".to_string(),
            "http://$PROMETHEUS".to_string(),
        )
    };
    lines.extend([
        format!("  kubectl -n {NS} get canaries"),
        format!("  kubectl -n {NS} describe canary backend"),
        format!("  kubectl -n {NS} get deployments,services,virtualservices,destinationrules,hpa"),
        "  kubectl -n istio-system get svc istio-ingressgateway -o jsonpath='{.status.loadBalancer.ingress}'".to_string(),
        format!("  curl -s {ingress}/                      # frontend through the ingress gateway"),
        format!("  curl -s -A Firefox -b 'type=insider' {ingress}/"),
        format!("  curl -s -x {ingress} http://backend.prod:9898/version   # a cluster name through the mesh"),
        format!(
            "  curl -sg '{prometheus}/api/v1/query?query=sum(rate(istio_requests_total[1m]))by(destination_workload,response_code)'"
        ),
    ]);
    lines
}
