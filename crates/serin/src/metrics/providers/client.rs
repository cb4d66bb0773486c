//! The HTTP client shared by the backends: timeouts, TLS options, and errors that never carry
//! the request URL (which may hold credentials or API keys).

use std::error::Error as _;
use std::time::Duration;

use super::ProviderError;
use crate::api::duration;
use crate::tls::{Alpn, Verification};

/// Default request timeout of the HTTP backends (Flagger: 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest response body quoted in an error message.
const MAX_BODY_IN_ERROR: usize = 512;

/// A reqwest client with the given timeout; `insecure` disables certificate verification.
pub fn http_client(timeout: Duration, insecure: bool) -> Result<reqwest::Client, ProviderError> {
    let verification = if insecure {
        Verification::AcceptAny
    } else {
        Verification::Platform
    };
    crate::tls::http_client(verification, Alpn::Http2OrHttp1)
        .map_err(|e| ProviderError::Config(format!("building HTTP client: {e}")))?
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| ProviderError::Config(format!("building HTTP client: {}", error_chain(&e))))
}

/// Sends a request; returns the status and body. Transport failures become
/// [`ProviderError::Request`] / [`ProviderError::Timeout`] without the URL.
pub async fn send(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(u16, String), ProviderError> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(e, timeout))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| transport_error(e, timeout))?;
    Ok((status, body))
}

/// Sends a request and fails on HTTP status ≥ 400 with the (shortened) body.
pub async fn send_ok(
    backend: &'static str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<String, ProviderError> {
    let (status, body) = send(request, timeout).await?;
    if status >= 400 {
        return Err(http_error(backend, status, &body));
    }
    Ok(body)
}

pub fn http_error(backend: &'static str, status: u16, body: &str) -> ProviderError {
    ProviderError::Http {
        backend,
        status,
        body: shorten(body.trim()),
    }
}

fn shorten(body: &str) -> String {
    if body.len() <= MAX_BODY_IN_ERROR {
        return body.to_string();
    }
    let mut end = MAX_BODY_IN_ERROR;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

fn transport_error(err: reqwest::Error, timeout: Duration) -> ProviderError {
    if err.is_timeout() {
        return ProviderError::Timeout(duration::format(timeout));
    }
    ProviderError::Request(error_chain(&err.without_url()))
}

/// `err: source: source…` (reqwest's own Display says only "error sending request").
pub fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Parses a URL, reporting the problem without echoing the URL (it may hold user info).
pub fn parse_url(kind: &str, address: &str) -> Result<reqwest::Url, ProviderError> {
    let url = reqwest::Url::parse(address)
        .map_err(|e| ProviderError::Config(format!("{kind}: invalid address: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ProviderError::Config(format!(
            "{kind}: invalid address: scheme must be http or https, got {:?}",
            url.scheme()
        )));
    }
    Ok(url)
}

/// `base` with `suffix` appended to its path (Go's `path.Join(base.Path, suffix)`).
pub fn join_path(base: &reqwest::Url, suffix: &str) -> reqwest::Url {
    let mut url = base.clone();
    let path = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        suffix.trim_start_matches('/')
    );
    url.set_path(&path);
    url.set_query(None);
    url
}

/// Current Unix time in seconds.
pub fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
