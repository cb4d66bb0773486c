//! Metric backends (`MetricTemplate.spec.provider.type`), one file each behind
//! [`MetricsProvider`], built by [`build`] with an exhaustive match over [`MetricProviderKind`].
//!
//! Every error a provider returns passes through [`Redacting`], which replaces the values of the
//! credentials it was built with, so that tokens and passwords never reach logs, events or
//! status even when a backend echoes them back.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::api::duration;
use crate::api::metric_template::{MetricProviderKind, MetricTemplateProvider};

pub mod client;
pub mod cloudwatch;
pub mod datadog;
pub mod dynatrace;
pub mod external_metrics;
pub mod graphite;
pub mod influxdb;
pub mod keptn;
mod kube_api;
pub mod newrelic;
pub mod prometheus;
pub mod sigv4;
pub mod splunk;
pub mod stackdriver;

/// What replaces a secret value in error messages.
pub const REDACTED: &str = "[redacted]";

/// Errors of the metric backends.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The query ran but returned no data (or NaN). Flagger's `ErrNoValuesFound`.
    #[error("no values found")]
    NoValuesFound,
    /// The query returned several series/samples where one value was expected.
    #[error("query returned multiple values")]
    MultipleValues,
    /// The provider configuration or its credentials are unusable.
    #[error("{0}")]
    Config(String),
    /// The request could not be sent or the connection failed.
    #[error("{0}")]
    Request(String),
    /// The backend did not answer in time.
    #[error("request timed out after {0}")]
    Timeout(String),
    /// The backend answered with an error status.
    #[error("{backend} returned HTTP {status}: {body}")]
    Http {
        backend: &'static str,
        status: u16,
        body: String,
    },
    /// The answer could not be understood.
    #[error("{0}")]
    Response(String),
}

impl ProviderError {
    /// Replaces every occurrence of the given secret values in the message.
    pub fn redact(self, secrets: &[String]) -> ProviderError {
        if secrets.is_empty() {
            return self;
        }
        let clean = |s: String| redact_str(&s, secrets);
        match self {
            ProviderError::NoValuesFound => ProviderError::NoValuesFound,
            ProviderError::MultipleValues => ProviderError::MultipleValues,
            ProviderError::Config(m) => ProviderError::Config(clean(m)),
            ProviderError::Request(m) => ProviderError::Request(clean(m)),
            ProviderError::Timeout(m) => ProviderError::Timeout(clean(m)),
            ProviderError::Http {
                backend,
                status,
                body,
            } => ProviderError::Http {
                backend,
                status,
                body: clean(body),
            },
            ProviderError::Response(m) => ProviderError::Response(clean(m)),
        }
    }
}

/// Replaces each secret (longest first) in `text` with [`REDACTED`].
pub fn redact_str(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for secret in sorted {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// A metrics backend (Flagger's `providers.Interface`).
#[async_trait]
pub trait MetricsProvider: Send + Sync {
    /// Runs a rendered query and returns its single value.
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError>;
    /// Checks that the backend answers (and that the credentials work where the API allows it).
    async fn is_online(&self) -> Result<(), ProviderError>;
    /// Runs a rendered query over the last `window` at resolution `step` and returns every
    /// value of every series (the samples of a comparison check, Serin only). Backends without
    /// range queries say so.
    async fn run_range_query(
        &self,
        _query: &str,
        _window: std::time::Duration,
        _step: std::time::Duration,
    ) -> Result<Vec<f64>, ProviderError> {
        Err(ProviderError::Config(
            "this metrics provider has no range queries; comparison checks with the mann-whitney statistic need the prometheus provider".to_string(),
        ))
    }
}

/// Secret data (`Secret.data`) as loaded by the controller.
pub type Credentials = BTreeMap<String, Vec<u8>>;

/// Everything a backend may need besides its template.
#[derive(Clone, Default)]
pub struct ProviderEnv {
    /// The metric's query window (`1m`), used by backends that query a time range.
    pub interval: String,
    /// The Secret named by `provider.secretRef`, if any.
    pub credentials: Option<Credentials>,
    /// Kubernetes client configuration (keptn, external metrics).
    pub kube_config: Option<kube::Config>,
}

/// Builds the backend for a MetricTemplate's provider. Unknown types fall back to Prometheus
/// with a warning, as in Flagger. The returned provider redacts credential values from errors.
pub fn build(
    provider: &MetricTemplateProvider,
    env: ProviderEnv,
) -> Result<Box<dyn MetricsProvider>, ProviderError> {
    let kind = match provider.kind() {
        Ok(kind) => kind,
        Err(err) => {
            tracing::warn!("{err}; using the prometheus provider");
            MetricProviderKind::Prometheus
        }
    };
    let secrets = secret_values(provider, env.credentials.as_ref());
    let built: Result<Box<dyn MetricsProvider>, ProviderError> = match kind {
        MetricProviderKind::Prometheus => {
            prometheus::PrometheusProvider::from_template(provider, env.credentials.as_ref())
                .map(|p| Box::new(p) as Box<dyn MetricsProvider>)
        }
        MetricProviderKind::Datadog => {
            datadog::DatadogProvider::new(provider, &env).map(|p| Box::new(p) as _)
        }
        MetricProviderKind::CloudWatch => {
            cloudwatch::CloudWatchProvider::new(provider, &env).map(|p| Box::new(p) as _)
        }
        MetricProviderKind::NewRelic => {
            newrelic::NewRelicProvider::new(provider, &env).map(|p| Box::new(p) as _)
        }
        MetricProviderKind::Graphite => {
            graphite::GraphiteProvider::new(provider, &env).map(|p| Box::new(p) as _)
        }
        MetricProviderKind::InfluxDb => {
            influxdb::InfluxDbProvider::new(provider, &env).map(|p| Box::new(p) as _)
        }
        MetricProviderKind::Stackdriver => {
            stackdriver::StackdriverProvider::new(provider, &env).map(|p| Box::new(p) as _)
        }
        MetricProviderKind::Dynatrace => {
            dynatrace::DynatraceProvider::new(provider, &env).map(|p| Box::new(p) as _)
        }
        MetricProviderKind::Splunk => {
            splunk::SplunkProvider::new(provider, &env).map(|p| Box::new(p) as _)
        }
        MetricProviderKind::Keptn => {
            keptn::KeptnProvider::new(provider, &env).map(|p| Box::new(p) as _)
        }
        MetricProviderKind::ExternalMetrics => {
            external_metrics::ExternalMetricsProvider::new(provider, &env).map(|p| Box::new(p) as _)
        }
    };
    match built {
        Ok(inner) => Ok(Box::new(Redacting { inner, secrets })),
        Err(err) => Err(err.redact(&secrets)),
    }
}

/// The values that must never appear in messages: every credential value, and the password of
/// an address with user info.
fn secret_values(
    provider: &MetricTemplateProvider,
    credentials: Option<&Credentials>,
) -> Vec<String> {
    let mut secrets: Vec<String> = credentials
        .into_iter()
        .flat_map(|c| c.values())
        .filter_map(|v| std::str::from_utf8(v).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() >= 3)
        .collect();
    if let Some(password) = provider
        .address
        .as_deref()
        .and_then(|a| reqwest::Url::parse(a).ok())
        .and_then(|u| u.password().map(String::from))
    {
        secrets.push(password);
    }
    secrets
}

/// Wraps a provider and redacts secret values from its errors.
pub struct Redacting {
    inner: Box<dyn MetricsProvider>,
    secrets: Vec<String>,
}

impl Redacting {
    pub fn new(inner: Box<dyn MetricsProvider>, secrets: Vec<String>) -> Self {
        Self { inner, secrets }
    }
}

#[async_trait]
impl MetricsProvider for Redacting {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        self.inner
            .run_query(query)
            .await
            .map_err(|e| e.redact(&self.secrets))
    }
    async fn is_online(&self) -> Result<(), ProviderError> {
        self.inner
            .is_online()
            .await
            .map_err(|e| e.redact(&self.secrets))
    }
    async fn run_range_query(
        &self,
        query: &str,
        window: std::time::Duration,
        step: std::time::Duration,
    ) -> Result<Vec<f64>, ProviderError> {
        self.inner
            .run_range_query(query, window, step)
            .await
            .map_err(|e| e.redact(&self.secrets))
    }
}

/// A required string value of the Secret.
pub(crate) fn required_key(
    kind: &str,
    credentials: Option<&Credentials>,
    key: &str,
) -> Result<String, ProviderError> {
    optional_key(credentials, key).ok_or_else(|| {
        ProviderError::Config(format!(
            "{kind} credentials do not contain the key {key:?} (set provider.secretRef to a Secret with it)"
        ))
    })
}

/// An optional string value of the Secret (trailing newlines trimmed, as `kubectl create secret
/// --from-file` often leaves them).
pub(crate) fn optional_key(credentials: Option<&Credentials>, key: &str) -> Option<String> {
    credentials
        .and_then(|c| c.get(key))
        .and_then(|v| String::from_utf8(v.clone()).ok())
        .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
        .filter(|s| !s.is_empty())
}

/// The metric interval as a duration (providers that query a time range need it).
pub(crate) fn parse_interval(kind: &str, interval: &str) -> Result<Duration, ProviderError> {
    duration::parse(interval)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ProviderError::Config(format!(
                "{kind}: error parsing metric interval {interval:?} (expected a duration such as 1m or 30s)"
            ))
        })
}

/// The address, or the backend's default.
pub(crate) fn address_or(provider: &MetricTemplateProvider, default: &str) -> String {
    match provider.address.as_deref().map(str::trim) {
        Some(a) if !a.is_empty() => a.trim_end_matches('/').to_string(),
        _ => default.to_string(),
    }
}

/// The address, required.
pub(crate) fn required_address(
    kind: &str,
    provider: &MetricTemplateProvider,
) -> Result<String, ProviderError> {
    match provider.address.as_deref().map(str::trim) {
        Some(a) if !a.is_empty() => Ok(a.trim_end_matches('/').to_string()),
        _ => Err(ProviderError::Config(format!(
            "{kind} provider requires provider.address"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redaction_replaces_longest_secret_first() {
        let secrets = vec!["abc".to_string(), "abcdef".to_string()];
        assert_eq!(
            redact_str("token abcdef and abc", &secrets),
            "token [redacted] and [redacted]"
        );
        let err = ProviderError::Http {
            backend: "x",
            status: 401,
            body: "bad token abcdef".into(),
        }
        .redact(&secrets);
        assert_eq!(err.to_string(), "x returned HTTP 401: bad token [redacted]");
    }

    #[test]
    fn interval_parsing() {
        assert_eq!(parse_interval("x", "1m").unwrap(), Duration::from_secs(60));
        assert!(parse_interval("x", "").is_err());
        assert!(parse_interval("x", "abc").is_err());
    }
}
