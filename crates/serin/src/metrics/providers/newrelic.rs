//! New Relic Insights: `GET <address>/v1/accounts/<account>/query?nrql=<query> SINCE <interval
//! seconds> seconds ago` with `X-Query-Key` (Secret keys `newrelic_account_id`,
//! `newrelic_query_key`). The answer must hold exactly one `results[]` entry with a numeric
//! `result` (write `… AS result`; as an extension, a single numeric field of any name is
//! accepted too). Availability: `SELECT * FROM Metric` answers 200.

use std::time::Duration;

use async_trait::async_trait;

use super::client::{self, DEFAULT_TIMEOUT};
use super::{MetricsProvider, ProviderEnv, ProviderError, required_key};
use crate::api::metric_template::MetricTemplateProvider;

const KIND: &str = "newrelic";
/// Default API address.
pub const DEFAULT_ADDRESS: &str = "https://insights-api.newrelic.com";

pub struct NewRelicProvider {
    http: reqwest::Client,
    query_url: reqwest::Url,
    query_key: String,
    since: Duration,
}

impl NewRelicProvider {
    pub fn new(
        provider: &MetricTemplateProvider,
        env: &ProviderEnv,
    ) -> Result<Self, ProviderError> {
        let since = super::parse_interval(KIND, &env.interval)?;
        let creds = env.credentials.as_ref();
        let account = required_key(KIND, creds, "newrelic_account_id")?;
        let base = client::parse_url(KIND, &super::address_or(provider, DEFAULT_ADDRESS))?;
        Ok(Self {
            http: client::http_client(DEFAULT_TIMEOUT, provider.insecure_skip_verify())?,
            query_url: client::join_path(&base, &format!("v1/accounts/{account}/query")),
            query_key: required_key(KIND, creds, "newrelic_query_key")?,
            since,
        })
    }

    async fn query(&self, nrql: String) -> Result<(u16, String), ProviderError> {
        let request = self
            .http
            .get(self.query_url.clone())
            .header("X-Query-Key", &self.query_key)
            .header("Accept", "application/json")
            .query(&[("nrql", nrql)]);
        client::send(request, DEFAULT_TIMEOUT).await
    }
}

/// The value of the single result.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let response: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| ProviderError::Response(format!("newrelic: unexpected response: {e}")))?;
    let results = response
        .get("results")
        .and_then(|r| r.as_array())
        .ok_or(ProviderError::NoValuesFound)?;
    match results.as_slice() {
        [] => Err(ProviderError::NoValuesFound),
        [single] => {
            let object = single.as_object().ok_or(ProviderError::NoValuesFound)?;
            if let Some(v) = object.get("result") {
                return v.as_f64().ok_or(ProviderError::NoValuesFound);
            }
            let numbers: Vec<f64> = object.values().filter_map(|v| v.as_f64()).collect();
            match numbers.as_slice() {
                [v] => Ok(*v),
                [] => Err(ProviderError::NoValuesFound),
                _ => Err(ProviderError::MultipleValues),
            }
        }
        _ => Err(ProviderError::MultipleValues),
    }
}

#[async_trait]
impl MetricsProvider for NewRelicProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        let nrql = format!(
            "{} SINCE {} seconds ago",
            query.trim(),
            self.since.as_secs()
        );
        let (status, body) = self.query(nrql).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        parse_response(&body)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let (status, body) = self.query("SELECT * FROM Metric".to_string()).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        Ok(())
    }
}
