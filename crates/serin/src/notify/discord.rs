//! Discord webhooks, through Discord's Slack-compatible endpoint (`<webhook>/slack`).

use super::NotifyError;
use super::client::parse_webhook_url;
use super::slack::SlackCompatible;

/// The service name of Discord.
pub const DISCORD: &str = "discord";

impl SlackCompatible {
    /// Discord: the Slack body posted to `<webhook path>/slack` (appended unless the path already
    /// ends with it); username and channel required.
    pub fn discord(
        url: &str,
        proxy: Option<&str>,
        username: &str,
        channel: &str,
    ) -> Result<Self, NotifyError> {
        let mut url = parse_webhook_url(DISCORD, url)?;
        if !url.path().ends_with("/slack") {
            let path = format!("{}/slack", url.path().trim_end_matches('/'));
            url.set_path(&path);
        }
        Self::build(
            DISCORD,
            url,
            proxy,
            username,
            channel,
            None,
            ("good", "danger"),
        )
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
            let d = SlackCompatible::discord(given, None, "flagger", "general").unwrap();
            assert_eq!(d.url().path(), want, "{given}");
        }
        let d = SlackCompatible::discord("https://discord.example/w/1?wait=true", None, "f", "g")
            .unwrap();
        assert_eq!(d.url().path(), "/w/1/slack");
        assert_eq!(d.url().query(), Some("wait=true"));
    }
}
