//! Splunk Observability Cloud (SignalFx) SignalFlow.
//!
//! Serin executes the program through SignalFlow's HTTP endpoint
//! `POST <stream address>/v2/signalflow/execute?start=<ms>&stop=<ms>&immediate=true` (program as
//! `text/plain`, `X-SF-Token` from the Secret key `sf_token_key`) and reads the server-sent
//! events; Flagger uses the websocket transport of the same API. The stream address is the
//! provider address with `api` replaced by `stream` (`https://api.us1.signalfx.com` →
//! `https://stream.us1.signalfx.com`); the window starts 10 × interval ago. Null values are
//! dropped; no value is "no values found"; values from more than one time series are
//! "multiple values"; otherwise the last value wins. Availability: `GET <address>/v2/metric?limit=1`
//! answers 200.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;

use super::client::{self, DEFAULT_TIMEOUT};
use super::{MetricsProvider, ProviderEnv, ProviderError, required_key};
use crate::api::metric_template::MetricTemplateProvider;

const KIND: &str = "splunk";

pub struct SplunkProvider {
    http: reqwest::Client,
    api: reqwest::Url,
    stream: reqwest::Url,
    token: String,
    window: Duration,
}

impl SplunkProvider {
    pub fn new(
        provider: &MetricTemplateProvider,
        env: &ProviderEnv,
    ) -> Result<Self, ProviderError> {
        let window = super::parse_interval(KIND, &env.interval)? * 10;
        let address = super::required_address(KIND, provider)?;
        let api = client::parse_url(KIND, &address)?;
        let stream = client::parse_url(KIND, &address.replacen("api", "stream", 1))?;
        Ok(Self {
            http: client::http_client(DEFAULT_TIMEOUT, provider.insecure_skip_verify())?,
            api,
            stream,
            token: required_key(KIND, env.credentials.as_ref(), "sf_token_key")?,
            window,
        })
    }
}

/// Reads a SignalFlow server-sent-event stream: the value per the rules above.
pub fn parse_stream(body: &str) -> Result<f64, ProviderError> {
    let mut series = BTreeSet::new();
    let mut last = None;
    let mut event = String::new();
    let mut data = String::new();
    let mut flush = |event: &str, data: &str| -> Result<(), ProviderError> {
        if data.is_empty() {
            return Ok(());
        }
        let message: serde_json::Value = match serde_json::from_str(data) {
            Ok(m) => m,
            Err(_) => return Ok(()),
        };
        let kind = if event.is_empty() {
            message.get("type").and_then(|t| t.as_str()).unwrap_or("")
        } else {
            event
        };
        match kind {
            "data" => {
                for point in message
                    .get("data")
                    .and_then(|d| d.as_array())
                    .into_iter()
                    .flatten()
                {
                    if let Some(v) = point.get("value").and_then(|v| v.as_f64()) {
                        if let Some(ts) = point.get("tsId").and_then(|t| t.as_str()) {
                            series.insert(ts.to_string());
                        }
                        last = Some(v);
                    }
                }
            }
            "error" => {
                let text = message
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map_or_else(|| data.to_string(), str::to_string);
                return Err(ProviderError::Response(format!("splunk: {text}")));
            }
            _ => {}
        }
        Ok(())
    };
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            flush(&event, &data)?;
            event.clear();
            data.clear();
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.trim_start());
        }
    }
    flush(&event, &data)?;
    if series.len() > 1 {
        return Err(ProviderError::MultipleValues);
    }
    last.ok_or(ProviderError::NoValuesFound)
}

#[async_trait]
impl MetricsProvider for SplunkProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        let stop = client::unix_now().as_millis();
        let start = stop.saturating_sub(self.window.as_millis());
        let request = self
            .http
            .post(client::join_path(&self.stream, "v2/signalflow/execute"))
            .query(&[
                ("start", start.to_string()),
                ("stop", stop.to_string()),
                ("immediate", "true".to_string()),
            ])
            .header("X-SF-Token", &self.token)
            .header("Content-Type", "text/plain")
            .header("Accept", "text/event-stream")
            .body(query.trim().to_string());
        let (status, body) = client::send(request, DEFAULT_TIMEOUT).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        parse_stream(&body)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let request = self
            .http
            .get(client::join_path(&self.api, "v2/metric"))
            .query(&[("limit", "1")])
            .header("X-SF-Token", &self.token);
        let (status, body) = client::send(request, DEFAULT_TIMEOUT).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stream_rules() {
        let one = "event: control-message\ndata: {\"event\":\"STREAM_START\"}\n\nevent: data\ndata: {\"data\":[{\"tsId\":\"A\",\"value\":1.5}]}\n\nevent: data\ndata: {\"data\":[{\"tsId\":\"A\",\"value\":null}]}\n\nevent: data\ndata: {\"data\":[{\"tsId\":\"A\",\"value\":2.5}]}\n\n";
        assert_eq!(parse_stream(one).unwrap(), 2.5);
        let two = "event: data\ndata: {\"data\":[{\"tsId\":\"A\",\"value\":1},{\"tsId\":\"B\",\"value\":2}]}\n\n";
        assert_eq!(
            parse_stream(two).unwrap_err(),
            ProviderError::MultipleValues
        );
        let none = "event: control-message\ndata: {\"event\":\"END_OF_CHANNEL\"}\n\n";
        assert_eq!(
            parse_stream(none).unwrap_err(),
            ProviderError::NoValuesFound
        );
        let err = "event: error\ndata: {\"message\":\"bad program\"}\n\n";
        assert!(
            parse_stream(err)
                .unwrap_err()
                .to_string()
                .contains("bad program")
        );
    }
}
