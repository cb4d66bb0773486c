//! The global notifier (Flagger's `initNotifier` in `cmd/flagger/main.go`): built at start-up
//! from `-slack-*` / `-msteams-*` flags and their environment variables, used for canaries
//! without `analysis.alerts`.

use super::client::redact_url;
use super::{DEFAULT_USERNAME, NotifierConfig, NotifierKind, NotifyError};

/// Global notifier flags. Flatten into the controller's arguments with
/// `#[command(flatten)]`.
///
/// As in Flagger, a non-empty environment variable (`SLACK_URL`, `SLACK_TOKEN`,
/// `SLACK_PROXY_URL`, `MSTEAMS_URL`, `MSTEAMS_PROXY_URL`) wins over the flag; see
/// [`GlobalNotifierArgs::notifier_config`].
#[derive(Clone, Default, PartialEq, Eq, clap::Args)]
pub struct GlobalNotifierArgs {
    /// Slack hook URL [env: SLACK_URL, which wins when set].
    #[arg(long = "slack-url", value_name = "URL")]
    pub slack_url: Option<String>,
    /// Slack bot token, sent as `Authorization: Bearer` [env: SLACK_TOKEN, which wins when set].
    #[arg(long = "slack-token", value_name = "TOKEN")]
    pub slack_token: Option<String>,
    /// Slack HTTP(S) proxy URL [env: SLACK_PROXY_URL, which wins when set].
    #[arg(long = "slack-proxy-url", value_name = "URL")]
    pub slack_proxy_url: Option<String>,
    /// Slack user name.
    #[arg(long = "slack-user", value_name = "NAME", default_value = DEFAULT_USERNAME)]
    pub slack_user: String,
    /// Slack channel (required when a Slack URL is set).
    #[arg(long = "slack-channel", value_name = "CHANNEL")]
    pub slack_channel: Option<String>,
    /// MS Teams incoming webhook URL; takes precedence over Slack [env: MSTEAMS_URL, which wins
    /// when set].
    #[arg(long = "msteams-url", value_name = "URL")]
    pub msteams_url: Option<String>,
    /// MS Teams HTTP(S) proxy URL [env: MSTEAMS_PROXY_URL, which wins when set].
    #[arg(long = "msteams-proxy-url", value_name = "URL")]
    pub msteams_proxy_url: Option<String>,
    /// Cluster name, added as the `Cluster` field of every alert.
    #[arg(long = "cluster-name", value_name = "NAME")]
    pub cluster_name: Option<String>,
}

/// Hides URL paths, proxy credentials and the token (the arguments may end up in a log line).
impl std::fmt::Debug for GlobalNotifierArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |v: &Option<String>| v.as_deref().map(redact_url);
        f.debug_struct("GlobalNotifierArgs")
            .field("slack_url", &url(&self.slack_url))
            .field(
                "slack_token",
                &self.slack_token.as_ref().map(|_| "<redacted>"),
            )
            .field("slack_proxy_url", &url(&self.slack_proxy_url))
            .field("slack_user", &self.slack_user)
            .field("slack_channel", &self.slack_channel)
            .field("msteams_url", &url(&self.msteams_url))
            .field("msteams_proxy_url", &url(&self.msteams_proxy_url))
            .field("cluster_name", &self.cluster_name)
            .finish()
    }
}

impl GlobalNotifierArgs {
    /// The global notifier configuration, reading the process environment.
    pub fn notifier_config(&self) -> Result<Option<NotifierConfig>, NotifyError> {
        self.notifier_config_with_env(|name| std::env::var(name).ok())
    }

    /// Why the configured global notifier is disabled, if it is (reading the process
    /// environment): the controller starts anyway, as Flagger does, and logs this once as a
    /// warning.
    pub fn disabled_reason(&self) -> Option<NotifyError> {
        self.disabled_reason_with_env(|name| std::env::var(name).ok())
    }

    /// [`Self::disabled_reason`] with an explicit environment lookup (for tests): a Slack URL
    /// without a channel (and no Teams URL, which would win) disables global notifications.
    pub fn disabled_reason_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Option<NotifyError> {
        let set = |var: &str, flag: &Option<String>| {
            env(var).is_some_and(|v| !v.is_empty())
                || flag.as_deref().is_some_and(|v| !v.is_empty())
        };
        let slack_without_channel = set("SLACK_URL", &self.slack_url)
            && !set("MSTEAMS_URL", &self.msteams_url)
            && self.slack_channel.as_deref().is_none_or(str::is_empty);
        slack_without_channel.then_some(NotifyError::GlobalSlackWithoutChannel)
    }

    /// Flagger's rules with an explicit environment lookup (for tests): a non-empty variable
    /// wins over its flag; a Teams URL selects Teams (with the Teams proxy); otherwise a Slack
    /// URL selects Slack, which needs a channel (without one there is no global notifier, as in
    /// Flagger, and [`Self::disabled_reason`] says why); no URL at all means no global notifier
    /// (`Ok(None)`).
    pub fn notifier_config_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<NotifierConfig>, NotifyError> {
        let pick = |var: &str, flag: &Option<String>| -> Option<String> {
            env(var)
                .filter(|v| !v.is_empty())
                .or_else(|| flag.clone().filter(|v| !v.is_empty()))
        };
        if let Some(url) = pick("MSTEAMS_URL", &self.msteams_url) {
            return Ok(Some(NotifierConfig {
                kind: NotifierKind::MsTeams,
                url,
                channel: None,
                username: None,
                proxy: pick("MSTEAMS_PROXY_URL", &self.msteams_proxy_url),
                token: None,
            }));
        }
        if let Some(url) = pick("SLACK_URL", &self.slack_url) {
            let Some(channel) = self.slack_channel.clone().filter(|c| !c.is_empty()) else {
                return Ok(None);
            };
            return Ok(Some(NotifierConfig {
                kind: NotifierKind::Slack,
                url,
                channel: Some(channel),
                username: Some(self.slack_user.clone()),
                proxy: pick("SLACK_PROXY_URL", &self.slack_proxy_url),
                token: pick("SLACK_TOKEN", &self.slack_token),
            }));
        }
        Ok(None)
    }

    /// The `-cluster-name` value, if set and non-empty.
    pub fn cluster_name(&self) -> Option<&str> {
        self.cluster_name.as_deref().filter(|c| !c.is_empty())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        notifier: GlobalNotifierArgs,
    }

    fn parse(args: &[&str]) -> GlobalNotifierArgs {
        let mut argv = vec!["serin"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().notifier
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn no_url_means_no_global_notifier() {
        let args = parse(&[]);
        assert_eq!(args.slack_user, "flagger");
        assert_eq!(args.notifier_config_with_env(env(&[])).unwrap(), None);
        // Empty environment values do not count.
        let cfg = args
            .notifier_config_with_env(env(&[("SLACK_URL", ""), ("MSTEAMS_URL", "")]))
            .unwrap();
        assert_eq!(cfg, None);
    }

    #[test]
    fn slack_from_flags() {
        let args = parse(&[
            "--slack-url",
            "https://hooks.slack.com/services/A/B/C",
            "--slack-channel",
            "general",
            "--slack-proxy-url",
            "http://proxy:3128",
            "--slack-token",
            "xoxb-1",
            "--cluster-name",
            "prod",
        ]);
        let cfg = args.notifier_config_with_env(env(&[])).unwrap().unwrap();
        assert_eq!(cfg.kind, NotifierKind::Slack);
        assert_eq!(cfg.url, "https://hooks.slack.com/services/A/B/C");
        assert_eq!(cfg.channel.as_deref(), Some("general"));
        assert_eq!(cfg.username.as_deref(), Some("flagger"));
        assert_eq!(cfg.proxy.as_deref(), Some("http://proxy:3128"));
        assert_eq!(cfg.token.as_deref(), Some("xoxb-1"));
        assert_eq!(args.cluster_name(), Some("prod"));
        let debug = format!("{args:?}");
        assert!(!debug.contains("/services/A/B/C"), "{debug}");
        assert!(!debug.contains("xoxb-1"), "{debug}");
        assert!(super::super::build(&cfg).is_ok());
    }

    #[test]
    fn environment_wins_over_flags() {
        let args = parse(&[
            "--slack-url",
            "https://flag.example/hook",
            "--slack-channel",
            "c",
            "--slack-user",
            "bot",
        ]);
        let cfg = args
            .notifier_config_with_env(env(&[
                ("SLACK_URL", "https://env.example/hook"),
                ("SLACK_TOKEN", "envtoken"),
                ("SLACK_PROXY_URL", "http://envproxy:1"),
            ]))
            .unwrap()
            .unwrap();
        assert_eq!(cfg.url, "https://env.example/hook");
        assert_eq!(cfg.token.as_deref(), Some("envtoken"));
        assert_eq!(cfg.proxy.as_deref(), Some("http://envproxy:1"));
        assert_eq!(cfg.username.as_deref(), Some("bot"));
    }

    #[test]
    fn teams_takes_precedence_over_slack() {
        let args = parse(&[
            "--slack-url",
            "https://slack.example/hook",
            "--slack-channel",
            "c",
            "--msteams-proxy-url",
            "http://teamsproxy:1",
        ]);
        let cfg = args
            .notifier_config_with_env(env(&[("MSTEAMS_URL", "https://teams.example/hook")]))
            .unwrap()
            .unwrap();
        assert_eq!(cfg.kind, NotifierKind::MsTeams);
        assert_eq!(cfg.url, "https://teams.example/hook");
        assert_eq!(cfg.proxy.as_deref(), Some("http://teamsproxy:1"));
        assert_eq!(cfg.token, None);
    }

    #[test]
    fn slack_without_channel_disables_slack_with_a_clear_reason() {
        let args = parse(&["--slack-url", "https://slack.example/hook"]);
        assert_eq!(args.notifier_config_with_env(env(&[])).unwrap(), None);
        let reason = args.disabled_reason_with_env(env(&[])).unwrap();
        assert!(matches!(reason, NotifyError::GlobalSlackWithoutChannel));
        assert_eq!(
            reason.to_string(),
            "global Slack notifications are disabled: a Slack URL is set (--slack-url or SLACK_URL) \
             but --slack-channel is not; set --slack-channel (Helm value slack.channel) or remove \
             the URL"
        );
        // The env URL alone also needs the channel.
        let args = parse(&[]);
        let vars = env(&[("SLACK_URL", "https://slack.example/hook")]);
        assert_eq!(args.notifier_config_with_env(&vars).unwrap(), None);
        assert!(args.disabled_reason_with_env(&vars).is_some());
        // With a channel, with Teams (which wins) or without any URL nothing is missing.
        let complete = parse(&["--slack-url", "https://s.example/h", "--slack-channel", "c"]);
        assert!(complete.disabled_reason_with_env(env(&[])).is_none());
        let teams = env(&[("MSTEAMS_URL", "https://teams.example/hook")]);
        let slack_only = parse(&["--slack-url", "https://s.example/h"]);
        assert!(slack_only.disabled_reason_with_env(&teams).is_none());
        assert!(parse(&[]).disabled_reason_with_env(env(&[])).is_none());
    }
}
