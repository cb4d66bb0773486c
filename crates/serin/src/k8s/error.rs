//! Kubernetes API errors in words.
//!
//! kube-rs prints an API error as `ApiError: <message> (Status { status: Some(Failure), code:
//! 500, ... })`, a Rust debug dump that ends up in events, logs and notifications. [`describe`]
//! says the same in one line: the HTTP status, the server's reason and its message; callers put
//! what failed on which object in front (`VirtualService podinfo.test get query error: ...`).
//! [`is_transient`] tells the errors worth retrying (server-side and network failures) from the
//! ones that are answers (not found, forbidden, invalid). [`category`] sorts an error into one of
//! a few stable kinds, the label of the reconcile-failure metric (docs/observability.md).

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// An API error in words (the [`fmt::Display`] of [`describe`]).
pub struct Described<'a>(pub &'a kube::Error);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            kube::Error::Api(status) => {
                let code = status.code;
                write!(f, "the API server answered HTTP {code}")?;
                if let Some(text) = http::StatusCode::from_u16(code)
                    .ok()
                    .and_then(|c| c.canonical_reason())
                {
                    write!(f, " {text}")?;
                }
                let reason = status.reason.trim();
                if !reason.is_empty() && !reason.eq_ignore_ascii_case("unknown") {
                    write!(f, " ({reason})")?;
                }
                let message = status.message.trim();
                if message.is_empty() {
                    Ok(())
                } else {
                    write!(f, ": {message}")
                }
            }
            kube::Error::HyperError(e) => write!(f, "cannot reach the API server: {e}"),
            kube::Error::Service(e) => write!(f, "cannot reach the API server: {e}"),
            kube::Error::ReadEvents(e) => {
                write!(f, "the API server's stream broke off: {e}")
            }
            kube::Error::SerdeError(e) => {
                write!(f, "cannot decode the API server's answer: {e}")
            }
            kube::Error::FromUtf8(e) => {
                write!(f, "the API server's answer is not UTF-8: {e}")
            }
            other => write!(f, "{other}"),
        }
    }
}

/// `err` in words, e.g. `the API server answered HTTP 500 Internal Server Error
/// (InternalError): etcdserver: request timed out`.
pub fn describe(err: &kube::Error) -> Described<'_> {
    Described(err)
}

/// Whether trying the same request again may succeed: a 5xx or 429 answer, or no answer at
/// all (connection refused or reset, timeout, broken stream).
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// The HTTP status of an API answer, if the server answered.
pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The error `api.get(name)` returns for a missing object (404 `NotFound`, message as
/// kube-apiserver words it: `deployments.apps "podinfo" not found`), for reads answered from a
/// cache that found nothing, so that callers and their texts stay the same.
pub fn not_found<K: kube::Resource>(dyntype: &K::DynamicType, name: &str) -> kube::Error {
    not_found_in(&K::group(dyntype), &K::plural(dyntype), name)
}

/// [`not_found`] for a kind known by its API group and plural.
pub fn not_found_in(group: &str, plural: &str, name: &str) -> kube::Error {
    let resource = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    let message = format!("{resource} \"{name}\" not found");
    kube::Error::Api(
        kube::core::Status::failure(&message, "NotFound")
            .with_code(404)
            .boxed(),
    )
}

/// What kind of failure an API error is: a small, stable set, used as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// HTTP 404 or 410: the object (or the resource) is not there.
    NotFound,
    /// HTTP 409: someone else wrote first (optimistic concurrency) or the object exists.
    Conflict,
    /// HTTP 401 or 403, or no usable credentials.
    Forbidden,
    /// Any other 4xx but 429: the server refused the request as written.
    Invalid,
    /// HTTP 429 or 5xx (or another status the server should not send).
    Server,
    /// No answer: connection refused or reset, timeout, TLS, a broken stream, a request that
    /// could not be built or sent.
    Transport,
    /// An answer that could not be read (not JSON of the expected shape, not UTF-8).
    Decode,
}

impl Category {
    /// The metric label: `not-found`, `conflict`, `forbidden`, `invalid`, `server`,
    /// `transport` or `decode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::NotFound => "not-found",
            Category::Conflict => "conflict",
            Category::Forbidden => "forbidden",
            Category::Invalid => "invalid",
            Category::Server => "server",
            Category::Transport => "transport",
            Category::Decode => "decode",
        }
    }

    /// The category of an HTTP status the API server answered with.
    pub fn of_status(code: u16) -> Self {
        match code {
            404 | 410 => Category::NotFound,
            409 => Category::Conflict,
            401 | 403 => Category::Forbidden,
            429 => Category::Server,
            400..=499 => Category::Invalid,
            _ => Category::Server,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The [`Category`] of `err`.
pub fn category(err: &kube::Error) -> Category {
    match err {
        kube::Error::Api(status) => Category::of_status(status.code),
        kube::Error::SerdeError(_)
        | kube::Error::FromUtf8(_)
        | kube::Error::LinesCodecMaxLineLengthExceeded => Category::Decode,
        kube::Error::Auth(_) => Category::Forbidden,
        // Everything else failed before or without an answer: connection, TLS, proxy, stream,
        // request building, configuration.
        _ => Category::Transport,
    }
}

/// Pauses between the attempts of a read of Serin's own inputs (MetricTemplate, AlertProvider,
/// Secret): four attempts within about 1.3 s, short enough to stay inside one analysis step.
pub const READ_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_millis(900),
];

/// Runs `op` until it succeeds, fails with an error that is not [transient](is_transient), or
/// has failed transiently once more than there are `delays` (pausing `delays[i]` after the
/// i-th failure). Returns the last error.
pub async fn retry_transient<T, F, Fut>(delays: &[Duration], mut op: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut pauses = delays.iter();
    loop {
        match op().await {
            Err(e) if is_transient(&e) => match pauses.next() {
                Some(pause) => tokio::time::sleep(*pause).await,
                None => return Err(e),
            },
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn transient_failures_are_retried_a_bounded_number_of_times() {
        let delays = [Duration::from_millis(1); 3];
        // Two 503s, then an answer.
        let calls = AtomicUsize::new(0);
        let result = retry_transient(&delays, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(api(503, "ServiceUnavailable", "")),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // Always 500: one attempt per delay plus the first, then the last error.
        let calls = AtomicUsize::new(0);
        let result: Result<(), _> = retry_transient(&delays, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(api(500, "InternalError", "boom"))
        })
        .await;
        assert_eq!(result.err().and_then(|e| status_code(&e)), Some(500));
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // A 404 is an answer: no retry.
        let calls = AtomicUsize::new(0);
        let result: Result<(), _> = retry_transient(&delays, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(api(404, "NotFound", "gone"))
        })
        .await;
        assert_eq!(result.err().and_then(|e| status_code(&e)), Some(404));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        let mut status = kube::core::Status::failure(message, reason);
        status.code = code;
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn api_errors_are_said_in_words() {
        let err = api(500, "InternalError", "injected fault: internal error");
        let text = describe(&err).to_string();
        assert_eq!(
            text,
            "the API server answered HTTP 500 Internal Server Error (InternalError): injected fault: internal error"
        );
        assert!(!text.contains("Status {"), "{text}");
        assert!(!text.contains("Some("), "{text}");
        assert_eq!(
            describe(&api(
                404,
                "NotFound",
                "metrictemplates.flagger.app \"latency\" not found"
            ))
            .to_string(),
            "the API server answered HTTP 404 Not Found (NotFound): metrictemplates.flagger.app \"latency\" not found"
        );
        assert_eq!(
            describe(&api(599, "", "")).to_string(),
            "the API server answered HTTP 599"
        );
        // kube-rs's own text is the debug dump this replaces.
        assert!(err.to_string().contains("Status {"));
    }

    #[test]
    fn a_missing_object_reads_like_the_api_servers_404() {
        use k8s_openapi::api::apps::v1::Deployment;
        use k8s_openapi::api::core::v1::Service;
        assert_eq!(
            describe(&not_found::<Deployment>(&(), "podinfo")).to_string(),
            "the API server answered HTTP 404 Not Found (NotFound): deployments.apps \"podinfo\" not found"
        );
        assert_eq!(
            describe(&not_found::<Service>(&(), "podinfo")).to_string(),
            "the API server answered HTTP 404 Not Found (NotFound): services \"podinfo\" not found"
        );
        assert_eq!(status_code(&not_found::<Service>(&(), "x")), Some(404));
    }

    #[test]
    fn a_missing_object_reads_like_the_servers_answer() {
        assert_eq!(
            describe(&not_found_in(
                "networking.istio.io",
                "virtualservices",
                "podinfo"
            ))
            .to_string(),
            "the API server answered HTTP 404 Not Found (NotFound): virtualservices.networking.istio.io \"podinfo\" not found"
        );
        assert_eq!(
            describe(&not_found_in("", "services", "podinfo")).to_string(),
            describe(&api(404, "NotFound", "services \"podinfo\" not found")).to_string()
        );
        assert_eq!(status_code(&not_found_in("", "services", "x")), Some(404));
    }

    #[test]
    fn decoding_errors_name_what_failed() {
        let Err(serde) = serde_json::from_str::<u8>("\"x\"") else {
            panic!("a string is not a u8");
        };
        let text = describe(&kube::Error::SerdeError(serde)).to_string();
        assert!(
            text.starts_with("cannot decode the API server's answer: invalid type"),
            "{text}"
        );
    }

    #[test]
    fn categories_of_api_errors() {
        let cases = [
            (404, Category::NotFound, "not-found"),
            (410, Category::NotFound, "not-found"),
            (409, Category::Conflict, "conflict"),
            (401, Category::Forbidden, "forbidden"),
            (403, Category::Forbidden, "forbidden"),
            (400, Category::Invalid, "invalid"),
            (422, Category::Invalid, "invalid"),
            (415, Category::Invalid, "invalid"),
            (429, Category::Server, "server"),
            (500, Category::Server, "server"),
            (503, Category::Server, "server"),
            (504, Category::Server, "server"),
        ];
        for (code, want, label) in cases {
            let got = category(&api(code, "", ""));
            assert_eq!(got, want, "HTTP {code}");
            assert_eq!(got.as_str(), label, "HTTP {code}");
            assert_eq!(got.to_string(), label, "HTTP {code}");
        }
    }

    #[test]
    fn categories_of_failures_without_an_answer() {
        assert_eq!(
            category(&kube::Error::Service("connection refused".into())),
            Category::Transport
        );
        assert_eq!(
            category(&kube::Error::ReadEvents(std::io::Error::other("reset"))),
            Category::Transport
        );
        assert_eq!(category(&kube::Error::TlsRequired), Category::Transport);
        let Err(serde) = serde_json::from_str::<u8>("\"x\"") else {
            panic!("a string is not a u8");
        };
        assert_eq!(category(&kube::Error::SerdeError(serde)), Category::Decode);
        assert_eq!(
            category(&kube::Error::LinesCodecMaxLineLengthExceeded),
            Category::Decode
        );
        assert_eq!(Category::Transport.as_str(), "transport");
        assert_eq!(Category::Decode.as_str(), "decode");
    }

    #[test]
    fn transient_errors() {
        assert!(is_transient(&api(500, "InternalError", "")));
        assert!(is_transient(&api(503, "ServiceUnavailable", "")));
        assert!(is_transient(&api(429, "TooManyRequests", "")));
        assert!(!is_transient(&api(404, "NotFound", "")));
        assert!(!is_transient(&api(403, "Forbidden", "")));
        assert!(!is_transient(&api(409, "Conflict", "")));
        assert!(is_transient(&kube::Error::Service(
            "connection refused".into()
        )));
        assert_eq!(status_code(&api(503, "", "")), Some(503));
        assert_eq!(status_code(&kube::Error::Service("x".into())), None);
    }
}
