//! Prometheus: `GET <address>/api/v1/query?query=<whitespace-collapsed query>`.
//!
//! Credentials (Secret keys): `token` → `Authorization: Bearer`; otherwise `username` and
//! `password` → basic auth. User info in the address (`http://user:pass@host`) is also sent as
//! basic auth. `provider.headers` are added to every request; `insecureSkipVerify` disables
//! certificate verification. 5 s timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::client::{self, DEFAULT_TIMEOUT};
use super::{Credentials, MetricsProvider, ProviderError, optional_key, required_key};
use crate::api::metric_template::MetricTemplateProvider;
use crate::metrics::template::collapse_whitespace;

const KIND: &str = "prometheus";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Auth {
    None,
    Bearer(String),
    Basic { username: String, password: String },
}

/// A Prometheus HTTP API client.
pub struct PrometheusProvider {
    http: reqwest::Client,
    query_url: reqwest::Url,
    range_url: reqwest::Url,
    auth: Auth,
    headers: Vec<(String, String)>,
    timeout: Duration,
}

impl PrometheusProvider {
    /// The client for a MetricTemplate's provider (address required).
    pub fn from_template(
        provider: &MetricTemplateProvider,
        credentials: Option<&Credentials>,
    ) -> Result<Self, ProviderError> {
        let address = super::required_address(KIND, provider)?;
        let auth = match credentials {
            None => Auth::None,
            Some(_) => match optional_key(credentials, "token") {
                Some(token) => Auth::Bearer(token),
                None => Auth::Basic {
                    username: required_key(KIND, credentials, "username")?,
                    password: required_key(KIND, credentials, "password")?,
                },
            },
        };
        let mut headers = Vec::new();
        for (name, values) in provider.headers.iter().flat_map(BTreeMap::iter) {
            for value in values {
                headers.push((name.clone(), value.clone()));
            }
        }
        Self::new(&address, auth, headers, provider.insecure_skip_verify())
    }

    /// The client for the controller's `-metrics-server` or a Canary's `spec.metricsServer`.
    pub fn for_metrics_server(address: &str) -> Result<Self, ProviderError> {
        Self::new(address, Auth::None, Vec::new(), false)
    }

    fn new(
        address: &str,
        mut auth: Auth,
        headers: Vec<(String, String)>,
        insecure: bool,
    ) -> Result<Self, ProviderError> {
        let mut base = client::parse_url(KIND, address.trim())?;
        if !base.username().is_empty() {
            if auth == Auth::None {
                auth = Auth::Basic {
                    username: percent_decode(base.username()),
                    password: base.password().map(percent_decode).unwrap_or_default(),
                };
            }
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        for (name, value) in &headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ProviderError::Config(format!("{KIND}: invalid header name {name:?}"))
            })?;
            reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                ProviderError::Config(format!("{KIND}: invalid value for header {name:?}"))
            })?;
        }
        Ok(Self {
            http: client::http_client(DEFAULT_TIMEOUT, insecure)?,
            query_url: client::join_path(&base, "api/v1/query"),
            range_url: client::join_path(&base, "api/v1/query_range"),
            auth,
            headers,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The values that must be redacted from this client's errors.
    pub fn secrets(&self) -> Vec<String> {
        match &self.auth {
            Auth::None => Vec::new(),
            Auth::Bearer(t) => vec![t.clone()],
            Auth::Basic { password, .. } => vec![password.clone()],
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[derive(Deserialize)]
struct ApiResponse {
    #[serde(default)]
    data: Option<ApiData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiData {
    #[serde(default)]
    result_type: String,
    #[serde(default)]
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct Sample {
    #[serde(default)]
    value: Option<(serde_json::Value, String)>,
    #[serde(default)]
    values: Option<serde_json::Value>,
}

/// Extracts the value from a `/api/v1/query` answer: the last sample of a vector wins (Flagger),
/// a matrix is "multiple values", nothing or NaN is "no values found".
pub fn parse_query_response(body: &str) -> Result<f64, ProviderError> {
    let response: ApiResponse = serde_json::from_str(body)
        .map_err(|e| ProviderError::Response(format!("prometheus: unexpected response: {e}")))?;
    let data = response
        .data
        .ok_or_else(|| ProviderError::Response("prometheus: response has no data".to_string()))?;
    let mut value: Option<f64> = None;
    match data.result_type.as_str() {
        "scalar" => {
            let (_, v): (serde_json::Value, String) = serde_json::from_value(data.result)
                .map_err(|e| ProviderError::Response(format!("prometheus: bad scalar: {e}")))?;
            value = Some(parse_sample_value(&v)?);
        }
        "matrix" => {
            let has_series = data.result.as_array().is_some_and(|a| !a.is_empty());
            if has_series {
                return Err(ProviderError::MultipleValues);
            }
        }
        _ => {
            let samples: Vec<Sample> = serde_json::from_value(data.result)
                .map_err(|e| ProviderError::Response(format!("prometheus: bad vector: {e}")))?;
            for sample in samples {
                if sample.values.is_some() {
                    return Err(ProviderError::MultipleValues);
                }
                if let Some((_, v)) = sample.value {
                    value = Some(parse_sample_value(&v)?);
                }
            }
        }
    }
    match value {
        Some(v) if !v.is_nan() => Ok(v),
        _ => Err(ProviderError::NoValuesFound),
    }
}

/// Every value of a `/api/v1/query_range` answer (a matrix; all series, NaN dropped).
/// No values at all is "no values found".
pub fn parse_range_response(body: &str) -> Result<Vec<f64>, ProviderError> {
    let response: ApiResponse = serde_json::from_str(body)
        .map_err(|e| ProviderError::Response(format!("prometheus: unexpected response: {e}")))?;
    let data = response
        .data
        .ok_or_else(|| ProviderError::Response("prometheus: response has no data".to_string()))?;
    let series: Vec<Sample> = serde_json::from_value(data.result)
        .map_err(|e| ProviderError::Response(format!("prometheus: bad matrix: {e}")))?;
    let mut out = Vec::new();
    for s in series {
        let points: Vec<(serde_json::Value, String)> = match s.values {
            Some(v) => serde_json::from_value(v)
                .map_err(|e| ProviderError::Response(format!("prometheus: bad matrix: {e}")))?,
            None => s.value.into_iter().collect(),
        };
        for (_, text) in points {
            let v = parse_sample_value(&text)?;
            if !v.is_nan() {
                out.push(v);
            }
        }
    }
    if out.is_empty() {
        return Err(ProviderError::NoValuesFound);
    }
    Ok(out)
}

fn parse_sample_value(text: &str) -> Result<f64, ProviderError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        other => other.parse::<f64>().map_err(|_| {
            ProviderError::Response(format!(
                "prometheus: sample value {other:?} is not a number"
            ))
        }),
    }
}

#[async_trait]
impl MetricsProvider for PrometheusProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        let query = collapse_whitespace(query);
        let mut request = self
            .http
            .get(self.query_url.clone())
            .query(&[("query", query.as_str())]);
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request = match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
        };
        let body = client::send_ok(KIND, request, self.timeout).await?;
        parse_query_response(&body)
    }

    async fn run_range_query(
        &self,
        query: &str,
        window: Duration,
        step: Duration,
    ) -> Result<Vec<f64>, ProviderError> {
        let query = collapse_whitespace(query);
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        let start = end - window.as_secs_f64();
        let step = step.as_secs_f64().max(1.0);
        let mut request = self.http.get(self.range_url.clone()).query(&[
            ("query", query.as_str()),
            ("start", &format!("{start:.3}")),
            ("end", &format!("{end:.3}")),
            ("step", &format!("{step}")),
        ]);
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request = match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
        };
        let body = client::send_ok(KIND, request, self.timeout).await?;
        parse_range_response(&body)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let value = self.run_query("vector(1)").await?;
        if value == 1.0 {
            Ok(())
        } else {
            Err(ProviderError::Response(format!(
                "prometheus: query vector(1) returned {value}, expected 1"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn vector_last_sample_wins() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"a":"1"},"value":[1700000000.1,"1.5"]},
            {"metric":{"a":"2"},"value":[1700000000.1,"2.5"]}]}}"#;
        assert_eq!(parse_query_response(body).unwrap(), 2.5);
    }

    #[test]
    fn empty_and_nan_are_no_values() {
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            parse_query_response(empty).unwrap_err(),
            ProviderError::NoValuesFound
        );
        let nan = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert_eq!(
            parse_query_response(nan).unwrap_err(),
            ProviderError::NoValuesFound
        );
    }

    #[test]
    fn matrix_is_multiple_values() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}}"#;
        assert_eq!(
            parse_query_response(body).unwrap_err(),
            ProviderError::MultipleValues
        );
    }

    #[test]
    fn scalar_is_a_value() {
        let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"42"]}}"#;
        assert_eq!(parse_query_response(body).unwrap(), 42.0);
    }

    #[test]
    fn range_answers_are_every_value_of_every_series() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"a"},"values":[[1,"0.1"],[11,"NaN"],[21,"0.3"]]},
            {"metric":{"pod":"b"},"values":[[1,"2"]]}]}}"#;
        assert_eq!(parse_range_response(body).unwrap(), vec![0.1, 0.3, 2.0]);
        let empty = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(
            parse_range_response(empty),
            Err(ProviderError::NoValuesFound)
        );
        assert!(matches!(
            parse_range_response("nope"),
            Err(ProviderError::Response(_))
        ));
    }

    #[test]
    fn garbage_is_a_response_error() {
        assert!(matches!(
            parse_query_response("<html>").unwrap_err(),
            ProviderError::Response(_)
        ));
    }

    #[test]
    fn credentials_rules() {
        let provider = MetricTemplateProvider {
            provider_type: "prometheus".into(),
            address: Some("http://prom:9090/prefix/".into()),
            ..Default::default()
        };
        let creds = |pairs: &[(&str, &str)]| -> Credentials {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        let p = PrometheusProvider::from_template(&provider, Some(&creds(&[("token", "t0k")])))
            .unwrap();
        assert_eq!(p.auth, Auth::Bearer("t0k".into()));
        assert_eq!(p.query_url.as_str(), "http://prom:9090/prefix/api/v1/query");
        let err = PrometheusProvider::from_template(&provider, Some(&creds(&[("username", "u")])))
            .err()
            .unwrap();
        assert!(err.to_string().contains("\"password\""), "{err}");
        let p = PrometheusProvider::from_template(
            &MetricTemplateProvider {
                address: Some("http://us%40r:p%3Ass@prom:9090".into()),
                ..provider.clone()
            },
            None,
        )
        .unwrap();
        assert_eq!(
            p.auth,
            Auth::Basic {
                username: "us@r".into(),
                password: "p:ss".into()
            }
        );
        assert_eq!(p.query_url.as_str(), "http://prom:9090/api/v1/query");
        assert!(
            PrometheusProvider::from_template(
                &MetricTemplateProvider {
                    address: None,
                    ..provider
                },
                None
            )
            .is_err()
        );
    }
}
