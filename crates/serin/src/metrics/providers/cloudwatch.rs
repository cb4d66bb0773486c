//! Amazon CloudWatch `GetMetricData` over the AWS JSON 1.0 protocol, signed with SigV4.
//!
//! The query is a JSON array of `MetricDataQuery` (as in Flagger's docs); the request asks for
//! `StartTime = now − 10 × interval`, `EndTime = now`, `MaxDatapoints = 20`, and is retried up to
//! 3 times on throttling and 5xx answers. The value is `MetricDataResults[0].Values[0]`.
//! `provider.region` is required; `provider.address` overrides the endpoint
//! (`https://monitoring.<region>.amazonaws.com`), e.g. for a VPC endpoint.
//!
//! Credentials: the Secret keys `aws_access_key_id`, `aws_secret_access_key` and optional
//! `aws_session_token` (an extension: Flagger ignores secretRef here), otherwise the environment
//! variables `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`. The rest of the
//! AWS SDK default chain (web identity / IRSA, shared config files, instance metadata) is not
//! implemented. Availability: an empty `GetMetricData` call answers 200 or 400 (a validation
//! error proves the endpoint and the signature were accepted).

use std::time::Duration;

use async_trait::async_trait;

use super::client::{self, DEFAULT_TIMEOUT};
use super::sigv4::{self, AwsCredentials};
use super::{MetricsProvider, ProviderEnv, ProviderError, optional_key, required_key};
use crate::api::metric_template::MetricTemplateProvider;

const KIND: &str = "cloudwatch";
/// The JSON-protocol target of `GetMetricData`.
pub const TARGET: &str = "GraniteServiceVersion20100801.GetMetricData";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const ATTEMPTS: u32 = 3;

pub struct CloudWatchProvider {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    region: String,
    credentials: AwsCredentials,
    window: Duration,
}

impl CloudWatchProvider {
    pub fn new(
        provider: &MetricTemplateProvider,
        env: &ProviderEnv,
    ) -> Result<Self, ProviderError> {
        let window = super::parse_interval(KIND, &env.interval)? * 10;
        let region = provider
            .region
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                ProviderError::Config("cloudwatch provider requires provider.region".into())
            })?
            .to_string();
        let default = format!("https://monitoring.{region}.amazonaws.com");
        let endpoint = client::parse_url(KIND, &super::address_or(provider, &default))?;
        let creds = env.credentials.as_ref();
        let credentials = if optional_key(creds, "aws_access_key_id").is_some() {
            AwsCredentials {
                access_key_id: required_key(KIND, creds, "aws_access_key_id")?,
                secret_access_key: required_key(KIND, creds, "aws_secret_access_key")?,
                session_token: optional_key(creds, "aws_session_token"),
            }
        } else {
            let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                (Some(access_key_id), Some(secret_access_key)) => AwsCredentials {
                    access_key_id,
                    secret_access_key,
                    session_token: var("AWS_SESSION_TOKEN"),
                },
                _ => {
                    return Err(ProviderError::Config(
                        "cloudwatch: no AWS credentials: set aws_access_key_id and aws_secret_access_key in the secretRef Secret, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the controller's environment (web identity and instance metadata credentials are not supported)".into(),
                    ));
                }
            }
        };
        Ok(Self {
            http: client::http_client(DEFAULT_TIMEOUT, provider.insecure_skip_verify())?,
            endpoint,
            region,
            credentials,
            window,
        })
    }

    /// The signed request headers (without content-length) for a body at a Unix time.
    pub fn signed_headers(&self, body: &[u8], unix_secs: u64) -> Vec<(String, String)> {
        let host = match (self.endpoint.host_str(), self.endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        };
        let mut headers = vec![
            ("content-type".to_string(), CONTENT_TYPE.to_string()),
            ("host".to_string(), host),
            ("x-amz-target".to_string(), TARGET.to_string()),
        ];
        let signing = sigv4::sign(
            &self.credentials,
            (&self.region, "monitoring"),
            &sigv4::Request {
                method: "POST",
                url: &self.endpoint,
                headers: &headers,
                payload: body,
            },
            &sigv4::amz_date(unix_secs),
        );
        headers.retain(|(k, _)| k != "host");
        headers.extend(signing);
        headers
    }

    async fn get_metric_data(
        &self,
        queries: serde_json::Value,
    ) -> Result<(u16, String), ProviderError> {
        let now = client::unix_now().as_secs();
        let body = serde_json::json!({
            "MetricDataQueries": queries,
            "StartTime": now.saturating_sub(self.window.as_secs()),
            "EndTime": now,
            "MaxDatapoints": 20,
        });
        let body = serde_json::to_vec(&body)
            .map_err(|e| ProviderError::Config(format!("cloudwatch: encoding request: {e}")))?;
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            let unix = client::unix_now().as_secs();
            let mut request = self.http.post(self.endpoint.clone()).body(body.clone());
            for (k, v) in self.signed_headers(&body, unix) {
                request = request.header(k, v);
            }
            match client::send(request, DEFAULT_TIMEOUT).await {
                Ok((status, text)) if status == 429 || status >= 500 || is_throttling(&text) => {
                    last = Some(Ok((status, text)));
                }
                Ok(answer) => return Ok(answer),
                Err(e @ (ProviderError::Request(_) | ProviderError::Timeout(_))) => {
                    last = Some(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        last.unwrap_or_else(|| Err(ProviderError::Request("cloudwatch: no attempt made".into())))
    }
}

fn is_throttling(body: &str) -> bool {
    body.contains("Throttling")
}

/// `MetricDataResults[0].Values[0]`.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let response: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| ProviderError::Response(format!("cloudwatch: unexpected response: {e}")))?;
    response
        .get("MetricDataResults")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("Values"))
        .and_then(|v| v.get(0))
        .and_then(|v| v.as_f64())
        .ok_or(ProviderError::NoValuesFound)
}

#[async_trait]
impl MetricsProvider for CloudWatchProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        let queries: serde_json::Value = serde_json::from_str(query).map_err(|e| {
            ProviderError::Config(format!(
                "cloudwatch: the query must be a JSON array of MetricDataQuery: {e}"
            ))
        })?;
        if !queries.is_array() {
            return Err(ProviderError::Config(
                "cloudwatch: the query must be a JSON array of MetricDataQuery".into(),
            ));
        }
        let (status, body) = self.get_metric_data(queries).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        parse_response(&body)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let (status, body) = self.get_metric_data(serde_json::json!([])).await?;
        let auth_failure = [
            "UnrecognizedClient",
            "InvalidClientTokenId",
            "Signature",
            "ExpiredToken",
        ]
        .iter()
        .any(|marker| body.contains(marker));
        match status {
            200 => Ok(()),
            400 if !auth_failure => Ok(()),
            _ => Err(client::http_error(KIND, status, &body)),
        }
    }
}
