//! Slack incoming webhooks (and `chat.postMessage` with a bot token).
//!
//! Body: `{"channel", "username", "icon_url": "", "icon_emoji": ":rocket:", "attachments":
//! [{"color": "good"|"danger", "author_name": "<canary>.<ns>", "text": <message>, "mrkdwn_in":
//! ["text"], "fields": [{"title", "value", "short": false}]}]}`. Discord and Rocket.Chat reuse it.

use serde::Serialize;

use super::client::{WebhookClient, parse_webhook_url};
use super::{Alert, BoxFuture, Notifier, NotifyError, Severity};

/// The Slack-compatible message body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackPayload {
    pub channel: String,
    pub username: String,
    pub icon_url: String,
    pub icon_emoji: String,
    pub attachments: Vec<SlackAttachment>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackAttachment {
    pub color: String,
    pub author_name: String,
    pub text: String,
    pub mrkdwn_in: Vec<String>,
    pub fields: Vec<SlackField>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackField {
    pub title: String,
    pub value: String,
    pub short: bool,
}

impl SlackPayload {
    /// Builds the body; `colors` is `(normal, error)`.
    pub fn new(alert: &Alert, username: &str, channel: &str, colors: (&str, &str)) -> Self {
        let color = if alert.severity == Severity::Error {
            colors.1
        } else {
            colors.0
        };
        SlackPayload {
            channel: channel.to_owned(),
            username: username.to_owned(),
            icon_url: String::new(),
            icon_emoji: ":rocket:".to_owned(),
            attachments: vec![SlackAttachment {
                color: color.to_owned(),
                author_name: alert.subject(),
                text: alert.message.clone(),
                mrkdwn_in: vec!["text".to_owned()],
                fields: alert
                    .fields
                    .iter()
                    .map(|f| SlackField {
                        title: f.name.clone(),
                        value: f.value.clone(),
                        short: false,
                    })
                    .collect(),
            }],
        }
    }
}

/// Checks the username and channel that Slack-compatible services require.
pub(crate) fn require_user_and_channel(
    service: &'static str,
    username: &str,
    channel: &str,
) -> Result<(), NotifyError> {
    if username.is_empty() {
        return Err(NotifyError::EmptyUsername(service));
    }
    if channel.is_empty() {
        return Err(NotifyError::EmptyChannel(service));
    }
    Ok(())
}

/// Slack notifier.
#[derive(Debug, Clone)]
pub struct Slack {
    client: WebhookClient,
    username: String,
    channel: String,
}

impl Slack {
    pub const SERVICE: &'static str = "slack";

    /// Validates like Flagger's `NewSlack`: URL, non-empty username and channel. A token is sent
    /// as `Authorization: Bearer <token>`.
    pub fn new(
        url: &str,
        proxy: Option<&str>,
        username: &str,
        channel: &str,
        token: Option<&str>,
    ) -> Result<Self, NotifyError> {
        let url = parse_webhook_url(Self::SERVICE, url)?;
        require_user_and_channel(Self::SERVICE, username, channel)?;
        Ok(Slack {
            client: WebhookClient::new(Self::SERVICE, url, proxy, token)?,
            username: username.to_owned(),
            channel: channel.to_owned(),
        })
    }

    pub fn payload(&self, alert: &Alert) -> SlackPayload {
        SlackPayload::new(alert, &self.username, &self.channel, ("good", "danger"))
    }
}

impl Notifier for Slack {
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
