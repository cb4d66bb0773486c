//! `serin controller`: the progressive-delivery controller with Flagger's flags.
//!
//! Start-up follows Flagger: logger → clients (workload and mesh cluster) → CRD check →
//! metrics server probe (non-fatal) → global notifier → the web dashboard (with
//! `--dashboard-port`) → HTTP server → controller, optionally
//! under leader election. SIGINT/SIGTERM stop the controller, the HTTP server and the leader
//! election together.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

use crate::api::Provider;
use crate::api::duration;
use crate::controller::SchedulerConfig;
use crate::controller::adapters::{self, AdapterConfig};
use crate::controller::leader::{LeaderConfig, LeaderElector, LeaderError};
use crate::controller::runtime::{self, RuntimeError, RuntimeOptions};
use crate::controller::webhook::WebhookError;
use crate::controller::workers::{API_CONCURRENCY, ApiRequestLayer};
use crate::dashboard::{Dashboard, DashboardArgs, DashboardError};
use crate::k8s::cache::Cache;
use crate::metrics::providers::MetricsProvider;
use crate::metrics::providers::prometheus::PrometheusProvider;
use crate::metrics::recorder::Recorder;
use crate::notify::{self, GlobalNotifierArgs, NotifyError};
use crate::telemetry::logging::LogArgs;
use crate::telemetry::server::{self, Readiness, ServerArgs, ServerError};
use crate::workload::WorkloadConfig;

/// Flags of `serin controller` (Flagger's names; `-flag` and `--flag` both work).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Path to a kubeconfig [env: KUBECONFIG]; in-cluster configuration when neither is set.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig of the cluster hosting the service mesh / ingress control plane; routing
    /// objects are written there (default: the workload cluster).
    #[arg(long = "kubeconfig-service-mesh", value_name = "PATH")]
    pub kubeconfig_service_mesh: Option<PathBuf>,
    /// Prometheus URL for the built-in metrics.
    #[arg(long = "metrics-server", default_value = "http://prometheus:9090")]
    pub metrics_server: String,
    /// Service mesh or ingress provider of canaries without `spec.provider`.
    #[arg(long = "mesh-provider", default_value = "istio")]
    pub mesh_provider: String,
    /// Watch only this namespace (default: all).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Candidate selector label keys, in order of preference.
    #[arg(
        long = "selector-labels",
        default_value = "app,name,app.kubernetes.io/name"
    )]
    pub selector_labels: String,
    /// Label/annotation key prefixes copied to generated objects (`*` = all).
    #[arg(long = "include-label-prefix", default_value = "")]
    pub include_label_prefix: String,
    /// Track ConfigMaps and Secrets referenced by the target.
    #[arg(long = "enable-config-tracking", num_args = 0..=1, default_missing_value = "true",
          default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_config_tracking: bool,
    /// Run only while holding the `flagger-leader-election` Lease.
    #[arg(long = "enable-leader-election", num_args = 0..=1, default_missing_value = "true",
          default_value_t = false, action = clap::ArgAction::Set)]
    pub enable_leader_election: bool,
    /// Namespace of the leader election Lease (`-namespace` wins when set).
    #[arg(long = "leader-election-namespace", default_value = "kube-system")]
    pub leader_election_namespace: String,
    /// Global event webhook: receives every event [env: EVENT_WEBHOOK_URL, which wins when set].
    #[arg(long = "event-webhook", value_name = "URL")]
    pub event_webhook: Option<String>,
    /// Canaries reconciled concurrently.
    #[arg(long, default_value_t = 2)]
    pub threadiness: u16,
    /// Reject templateRef / providerRef / upstreamRef in other namespaces.
    #[arg(long = "no-cross-namespace-refs", num_args = 0..=1, default_missing_value = "true",
          default_value_t = false, action = clap::ArgAction::Set)]
    pub no_cross_namespace_refs: bool,
    /// How often `flagger_canary_total` is refreshed and Canaries sharing a target are logged.
    /// Serin has no job-sync loop: reconciles are driven by watches and each Canary's own
    /// requeue.
    #[arg(long = "control-loop-interval", default_value = "10s")]
    pub control_loop_interval: String,
    /// Accepted for compatibility; no effect (kube-rs has no client-side rate limiter).
    #[arg(long = "kubeconfig-qps", default_value_t = 100)]
    pub kubeconfig_qps: i64,
    /// Accepted for compatibility; no effect.
    #[arg(long = "kubeconfig-burst", default_value_t = 250)]
    pub kubeconfig_burst: i64,
    /// Prefix of the NGINX ingress controller's annotations that the nginx router writes on the
    /// canary Ingress (`<prefix>/canary`, `<prefix>/canary-weight`, ...).
    #[arg(
        long = "ingress-annotations-prefix",
        default_value = "nginx.ingress.kubernetes.io"
    )]
    pub ingress_annotations_prefix: String,
    /// Ingress class of the HTTPProxy objects the contour router generates
    /// (`spec.ingressClassName`; empty: not set).
    #[arg(long = "ingress-class", default_value = "")]
    pub ingress_class: String,
    /// Test knob: lower bound of `analysis.interval` (Flagger: 10s).
    #[arg(long = "min-analysis-interval", default_value = "10s", hide = true)]
    pub min_analysis_interval: String,
    /// Test knob: leader election lease duration.
    #[arg(
        long = "leader-election-lease-duration",
        default_value = "60s",
        hide = true
    )]
    pub leader_lease_duration: String,
    /// Test knob: leader election renew deadline.
    #[arg(
        long = "leader-election-renew-deadline",
        default_value = "15s",
        hide = true
    )]
    pub leader_renew_deadline: String,
    /// Test knob: leader election retry period.
    #[arg(
        long = "leader-election-retry-period",
        default_value = "5s",
        hide = true
    )]
    pub leader_retry_period: String,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub notifier: GlobalNotifierArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
}

/// Why the controller stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("invalid flag {flag}: {message}")]
    Flag { flag: &'static str, message: String },
    #[error("error building kubeconfig from {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("error building kubernetes client: {0}")]
    Client(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("error building the global notifier: {0}")]
    Notifier(#[from] NotifyError),
    #[error("error building the webhook client: {0}")]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Leader(#[from] LeaderError),
    #[error(transparent)]
    Dashboard(#[from] DashboardError),
}

fn parse_duration(flag: &'static str, value: &str) -> Result<Duration, ControllerError> {
    duration::parse(value).ok_or_else(|| ControllerError::Flag {
        flag,
        message: format!("{value:?} is not a duration"),
    })
}

async fn client_from(
    path: Option<&PathBuf>,
) -> Result<(kube::Client, kube::Config), ControllerError> {
    let config = match path {
        Some(path) => {
            let fail = |message: String| ControllerError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let kc = Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| fail(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ControllerError::Client(e.to_string()))?,
    };
    // API requests wait without holding a reconcile's worker (`controller/workers.rs`).
    let client = crate::k8s::client::builder(&config)
        .map_err(|e| ControllerError::Client(e.to_string()))?
        .with_layer(&ApiRequestLayer::new(API_CONCURRENCY))
        .build();
    Ok((client, config))
}

/// Resolves when `rx` says stop (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A `Send + Sync` future for kube-runtime's graceful shutdown.
fn sync_stopped(rx: watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + Sync {
    let (tx, done) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        stopped(rx).await;
        let _ = tx.send(());
    });
    async move {
        let _ = done.await;
    }
}

/// Runs the controller until `shutdown` turns true. The logger is the caller's business.
pub async fn serve(args: Args, shutdown: watch::Receiver<bool>) -> Result<(), ControllerError> {
    let min_interval = parse_duration("min-analysis-interval", &args.min_analysis_interval)?;
    let provider: Provider =
        args.mesh_provider
            .parse()
            .map_err(
                |e: crate::api::provider::UnknownProvider| ControllerError::Flag {
                    flag: "mesh-provider",
                    message: e.to_string(),
                },
            )?;
    let kubeconfig = args.kubeconfig.clone().or_else(|| {
        std::env::var_os("KUBECONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let (client, kube_config) = client_from(kubeconfig.as_ref()).await?;
    let (mesh_client, set_owner_refs) = match &args.kubeconfig_service_mesh {
        Some(path) => {
            // Owner references only when the mesh cluster is the workload cluster (Flagger
            // compares the API server hosts).
            let (mesh, mesh_config) = client_from(Some(path)).await?;
            let same = mesh_config.cluster_url == kube_config.cluster_url;
            (mesh, same)
        }
        None => (client.clone(), true),
    };

    runtime::check_crds(&client, args.namespace.as_deref()).await?;
    let undeclared = adapters::status::undeclared_status_fields(&client)
        .await
        .unwrap_or_default();
    if !undeclared.is_empty() {
        tracing::warn!(
            "the installed Canary CRD does not declare the status fields {} (Flagger's CRD?): the status is written by replace, which drops them; install Serin's CRD to keep them",
            undeclared.join(", ")
        );
    }
    let version = runtime::check_kubernetes_version(&client).await?;
    tracing::debug!("Kubernetes API server {version}");

    match PrometheusProvider::for_metrics_server(&args.metrics_server) {
        Ok(p) => match p.is_online().await {
            Ok(()) => tracing::info!("Connected to metrics server {}", args.metrics_server),
            Err(e) => tracing::error!("Metrics server {} unreachable {e}", args.metrics_server),
        },
        Err(e) => tracing::error!("Metrics server {} unreachable {e}", args.metrics_server),
    }

    if let Some(reason) = args.notifier.disabled_reason() {
        tracing::warn!("{reason}");
    }
    let global_notifier = match args.notifier.notifier_config()? {
        Some(config) => {
            let n = notify::build(&config)?;
            tracing::info!(
                "Notifications enabled for {}",
                notify::Notifier::redacted_url(&n)
            );
            Some(n)
        }
        None => None,
    };
    let event_webhook = std::env::var("EVENT_WEBHOOK_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| args.event_webhook.clone().filter(|v| !v.is_empty()));

    let recorder = Recorder::new();
    recorder.set_info(env!("CARGO_PKG_VERSION"), &args.mesh_provider);
    let readiness = Readiness::new();

    // Dropped on an early return below, it stops.
    let dashboard = Dashboard::start(&args.dashboard, shutdown.clone()).await?;
    let listener = server::bind(args.server.port).await?;
    let http = tokio::spawn(server::serve(
        listener,
        server::router(recorder.clone(), readiness.clone()),
        stopped(shutdown.clone()),
    ));

    let workload = WorkloadConfig::from_flags(
        &args.selector_labels,
        &args.include_label_prefix,
        args.enable_config_tracking,
    );
    let adapter_config = AdapterConfig {
        metrics_server: args.metrics_server.clone(),
        mesh_provider: args.mesh_provider.clone(),
        workload,
        global_notifier,
        cluster_name: args.notifier.cluster_name().map(str::to_string),
        kube_config: Some(kube_config),
        instance: crate::controller::leader::hostname(),
        ingress: crate::router::IngressOptions {
            class: args.ingress_class.clone(),
            annotations_prefix: args.ingress_annotations_prefix.clone(),
        },
        status_by_replace: !undeclared.is_empty(),
    };
    // What reconciles read comes from watches (`k8s::cache`), restricted like the controller;
    // a separate mesh cluster has its own.
    let cache = Cache::new(args.namespace.clone());
    let caches = adapters::Caches {
        workload: cache.clone(),
        mesh: if set_owner_refs {
            cache.clone()
        } else {
            Cache::new(args.namespace.clone())
        },
    };
    let mut ports = adapters::kube_ports(
        client.clone(),
        mesh_client,
        set_owner_refs,
        recorder.clone(),
        &adapter_config,
        caches,
    )?;
    if let Some(dashboard) = &dashboard {
        ports.events = dashboard.tee(ports.events.clone());
    }
    let scheduler_config = SchedulerConfig {
        default_provider: provider,
        event_webhook,
        min_interval,
    };
    let options = RuntimeOptions {
        namespace: args.namespace.clone(),
        threadiness: args.threadiness,
        no_cross_namespace_refs: args.no_cross_namespace_refs,
        config_tracking: args.enable_config_tracking,
        control_loop_interval: parse_duration(
            "control-loop-interval",
            &args.control_loop_interval,
        )?,
        observer: dashboard.as_ref().map(Dashboard::observer),
        cache,
    };

    let controller = runtime::run(
        client.clone(),
        ports,
        scheduler_config,
        options,
        recorder,
        readiness,
        sync_stopped(shutdown.clone()),
    );

    let result = if args.enable_leader_election {
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| args.leader_election_namespace.clone());
        let mut config = LeaderConfig::new(namespace);
        config.lease_duration = parse_duration(
            "leader-election-lease-duration",
            &args.leader_lease_duration,
        )?;
        config.renew_deadline = parse_duration(
            "leader-election-renew-deadline",
            &args.leader_renew_deadline,
        )?;
        config.retry_period =
            parse_duration("leader-election-retry-period", &args.leader_retry_period)?;
        let elector = LeaderElector::new(client, config);
        let mut rx = shutdown.clone();
        if elector.acquire(&mut rx).await {
            let mut hold_rx = shutdown.clone();
            tokio::pin!(controller);
            // On shutdown the controller finishes its reconciles before the lease is released;
            // on leadership loss it is dropped at once.
            let result = tokio::select! {
                _ = &mut controller => Ok(()),
                held = elector.hold(&mut hold_rx) => match held {
                    Ok(()) => {
                        controller.await;
                        Ok(())
                    }
                    Err(e) => Err(ControllerError::from(e)),
                },
            };
            if result.is_ok() {
                elector.release().await;
            }
            result
        } else {
            Ok(())
        }
    } else {
        controller.await;
        Ok(())
    };
    if result.is_err() {
        http.abort();
    } else {
        if let Ok(Err(e)) = http.await {
            tracing::error!("{e}");
        }
        if let Some(dashboard) = dashboard
            && let Err(e) = dashboard.stopped().await
        {
            tracing::error!("{e}");
        }
    }
    result
}

/// `serin controller`: installs the logger and signal handlers, then [`serve`]s.
pub fn run(args: &Args) -> ExitCode {
    if let Err(e) = args.log.init() {
        eprintln!("serin controller: {e}");
        return ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serin controller: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("Shutting down");
            let _ = tx.send(true);
        });
        // The controller runs on the runtime's workers, not on this thread: its watches and
        // work queue are polled inside this future, and on the thread that blocks on it they
        // made a third busy thread, woken by the workers for every watch event
        // (docs/performance.md, issue 18's fourteenth pass).
        match tokio::spawn(serve(args.clone(), rx)).await {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                tracing::error!("the controller stopped unexpectedly: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal() {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(args: &[&str]) -> Args {
        let argv = std::iter::once("controller").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn defaults_are_flaggers() {
        let a = parse(&[]);
        assert_eq!(a.metrics_server, "http://prometheus:9090");
        assert_eq!(a.mesh_provider, "istio");
        assert_eq!(a.selector_labels, "app,name,app.kubernetes.io/name");
        assert!(a.enable_config_tracking);
        assert!(!a.enable_leader_election);
        assert_eq!(a.leader_election_namespace, "kube-system");
        assert_eq!(a.threadiness, 2);
        assert_eq!(a.server.port, 8080);
        assert_eq!(a.min_analysis_interval, "10s");
    }

    #[test]
    fn go_bool_flags_take_values() {
        let a = parse(&[
            "--enable-config-tracking=false",
            "--enable-leader-election",
            "--no-cross-namespace-refs=true",
            "--kubeconfig-qps",
            "50",
        ]);
        assert!(!a.enable_config_tracking);
        assert!(a.enable_leader_election);
        assert!(a.no_cross_namespace_refs);
        assert_eq!(a.kubeconfig_qps, 50);
    }
}
