//! Graphite: the query is a URL query string (`target=…&from=-1min`), whitespace-collapsed and
//! sent as `GET <address>/render?<query>&format=json` (parameters sorted by name, as Go's
//! `url.Values.Encode` does; names and values are trimmed, so a template may break lines
//! before `&`). Optional basic auth from the Secret (`username`, `password`).
//! The value is the last non-null datapoint across all series. Availability: `target=test`
//! succeeds or returns no values.

use async_trait::async_trait;

use super::client::{self, DEFAULT_TIMEOUT};
use super::{MetricsProvider, ProviderEnv, ProviderError, optional_key, required_key};
use crate::api::metric_template::MetricTemplateProvider;
use crate::metrics::template::{collapse_whitespace, query_escape};

const KIND: &str = "graphite";

pub struct GraphiteProvider {
    http: reqwest::Client,
    render_url: reqwest::Url,
    basic: Option<(String, String)>,
}

impl GraphiteProvider {
    pub fn new(
        provider: &MetricTemplateProvider,
        env: &ProviderEnv,
    ) -> Result<Self, ProviderError> {
        let base = client::parse_url(KIND, &super::required_address(KIND, provider)?)?;
        let creds = env.credentials.as_ref();
        let basic = match optional_key(creds, "username") {
            Some(user) => Some((user, required_key(KIND, creds, "password")?)),
            None => None,
        };
        Ok(Self {
            http: client::http_client(DEFAULT_TIMEOUT, provider.insecure_skip_verify())?,
            render_url: client::join_path(&base, "render"),
            basic,
        })
    }
}

/// `query` + `format=json`, re-encoded with keys sorted (values keep their order).
pub fn encode_query(query: &str) -> String {
    let query = collapse_whitespace(query);
    let query = query.trim_start_matches('?');
    let mut pairs: Vec<(String, String)> = form_decode(query);
    pairs.retain(|(k, _)| k != "format");
    pairs.push(("format".to_string(), "json".to_string()));
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_decode(query: &str) -> Vec<(String, String)> {
    match reqwest::Url::parse(&format!("http://x/?{query}")) {
        Ok(url) => url
            .query_pairs()
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The last non-null datapoint across all series (numbers or numeric strings).
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let series: Vec<serde_json::Value> = serde_json::from_str(body)
        .map_err(|e| ProviderError::Response(format!("graphite: unexpected response: {e}")))?;
    let mut last = None;
    for s in &series {
        let Some(points) = s.get("datapoints").and_then(|d| d.as_array()) else {
            continue;
        };
        for point in points {
            let value = match point.get(0) {
                Some(serde_json::Value::Number(n)) => n.as_f64(),
                Some(serde_json::Value::String(s)) => s.parse::<f64>().ok(),
                _ => None,
            };
            if let Some(v) = value {
                last = Some(v);
            }
        }
    }
    last.ok_or(ProviderError::NoValuesFound)
}

#[async_trait]
impl MetricsProvider for GraphiteProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        let mut url = self.render_url.clone();
        url.set_query(Some(&encode_query(query)));
        let mut request = self.http.get(url);
        if let Some((user, password)) = &self.basic {
            request = request.basic_auth(user, Some(password));
        }
        let (status, body) = client::send(request, DEFAULT_TIMEOUT).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        parse_response(&body)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        match self.run_query("target=test").await {
            Ok(_) | Err(ProviderError::NoValuesFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn query_is_reencoded_sorted() {
        assert_eq!(
            encode_query("target=summarize(stats.x, '1min', 'sum')&from=-1min"),
            "format=json&from=-1min&target=summarize%28stats.x%2C+%271min%27%2C+%27sum%27%29"
        );
    }

    #[test]
    fn last_non_null_point() {
        let body = r#"[{"target":"a","datapoints":[[1.0,1],[null,2],[3,3]]},{"target":"b","datapoints":[["4.5",1],[null,2]]}]"#;
        assert_eq!(parse_response(body).unwrap(), 4.5);
        assert_eq!(
            parse_response(r#"[{"target":"a","datapoints":[[null,1]]}]"#).unwrap_err(),
            ProviderError::NoValuesFound
        );
        assert_eq!(
            parse_response("[]").unwrap_err(),
            ProviderError::NoValuesFound
        );
    }
}
