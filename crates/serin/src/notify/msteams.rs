//! Microsoft Teams incoming webhooks (legacy MessageCard).

use serde::Serialize;

use super::client::{WebhookClient, parse_webhook_url};
use super::{Alert, BoxFuture, Notifier, NotifyError, Severity};

/// The MessageCard body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MsTeamsPayload {
    #[serde(rename = "@type")]
    pub card_type: String,
    #[serde(rename = "@context")]
    pub context: String,
    #[serde(rename = "themeColor")]
    pub theme_color: String,
    pub summary: String,
    pub sections: Vec<MsTeamsSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MsTeamsSection {
    #[serde(rename = "activityTitle")]
    pub activity_title: String,
    #[serde(rename = "activitySubtitle")]
    pub activity_subtitle: String,
    pub facts: Vec<MsTeamsFact>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MsTeamsFact {
    pub name: String,
    pub value: String,
}

impl MsTeamsPayload {
    pub fn new(alert: &Alert) -> Self {
        let theme = if alert.severity == Severity::Error {
            "FF0000"
        } else {
            "0076D7"
        };
        MsTeamsPayload {
            card_type: "MessageCard".to_owned(),
            context: "http://schema.org/extensions".to_owned(),
            theme_color: theme.to_owned(),
            summary: alert.subject(),
            sections: vec![MsTeamsSection {
                activity_title: alert.message.clone(),
                activity_subtitle: alert.subject(),
                facts: alert
                    .fields
                    .iter()
                    .map(|f| MsTeamsFact {
                        name: f.name.clone(),
                        value: f.value.clone(),
                    })
                    .collect(),
            }],
        }
    }
}

/// Microsoft Teams notifier.
#[derive(Debug, Clone)]
pub struct MsTeams {
    client: WebhookClient,
}

impl MsTeams {
    pub const SERVICE: &'static str = "msteams";

    pub fn new(url: &str, proxy: Option<&str>) -> Result<Self, NotifyError> {
        let url = parse_webhook_url(Self::SERVICE, url)?;
        Ok(MsTeams {
            client: WebhookClient::new(Self::SERVICE, url, proxy, None)?,
        })
    }

    pub fn payload(&self, alert: &Alert) -> MsTeamsPayload {
        MsTeamsPayload::new(alert)
    }
}

impl Notifier for MsTeams {
    fn service(&self) -> &'static str {
        Self::SERVICE
    }

    fn post<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move { self.client.post_json(&self.payload(alert)).await })
    }

    fn redacted_url(&self) -> String {
        self.client.redacted_url()
    }
}
