//! The `MetricTemplate` custom resource (`flagger.app/v1beta1`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;

/// `spec.provider.type` values Flagger's CRD accepts.
pub const METRIC_PROVIDER_TYPES: &[&str] = &[
    "prometheus",
    "influxdb",
    "datadog",
    "externalmetrics",
    "stackdriver",
    "cloudwatch",
    "newrelic",
    "graphite",
    "dynatrace",
    "keptn",
    "splunk",
];

/// `spec` of a MetricTemplate.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "MetricTemplate",
    plural = "metrictemplates",
    singular = "metrictemplate",
    namespaced,
    status = "MetricTemplateStatus",
    category = "all",
    shortname = "mt",
    doc = "MetricTemplate is the Schema for the MetricTemplates API: a query against a metrics backend.",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider.type"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateSpec {
    /// The metrics backend.
    pub provider: MetricTemplateProvider,
    /// The query, a Go template with `{{ namespace }}`, `{{ target }}`, `{{ interval }}`, ...
    pub query: String,
}

/// `spec.provider` of a MetricTemplate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateProvider {
    /// Backend type.
    #[serde(rename = "type")]
    #[schemars(schema_with = "schema::metric_provider_type")]
    pub provider_type: String,
    /// API address of the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Extra HTTP headers (Prometheus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    /// Secret in the template's namespace holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// Region (CloudWatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Disable TLS certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// A Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretReference {
    pub name: String,
}

/// `status` of a MetricTemplate (declared by Flagger, not written).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricTemplateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<MetricTemplateCondition>>,
}

/// A condition of a MetricTemplate or AlertProvider.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateCondition {
    #[serde(rename = "type")]
    pub condition_type: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A metrics backend type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricProviderKind {
    Prometheus,
    InfluxDb,
    Datadog,
    ExternalMetrics,
    Stackdriver,
    CloudWatch,
    NewRelic,
    Graphite,
    Dynatrace,
    Keptn,
    Splunk,
}

impl MetricProviderKind {
    pub const ALL: [MetricProviderKind; 11] = [
        MetricProviderKind::Prometheus,
        MetricProviderKind::InfluxDb,
        MetricProviderKind::Datadog,
        MetricProviderKind::ExternalMetrics,
        MetricProviderKind::Stackdriver,
        MetricProviderKind::CloudWatch,
        MetricProviderKind::NewRelic,
        MetricProviderKind::Graphite,
        MetricProviderKind::Dynatrace,
        MetricProviderKind::Keptn,
        MetricProviderKind::Splunk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MetricProviderKind::Prometheus => "prometheus",
            MetricProviderKind::InfluxDb => "influxdb",
            MetricProviderKind::Datadog => "datadog",
            MetricProviderKind::ExternalMetrics => "externalmetrics",
            MetricProviderKind::Stackdriver => "stackdriver",
            MetricProviderKind::CloudWatch => "cloudwatch",
            MetricProviderKind::NewRelic => "newrelic",
            MetricProviderKind::Graphite => "graphite",
            MetricProviderKind::Dynatrace => "dynatrace",
            MetricProviderKind::Keptn => "keptn",
            MetricProviderKind::Splunk => "splunk",
        }
    }
}

/// A metric provider type no backend implements.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric provider type {0:?}; expected one of: {list}", list = METRIC_PROVIDER_TYPES.join(", "))]
pub struct UnknownMetricProvider(pub String);

impl FromStr for MetricProviderKind {
    type Err = UnknownMetricProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MetricProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownMetricProvider(s.to_string()))
    }
}

impl fmt::Display for MetricProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MetricTemplateProvider {
    pub fn kind(&self) -> Result<MetricProviderKind, UnknownMetricProvider> {
        self.provider_type.parse()
    }

    pub fn insecure_skip_verify(&self) -> bool {
        self.insecure_skip_verify.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_provider_type_parses() {
        for name in METRIC_PROVIDER_TYPES {
            assert_eq!(name.parse::<MetricProviderKind>().unwrap().as_str(), *name);
        }
        assert!("prom".parse::<MetricProviderKind>().is_err());
    }
}
