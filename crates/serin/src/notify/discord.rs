//! Discord webhooks, through Discord's Slack-compatible endpoint (`<webhook>/slack`).

use super::client::{WebhookClient, parse_webhook_url};
use super::slack::{SlackPayload, require_user_and_channel};
use super::{Alert, BoxFuture, Notifier, NotifyError};

/// Discord notifier: the Slack body posted to `<webhook path>/slack`.
#[derive(Debug, Clone)]
pub struct Discord {
    client: WebhookClient,
    username: String,
    channel: String,
}

impl Discord {
    pub const SERVICE: &'static str = "discord";

    /// Validates the URL, username and channel, and appends `/slack` to the webhook path unless
    /// it already ends with it.
    pub fn new(
        url: &str,
        proxy: Option<&str>,
        username: &str,
        channel: &str,
    ) -> Result<Self, NotifyError> {
        let mut url = parse_webhook_url(Self::SERVICE, url)?;
        require_user_and_channel(Self::SERVICE, username, channel)?;
        if !url.path().ends_with("/slack") {
            let path = format!("{}/slack", url.path().trim_end_matches('/'));
            url.set_path(&path);
        }
        Ok(Discord {
            client: WebhookClient::new(Self::SERVICE, url, proxy, None)?,
            username: username.to_owned(),
            channel: channel.to_owned(),
        })
    }

    pub fn payload(&self, alert: &Alert) -> SlackPayload {
        SlackPayload::new(alert, &self.username, &self.channel, ("good", "danger"))
    }
}

impl Notifier for Discord {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slack_suffix_is_appended_once() {
        for (given, want) in [
            (
                "https://discord.example/api/webhooks/1/abc",
                "/api/webhooks/1/abc/slack",
            ),
            (
                "https://discord.example/api/webhooks/1/abc/",
                "/api/webhooks/1/abc/slack",
            ),
            (
                "https://discord.example/api/webhooks/1/abc/slack",
                "/api/webhooks/1/abc/slack",
            ),
        ] {
            let d = Discord::new(given, None, "flagger", "general").unwrap();
            assert_eq!(d.client.url().path(), want, "{given}");
        }
        let d = Discord::new("https://discord.example/w/1?wait=true", None, "f", "g").unwrap();
        assert_eq!(d.client.url().path(), "/w/1/slack");
        assert_eq!(d.client.url().query(), Some("wait=true"));
    }
}
