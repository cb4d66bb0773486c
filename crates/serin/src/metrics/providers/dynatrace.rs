//! Dynatrace: `GET <address>/api/v2/metrics/query?metricSelector=<query>&resolution=Inf&from=<ms>&to=<ms>`
//! (window = 10 × interval) with `Authorization: Api-Token <dynatrace_token>`. The value is
//! `result[0].data[last].values[0]`. Availability: `GET /api/v2/metrics?pageSize=1` answers 200.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::client::{self, DEFAULT_TIMEOUT};
use super::{MetricsProvider, ProviderEnv, ProviderError, required_key};
use crate::api::metric_template::MetricTemplateProvider;

const KIND: &str = "dynatrace";

pub struct DynatraceProvider {
    http: reqwest::Client,
    base: reqwest::Url,
    token: String,
    from_delta: Duration,
}

impl DynatraceProvider {
    pub fn new(
        provider: &MetricTemplateProvider,
        env: &ProviderEnv,
    ) -> Result<Self, ProviderError> {
        let interval = super::parse_interval(KIND, &env.interval)?;
        Ok(Self {
            http: client::http_client(DEFAULT_TIMEOUT, provider.insecure_skip_verify())?,
            base: client::parse_url(KIND, &super::required_address(KIND, provider)?)?,
            token: required_key(KIND, env.credentials.as_ref(), "dynatrace_token")?,
            from_delta: interval * 10,
        })
    }
}

#[derive(Deserialize)]
struct QueryResponse {
    #[serde(default)]
    result: Vec<MetricSeriesCollection>,
}

#[derive(Deserialize)]
struct MetricSeriesCollection {
    #[serde(default)]
    data: Vec<MetricSeries>,
}

#[derive(Deserialize)]
struct MetricSeries {
    #[serde(default)]
    values: Vec<Option<f64>>,
}

pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let response: QueryResponse = serde_json::from_str(body)
        .map_err(|e| ProviderError::Response(format!("dynatrace: unexpected response: {e}")))?;
    response
        .result
        .first()
        .and_then(|r| r.data.last())
        .and_then(|d| d.values.first().copied().flatten())
        .ok_or(ProviderError::NoValuesFound)
}

#[async_trait]
impl MetricsProvider for DynatraceProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        let now = client::unix_now().as_millis();
        let from = now.saturating_sub(self.from_delta.as_millis());
        let request = self
            .http
            .get(client::join_path(&self.base, "api/v2/metrics/query"))
            .header("Authorization", format!("Api-Token {}", self.token))
            .header("Accept", "application/json")
            .query(&[
                ("metricSelector", query.trim().to_string()),
                ("resolution", "Inf".to_string()),
                ("from", from.to_string()),
                ("to", now.to_string()),
            ]);
        let (status, body) = client::send(request, DEFAULT_TIMEOUT).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        parse_response(&body)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let request = self
            .http
            .get(client::join_path(&self.base, "api/v2/metrics"))
            .header("Authorization", format!("Api-Token {}", self.token))
            .query(&[("pageSize", "1")]);
        let (status, body) = client::send(request, DEFAULT_TIMEOUT).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        Ok(())
    }
}
