//! Serin's query pre-flight: every metric check of the analysis (built-in, inline and
//! MetricTemplate) rendered for the primary (`{{ target }}` = `<target>-primary`, the same
//! namespace and interval) and run once, before any traffic moves to the canary. A query that
//! errors or returns no series is found before the run, not after the first weight step
//! (Flagger's "no values found for metric" halts, fluxcd/flagger#1365).
//!
//! Only whether a query answers is checked: thresholds are the analysis' business. A query
//! returning several series answers (the analysis reports that shape itself).

mod cause;

use super::analysis::{
    MetricsContext, TemplateLoadError, builtin_client, builtin_of, load_template_provider,
    query_model,
};
use super::observers::{self, ObserverKind};
use super::providers::{MetricsProvider, ProviderError};
use super::template::{self, QueryModel};
use crate::api::Canary;
use crate::api::analysis::{BuiltinMetric, CanaryMetric};

pub use cause::{Matcher, QueryFacts, likely_cause, matchers};

/// The provider type of the built-in and inline checks.
const PROMETHEUS: &str = "prometheus";

/// What went wrong with a pre-flight query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The query ran and returned no series (or NaN).
    NoValues,
    /// The provider (or the cluster holding the MetricTemplate) did not answer: connection
    /// failure, timeout, 5xx, 429.
    Unreachable(String),
    /// The provider answered with an error: 4xx, a malformed answer.
    Rejected(String),
    /// The metric cannot be queried as written: missing template or secret, unusable provider
    /// configuration, a query that does not render.
    Invalid(String),
}

impl Problem {
    /// The `MetricsReady` condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::NoValues => "NoValues",
            Problem::Unreachable(_) => "ProviderUnreachable",
            Problem::Rejected(_) => "QueryRejected",
            Problem::Invalid(_) => "InvalidMetric",
        }
    }

    /// The problem a provider error shows; `None` when the query answered.
    fn of(err: ProviderError) -> Option<Problem> {
        match err {
            ProviderError::MultipleValues => None,
            ProviderError::NoValuesFound => Some(Problem::NoValues),
            e @ (ProviderError::Request(_) | ProviderError::Timeout(_)) => {
                Some(Problem::Unreachable(e.to_string()))
            }
            e @ ProviderError::Http { status, .. } if status >= 500 || status == 429 => {
                Some(Problem::Unreachable(e.to_string()))
            }
            e @ (ProviderError::Http { .. } | ProviderError::Response(_)) => {
                Some(Problem::Rejected(e.to_string()))
            }
            ProviderError::Config(m) => Some(Problem::Invalid(m)),
        }
    }

    /// What happened, for the message.
    fn what(&self) -> &'static str {
        match self {
            Problem::NoValues => "returned no values",
            Problem::Unreachable(_) => "could not be run",
            Problem::Rejected(_) => "was rejected",
            Problem::Invalid(_) => "cannot be run",
        }
    }
}

/// A metric whose query does not answer for the primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The metric's name in the Canary.
    pub metric: String,
    /// The provider type (`prometheus` for built-in and inline checks).
    pub provider: String,
    /// The rendered query, when rendering got that far.
    pub query: Option<String>,
    pub problem: Problem,
    /// The likely cause in plain words ([`likely_cause`]).
    pub cause: String,
    /// `<target>-primary.<namespace>`.
    pub primary: String,
}

impl Finding {
    /// The event and condition text, e.g. `Query pre-flight: metric error-rate (prometheus)
    /// returned no values for the primary podinfo-primary.test; likely cause: ...; query: ...`.
    pub fn message(&self) -> String {
        let provider = if self.provider.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.provider)
        };
        let mut text = format!(
            "Query pre-flight: metric {}{provider} {} for the primary {}; likely cause: {}",
            self.metric,
            self.problem.what(),
            self.primary,
            self.cause
        );
        if let Some(q) = &self.query {
            text.push_str("; query: ");
            text.push_str(&template::collapse_whitespace(q));
        }
        text
    }
}

/// The primary's names and the check under way, to build findings.
struct Primary<'a> {
    canary: &'a Canary,
    namespace: &'a str,
    /// `<target>-primary`.
    name: String,
}

impl<'a> Primary<'a> {
    fn of(canary: &'a Canary) -> Self {
        Self {
            canary,
            namespace: canary.metadata.namespace.as_deref().unwrap_or_default(),
            name: format!("{}-primary", canary.spec.target_ref.name),
        }
    }

    /// Flagger's query model with the primary as the target.
    fn model(&self, metric: &CanaryMetric) -> QueryModel {
        let mut model = query_model(self.canary, metric);
        model.target.clone_from(&self.name);
        model
    }

    fn finding(
        &self,
        metric: &CanaryMetric,
        provider: &str,
        query: Option<String>,
        problem: Problem,
    ) -> Finding {
        let interval = metric.interval().to_string();
        let facts = QueryFacts {
            query: query.as_deref(),
            namespace: self.namespace,
            primary: &self.name,
            interval: &interval,
        };
        Finding {
            metric: metric.name.clone(),
            provider: provider.to_string(),
            cause: likely_cause(&problem, &facts),
            query,
            problem,
            primary: format!("{}.{}", self.name, self.namespace),
        }
    }

    /// Runs `query` once; a finding when it does not answer.
    async fn check(
        &self,
        client: &dyn MetricsProvider,
        metric: &CanaryMetric,
        provider: &str,
        query: String,
    ) -> Result<(), Finding> {
        match client.run_query(&query).await {
            Ok(_) => Ok(()),
            Err(e) => match Problem::of(e) {
                None => Ok(()),
                Some(problem) => Err(self.finding(metric, provider, Some(query), problem)),
            },
        }
    }
}

/// Whether the canary's metrics can be checked for a primary: Knative canaries have none (the
/// primary is a revision of the same Service).
pub fn has_primary(canary: &Canary, mesh_provider: &str) -> bool {
    let provider = observers::metrics_provider_name(
        mesh_provider,
        canary.spec.provider.as_deref(),
        &canary.spec.target_ref.kind,
    );
    ObserverKind::for_name(&provider) != ObserverKind::Knative
}

/// Runs every metric query of the analysis once for the primary, in the analysis' order
/// (built-in and inline checks, then templates); the first query that does not answer ends
/// the pre-flight.
pub async fn run(canary: &Canary, ctx: &MetricsContext<'_>) -> Result<(), Finding> {
    let Some(analysis) = canary.spec.analysis() else {
        return Ok(());
    };
    if !has_primary(canary, ctx.mesh_provider) {
        return Ok(());
    }
    let primary = Primary::of(canary);
    let metrics = analysis.metrics();
    run_builtin(canary, ctx, &primary, metrics).await?;
    run_templates(ctx, &primary, metrics).await
}

async fn run_builtin(
    canary: &Canary,
    ctx: &MetricsContext<'_>,
    primary: &Primary<'_>,
    metrics: &[CanaryMetric],
) -> Result<(), Finding> {
    let mut prometheus = metrics
        .iter()
        .filter(|m| builtin_of(m).is_some() || m.has_query());
    let Some(first) = prometheus.next() else {
        return Ok(());
    };
    let client = builtin_client(canary, ctx)
        .map_err(|e| primary.finding(first, PROMETHEUS, None, Problem::Invalid(e)))?;
    let provider_name = observers::metrics_provider_name(
        ctx.mesh_provider,
        canary.spec.provider.as_deref(),
        &canary.spec.target_ref.kind,
    );
    let observer = ObserverKind::for_name(&provider_name);
    for metric in std::iter::once(first).chain(prometheus) {
        let model = primary.model(metric);
        let rendered = match builtin_of(metric) {
            Some(BuiltinMetric::RequestSuccessRate) => observer.request_success_rate_query(&model),
            Some(BuiltinMetric::RequestDuration) => observer.request_duration_query(&model),
            None => template::render(metric.query.as_deref().unwrap_or_default(), &model),
        };
        let query = rendered.map_err(|e| {
            let problem = Problem::Invalid(format!("query render error: {e}"));
            primary.finding(metric, PROMETHEUS, None, problem)
        })?;
        primary
            .check(client.as_ref(), metric, PROMETHEUS, query)
            .await?;
    }
    Ok(())
}

async fn run_templates(
    ctx: &MetricsContext<'_>,
    primary: &Primary<'_>,
    metrics: &[CanaryMetric],
) -> Result<(), Finding> {
    for metric in metrics {
        let Some(template_ref) = &metric.template_ref else {
            continue;
        };
        let namespace = template_ref.namespace_or(primary.namespace);
        let name = &template_ref.name;
        let (template, provider) = load_template_provider(ctx, metric, namespace, name)
            .await
            .map_err(|e| {
                let problem = match e {
                    TemplateLoadError::Template(e) | TemplateLoadError::Secret(_, e)
                        if e.transient =>
                    {
                        Problem::Unreachable(e.message)
                    }
                    TemplateLoadError::Template(e) => {
                        Problem::Invalid(format!("metric template {name}.{namespace}: {e}"))
                    }
                    TemplateLoadError::Secret(secret, e) => Problem::Invalid(format!(
                        "secret {secret} of metric template {name}.{namespace}: {e}"
                    )),
                    TemplateLoadError::Provider(kind, e) => Problem::Invalid(format!(
                        "provider {kind} of metric template {name}.{namespace}: {e}"
                    )),
                };
                primary.finding(metric, "", None, problem)
            })?;
        let kind = template.spec.provider.provider_type.as_str();
        let query =
            template::render(&template.spec.query, &primary.model(metric)).map_err(|e| {
                let problem = Problem::Invalid(format!(
                    "metric template {name}.{namespace} query render error: {e}"
                ));
                primary.finding(metric, kind, None, problem)
            })?;
        primary
            .check(provider.as_ref(), metric, kind, query)
            .await?;
    }
    Ok(())
}
