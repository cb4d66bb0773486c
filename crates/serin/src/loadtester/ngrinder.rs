//! `type: ngrinder`: clone and start an nGrinder test and follow it (background task).
//!
//! `POST <server>perftest/api/<clone>/clone_and_start` (basic auth) returns the new test id;
//! `GET perftest/api/<id>/status` is polled every `pollInterval` (Go duration, default 1s) until
//! `FINISHED` (success) or `STOP_BY_ERROR`/`CANCELED`/`UNKNOWN` (failure). When the loadtester
//! timeout expires the test is stopped with `PUT perftest/api/<id>?action=stop`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use tracing::{debug, warn};

use crate::loadtester::parse_go_duration;

/// Errors of an ngrinder task.
#[derive(Debug, thiserror::Error)]
pub enum NgrinderError {
    /// Required metadata missing.
    #[error("server, clone, username and passwd are required metadata")]
    Missing,
    /// A metadata value is invalid.
    #[error("{0}")]
    Invalid(String),
    /// An HTTP exchange failed.
    #[error("request failed: {0}")]
    Http(String),
    /// The test ended badly.
    #[error("ngrinder test {id} ended with status {status}")]
    Failed {
        /// Test id.
        id: i64,
        /// Final status.
        status: String,
    },
    /// The loadtester timeout expired (the test was asked to stop).
    #[error("ngrinder test {0} stopped after the timeout")]
    Timeout(i64),
}

/// A validated ngrinder task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgrinderTask {
    server: reqwest::Url,
    /// Template test to clone (also the dedup key with the canary).
    pub clone_id: i64,
    username: String,
    password: String,
    poll_interval: Duration,
}

impl NgrinderTask {
    /// Validates the metadata.
    pub fn from_metadata(md: &BTreeMap<String, String>) -> Result<Self, NgrinderError> {
        let get = |k: &str| {
            md.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or(NgrinderError::Missing)
        };
        let server = get("server")?;
        let clone = get("clone")?;
        let username = get("username")?;
        let passwd = get("passwd")?;
        let server = reqwest::Url::parse(&server)
            .map_err(|e| NgrinderError::Invalid(format!("invalid url: {server}: {e}")))?;
        let clone_id = clone
            .parse::<i64>()
            .map_err(|e| NgrinderError::Invalid(format!("metadata clone must be integer: {e}")))?;
        let password = base64::engine::general_purpose::STANDARD
            .decode(passwd.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                NgrinderError::Invalid("metadata password is invalid: not base64".into())
            })?;
        let poll_interval = md
            .get("pollInterval")
            .and_then(|v| parse_go_duration(v).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1));
        Ok(Self {
            server,
            clone_id,
            username,
            password,
            poll_interval,
        })
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, NgrinderError> {
        self.server
            .join(path)
            .map_err(|e| NgrinderError::Invalid(format!("bad URL {path}: {e}")))
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> Result<Value, NgrinderError> {
        let url = self.url(path)?;
        debug!("send {method} request to {url}");
        let resp = http
            .request(method, url)
            .basic_auth(&self.username, Some(&self.password))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| NgrinderError::Http(e.to_string()))?;
        let text = resp
            .text()
            .await
            .map_err(|e| NgrinderError::Http(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            NgrinderError::Http(format!("json unmarshalling failed: {e} for {text}"))
        })?;
        if value.get("success") == Some(&Value::Bool(false)) {
            return Err(NgrinderError::Http(text));
        }
        Ok(value)
    }

    /// Clones and starts the test, then follows it until it ends or `timeout` expires.
    pub async fn run(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
        canary: &str,
    ) -> Result<(), NgrinderError> {
        let started = self
            .request(
                http,
                reqwest::Method::POST,
                &format!("perftest/api/{}/clone_and_start", self.clone_id),
            )
            .await?;
        let id = started
            .get("id")
            .and_then(Value::as_f64)
            .map(|f| f as i64)
            .ok_or_else(|| NgrinderError::Http(format!("no test id in {started}")))?;
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now + self.poll_interval >= deadline {
                tokio::time::sleep(deadline.saturating_duration_since(now)).await;
                warn!(canary, "timeout, stopping ngrinder task {id} forcibly");
                // Best effort: the test is stopped if the server still answers.
                let _ = self
                    .request(
                        http,
                        reqwest::Method::PUT,
                        &format!("perftest/api/{id}?action=stop"),
                    )
                    .await;
                return Err(NgrinderError::Timeout(id));
            }
            tokio::time::sleep(self.poll_interval).await;
            let Ok(status) = self
                .request(
                    http,
                    reqwest::Method::GET,
                    &format!("perftest/api/{id}/status"),
                )
                .await
            else {
                continue;
            };
            let status_id = status
                .get("status")
                .and_then(|s| s.get(0))
                .and_then(|s| s.get("status_id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            debug!(canary, "status of ngrinder task {id} is {status_id}");
            match status_id.as_str() {
                "FINISHED" => return Ok(()),
                "STOP_BY_ERROR" | "CANCELED" | "UNKNOWN" => {
                    return Err(NgrinderError::Failed {
                        id,
                        status: status_id,
                    });
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metadata_validation() {
        let md: BTreeMap<String, String> = [
            ("server", "http://ngrinder:8080/"),
            ("clone", "12"),
            ("username", "admin"),
            ("passwd", "YWRtaW4="),
            ("pollInterval", "2s"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let t = NgrinderTask::from_metadata(&md).unwrap();
        assert_eq!(
            (t.clone_id, t.password.as_str(), t.poll_interval),
            (12, "admin", Duration::from_secs(2))
        );
        assert_eq!(
            t.url("perftest/api/12/clone_and_start").unwrap().as_str(),
            "http://ngrinder:8080/perftest/api/12/clone_and_start"
        );
        let mut bad = md.clone();
        bad.insert("clone".into(), "x".into());
        assert!(NgrinderTask::from_metadata(&bad).is_err());
        let mut bad = md.clone();
        bad.remove("username");
        assert_eq!(
            NgrinderTask::from_metadata(&bad).unwrap_err().to_string(),
            "server, clone, username and passwd are required metadata"
        );
    }
}
