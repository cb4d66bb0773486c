//! The HTTP client shared by all notifiers: URL validation, proxy, the 5 s timeout, the JSON
//! POST and secret-free error messages.

use reqwest::Url;
use serde::Serialize;

use super::{NotifyError, SEND_TIMEOUT};
use crate::tls::{Alpn, Verification};

/// How much of an error response body ends up in [`NotifyError::Status`].
const MAX_ERROR_BODY: usize = 256;

/// Shows a URL without its secrets: `scheme://host[:port]/…`. Path, query, fragment and user
/// info are dropped (Slack, Teams and Discord webhook URLs carry their credentials in the path).
/// Unparseable input is not echoed at all.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or_default();
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = parsed.path() != "/"
                || parsed.query().is_some()
                || parsed.fragment().is_some()
                || !parsed.username().is_empty()
                || parsed.password().is_some();
            let tail = if hidden { "/…" } else { "/" };
            format!("{}://{host}{port}{tail}", parsed.scheme())
        }
        Err(_) => "<unparseable URL, not shown>".to_owned(),
    }
}

/// Parses a webhook URL: it must be an absolute `http` or `https` URL with a host (Flagger
/// checks `url.ParseRequestURI`; relative URLs could never be posted to, so Serin rejects them
/// when the notifier is built).
pub fn parse_webhook_url(service: &'static str, url: &str) -> Result<Url, NotifyError> {
    let invalid = |reason: String| NotifyError::InvalidUrl {
        service,
        url: redact_url(url),
        reason,
    };
    let parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http or https",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_owned()));
    }
    Ok(parsed)
}

/// A JSON-posting client for one webhook: validated URL, optional proxy (else the
/// `HTTP(S)_PROXY` environment) and bearer token, [`SEND_TIMEOUT`] per request.
#[derive(Clone)]
pub struct WebhookClient {
    service: &'static str,
    client: reqwest::Client,
    url: Url,
    token: Option<String>,
    /// Strings that must never appear in an error message.
    secrets: Vec<String>,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClient")
            .field("service", &self.service)
            .field("url", &redact_url(self.url.as_str()))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl WebhookClient {
    /// Validates `url` and `proxy` and builds the client.
    pub fn new(
        service: &'static str,
        url: Url,
        proxy: Option<&str>,
        token: Option<&str>,
    ) -> Result<Self, NotifyError> {
        let mut builder = crate::tls::http_client(Verification::Platform, Alpn::Http2OrHttp1)
            .map_err(|e| NotifyError::Client {
                service,
                reason: e.to_string(),
            })?
            .timeout(SEND_TIMEOUT)
            .connect_timeout(SEND_TIMEOUT);
        let mut secrets = vec![url.as_str().to_owned()];
        let secret_path = url.path();
        if secret_path.len() > 1 {
            secrets.push(secret_path.to_owned());
        }
        if let Some(query) = url.query().filter(|q| !q.is_empty()) {
            secrets.push(query.to_owned());
        }
        if let Some(password) = url.password() {
            secrets.push(password.to_owned());
        }
        if let Some(proxy) = proxy.filter(|p| !p.is_empty()) {
            let invalid = |reason: String| NotifyError::InvalidProxy {
                service,
                url: redact_url(proxy),
                reason,
            };
            let proxy_url = Url::parse(proxy).map_err(|e| invalid(e.to_string()))?;
            if let Some(password) = proxy_url.password() {
                secrets.push(password.to_owned());
            }
            secrets.push(proxy.to_owned());
            let p = reqwest::Proxy::all(proxy_url)
                .map_err(|e| invalid(error_chain(e.without_url())))?;
            builder = builder.proxy(p);
        }
        // Without an explicit proxy, HTTP_PROXY / HTTPS_PROXY / NO_PROXY apply, as with Go's
        // default transport in Flagger.
        let token = token.filter(|t| !t.is_empty()).map(str::to_owned);
        if let Some(t) = &token {
            secrets.push(t.clone());
        }
        let client = builder.build().map_err(|e| NotifyError::Client {
            service,
            reason: error_chain(e.without_url()),
        })?;
        Ok(WebhookClient {
            service,
            client,
            url,
            token,
            secrets,
        })
    }

    /// The service name this client posts for.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The webhook URL without secrets, for messages.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.as_str())
    }

    /// The webhook URL (a secret: do not log it).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// POSTs `body` as JSON (`Content-Type: application/json`, plus `Authorization: Bearer`
    /// when a token is set). Any 2xx answer is success.
    pub async fn post_json<T: Serialize + ?Sized>(&self, body: &T) -> Result<(), NotifyError> {
        let mut request = self.client.post(self.url.clone()).json(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| self.request_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = match response.text().await {
            Ok(text) => self.scrub(truncate(text.trim(), MAX_ERROR_BODY)),
            Err(e) => format!("(body unreadable: {})", self.request_error(e)),
        };
        Err(NotifyError::Status {
            service: self.service,
            url: redact_url(self.url.as_str()),
            status: status.as_u16(),
            body,
        })
    }

    fn request_error(&self, err: reqwest::Error) -> NotifyError {
        let url = redact_url(self.url.as_str());
        if err.is_timeout() {
            return NotifyError::Timeout {
                service: self.service,
                url,
                timeout: SEND_TIMEOUT,
            };
        }
        NotifyError::Request {
            service: self.service,
            url,
            reason: self.scrub(error_chain(err.without_url())),
        }
    }

    /// Replaces every known secret in `text`.
    fn scrub(&self, text: String) -> String {
        let mut text = text;
        // Longest first, so that a secret containing another is replaced whole.
        let mut secrets: Vec<&String> = self.secrets.iter().filter(|s| s.len() >= 4).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        text
    }
}

/// `err: source: source…`, the full cause chain on one line.
fn error_chain(err: impl std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redact_url_drops_path_query_and_credentials() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/SECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://user:pw@proxy.local:3128"),
            "http://proxy.local:3128/…"
        );
        assert_eq!(redact_url("https://chat.example/"), "https://chat.example/");
        assert_eq!(
            redact_url("https://x.example/?token=abc"),
            "https://x.example/…"
        );
        assert_eq!(
            redact_url("not a url /SECRET"),
            "<unparseable URL, not shown>"
        );
    }

    #[test]
    fn webhook_url_must_be_absolute_http() {
        assert!(parse_webhook_url("slack", "https://hooks.example/a").is_ok());
        assert!(parse_webhook_url("slack", "http://127.0.0.1:9/a").is_ok());
        for bad in [
            "",
            "/relative/path",
            "ftp://host/x",
            "hooks.example/a",
            "mailto:x@y",
        ] {
            let err = parse_webhook_url("slack", bad).unwrap_err();
            assert!(
                matches!(err, NotifyError::InvalidUrl { .. }),
                "{bad}: {err}"
            );
        }
        let err = parse_webhook_url("slack", "ftp://host/SECRET").unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn invalid_proxy_is_reported_without_credentials() {
        let url = parse_webhook_url("slack", "https://hooks.example/a").unwrap();
        let err = WebhookClient::new("slack", url, Some("::not a proxy pw"), None).unwrap_err();
        assert!(matches!(err, NotifyError::InvalidProxy { .. }), "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
