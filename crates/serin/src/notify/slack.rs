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

/// A service that takes Slack's webhook body: Slack itself, Discord (through its
/// Slack-compatible endpoint) and Rocket.Chat. They differ only in the URL, the colours and
/// whether a token is sent; the constructors live in each service's file.
#[derive(Debug, Clone)]
pub struct SlackCompatible {
    service: &'static str,
    client: WebhookClient,
    username: String,
    channel: String,
    /// `(normal, error)` attachment colours.
    colors: (&'static str, &'static str),
}

impl SlackCompatible {
    pub(super) fn build(
        service: &'static str,
        url: url::Url,
        proxy: Option<&str>,
        username: &str,
        channel: &str,
        token: Option<&str>,
        colors: (&'static str, &'static str),
    ) -> Result<Self, NotifyError> {
        require_user_and_channel(service, username, channel)?;
        Ok(SlackCompatible {
            service,
            client: WebhookClient::new(service, url, proxy, token)?,
            username: username.to_owned(),
            channel: channel.to_owned(),
            colors,
        })
    }

    /// Slack, validated like Flagger's `NewSlack`: URL, non-empty username and channel. A token
    /// is sent as `Authorization: Bearer <token>`.
    pub fn slack(
        url: &str,
        proxy: Option<&str>,
        username: &str,
        channel: &str,
        token: Option<&str>,
    ) -> Result<Self, NotifyError> {
        let url = parse_webhook_url(SLACK, url)?;
        Self::build(
            SLACK,
            url,
            proxy,
            username,
            channel,
            token,
            ("good", "danger"),
        )
    }

    pub fn payload(&self, alert: &Alert) -> SlackPayload {
        SlackPayload::new(alert, &self.username, &self.channel, self.colors)
    }

    #[cfg(test)]
    pub(super) fn url(&self) -> &url::Url {
        self.client.url()
    }
}

/// The service name of Slack.
pub const SLACK: &str = "slack";

impl Notifier for SlackCompatible {
    fn service(&self) -> &'static str {
        self.service
    }

    fn post<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move { self.client.post_json(&self.payload(alert)).await })
    }

    fn redacted_url(&self) -> String {
        self.client.redacted_url()
    }
}
