//! The `AlertProvider` custom resource (`flagger.app/v1beta1`).

use std::fmt;
use std::str::FromStr;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::metric_template::{MetricTemplateCondition, SecretReference};
use super::schema;

/// `spec.type` values Flagger's CRD accepts.
pub const ALERT_PROVIDER_TYPES: &[&str] = &["slack", "msteams", "discord", "rocket", "gchat"];

/// `spec` of an AlertProvider.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "AlertProvider",
    plural = "alertproviders",
    singular = "alertprovider",
    namespaced,
    status = "AlertProviderStatus",
    category = "all",
    shortname = "ap",
    doc = "AlertProvider is the Schema for the AlertProvider API: where canary alerts are sent.",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AlertProviderSpec {
    /// Notification service.
    #[serde(rename = "type")]
    #[schemars(schema_with = "schema::alert_provider_type")]
    pub provider_type: String,
    /// Alert channel (default `general`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Bot username (default `flagger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Hook URL (ignored when `secretRef` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTP(S) proxy URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Secret with the key `address` (and optionally `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// `status` of an AlertProvider (declared by Flagger, not written).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertProviderStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<MetricTemplateCondition>>,
}

/// A notification service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertProviderKind {
    Slack,
    MsTeams,
    Discord,
    Rocket,
    GChat,
}

impl AlertProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertProviderKind::Slack => "slack",
            AlertProviderKind::MsTeams => "msteams",
            AlertProviderKind::Discord => "discord",
            AlertProviderKind::Rocket => "rocket",
            AlertProviderKind::GChat => "gchat",
        }
    }
}

/// An alert provider type no notifier implements.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown alert provider type {0:?}; expected one of: {list}", list = ALERT_PROVIDER_TYPES.join(", "))]
pub struct UnknownAlertProvider(pub String);

impl FromStr for AlertProviderKind {
    type Err = UnknownAlertProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "slack" => Ok(AlertProviderKind::Slack),
            "msteams" => Ok(AlertProviderKind::MsTeams),
            "discord" => Ok(AlertProviderKind::Discord),
            "rocket" => Ok(AlertProviderKind::Rocket),
            "gchat" => Ok(AlertProviderKind::GChat),
            other => Err(UnknownAlertProvider(other.to_string())),
        }
    }
}

impl fmt::Display for AlertProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AlertProviderSpec {
    pub fn channel(&self) -> &str {
        self.channel
            .as_deref()
            .filter(|c| !c.is_empty())
            .unwrap_or("general")
    }

    pub fn username(&self) -> &str {
        self.username
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or("flagger")
    }
}
