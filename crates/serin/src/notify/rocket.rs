//! Rocket.Chat incoming webhooks: the Slack body with Rocket.Chat colours.

use super::NotifyError;
use super::client::parse_webhook_url;
use super::slack::SlackCompatible;

/// The service name of Rocket.Chat.
pub const ROCKET: &str = "rocket";

impl SlackCompatible {
    /// Rocket.Chat (colours `#0076D7`, `#FF0000` for errors); username and channel required.
    pub fn rocket(
        url: &str,
        proxy: Option<&str>,
        username: &str,
        channel: &str,
    ) -> Result<Self, NotifyError> {
        let url = parse_webhook_url(ROCKET, url)?;
        Self::build(
            ROCKET,
            url,
            proxy,
            username,
            channel,
            None,
            ("#0076D7", "#FF0000"),
        )
    }
}
