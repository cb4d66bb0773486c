//! Real implementations of the scheduler's ports over kube-rs, reqwest, the notifiers and the
//! Prometheus registry (one file per port family), and [`kube_ports`], which assembles them.

pub mod alerts;
pub mod backends;
pub mod events;
pub mod metrics;
pub mod recorder;
pub mod status;

use std::sync::Arc;

pub use alerts::KubeAlerter;
pub use backends::{KubeBackends, KubeServiceRouter};
pub use events::KubeEventSink;
pub use metrics::{KubeMetricChecks, KubeMetricsEnv};
pub use recorder::RecorderPort;
pub use status::KubeStatusStore;

use super::ports::{Ports, SystemClock};
use super::webhook::{HttpWebhookClient, WebhookError};
use crate::k8s::cache::Cache;
use crate::metrics::recorder::Recorder;
use crate::notify::AnyNotifier;
use crate::router::RouterFactory;
use crate::workload::WorkloadConfig;

/// Everything the adapters need from the controller's flags.
#[derive(Clone)]
pub struct AdapterConfig {
    /// `-metrics-server`.
    pub metrics_server: String,
    /// `-mesh-provider` (as given).
    pub mesh_provider: String,
    /// `-selector-labels`, `-include-label-prefix`, `-enable-config-tracking`.
    pub workload: WorkloadConfig,
    /// The global notifier (`-slack-*` / `-msteams-*`), if any.
    pub global_notifier: Option<AnyNotifier>,
    /// `-cluster-name`.
    pub cluster_name: Option<String>,
    /// The workload cluster's client configuration, for the `keptn` and `externalmetrics`
    /// metric providers.
    pub kube_config: Option<kube::Config>,
    /// `reportingInstance` of the Kubernetes Events (the host name).
    pub instance: String,
    /// `-ingress-class`, `-ingress-annotations-prefix`.
    pub ingress: crate::router::IngressOptions,
    /// The installed Canary CRD does not declare every status field Serin sets: write the
    /// status by replace ([`status::undeclared_status_fields`]).
    pub status_by_replace: bool,
}

/// The watch caches the ports read from: the workload cluster's and the mesh cluster's (the
/// same cache when they are the same cluster).
#[derive(Clone, Debug, Default)]
pub struct Caches {
    pub workload: Cache,
    pub mesh: Cache,
}

/// The ports over a workload cluster (`client`) and a mesh cluster (`mesh_client`, the same
/// cluster unless `-kubeconfig-service-mesh` says otherwise).
pub fn kube_ports(
    client: kube::Client,
    mesh_client: kube::Client,
    set_owner_refs: bool,
    recorder: Recorder,
    config: &AdapterConfig,
    caches: Caches,
) -> Result<Ports, WebhookError> {
    let webhooks: Arc<dyn super::ports::WebhookClient> = Arc::new(HttpWebhookClient::new()?);
    let mut metric_checks = KubeMetricChecks::new(
        client.clone(),
        config.metrics_server.clone(),
        config.mesh_provider.clone(),
        recorder.clone(),
    );
    if let Some(kube_config) = &config.kube_config {
        metric_checks = metric_checks.with_kube_config(kube_config.clone());
    }
    Ok(Ports {
        clock: Arc::new(SystemClock),
        events: Arc::new(KubeEventSink::new(client.clone(), config.instance.clone())),
        store: Arc::new(
            KubeStatusStore::new(client.clone())
                .with_cache(caches.workload.clone())
                .with_replace_only(config.status_by_replace),
        ),
        webhooks,
        metrics: Arc::new(metric_checks),
        alerter: Arc::new(KubeAlerter::new(
            client.clone(),
            config.global_notifier.clone(),
            config.cluster_name.clone(),
        )),
        recorder: Arc::new(RecorderPort::new(recorder)),
        backends: Arc::new(
            KubeBackends::new(
                client.clone(),
                config.workload.clone(),
                RouterFactory::new(mesh_client, set_owner_refs)
                    .with_ingress(config.ingress.clone())
                    .with_workloads(client, config.workload.clone())
                    .with_workload_cache(caches.workload.clone())
                    .with_cache(caches.mesh),
            )
            .with_cache(caches.workload),
        ),
    })
}
