//! Google Chat incoming webhooks (cards v1).

use serde::Serialize;

use super::client::{WebhookClient, parse_webhook_url};
use super::{Alert, BoxFuture, Notifier, NotifyError};

/// `{"cards": [{"header": {...}, "sections": [...]}]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GChatPayload {
    pub cards: Vec<GChatCard>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GChatCard {
    pub header: GChatHeader,
    pub sections: Vec<GChatSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GChatHeader {
    pub title: String,
    pub subtitle: String,
    #[serde(rename = "imageUrl")]
    pub image_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GChatSection {
    pub widgets: Vec<GChatWidget>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GChatWidget {
    #[serde(rename = "textParagraph")]
    pub text_paragraph: GChatText,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GChatText {
    pub text: String,
}

fn section(text: String) -> GChatSection {
    GChatSection {
        widgets: vec![GChatWidget {
            text_paragraph: GChatText { text },
        }],
    }
}

impl GChatPayload {
    /// One section with the message, then one section per field. Message and field texts are
    /// inserted as they are (Google Chat renders the small HTML subset used here).
    pub fn new(alert: &Alert) -> Self {
        let mut sections = Vec::with_capacity(alert.fields.len() + 1);
        sections.push(section(format!(
            "<font color=#848484><strong>{}</strong></font>",
            alert.message
        )));
        for f in &alert.fields {
            sections.push(section(format!(
                "{}<br><font color=#848484><strong>{}</strong></font>",
                f.name, f.value
            )));
        }
        GChatPayload {
            cards: vec![GChatCard {
                header: GChatHeader {
                    title: "Flagger".to_owned(),
                    subtitle: alert.subject(),
                    image_url: "https://flagger.app/favicon.png".to_owned(),
                },
                sections,
            }],
        }
    }
}

/// Google Chat notifier.
#[derive(Debug, Clone)]
pub struct GChat {
    client: WebhookClient,
}

impl GChat {
    pub const SERVICE: &'static str = "gchat";

    pub fn new(url: &str, proxy: Option<&str>) -> Result<Self, NotifyError> {
        let url = parse_webhook_url(Self::SERVICE, url)?;
        Ok(GChat {
            client: WebhookClient::new(Self::SERVICE, url, proxy, None)?,
        })
    }

    pub fn payload(&self, alert: &Alert) -> GChatPayload {
        GChatPayload::new(alert)
    }
}

impl Notifier for GChat {
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
