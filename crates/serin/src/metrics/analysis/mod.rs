//! The metric analysis of one tick (Flagger's `runBuiltinMetricChecks` and `runMetricChecks` in
//! `pkg/controller/scheduler_metrics.go`): built-in checks, inline queries and
//! MetricTemplates, the pass/fail decision and Flagger's event messages.
//!
//! The controller calls two functions:
//!
//! * [`check_providers`] on initialisation ticks; `Ok` means "emit
//!   [`PROVIDERS_AVAILABLE`]", `Err(text)` means "emit `Error checking metric providers: <text>`";
//! * [`run_checks`] on analysis ticks; `Ok(results)` means every check passed, `Err(FailedCheck)`
//!   carries the event text (e.g. `Halt podinfo.test advancement success rate 69.17% < 99%`),
//!   its severity and the values measured before the failure.
//!
//! Both read MetricTemplates and Secrets through [`MetricsEnv`], which the controller implements
//! over kube and tests implement in memory. The decision functions ([`success_rate_verdict`],
//! [`duration_verdict`], [`custom_verdict`]) are pure.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::compare;
use super::observers::{self, ObserverKind};
use super::providers::prometheus::PrometheusProvider;
use super::providers::{self, MetricsProvider, ProviderEnv, ProviderError};
use super::template::{self, QueryModel, go_float};
use crate::api::Canary;
use crate::api::analysis::{BuiltinMetric, CanaryMetric};
use crate::api::comparison::MetricComparison;
use crate::api::metric_template::MetricTemplate;
use crate::stats::Outcome;

mod record;
mod verdict;
pub use record::check_records;
pub use verdict::{custom_verdict, duration_verdict, success_rate_verdict, threshold_range};

/// The provider type of the built-in and inline checks.
const PROMETHEUS: &str = "prometheus";

/// The Normal event of a successful availability check.
pub const PROVIDERS_AVAILABLE: &str = "all the metrics providers are available!";
/// Prefix of the Warning event of a failed availability check.
pub const PROVIDERS_CHECK_FAILED_PREFIX: &str = "Error checking metric providers: ";

/// Why the analysis could not read one of its inputs from the cluster.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EnvError {
    /// The message to show (e.g. the API error text
    /// `metrictemplates.flagger.app "error-rate" not found`).
    pub message: String,
    /// A server-side or network failure that outlasted the reader's retries (5xx, 429, no
    /// answer): it says nothing about the canary, so the tick is held instead of counted as a
    /// failed check.
    pub transient: bool,
}

impl EnvError {
    /// A server-side or network failure.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
        }
    }
}

/// An answer about the object (not found, forbidden, malformed).
impl From<String> for EnvError {
    fn from(message: String) -> Self {
        Self {
            message,
            transient: false,
        }
    }
}

/// What the analysis needs from the cluster.
#[async_trait]
pub trait MetricsEnv: Send + Sync {
    /// The MetricTemplate `namespace/name`.
    async fn template(&self, namespace: &str, name: &str) -> Result<MetricTemplate, EnvError>;
    /// `data` of the Secret `namespace/name`.
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, EnvError>;
    /// `status.latestCreatedRevisionName` of the Knative Service `namespace/name`.
    async fn knative_latest_created_revision(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, EnvError>;
    /// Kubernetes client configuration for the `keptn` and `externalmetrics` providers
    /// (`None` when not running against a cluster).
    fn kube_config(&self) -> Option<kube::Config>;
}

/// Controller-wide inputs of the analysis.
#[derive(Clone, Copy)]
pub struct MetricsContext<'a> {
    /// `-metrics-server` (default `http://prometheus:9090`).
    pub metrics_server: &'a str,
    /// `-mesh-provider` (default `istio`).
    pub mesh_provider: &'a str,
    pub env: &'a dyn MetricsEnv,
}

/// A measured value for the `flagger_canary_metric_analysis` gauge (request duration in
/// seconds, everything else as returned).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricResult {
    pub name: String,
    pub value: f64,
    /// The verdict of a comparison check (Serin only), for a Normal event.
    pub verdict: Option<String>,
    /// The provider type that answered (`prometheus` for built-in and inline checks).
    pub provider: String,
    /// The rendered query.
    pub query: String,
}

/// The check being run when a failure ended the analysis (for the decision record).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attempt {
    pub name: String,
    pub provider: String,
    /// The rendered query, when rendering got that far.
    pub query: Option<String>,
}

/// The values measured so far and the check under way.
#[derive(Debug, Default)]
struct Checked {
    results: Vec<MetricResult>,
    current: Option<Attempt>,
}

impl Checked {
    /// The check `name` starts (its query rendered, or not).
    fn begin(&mut self, name: &str, provider: &str, query: Option<&str>) {
        self.current = Some(Attempt {
            name: name.to_string(),
            provider: provider.to_string(),
            query: query.map(str::to_string),
        });
    }

    /// A value measured by the check under way.
    fn push(&mut self, mut result: MetricResult) {
        if let Some(a) = &self.current {
            result.provider.clone_from(&a.provider);
            result.query = a.query.clone().unwrap_or_default();
        }
        self.current = None;
        self.results.push(result);
    }
}

/// How the controller reports a failed check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A threshold or "no values found": Warning event (Flagger logs these at info level).
    Warning,
    /// A query, template or provider error: Warning event logged at error level.
    Error,
    /// A server-side or network failure reading the analysis' own inputs (MetricTemplate,
    /// Secret, Knative Service) after retries: Warning event, the tick is held and retried at
    /// the next interval, and it is not counted as a failed check (Flagger counts it).
    Held,
}

/// A failed check: the tick ends and `failedChecks` is incremented.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FailedCheck {
    /// The event text.
    pub message: String,
    pub severity: Severity,
    /// Values measured before the failure (including the failing metric's own value when it was
    /// a threshold failure), for the gauge.
    pub results: Vec<MetricResult>,
    /// A comparison check had too few samples: hold the step instead of failing it.
    pub inconclusive: bool,
    /// The check that failed, when the failure belongs to one.
    pub failing: Option<Attempt>,
}

impl FailedCheck {
    fn warning(message: String, at: &Checked) -> Self {
        Self {
            message,
            severity: Severity::Warning,
            results: at.results.clone(),
            inconclusive: false,
            failing: at.current.clone(),
        }
    }
    fn error(message: String, at: &Checked) -> Self {
        Self {
            severity: Severity::Error,
            ..Self::warning(message, at)
        }
    }
    fn held(what: &str, err: &EnvError, at: &Checked) -> Self {
        Self {
            severity: Severity::Held,
            ..Self::warning(
                format!(
                    "Halt advancement: {what} cannot be read, retrying at the next interval (not counted as a failed check): {err}"
                ),
                at,
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pure decisions (the verdicts are in [`verdict`])

/// Flagger's model for a metric: names from the Canary, the metric's interval and variables.
pub fn query_model(canary: &Canary, metric: &CanaryMetric) -> QueryModel {
    let spec = &canary.spec;
    let target = spec.target_ref.name.clone();
    let service = spec
        .service
        .as_ref()
        .and_then(|s| s.name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| target.clone());
    let ingress = spec
        .ingress_ref
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_else(|| target.clone());
    let route = spec
        .route_ref
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_else(|| target.clone());
    QueryModel {
        name: canary.metadata.name.clone().unwrap_or_default(),
        namespace: canary.metadata.namespace.clone().unwrap_or_default(),
        target,
        service,
        ingress,
        route,
        interval: metric.interval().to_string(),
        variables: metric.template_variables.clone().unwrap_or_default(),
    }
}

/// `<name>.<namespace>` of the Canary.
pub fn canary_id(canary: &Canary) -> String {
    format!(
        "{}.{}",
        canary.metadata.name.as_deref().unwrap_or_default(),
        canary.metadata.namespace.as_deref().unwrap_or_default()
    )
}

/// Whether the built-in check runs for this metric: selected by name, but only when the metric
/// has neither a `templateRef` nor an inline `query` (Flagger runs both, a bug).
pub(in crate::metrics) fn builtin_of(metric: &CanaryMetric) -> Option<BuiltinMetric> {
    if metric.template_ref.is_some() || metric.has_query() {
        return None;
    }
    metric.builtin()
}

/// The Prometheus URL of the built-in and inline checks.
fn metrics_server<'a>(canary: &'a Canary, ctx: &MetricsContext<'a>) -> &'a str {
    match canary.spec.metrics_server.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => s,
        _ => ctx.metrics_server,
    }
}

/// The address as shown in messages: user info removed.
fn display_address(address: &str) -> String {
    match reqwest::Url::parse(address) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => address.to_string(),
    }
}

pub(in crate::metrics) fn builtin_client(
    canary: &Canary,
    ctx: &MetricsContext<'_>,
) -> Result<Box<dyn MetricsProvider>, String> {
    let address = metrics_server(canary, ctx);
    let secrets: Vec<String> = reqwest::Url::parse(address)
        .ok()
        .and_then(|u| u.password().map(String::from))
        .into_iter()
        .collect();
    match PrometheusProvider::for_metrics_server(address) {
        Ok(p) => Ok(Box::new(providers::Redacting::new(Box::new(p), secrets))),
        Err(err) => Err(format!(
            "Error building Prometheus client for {} {}",
            display_address(address),
            err.redact(&secrets)
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Availability check

/// The availability check of initialisation ticks (Flagger's `checkMetricProviderAvailability`
/// in `pkg/controller/scheduler_metrics.go`). Built-in and inline metrics probe the
/// Canary's Prometheus (`vector(1)`); template metrics build their provider and probe it.
/// The error is the text after [`PROVIDERS_CHECK_FAILED_PREFIX`]. Flagger misspells "avaiable";
/// Serin writes "available".
pub async fn check_providers(canary: &Canary, ctx: &MetricsContext<'_>) -> Result<(), String> {
    let Some(analysis) = canary.spec.analysis() else {
        return Ok(());
    };
    let mut prometheus_checked = false;
    for metric in analysis.metrics() {
        let uses_prometheus = builtin_of(metric).is_some() || metric.has_query();
        if uses_prometheus && !prometheus_checked {
            let client = builtin_client(canary, ctx)?;
            client
                .is_online()
                .await
                .map_err(|e| format!("prometheus not available: {e}"))?;
            prometheus_checked = true;
        }
        if let Some(template_ref) = &metric.template_ref {
            let canary_ns = canary.metadata.namespace.as_deref().unwrap_or_default();
            let namespace = template_ref.namespace_or(canary_ns);
            let name = &template_ref.name;
            let (template, provider) = load_template_provider(ctx, metric, namespace, name)
                .await
                .map_err(|e| match e {
                TemplateLoadError::Template(e) => {
                    format!("metric template {name}.{namespace} error: {e}")
                }
                TemplateLoadError::Secret(secret, e) => {
                    format!("metric template {name}.{namespace} secret {secret} error: {e}")
                }
                TemplateLoadError::Provider(kind, e) => {
                    format!("metric template {name}.{namespace} provider {kind} error: {e}")
                }
            })?;
            provider.is_online().await.map_err(|e| {
                format!(
                    "{} in metric template {name}.{namespace} not available: {e}",
                    template.spec.provider.provider_type
                )
            })?;
        }
    }
    Ok(())
}

pub(in crate::metrics) enum TemplateLoadError {
    Template(EnvError),
    Secret(String, EnvError),
    Provider(String, ProviderError),
}

pub(in crate::metrics) async fn load_template_provider(
    ctx: &MetricsContext<'_>,
    metric: &CanaryMetric,
    namespace: &str,
    name: &str,
) -> Result<(MetricTemplate, Box<dyn MetricsProvider>), TemplateLoadError> {
    let template = ctx
        .env
        .template(namespace, name)
        .await
        .map_err(TemplateLoadError::Template)?;
    let credentials = match &template.spec.provider.secret_ref {
        Some(secret_ref) => Some(
            ctx.env
                .secret(namespace, &secret_ref.name)
                .await
                .map_err(|e| TemplateLoadError::Secret(secret_ref.name.clone(), e))?,
        ),
        None => None,
    };
    let env = ProviderEnv {
        interval: metric.interval().to_string(),
        credentials,
        kube_config: ctx.env.kube_config(),
    };
    let provider = providers::build(&template.spec.provider, env).map_err(|e| {
        TemplateLoadError::Provider(template.spec.provider.provider_type.clone(), e)
    })?;
    Ok((template, provider))
}

// ---------------------------------------------------------------------------------------------
// Analysis

/// Runs every metric check of the Canary's analysis, in Flagger's order: first the built-in and
/// inline checks (spec order), then the template checks (spec order). The first failure ends
/// the tick.
pub async fn run_checks(
    canary: &Canary,
    ctx: &MetricsContext<'_>,
) -> Result<Vec<MetricResult>, FailedCheck> {
    let Some(analysis) = canary.spec.analysis() else {
        return Ok(Vec::new());
    };
    let metrics = analysis.metrics();
    let mut results = Checked::default();
    run_builtin_checks(canary, ctx, metrics, &mut results).await?;
    run_template_checks(canary, ctx, metrics, &mut results).await?;
    Ok(results.results)
}

async fn run_builtin_checks(
    canary: &Canary,
    ctx: &MetricsContext<'_>,
    metrics: &[CanaryMetric],
    results: &mut Checked,
) -> Result<(), FailedCheck> {
    if !metrics
        .iter()
        .any(|m| builtin_of(m).is_some() || m.has_query())
    {
        return Ok(());
    }
    let id = canary_id(canary);
    let target = &canary.spec.target_ref.name;
    let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
    let provider_name = observers::metrics_provider_name(
        ctx.mesh_provider,
        canary.spec.provider.as_deref(),
        &canary.spec.target_ref.kind,
    );
    let observer = ObserverKind::for_name(&provider_name);
    let knative_route = if observer == ObserverKind::Knative {
        match ctx
            .env
            .knative_latest_created_revision(namespace, target)
            .await
        {
            Ok(revision) => Some(revision),
            Err(e) if e.transient => {
                return Err(FailedCheck::held(
                    &format!("Knative service {namespace}/{target}"),
                    &e,
                    results,
                ));
            }
            Err(e) => {
                return Err(FailedCheck::error(
                    format!("Error fetching Knative service {namespace}/{target} {e}"),
                    results,
                ));
            }
        }
    } else {
        None
    };
    let client = builtin_client(canary, ctx).map_err(|m| FailedCheck::error(m, results))?;

    for metric in metrics {
        let mut model = query_model(canary, metric);
        if let Some(route) = &knative_route {
            model.route = route.clone();
        }
        match builtin_of(metric) {
            Some(BuiltinMetric::RequestSuccessRate) => {
                let query = observer.request_success_rate_query(&model);
                results.begin(&metric.name, PROMETHEUS, query.as_deref().ok());
                let value = match observe(client.as_ref(), query).await {
                    Ok(v) => v,
                    Err(Observed::NoValues(text)) => {
                        return Err(FailedCheck::warning(
                            format!(
                                "Halt advancement no values found for {provider_name} metric {} probably {target}.{namespace} is not receiving traffic: {text}",
                                metric.name
                            ),
                            results,
                        ));
                    }
                    Err(Observed::Failed(text)) => {
                        return Err(FailedCheck::error(
                            format!("Prometheus query failed: {text}"),
                            results,
                        ));
                    }
                };
                results.push(MetricResult {
                    name: metric.name.clone(),
                    value,
                    verdict: None,
                    ..Default::default()
                });
                if let Some(message) = success_rate_verdict(&id, metric, value) {
                    return Err(FailedCheck::warning(message, results));
                }
            }
            Some(BuiltinMetric::RequestDuration) => {
                let query = observer.request_duration_query(&model);
                results.begin(&metric.name, PROMETHEUS, query.as_deref().ok());
                let value = match observe(client.as_ref(), query).await {
                    Ok(v) => observer.duration_from_value(v),
                    Err(Observed::NoValues(_)) => {
                        return Err(FailedCheck::warning(
                            format!(
                                "Halt advancement no values found for {provider_name} metric {} probably {target}.{namespace} is not receiving traffic",
                                metric.name
                            ),
                            results,
                        ));
                    }
                    Err(Observed::Failed(text)) => {
                        return Err(FailedCheck::error(
                            format!("Prometheus query failed: {text}"),
                            results,
                        ));
                    }
                };
                results.push(MetricResult {
                    name: metric.name.clone(),
                    value: value.as_secs_f64(),
                    verdict: None,
                    ..Default::default()
                });
                if let Some(message) = duration_verdict(&id, metric, value) {
                    return Err(FailedCheck::warning(message, results));
                }
            }
            None => {}
        }

        if metric.has_query() {
            let query = metric.query.as_deref().unwrap_or_default();
            results.begin(&metric.name, PROMETHEUS, None);
            let rendered = template::render(query, &model).map_err(|e| {
                FailedCheck::error(
                    format!(
                        "Prometheus query failed for {}: query render error: {e}",
                        metric.name
                    ),
                    results,
                )
            })?;
            results.begin(&metric.name, PROMETHEUS, Some(&rendered));
            if let Some(c) = &metric.compare {
                compare_check(&id, client.as_ref(), query, &model, metric, c, results).await?;
                continue;
            }
            let value = match client.run_query(&rendered).await {
                Ok(v) => v,
                Err(ProviderError::NoValuesFound) => {
                    return Err(FailedCheck::warning(
                        format!(
                            "Halt advancement no values found for metric: {}",
                            metric.name
                        ),
                        results,
                    ));
                }
                Err(e) => {
                    return Err(FailedCheck::error(
                        format!("Prometheus query failed for {}: {e}", metric.name),
                        results,
                    ));
                }
            };
            results.push(MetricResult {
                name: metric.name.clone(),
                value,
                verdict: None,
                ..Default::default()
            });
            if let Some(message) = custom_verdict(&id, metric, value) {
                return Err(FailedCheck::warning(message, results));
            }
        }
    }
    Ok(())
}

/// Outcome of a failed built-in query, worded like Flagger's observers.
enum Observed {
    NoValues(String),
    Failed(String),
}

async fn observe(
    client: &dyn MetricsProvider,
    query: Result<String, template::TemplateError>,
) -> Result<f64, Observed> {
    let query = query.map_err(|e| Observed::Failed(format!("rendering query failed: {e}")))?;
    client.run_query(&query).await.map_err(|e| match e {
        ProviderError::NoValuesFound => Observed::NoValues(format!("running query failed: {e}")),
        e => Observed::Failed(format!("running query failed: {e}")),
    })
}

async fn run_template_checks(
    canary: &Canary,
    ctx: &MetricsContext<'_>,
    metrics: &[CanaryMetric],
    results: &mut Checked,
) -> Result<(), FailedCheck> {
    let id = canary_id(canary);
    let canary_ns = canary.metadata.namespace.as_deref().unwrap_or_default();
    for metric in metrics {
        let Some(template_ref) = &metric.template_ref else {
            if !metric.is_usable() {
                return Err(FailedCheck::error(
                    "Metric query failed for no usable metrics template and query were configured"
                        .to_string(),
                    results,
                ));
            }
            continue;
        };
        let namespace = template_ref.namespace_or(canary_ns);
        let name = &template_ref.name;
        results.begin(&metric.name, "", None);
        let (template, provider) = load_template_provider(ctx, metric, namespace, name)
            .await
            .map_err(|e| {
                let message = match e {
                    TemplateLoadError::Template(e) if e.transient => {
                        let what = format!("metric template {name}.{namespace}");
                        return FailedCheck::held(&what, &e, results);
                    }
                    TemplateLoadError::Secret(secret, e) if e.transient => {
                        let what = format!("secret {secret} of metric template {name}.{namespace}");
                        return FailedCheck::held(&what, &e, results);
                    }
                    TemplateLoadError::Template(e) => {
                        format!("Metric template {name}.{namespace} error: {e}")
                    }
                    TemplateLoadError::Secret(secret, e) => {
                        format!("Metric template {name}.{namespace} secret {secret} error: {e}")
                    }
                    TemplateLoadError::Provider(kind, e) => {
                        format!("Metric template {name}.{namespace} provider {kind} error: {e}")
                    }
                };
                FailedCheck::error(message, results)
            })?;
        let model = query_model(canary, metric);
        let provider_type = template.spec.provider.provider_type.as_str();
        results.begin(&metric.name, provider_type, None);
        let query = template::render(&template.spec.query, &model).map_err(|e| {
            FailedCheck::error(
                format!("Metric template {name}.{namespace} query render error: {e}"),
                results,
            )
        })?;
        results.begin(&metric.name, provider_type, Some(&query));
        tracing::debug!(
            canary = %id,
            "Metric template {name}.{namespace} query: {}",
            template::collapse_whitespace(&query)
        );
        if let Some(c) = &metric.compare {
            compare_check(
                &id,
                provider.as_ref(),
                &template.spec.query,
                &model,
                metric,
                c,
                results,
            )
            .await?;
            continue;
        }
        let value = match provider.run_query(&query).await {
            Ok(v) => v,
            Err(e @ ProviderError::NoValuesFound) => {
                return Err(FailedCheck::warning(
                    format!(
                        "Halt advancement no values found for custom metric: {}: {e}",
                        metric.name
                    ),
                    results,
                ));
            }
            Err(e) => {
                return Err(FailedCheck::error(
                    format!("Metric query failed for {}: {e}", metric.name),
                    results,
                ));
            }
        };
        results.push(MetricResult {
            name: metric.name.clone(),
            value,
            verdict: None,
            ..Default::default()
        });
        if let Some(message) = custom_verdict(&id, metric, value) {
            return Err(FailedCheck::warning(message, results));
        }
    }
    Ok(())
}

/// A comparison check (Serin only): a pass is recorded with its verdict, a failure ends the
/// tick, too few samples ends it as inconclusive (the step holds).
async fn compare_check(
    id: &str,
    provider: &dyn MetricsProvider,
    query: &str,
    model: &QueryModel,
    metric: &CanaryMetric,
    c: &MetricComparison,
    results: &mut Checked,
) -> Result<(), FailedCheck> {
    let judgement = compare::judge(provider, query, model, metric, c)
        .await
        .map_err(|e| {
            FailedCheck::error(
                format!("Metric comparison failed for {}: {e}", metric.name),
                results,
            )
        })?;
    let message = compare::verdict_message(id, &metric.name, &judgement);
    match judgement.outcome {
        Outcome::Pass => {
            results.push(MetricResult {
                name: metric.name.clone(),
                value: judgement.relative_effect().unwrap_or(judgement.effect),
                verdict: Some(message),
                ..Default::default()
            });
            Ok(())
        }
        Outcome::Fail => {
            results.push(MetricResult {
                name: metric.name.clone(),
                value: judgement.relative_effect().unwrap_or(judgement.effect),
                verdict: None,
                ..Default::default()
            });
            Err(FailedCheck::warning(message, results))
        }
        Outcome::Inconclusive => Err(FailedCheck {
            inconclusive: true,
            ..FailedCheck::warning(message, results)
        }),
    }
}

#[cfg(test)]
mod tests;
