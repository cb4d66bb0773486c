//! InfluxDB 2 (Flux): `POST <address>/api/v2/query?org=<org>` with `Authorization: Token
//! <token>` (Secret keys `token` and `org`, both required once a secretRef is given) and a JSON
//! body `{"query": …, "type": "flux", "dialect": …}`; the answer is annotated CSV. The value is
//! the `_value` of the first record and must be a `double`; an empty `_value` is "no values
//! found"; **no records at all returns 0** (Flagger's behaviour, kept). 15 s timeout.
//! Availability: the query `buckets() |> limit(n: 1)` runs (Flagger queries a bucket named
//! `default`, which need not exist).

use std::time::Duration;

use async_trait::async_trait;

use super::client;
use super::{MetricsProvider, ProviderEnv, ProviderError, required_key};
use crate::api::metric_template::MetricTemplateProvider;

const KIND: &str = "influxdb";
/// Flux query timeout.
pub const TIMEOUT: Duration = Duration::from_secs(15);

pub struct InfluxDbProvider {
    http: reqwest::Client,
    query_url: reqwest::Url,
    token: Option<String>,
    org: Option<String>,
}

impl InfluxDbProvider {
    pub fn new(
        provider: &MetricTemplateProvider,
        env: &ProviderEnv,
    ) -> Result<Self, ProviderError> {
        let base = client::parse_url(KIND, &super::required_address(KIND, provider)?)?;
        let (token, org) = match env.credentials.as_ref() {
            Some(creds) => (
                Some(required_key(KIND, Some(creds), "token")?),
                Some(required_key(KIND, Some(creds), "org")?),
            ),
            None => (None, None),
        };
        Ok(Self {
            http: client::http_client(TIMEOUT, provider.insecure_skip_verify())?,
            query_url: client::join_path(&base, "api/v2/query"),
            token,
            org,
        })
    }

    async fn query_csv(&self, flux: &str) -> Result<String, ProviderError> {
        let body = serde_json::json!({
            "query": flux,
            "type": "flux",
            "dialect": {
                "annotations": ["datatype", "group", "default"],
                "delimiter": ",",
                "header": true,
            },
        });
        let mut request = self
            .http
            .post(self.query_url.clone())
            .header("Accept", "text/csv")
            .json(&body);
        if let Some(org) = &self.org {
            request = request.query(&[("org", org)]);
        }
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        client::send_ok(KIND, request, TIMEOUT).await
    }
}

/// Splits one CSV line (RFC 4180 quoting).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The `_value` of the first record of an annotated-CSV answer.
pub fn parse_csv(body: &str) -> Result<f64, ProviderError> {
    let mut datatypes: Vec<String> = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            // A new table starts with new annotations and a new header.
            header = None;
            datatypes.clear();
            continue;
        }
        let fields = split_csv(line);
        if fields.first().map(String::as_str) == Some("#datatype") {
            datatypes = fields;
            continue;
        }
        if fields.first().is_some_and(|f| f.starts_with('#')) {
            continue;
        }
        let Some(columns) = &header else {
            header = Some(fields);
            continue;
        };
        // First record.
        if let Some(i) = columns.iter().position(|c| c == "error") {
            let message = fields.get(i).cloned().unwrap_or_default();
            return Err(ProviderError::Response(format!(
                "influxdb: query failed: {message}"
            )));
        }
        let Some(i) = columns.iter().position(|c| c == "_value") else {
            return Err(ProviderError::Response(
                "influxdb: the result has no _value column".to_string(),
            ));
        };
        let raw = fields.get(i).map(String::as_str).unwrap_or_default();
        if raw.is_empty() {
            return Err(ProviderError::NoValuesFound);
        }
        let datatype = datatypes.get(i).map(String::as_str).unwrap_or("double");
        if datatype != "double" {
            return Err(ProviderError::Response(format!(
                "influxdb: _value is of type {datatype}, expected double (float64)"
            )));
        }
        return raw.parse::<f64>().map_err(|_| {
            ProviderError::Response(format!("influxdb: _value {raw:?} is not a number"))
        });
    }
    // No records: Flagger returns 0 without an error.
    Ok(0.0)
}

#[async_trait]
impl MetricsProvider for InfluxDbProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        let csv = self.query_csv(query).await?;
        parse_csv(&csv)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        self.query_csv("buckets() |> limit(n: 1)").await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn first_record_value() {
        let csv = "#datatype,string,long,dateTime:RFC3339,double\r\n#group,false,false,false,false\r\n#default,_result,,,\r\n,result,table,_time,_value\r\n,,0,2024-01-01T00:00:00Z,12.5\r\n,,0,2024-01-01T00:01:00Z,13\r\n\r\n";
        assert_eq!(parse_csv(csv).unwrap(), 12.5);
    }

    #[test]
    fn null_no_records_and_types() {
        let null = "#datatype,string,long,double\n#group,false,false,false\n#default,_result,,\n,result,table,_value\n,,0,\n";
        assert_eq!(parse_csv(null).unwrap_err(), ProviderError::NoValuesFound);
        assert_eq!(parse_csv("").unwrap(), 0.0);
        let long = "#datatype,string,long,long\n,result,table,_value\n,,0,5\n";
        assert!(matches!(
            parse_csv(long).unwrap_err(),
            ProviderError::Response(_)
        ));
        let err = "#datatype,string,string\n,error,reference\n,\"bucket \"\"x\"\" not found\",\n";
        let e = parse_csv(err).unwrap_err().to_string();
        assert!(e.contains("bucket \"x\" not found"), "{e}");
    }
}
