//! Alerts and notifications: Flagger's chat notifiers (Slack, Microsoft Teams, Discord,
//! Rocket.Chat, Google Chat), the global notifier built from flags, per-canary severity
//! filtering and the alert fields.
//!
//! The controller builds an [`Alert`], picks the notifiers that should receive it
//! ([`alert_accepts`] for `analysis.alerts[]`, the global notifier otherwise) and hands each one
//! to [`deliver`], which never fails and never waits longer than [`SEND_TIMEOUT`].
//!
//! Webhook URLs, proxy URLs and tokens are secrets: no error or log line produced here contains
//! them (see [`client::redact_url`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

pub mod client;
pub mod discord;
pub mod fields;
pub mod gchat;
pub mod global;
pub mod msteams;
pub mod rocket;
pub mod slack;

pub use fields::{AlertMetadata, alert_fields};
pub use gchat::GChat;
pub use global::GlobalNotifierArgs;
pub use msteams::MsTeams;
pub use slack::SlackCompatible;

/// Upper bound for one notification, connection and proxy included (Flagger: 5 s).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Default `spec.username` of an AlertProvider and of `-slack-user`.
pub const DEFAULT_USERNAME: &str = "flagger";
/// Default `spec.channel` of an AlertProvider.
pub const DEFAULT_CHANNEL: &str = "general";

/// Errors of the notify module. None of them carries a secret (URL path, query, user info or
/// token): URLs are shown as `scheme://host[:port]/…` at most.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("unknown alert severity {0:?}: expected info, warn or error")]
    InvalidSeverity(String),
    #[error(
        "unsupported alert provider type {0:?}: expected slack, msteams, discord, rocket or gchat"
    )]
    UnsupportedType(String),
    #[error("invalid {service} webhook URL {url}: {reason}")]
    InvalidUrl {
        service: &'static str,
        url: String,
        reason: String,
    },
    #[error("invalid {service} proxy URL {url}: {reason}")]
    InvalidProxy {
        service: &'static str,
        url: String,
        reason: String,
    },
    #[error("empty {0} username")]
    EmptyUsername(&'static str),
    #[error("empty {0} channel")]
    EmptyChannel(&'static str),
    #[error(
        "global Slack notifications are disabled: a Slack URL is set (--slack-url or SLACK_URL) \
         but --slack-channel is not; set --slack-channel (Helm value slack.channel) or remove \
         the URL"
    )]
    GlobalSlackWithoutChannel,
    #[error("alert provider secret does not contain an address")]
    SecretWithoutAddress,
    #[error("building the HTTP client for {service} failed: {reason}")]
    Client {
        service: &'static str,
        reason: String,
    },
    #[error("posting to {service} at {url} failed: {reason}")]
    Request {
        service: &'static str,
        url: String,
        reason: String,
    },
    #[error("posting to {service} at {url} timed out after {}s", .timeout.as_secs())]
    Timeout {
        service: &'static str,
        url: String,
        timeout: Duration,
    },
    #[error("{service} at {url} answered {status}: {body}")]
    Status {
        service: &'static str,
        url: String,
        status: u16,
        body: String,
    },
}

/// The notifier types of `AlertProvider.spec.type` (defined with the API).
pub use crate::api::alert_provider::AlertProviderKind as NotifierKind;
/// Severity of an alert and of an `analysis.alerts[]` entry (defined with the API).
pub use crate::api::analysis::AlertSeverity as Severity;

impl From<crate::api::analysis::UnknownAlertSeverity> for NotifyError {
    fn from(err: crate::api::analysis::UnknownAlertSeverity) -> Self {
        NotifyError::InvalidSeverity(err.0)
    }
}

impl From<crate::api::alert_provider::UnknownAlertProvider> for NotifyError {
    fn from(err: crate::api::alert_provider::UnknownAlertProvider) -> Self {
        NotifyError::UnsupportedType(err.0)
    }
}

/// Whether an `analysis.alerts[]` entry of severity `alert_severity` receives an alert of
/// severity `event_severity`: `info` receives everything, `warn` receives warnings and errors,
/// `error` receives errors only (Flagger's documentation; its code, `alert` in
/// `pkg/controller/events.go`, differs: see docs/compatibility.md, "Severity filter").
///
/// The global notifier ignores severity: do not filter its alerts with this function.
pub fn alert_accepts(alert_severity: Severity, event_severity: Severity) -> bool {
    match alert_severity {
        Severity::Info => true,
        Severity::Warn => matches!(event_severity, Severity::Warn | Severity::Error),
        Severity::Error => event_severity == Severity::Error,
    }
}

/// One name/value pair shown under the message (Slack attachment field, Teams fact, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
}

impl Field {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Field {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// One alert about one canary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The canary's name (Flagger passes the Canary name, not the target's).
    pub canary: String,
    pub namespace: String,
    pub message: String,
    pub fields: Vec<Field>,
    pub severity: Severity,
}

impl Alert {
    /// `<canary>.<namespace>`, the subject line of every service's message.
    pub fn subject(&self) -> String {
        format!("{}.{}", self.canary, self.namespace)
    }
}

/// A boxed, sendable future, so that [`Notifier`] stays object safe (`Arc<dyn Notifier>` works,
/// e.g. for fakes in controller tests).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A chat service that can receive alerts.
pub trait Notifier: Send + Sync {
    /// The service name used in errors and logs (`slack`, `msteams`, …).
    fn service(&self) -> &'static str;

    /// Posts one alert. Success is a 2xx answer within [`SEND_TIMEOUT`].
    fn post<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), NotifyError>>;

    /// Where alerts go, without secrets (`scheme://host[:port]/…`), for messages.
    fn redacted_url(&self) -> String {
        "<webhook>".to_owned()
    }
}

/// Everything needed to build a notifier. `Debug` hides the URL path, the proxy credentials and
/// the token.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    pub kind: NotifierKind,
    /// The webhook URL (for Slack with a token, the `chat.postMessage` API URL).
    pub url: String,
    /// Slack, Discord and Rocket.Chat channel.
    pub channel: Option<String>,
    /// Slack, Discord and Rocket.Chat bot user name.
    pub username: Option<String>,
    /// HTTP(S) proxy for the POST.
    pub proxy: Option<String>,
    /// Slack bearer token (`Authorization: Bearer <token>`); ignored by the other services.
    pub token: Option<String>,
}

impl fmt::Debug for NotifierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifierConfig")
            .field("kind", &self.kind)
            .field("url", &client::redact_url(&self.url))
            .field("channel", &self.channel)
            .field("username", &self.username)
            .field("proxy", &self.proxy.as_deref().map(client::redact_url))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The parts of an AlertProvider (and of its Secret) that [`NotifierConfig::from_alert_provider`]
/// needs. Plain values so that this module does not depend on the API types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertProviderInput<'a> {
    /// `spec.type`.
    pub kind: &'a str,
    /// `spec.address`.
    pub address: Option<&'a str>,
    /// `spec.channel`; empty or absent → `general`.
    pub channel: Option<&'a str>,
    /// `spec.username`; empty or absent → `flagger`.
    pub username: Option<&'a str>,
    /// `spec.proxy`.
    pub proxy: Option<&'a str>,
    /// `Some` when `spec.secretRef` is set: the Secret's data (`address`, `token`).
    pub secret: Option<ProviderSecret<'a>>,
}

/// The keys Flagger reads from an AlertProvider's Secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderSecret<'a> {
    /// Key `address` (required when `secretRef` is set; overrides `spec.address`).
    pub address: Option<&'a str>,
    /// Key `token` (optional; Slack bearer token).
    pub token: Option<&'a str>,
}

impl fmt::Debug for ProviderSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSecret")
            .field("address", &self.address.map(client::redact_url))
            .field("token", &self.token.map(|_| "<redacted>"))
            .finish()
    }
}

impl NotifierConfig {
    /// Applies Flagger's rules for an AlertProvider (`alert` in `pkg/controller/events.go`):
    /// the Secret's `address` overrides
    /// `spec.address` and is required when `secretRef` is set, its `token` is optional; username
    /// defaults to `flagger`, channel to `general`.
    pub fn from_alert_provider(input: &AlertProviderInput<'_>) -> Result<Self, NotifyError> {
        let kind = NotifierKind::from_str(input.kind)?;
        let (url, token) = match &input.secret {
            Some(secret) => {
                let address = secret
                    .address
                    .filter(|a| !a.is_empty())
                    .ok_or(NotifyError::SecretWithoutAddress)?;
                (
                    address.to_owned(),
                    secret.token.filter(|t| !t.is_empty()).map(str::to_owned),
                )
            }
            None => (input.address.unwrap_or_default().to_owned(), None),
        };
        let non_empty = |v: Option<&str>, default: &str| {
            v.filter(|s| !s.is_empty()).unwrap_or(default).to_owned()
        };
        Ok(NotifierConfig {
            kind,
            url,
            channel: Some(non_empty(input.channel, DEFAULT_CHANNEL)),
            username: Some(non_empty(input.username, DEFAULT_USERNAME)),
            proxy: input.proxy.filter(|p| !p.is_empty()).map(str::to_owned),
            token,
        })
    }
}

/// A notifier of any supported service (enum dispatch; implements [`Notifier`]).
#[derive(Debug, Clone)]
pub enum AnyNotifier {
    /// Slack, Discord and Rocket.Chat (Slack's body; see [`SlackCompatible`]).
    SlackCompatible(SlackCompatible),
    MsTeams(MsTeams),
    GChat(GChat),
}

/// Builds the notifier described by `config`, validating URL, proxy, username and channel as
/// Flagger does. This is the one place that maps a [`NotifierKind`] to an implementation.
pub fn build(config: &NotifierConfig) -> Result<AnyNotifier, NotifyError> {
    let username = config.username.as_deref().unwrap_or_default();
    let channel = config.channel.as_deref().unwrap_or_default();
    let proxy = config.proxy.as_deref();
    let url = &config.url;
    Ok(match config.kind {
        NotifierKind::Slack => AnyNotifier::SlackCompatible(SlackCompatible::slack(
            url,
            proxy,
            username,
            channel,
            config.token.as_deref(),
        )?),
        NotifierKind::Discord => {
            AnyNotifier::SlackCompatible(SlackCompatible::discord(url, proxy, username, channel)?)
        }
        NotifierKind::Rocket => {
            AnyNotifier::SlackCompatible(SlackCompatible::rocket(url, proxy, username, channel)?)
        }
        NotifierKind::MsTeams => AnyNotifier::MsTeams(MsTeams::new(url, proxy)?),
        NotifierKind::GChat => AnyNotifier::GChat(GChat::new(url, proxy)?),
    })
}

impl Notifier for AnyNotifier {
    fn service(&self) -> &'static str {
        match self {
            AnyNotifier::SlackCompatible(n) => n.service(),
            AnyNotifier::MsTeams(n) => n.service(),
            AnyNotifier::GChat(n) => n.service(),
        }
    }

    fn post<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), NotifyError>> {
        match self {
            AnyNotifier::SlackCompatible(n) => n.post(alert),
            AnyNotifier::MsTeams(n) => n.post(alert),
            AnyNotifier::GChat(n) => n.post(alert),
        }
    }

    fn redacted_url(&self) -> String {
        match self {
            AnyNotifier::SlackCompatible(n) => n.redacted_url(),
            AnyNotifier::MsTeams(n) => n.redacted_url(),
            AnyNotifier::GChat(n) => n.redacted_url(),
        }
    }
}

/// Where a notifier came from; chooses Flagger's log message on failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertOrigin {
    /// The notifier built from `-slack-*` / `-msteams-*` flags.
    Global,
    /// An AlertProvider referenced by `analysis.alerts[].providerRef`.
    Provider { name: String, namespace: String },
}

/// Sends `alert` and swallows the outcome: waits at most [`SEND_TIMEOUT`], logs failures at
/// error level with field `canary = <canary>.<ns>` (`alert provider <name>.<ns> send error:
/// <err>` for providers, `alert can't be sent: <err>` for the global notifier) and returns
/// whether the alert was delivered. A failing notifier never blocks or fails a rollout.
pub async fn deliver(notifier: &dyn Notifier, alert: &Alert, origin: &AlertOrigin) -> bool {
    let result = match tokio::time::timeout(SEND_TIMEOUT, notifier.post(alert)).await {
        Ok(result) => result,
        Err(_) => Err(NotifyError::Timeout {
            service: notifier.service(),
            url: notifier.redacted_url(),
            timeout: SEND_TIMEOUT,
        }),
    };
    match result {
        Ok(()) => true,
        Err(err) => {
            let canary = alert.subject();
            match origin {
                AlertOrigin::Global => {
                    tracing::error!(canary = %canary, "alert can't be sent: {err}");
                }
                AlertOrigin::Provider { name, namespace } => {
                    tracing::error!(
                        canary = %canary,
                        "alert provider {name}.{namespace} send error: {err}"
                    );
                }
            }
            false
        }
    }
}

/// Like [`deliver`] but on a spawned task, so the caller does not wait at all. Needs a Tokio
/// runtime. The returned handle resolves to whether the alert was delivered.
pub fn spawn_deliver<N>(
    notifier: N,
    alert: Alert,
    origin: AlertOrigin,
) -> tokio::task::JoinHandle<bool>
where
    N: Notifier + 'static,
{
    tokio::spawn(async move { deliver(&notifier, &alert, &origin).await })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn severity_parses_flagger_spellings_and_empty_is_info() {
        assert_eq!("".parse::<Severity>().unwrap(), Severity::Info);
        assert_eq!("info".parse::<Severity>().unwrap(), Severity::Info);
        assert_eq!("warn".parse::<Severity>().unwrap(), Severity::Warn);
        assert_eq!("error".parse::<Severity>().unwrap(), Severity::Error);
        let err = "warning".parse::<Severity>().unwrap_err();
        assert!(err.to_string().contains("\"warning\""), "{err}");
    }

    #[test]
    fn severity_filter_matches_flagger_semantics() {
        use Severity::*;
        let table = [
            (Info, Info, true),
            (Info, Warn, true),
            (Info, Error, true),
            (Warn, Info, false),
            (Warn, Warn, true),
            (Warn, Error, true),
            (Error, Info, false),
            (Error, Warn, false),
            (Error, Error, true),
        ];
        for (alert, event, want) in table {
            assert_eq!(
                alert_accepts(alert, event),
                want,
                "alert {alert} event {event}"
            );
        }
        // Quirk 1 fixed: an alert without severity behaves as info.
        let empty: Severity = "".parse().unwrap();
        assert!(alert_accepts(empty, Severity::Info));
    }

    #[test]
    fn notifier_kind_accepts_alert_provider_types() {
        for (text, kind) in [
            ("slack", NotifierKind::Slack),
            ("msteams", NotifierKind::MsTeams),
            ("discord", NotifierKind::Discord),
            ("rocket", NotifierKind::Rocket),
            ("gchat", NotifierKind::GChat),
        ] {
            assert_eq!(text.parse::<NotifierKind>().unwrap(), kind);
            assert_eq!(kind.as_str(), text);
        }
        assert!(matches!(
            "generic".parse::<NotifierKind>().map_err(NotifyError::from),
            Err(NotifyError::UnsupportedType(t)) if t == "generic"
        ));
    }

    #[test]
    fn provider_defaults_and_secret_override() {
        let input = AlertProviderInput {
            kind: "slack",
            address: Some("https://hooks.example/spec"),
            ..Default::default()
        };
        let cfg = NotifierConfig::from_alert_provider(&input).unwrap();
        assert_eq!(cfg.url, "https://hooks.example/spec");
        assert_eq!(cfg.username.as_deref(), Some("flagger"));
        assert_eq!(cfg.channel.as_deref(), Some("general"));
        assert_eq!(cfg.proxy, None);
        assert_eq!(cfg.token, None);

        let input = AlertProviderInput {
            kind: "slack",
            address: Some("https://hooks.example/spec"),
            channel: Some("on-call"),
            username: Some(""),
            proxy: Some("http://proxy:3128"),
            secret: Some(ProviderSecret {
                address: Some("https://hooks.example/from-secret"),
                token: Some("xoxb-1"),
            }),
        };
        let cfg = NotifierConfig::from_alert_provider(&input).unwrap();
        assert_eq!(cfg.url, "https://hooks.example/from-secret");
        assert_eq!(cfg.token.as_deref(), Some("xoxb-1"));
        assert_eq!(cfg.channel.as_deref(), Some("on-call"));
        assert_eq!(cfg.username.as_deref(), Some("flagger"));
        assert_eq!(cfg.proxy.as_deref(), Some("http://proxy:3128"));

        let input = AlertProviderInput {
            kind: "msteams",
            address: Some("https://hooks.example/spec"),
            secret: Some(ProviderSecret {
                address: None,
                token: Some("t"),
            }),
            ..Default::default()
        };
        assert!(matches!(
            NotifierConfig::from_alert_provider(&input),
            Err(NotifyError::SecretWithoutAddress)
        ));
    }

    #[test]
    fn config_debug_hides_secrets() {
        let cfg = NotifierConfig {
            kind: NotifierKind::Slack,
            url: "https://hooks.slack.com/services/T000/B000/XXXXSECRET".into(),
            channel: Some("general".into()),
            username: Some("flagger".into()),
            proxy: Some("http://user:proxypass@proxy:3128".into()),
            token: Some("xoxb-secret-token".into()),
        };
        let text = format!("{cfg:?}");
        assert!(!text.contains("XXXXSECRET"), "{text}");
        assert!(!text.contains("proxypass"), "{text}");
        assert!(!text.contains("xoxb-secret-token"), "{text}");
        assert!(text.contains("hooks.slack.com"), "{text}");
    }

    /// A fake service, as controller tests would write one.
    struct Fake {
        fail: bool,
        seen: std::sync::Mutex<Vec<String>>,
    }

    impl Notifier for Fake {
        fn service(&self) -> &'static str {
            "fake"
        }

        fn post<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), NotifyError>> {
            Box::pin(async move {
                self.seen.lock().unwrap().push(alert.message.clone());
                if self.fail {
                    Err(NotifyError::Status {
                        service: "fake",
                        url: self.redacted_url(),
                        status: 503,
                        body: "down".into(),
                    })
                } else {
                    Ok(())
                }
            })
        }
    }

    #[tokio::test]
    async fn deliver_reports_outcome_through_trait_objects() {
        let alert = Alert {
            canary: "podinfo".into(),
            namespace: "test".into(),
            message: "Canary is waiting for approval.".into(),
            fields: Vec::new(),
            severity: Severity::Warn,
        };
        let ok: std::sync::Arc<dyn Notifier> = std::sync::Arc::new(Fake {
            fail: false,
            seen: Default::default(),
        });
        let failing = Fake {
            fail: true,
            seen: Default::default(),
        };
        assert!(deliver(ok.as_ref(), &alert, &AlertOrigin::Global).await);
        let origin = AlertOrigin::Provider {
            name: "p".into(),
            namespace: "ns".into(),
        };
        assert!(!deliver(&failing, &alert, &origin).await);
        assert_eq!(failing.seen.lock().unwrap().len(), 1);
        assert_eq!(failing.redacted_url(), "<webhook>");
    }

    #[test]
    fn build_validates_like_flagger() {
        let mut cfg = NotifierConfig {
            kind: NotifierKind::Slack,
            url: "https://hooks.example/x".into(),
            channel: Some("general".into()),
            username: Some(String::new()),
            proxy: None,
            token: None,
        };
        assert!(matches!(
            build(&cfg),
            Err(NotifyError::EmptyUsername("slack"))
        ));
        cfg.username = Some("flagger".into());
        cfg.channel = None;
        assert!(matches!(
            build(&cfg),
            Err(NotifyError::EmptyChannel("slack"))
        ));
        cfg.channel = Some("general".into());
        assert!(
            matches!(build(&cfg), Ok(AnyNotifier::SlackCompatible(n)) if n.service() == "slack")
        );
        cfg.url = "not a url".into();
        assert!(matches!(build(&cfg), Err(NotifyError::InvalidUrl { .. })));

        // Teams and Google Chat need neither channel nor username.
        for kind in [NotifierKind::MsTeams, NotifierKind::GChat] {
            let cfg = NotifierConfig {
                kind,
                url: "https://hooks.example/x".into(),
                channel: None,
                username: None,
                proxy: None,
                token: None,
            };
            let n = build(&cfg).unwrap();
            assert_eq!(n.service(), kind.as_str());
        }
        for kind in [NotifierKind::Discord, NotifierKind::Rocket] {
            let cfg = NotifierConfig {
                kind,
                url: "https://hooks.example/x".into(),
                channel: None,
                username: Some("flagger".into()),
                proxy: None,
                token: None,
            };
            assert!(matches!(build(&cfg), Err(NotifyError::EmptyChannel(_))));
        }
    }
}
