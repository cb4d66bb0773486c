//! Keptn, through the Kubernetes API (the query is lower-cased before parsing, as in Flagger):
//!
//! * `keptnmetric/<namespace>/<name>` reads `status.value` of the `KeptnMetric`
//!   (`metrics.keptn.sh/v1beta1`);
//! * `analysis/<namespace>/<definition>/<timeframe, default 1m>/<k=v;k=v>` creates an `Analysis`
//!   named `<definition>-<6 random chars>` with `spec.timeframe.recent` and `spec.args`, polls it
//!   every second for up to 10 s until `status.state` is `Completed`, returns 1 when
//!   `status.pass` is true and 0 otherwise, and deletes it.
//!
//! Availability: always online (as Flagger).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::kube_api;
use super::{MetricsProvider, ProviderEnv, ProviderError};
use crate::api::metric_template::MetricTemplateProvider;

const KIND: &str = "keptn";
pub const API_PREFIX: &str = "/apis/metrics.keptn.sh/v1beta1";

/// A parsed Keptn query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeptnQuery {
    Metric {
        namespace: String,
        name: String,
    },
    Analysis {
        namespace: String,
        definition: String,
        timeframe: String,
        args: BTreeMap<String, String>,
    },
}

/// Parses a (lower-cased) Keptn query.
pub fn parse_query(query: &str) -> Result<KeptnQuery, ProviderError> {
    let query = query.trim().to_lowercase();
    let parts: Vec<&str> = query.split('/').collect();
    let invalid = || {
        ProviderError::Config(format!(
            "keptn: invalid query {query:?}: expected keptnmetric/<namespace>/<name> or analysis/<namespace>/<definition>[/<timeframe>[/<k=v;…>]]"
        ))
    };
    match parts.as_slice() {
        ["keptnmetric", namespace, name] if !namespace.is_empty() && !name.is_empty() => {
            Ok(KeptnQuery::Metric {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
        }
        ["analysis", namespace, definition, rest @ ..]
            if !namespace.is_empty() && !definition.is_empty() && rest.len() <= 2 =>
        {
            let timeframe = rest
                .first()
                .filter(|t| !t.is_empty())
                .map_or("1m", |t| t)
                .to_string();
            let mut args = BTreeMap::new();
            if let Some(pairs) = rest.get(1) {
                for pair in pairs.split(';').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').ok_or_else(invalid)?;
                    args.insert(k.to_string(), v.to_string());
                }
            }
            Ok(KeptnQuery::Analysis {
                namespace: namespace.to_string(),
                definition: definition.to_string(),
                timeframe,
                args,
            })
        }
        _ => Err(invalid()),
    }
}

pub struct KeptnProvider {
    client: kube::Client,
    poll_interval: Duration,
    poll_timeout: Duration,
}

impl KeptnProvider {
    pub fn new(
        _provider: &MetricTemplateProvider,
        env: &ProviderEnv,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            client: kube_api::client(KIND, env.kube_config.clone())?,
            poll_interval: Duration::from_secs(1),
            poll_timeout: Duration::from_secs(10),
        })
    }

    /// Shorter polling, for tests.
    pub fn with_polling(mut self, interval: Duration, timeout: Duration) -> Self {
        self.poll_interval = interval;
        self.poll_timeout = timeout;
        self
    }

    async fn run_analysis(
        &self,
        namespace: &str,
        definition: &str,
        timeframe: &str,
        args: &BTreeMap<String, String>,
    ) -> Result<f64, ProviderError> {
        let name = format!("{definition}-{}", random_suffix());
        let collection = format!("{API_PREFIX}/namespaces/{namespace}/analyses");
        let object = serde_json::json!({
            "apiVersion": "metrics.keptn.sh/v1beta1",
            "kind": "Analysis",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "analysisDefinition": {"name": definition},
                "timeframe": {"recent": timeframe},
                "args": args,
            },
        });
        kube_api::post(KIND, &self.client, &collection, &object).await?;
        let path = format!("{collection}/{name}");
        let outcome = self.poll(&path).await;
        let deleted = kube_api::delete(KIND, &self.client, &path).await;
        let value = outcome?;
        deleted?;
        Ok(value)
    }

    async fn poll(&self, path: &str) -> Result<f64, ProviderError> {
        let deadline = tokio::time::Instant::now() + self.poll_timeout;
        loop {
            let analysis = kube_api::get(KIND, &self.client, path).await?;
            let status = analysis.get("status");
            let state = status.and_then(|s| s.get("state")).and_then(|s| s.as_str());
            if state == Some("Completed") {
                let pass = status
                    .and_then(|s| s.get("pass"))
                    .and_then(|p| p.as_bool())
                    .unwrap_or(false);
                return Ok(if pass { 1.0 } else { 0.0 });
            }
            if tokio::time::Instant::now() + self.poll_interval > deadline {
                return Err(ProviderError::Timeout(format!(
                    "{} waiting for the keptn Analysis to complete",
                    crate::api::duration::format(self.poll_timeout)
                )));
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 6];
    let rng = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&rng, &mut bytes).is_err() {
        let nanos = super::client::unix_now().subsec_nanos().to_le_bytes();
        bytes[..4].copy_from_slice(&nanos);
    }
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[async_trait]
impl MetricsProvider for KeptnProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        match parse_query(query)? {
            KeptnQuery::Metric { namespace, name } => {
                let path = format!("{API_PREFIX}/namespaces/{namespace}/keptnmetrics/{name}");
                let metric = kube_api::get(KIND, &self.client, &path).await?;
                let value = metric
                    .get("status")
                    .and_then(|s| s.get("value"))
                    .and_then(|v| v.as_str())
                    .filter(|v| !v.is_empty())
                    .ok_or(ProviderError::NoValuesFound)?;
                value.trim().parse::<f64>().map_err(|_| {
                    ProviderError::Response(format!(
                        "keptn: KeptnMetric {namespace}/{name} status.value {value:?} is not a number"
                    ))
                })
            }
            KeptnQuery::Analysis {
                namespace,
                definition,
                timeframe,
                args,
            } => {
                self.run_analysis(&namespace, &definition, &timeframe, &args)
                    .await
            }
        }
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn queries_parse_lower_cased() {
        assert_eq!(
            parse_query("KeptnMetric/Prod/My-Metric").unwrap(),
            KeptnQuery::Metric {
                namespace: "prod".into(),
                name: "my-metric".into()
            }
        );
        assert_eq!(
            parse_query("analysis/prod/def/2m/Workload=Podinfo;x=y").unwrap(),
            KeptnQuery::Analysis {
                namespace: "prod".into(),
                definition: "def".into(),
                timeframe: "2m".into(),
                args: BTreeMap::from([
                    ("workload".into(), "podinfo".into()),
                    ("x".into(), "y".into())
                ]),
            }
        );
        match parse_query("analysis/prod/def").unwrap() {
            KeptnQuery::Analysis {
                timeframe, args, ..
            } => {
                assert_eq!(timeframe, "1m");
                assert!(args.is_empty());
            }
            q => panic!("{q:?}"),
        }
        assert!(parse_query("keptnmetric/prod").is_err());
        assert!(parse_query("other/a/b").is_err());
        assert!(parse_query("analysis/a/b/1m/novalue").is_err());
        assert_eq!(random_suffix().len(), 6);
    }
}
