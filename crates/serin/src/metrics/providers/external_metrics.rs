//! Kubernetes external metrics (`external.metrics.k8s.io/v1beta1`), through the API server.
//!
//! The query is `<namespace>/<metricName>?labelSelector=<url-encoded selector>` (namespace
//! defaults to `default`); the value is the first item's `value` (a Kubernetes quantity such as
//! `1500m`). `provider.address` overrides the API server, the Secret key `token` replaces the
//! credentials with a bearer token, `insecureSkipVerify` disables certificate verification.
//! Availability: listing `dummy-metric` in `kube-system` succeeds.

use async_trait::async_trait;

use super::kube_api;
use super::{MetricsProvider, ProviderEnv, ProviderError, optional_key};
use crate::api::metric_template::MetricTemplateProvider;

const KIND: &str = "externalmetrics";
pub const API_PREFIX: &str = "/apis/external.metrics.k8s.io/v1beta1";

pub struct ExternalMetricsProvider {
    client: kube::Client,
}

impl ExternalMetricsProvider {
    pub fn new(
        provider: &MetricTemplateProvider,
        env: &ProviderEnv,
    ) -> Result<Self, ProviderError> {
        let mut config = env.kube_config.clone();
        if let Some(address) = provider
            .address
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let uri: http::Uri = address
                .parse()
                .map_err(|e| ProviderError::Config(format!("{KIND}: invalid address: {e}")))?;
            config = Some(match config {
                Some(mut c) => {
                    c.cluster_url = uri;
                    c
                }
                None => kube::Config::new(uri),
            });
        }
        if let Some(c) = config.as_mut() {
            if provider.insecure_skip_verify() {
                c.accept_invalid_certs = true;
            }
            if let Some(token) = optional_key(env.credentials.as_ref(), "token") {
                c.auth_info = kube::config::AuthInfo::default();
                let value =
                    http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        ProviderError::Config(format!(
                            "{KIND}: the token is not a valid header value"
                        ))
                    })?;
                c.headers.push((http::header::AUTHORIZATION, value));
            }
        }
        Ok(Self {
            client: kube_api::client(KIND, config)?,
        })
    }
}

/// The API path for a query.
pub fn query_path(query: &str) -> Result<String, ProviderError> {
    let query = query.trim();
    let (path, selector) = match query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (query, None),
    };
    let (namespace, metric) = match path.split_once('/') {
        Some((ns, m)) if !ns.is_empty() => (ns, m),
        Some((_, m)) => ("default", m),
        None => ("default", path),
    };
    if metric.is_empty() || metric.contains('/') {
        return Err(ProviderError::Config(format!(
            "{KIND}: invalid query {query:?}: expected <namespace>/<metricName>?labelSelector=<selector>"
        )));
    }
    let mut out = format!("{API_PREFIX}/namespaces/{namespace}/{metric}");
    if let Some(selector) = selector.filter(|s| !s.is_empty()) {
        out.push('?');
        out.push_str(selector);
    }
    Ok(out)
}

/// Parses a Kubernetes quantity (`1500m`, `2k`, `1Gi`, `1e3`) as an approximate float.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    for (suffix, factor) in [("P", 1e15), ("E", 1e18)] {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    text.parse::<f64>().ok()
}

#[async_trait]
impl MetricsProvider for ExternalMetricsProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        let path = query_path(query)?;
        let list = kube_api::get(KIND, &self.client, &path).await?;
        let item = list
            .get("items")
            .and_then(|i| i.get(0))
            .ok_or(ProviderError::NoValuesFound)?;
        let value = item
            .get("value")
            .and_then(|v| v.as_str())
            .ok_or(ProviderError::NoValuesFound)?;
        parse_quantity(value).ok_or_else(|| {
            ProviderError::Response(format!("{KIND}: value {value:?} is not a quantity"))
        })
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        kube_api::get(
            KIND,
            &self.client,
            &format!("{API_PREFIX}/namespaces/kube-system/dummy-metric"),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            query_path("prod/queue_depth?labelSelector=app%3Dweb").unwrap(),
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/queue_depth?labelSelector=app%3Dweb"
        );
        assert_eq!(
            query_path("queue_depth").unwrap(),
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth"
        );
        assert!(query_path("a/b/c").is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1500m"), Some(1.5));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        assert_eq!(parse_quantity("1Ki"), Some(1024.0));
        assert_eq!(parse_quantity("42"), Some(42.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("abc"), None);
    }
}
