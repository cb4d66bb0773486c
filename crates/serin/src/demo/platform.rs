//! The running machinery under `serin demo` and the end-to-end tests that share it: a dev
//! cluster with Serin's and Istio's CRDs, the dev mesh running `serin sample-app` processes as
//! pods, a real Prometheus scraping the mesh's Istio metrics, `serin loadtester` and
//! `serin controller -mesh-provider=istio`. [`Platform::stop`] stops every process it started.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devcluster::mesh::pods::Launcher;
use devcluster::mesh::route::ServiceRef;
use devcluster::mesh::{Mesh, MeshConfig};
use devcluster::{Config as ClusterConfig, DevCluster};

use super::processes::Children;
use super::{DemoError, apply, free_port, io, manifests};
use crate::api::manifest::parse_documents;
use crate::tls::{Alpn, Verification};

/// What to start.
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    /// The `serin` binary (for `sample-app`, `loadtester`, `controller`).
    pub serin: PathBuf,
    /// The `prometheus` binary.
    pub prometheus: PathBuf,
    /// Directory for the kubeconfig, Prometheus' data and the processes' logs (must exist).
    pub work: PathBuf,
    /// Prometheus' scrape and evaluation interval, e.g. `1s`.
    pub scrape: String,
    /// Namespace of the `flagger-loadtester` Service the mesh sends to the loadtester.
    pub loadtester_namespace: String,
    /// Extra flags of the controller (after the kubeconfig, mesh provider and metrics server).
    pub controller_args: Vec<String>,
}

/// Everything running.
pub struct Platform {
    pub cluster: DevCluster,
    pub mesh: Mesh,
    pub children: Children,
    /// Prometheus' URL, `http://127.0.0.1:PORT`.
    pub prometheus: String,
    /// The controller's web dashboard, `http://127.0.0.1:PORT/`.
    pub dashboard: String,
    pub kubeconfig: PathBuf,
    pub work: PathBuf,
    ready_urls: Vec<(&'static str, String)>,
}

impl Platform {
    /// Starts the cluster, the mesh and the child processes; [`Platform::wait_ready`] waits
    /// until they answer. On an error what was started is stopped when dropped.
    pub async fn start(opts: &PlatformOptions) -> Result<Self, DemoError> {
        let cluster = DevCluster::start_with(ClusterConfig {
            ready_delay: Duration::from_millis(300),
            ..ClusterConfig::default()
        })
        .await?;
        let kubeconfig = opts.work.join("kubeconfig");
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
            let docs = parse_documents(text)
                .map_err(|e| DemoError::Step(format!("the demo's CRDs: {e}")))?;
            apply::apply_all(&client, &docs).await?;
        }
        let mut children = Children::default();
        let prometheus = start_prometheus(&mut children, opts, mesh.metrics_addr())?;
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
            opts.work.join("loadtester.log"),
        )?;
        let ctl_port = free_port()?;
        let dashboard_port = free_port()?;
        let mut controller_args = vec![
            "controller".into(),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--mesh-provider=istio".into(),
            format!("--metrics-server={}", prometheus.url),
            format!("--port={ctl_port}"),
            format!("--dashboard-port={dashboard_port}"),
            "--log-level=info".into(),
        ];
        controller_args.extend(opts.controller_args.iter().cloned());
        children.spawn(
            "controller",
            &opts.serin,
            &controller_args,
            &proxy_env,
            opts.work.join("controller.log"),
        )?;
        mesh.add_static(
            ServiceRef {
                name: "prometheus".into(),
                namespace: "istio-system".into(),
            },
            SocketAddr::from(([127, 0, 0, 1], prometheus.port)),
        );
        mesh.add_static(
            ServiceRef {
                name: "flagger-loadtester".into(),
                namespace: opts.loadtester_namespace.clone(),
            },
            SocketAddr::from(([127, 0, 0, 1], lt_port)),
        );
        Ok(Self {
            cluster,
            mesh,
            children,
            ready_urls: vec![
                ("Prometheus", format!("{}/-/ready", prometheus.url)),
                (
                    "the loadtester",
                    format!("http://127.0.0.1:{lt_port}/healthz"),
                ),
                (
                    "the controller",
                    format!("http://127.0.0.1:{ctl_port}/healthz"),
                ),
                (
                    "the dashboard",
                    format!("http://127.0.0.1:{dashboard_port}/api/canaries"),
                ),
            ],
            prometheus: prometheus.url,
            dashboard: format!("http://127.0.0.1:{dashboard_port}/"),
            kubeconfig,
            work: opts.work.clone(),
        })
    }

    /// Waits until Prometheus, the loadtester and the controller answer (30 s each).
    pub async fn wait_ready(&mut self) -> Result<(), DemoError> {
        let http = crate::tls::http_client(Verification::Platform, Alpn::Http2OrHttp1)
            .map_err(|e| DemoError::Step(format!("building the HTTP client: {e}")))?
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| DemoError::Step(format!("building the HTTP client: {e}")))?;
        for (what, url) in self.ready_urls.clone() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(r) = http.get(&url).send().await
                    && r.status().is_success()
                {
                    break;
                }
                self.check()?;
                if Instant::now() > deadline {
                    return Err(DemoError::Step(format!(
                        "{what} did not answer {url} within 30 s (logs in {})",
                        self.work.display()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// An error when a sample-app pod did not start or a child process exited.
    pub fn check(&mut self) -> Result<(), DemoError> {
        let pod_errors = self.mesh.pod_errors();
        if !pod_errors.is_empty() {
            return Err(DemoError::Step(format!(
                "sample-app pods did not start: {pod_errors}"
            )));
        }
        if let Some((what, log)) = self.children.exited().into_iter().next() {
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

    /// The process ids of the child processes and of the sample-app pods running now.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = self.children.pids();
        pids.extend(self.mesh.pods().iter().filter_map(|p| p.pid));
        pids
    }

    /// Stops the child processes (newest first), the mesh with its pods and the cluster.
    pub async fn stop(self) {
        let Self {
            cluster,
            mesh,
            mut children,
            ..
        } = self;
        children.stop_all().await;
        mesh.shutdown().await;
        cluster.shutdown().await;
    }
}

/// A started Prometheus: its URL and port.
struct StartedPrometheus {
    url: String,
    port: u16,
}

/// Starts Prometheus scraping the mesh's metrics every `opts.scrape`, its data in the work
/// directory.
fn start_prometheus(
    children: &mut Children,
    opts: &PlatformOptions,
    target: SocketAddr,
) -> Result<StartedPrometheus, DemoError> {
    let work: &Path = &opts.work;
    let data = work.join("prometheus-data");
    std::fs::create_dir_all(&data).map_err(io(format!("creating {}", data.display())))?;
    let port = free_port()?;
    let config = work.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: {s}\n  evaluation_interval: {s}\nscrape_configs:\n  - job_name: istio-mesh\n    scrape_interval: {s}\n    static_configs:\n      - targets: ['{target}']\n",
            s = opts.scrape
        ),
    )
    .map_err(io("writing prometheus.yml"))?;
    children.spawn(
        "prometheus",
        &opts.prometheus,
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".into(),
        ],
        &[],
        work.join("prometheus.log"),
    )?;
    Ok(StartedPrometheus {
        url: format!("http://127.0.0.1:{port}"),
        port,
    })
}
