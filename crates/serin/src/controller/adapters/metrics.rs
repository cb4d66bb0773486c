//! [`MetricChecks`] over [`crate::metrics::analysis`]: MetricTemplates, their Secrets and
//! Knative revisions are read from the workload cluster.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use crate::api::Canary;
use crate::api::metric_template::MetricTemplate;
use crate::controller::ports::{FailedCheck, Finding, Measured, MetricChecks};
use crate::k8s;
use crate::k8s::error::READ_RETRY_DELAYS;
use crate::metrics::analysis::{self, EnvError, MetricsContext, MetricsEnv, Severity};
use crate::metrics::preflight;
use crate::metrics::recorder::Recorder;

/// A failed read in the analysis' terms: server-side and network failures (which outlasted
/// the retries) are transient and said in words; other answers keep the server's message,
/// as Flagger shows it (`metrictemplates.flagger.app "x" not found`).
fn env_error(e: &kube::Error) -> EnvError {
    if k8s::error::is_transient(e) {
        return EnvError::transient(k8s::error::describe(e).to_string());
    }
    match e {
        kube::Error::Api(s) => EnvError::from(s.message.clone()),
        other => EnvError::from(k8s::error::describe(other).to_string()),
    }
}

/// [`MetricsEnv`] over the API server.
#[derive(Clone)]
pub struct KubeMetricsEnv {
    client: kube::Client,
    config: Option<kube::Config>,
}

impl KubeMetricsEnv {
    /// `config` is handed to the `keptn` and `externalmetrics` providers.
    pub fn new(client: kube::Client, config: Option<kube::Config>) -> Self {
        Self { client, config }
    }
}

#[async_trait]
impl MetricsEnv for KubeMetricsEnv {
    async fn template(&self, namespace: &str, name: &str) -> Result<MetricTemplate, EnvError> {
        let api = Api::<MetricTemplate>::namespaced(self.client.clone(), namespace);
        k8s::error::retry_transient(&READ_RETRY_DELAYS, || api.get(name))
            .await
            .map_err(|e| env_error(&e))
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, EnvError> {
        let api = Api::<Secret>::namespaced(self.client.clone(), namespace);
        let secret = k8s::error::retry_transient(&READ_RETRY_DELAYS, || api.get(name))
            .await
            .map_err(|e| env_error(&e))?;
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in secret.string_data.unwrap_or_default() {
            data.entry(k).or_insert_with(|| v.into_bytes());
        }
        Ok(data)
    }

    async fn knative_latest_created_revision(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, EnvError> {
        let gvk = GroupVersionKind::gvk("serving.knative.dev", "v1", "Service");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "services");
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let svc = k8s::error::retry_transient(&READ_RETRY_DELAYS, || api.get(name))
            .await
            .map_err(|e| env_error(&e))?;
        svc.data
            .pointer("/status/latestCreatedRevisionName")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                EnvError::from("status.latestCreatedRevisionName is not set".to_string())
            })
    }

    fn kube_config(&self) -> Option<kube::Config> {
        self.config.clone()
    }
}

/// The [`MetricChecks`] port: runs the analysis with the controller's `-metrics-server` and
/// `-mesh-provider`, and records the values measured before a failed check in
/// `flagger_canary_metric_analysis` (the scheduler records those of passing ticks).
pub struct KubeMetricChecks {
    env: KubeMetricsEnv,
    metrics_server: String,
    mesh_provider: String,
    recorder: Recorder,
}

impl KubeMetricChecks {
    pub fn new(
        client: kube::Client,
        metrics_server: String,
        mesh_provider: String,
        recorder: Recorder,
    ) -> Self {
        Self {
            env: KubeMetricsEnv::new(client, None),
            metrics_server,
            mesh_provider,
            recorder,
        }
    }

    /// Hands a client configuration to the `keptn` and `externalmetrics` providers.
    pub fn with_kube_config(mut self, config: kube::Config) -> Self {
        self.env.config = Some(config);
        self
    }

    fn context(&self) -> MetricsContext<'_> {
        MetricsContext {
            metrics_server: &self.metrics_server,
            mesh_provider: &self.mesh_provider,
            env: &self.env,
        }
    }
}

#[async_trait]
impl MetricChecks for KubeMetricChecks {
    async fn check_providers(&self, canary: &Canary) -> Result<(), String> {
        analysis::check_providers(canary, &self.context()).await
    }

    async fn preflight(&self, canary: &Canary) -> Result<(), Finding> {
        preflight::run(canary, &self.context()).await
    }

    async fn run_checks(&self, canary: &Canary) -> Result<Measured, FailedCheck> {
        match analysis::run_checks(canary, &self.context()).await {
            Ok(results) => Ok(Measured {
                verdicts: results.iter().filter_map(|r| r.verdict.clone()).collect(),
                checks: analysis::check_records(canary, &results, None),
                values: results.into_iter().map(|r| (r.name, r.value)).collect(),
            }),
            Err(failed) => {
                let target = &canary.spec.target_ref.name;
                let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
                for r in &failed.results {
                    self.recorder
                        .set_metric_analysis(target, namespace, &r.name, r.value);
                }
                Err(FailedCheck {
                    checks: analysis::check_records(canary, &failed.results, Some(&failed)),
                    message: failed.message,
                    error: failed.severity == Severity::Error,
                    held: failed.severity == Severity::Held,
                    inconclusive: failed.inconclusive,
                    verdicts: failed
                        .results
                        .iter()
                        .filter_map(|r| r.verdict.clone())
                        .collect(),
                })
            }
        }
    }
}
