//! Rocket.Chat incoming webhooks: the Slack body with Rocket.Chat colours.

use super::client::{WebhookClient, parse_webhook_url};
use super::slack::{SlackPayload, require_user_and_channel};
use super::{Alert, BoxFuture, Notifier, NotifyError};

/// Rocket.Chat notifier (colours `#0076D7`, `#FF0000` for errors).
#[derive(Debug, Clone)]
pub struct Rocket {
    client: WebhookClient,
    username: String,
    channel: String,
}

impl Rocket {
    pub const SERVICE: &'static str = "rocket";

    pub fn new(
        url: &str,
        proxy: Option<&str>,
        username: &str,
        channel: &str,
    ) -> Result<Self, NotifyError> {
        let url = parse_webhook_url(Self::SERVICE, url)?;
        require_user_and_channel(Self::SERVICE, username, channel)?;
        Ok(Rocket {
            client: WebhookClient::new(Self::SERVICE, url, proxy, None)?,
            username: username.to_owned(),
            channel: channel.to_owned(),
        })
    }

    pub fn payload(&self, alert: &Alert) -> SlackPayload {
        SlackPayload::new(alert, &self.username, &self.channel, ("#0076D7", "#FF0000"))
    }
}

impl Notifier for Rocket {
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
