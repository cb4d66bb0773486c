//! Datadog: `GET <address>/api/v1/query?from=<now-10×interval>&to=<now>&query=<query>` with
//! the `DD-API-KEY` and `DD-APPLICATION-KEY` headers (Secret keys `datadog_api_key`,
//! `datadog_application_key`, both required). The value is the first point of the first series
//! (Flagger). Availability: `GET /api/v1/validate` answers 200.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::client::{self, DEFAULT_TIMEOUT};
use super::{MetricsProvider, ProviderEnv, ProviderError, required_key};
use crate::api::metric_template::MetricTemplateProvider;

const KIND: &str = "datadog";
/// Default API address.
pub const DEFAULT_ADDRESS: &str = "https://api.datadoghq.com";
/// The query window is this many metric intervals.
pub const FROM_DELTA_MULTIPLIER: u32 = 10;

pub struct DatadogProvider {
    http: reqwest::Client,
    base: reqwest::Url,
    api_key: String,
    application_key: String,
    from_delta: Duration,
}

impl DatadogProvider {
    pub fn new(
        provider: &MetricTemplateProvider,
        env: &ProviderEnv,
    ) -> Result<Self, ProviderError> {
        let interval = super::parse_interval(KIND, &env.interval)?;
        let creds = env.credentials.as_ref();
        Ok(Self {
            http: client::http_client(DEFAULT_TIMEOUT, provider.insecure_skip_verify())?,
            base: client::parse_url(KIND, &super::address_or(provider, DEFAULT_ADDRESS))?,
            api_key: required_key(KIND, creds, "datadog_api_key")?,
            application_key: required_key(KIND, creds, "datadog_application_key")?,
            from_delta: interval * FROM_DELTA_MULTIPLIER,
        })
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .header("DD-API-KEY", &self.api_key)
            .header("DD-APPLICATION-KEY", &self.application_key)
    }
}

#[derive(Deserialize)]
struct QueryResponse {
    #[serde(default)]
    series: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    pointlist: Vec<Vec<Option<f64>>>,
}

/// The first point of the first series.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let response: QueryResponse = serde_json::from_str(body)
        .map_err(|e| ProviderError::Response(format!("datadog: unexpected response: {e}")))?;
    response
        .series
        .first()
        .and_then(|s| s.pointlist.first())
        .and_then(|p| p.get(1).copied().flatten())
        .filter(|v| !v.is_nan())
        .ok_or(ProviderError::NoValuesFound)
}

#[async_trait]
impl MetricsProvider for DatadogProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        let now = client::unix_now().as_secs();
        let from = now.saturating_sub(self.from_delta.as_secs());
        let url = client::join_path(&self.base, "api/v1/query");
        let request = self.authed(self.http.get(url)).query(&[
            ("from", from.to_string()),
            ("to", now.to_string()),
            ("query", query.to_string()),
        ]);
        let (status, body) = client::send(request, DEFAULT_TIMEOUT).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        parse_response(&body)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let url = client::join_path(&self.base, "api/v1/validate");
        let (status, body) = client::send(self.authed(self.http.get(url)), DEFAULT_TIMEOUT).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        Ok(())
    }
}
