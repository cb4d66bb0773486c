//! `type: concord`: start a Concord process and wait for it (blocking task).
//!
//! `POST <server>/api/v1/process` (multipart: `org`, `project`, `repo`, `entryPoint`,
//! `arguments.endpoint` and every `arguments.<k>` metadata key) with the API key read from
//! `apiKeyPath` as `Authorization`, then `GET /api/v1/process/<id>` every `pollInterval` seconds
//! (default 5) until `FINISHED` (success) or `FAILED`, for at most `pollTimeout` seconds
//! (default 30) in total. Flagger re-arms that timeout at every poll; Serin does not.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::info;

/// Errors of a concord task.
#[derive(Debug, thiserror::Error)]
pub enum ConcordError {
    /// A required metadata key is missing.
    #[error("`{0}` is required with type concord")]
    Missing(&'static str),
    /// A metadata value is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The API key file does not exist or cannot be read.
    #[error("`apiKeyPath` file cannot be read {path}: {reason}")]
    ApiKey {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// An HTTP exchange with Concord failed.
    #[error("concord request failed: {0}")]
    Http(String),
    /// The process ended in `FAILED`.
    #[error("concord instanceID: {0} failed")]
    Failed(String),
    /// `pollTimeout` (or the loadtester timeout, in seconds) expired.
    #[error("concord process timed out, after {0} seconds")]
    Timeout(u64),
}

/// A validated concord task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcordTask {
    server: reqwest::Url,
    org: String,
    project: String,
    repo: String,
    entrypoint: String,
    api_key_path: String,
    endpoint: String,
    arguments: BTreeMap<String, String>,
    poll_interval: Duration,
    poll_timeout: Duration,
}

#[derive(Debug, Deserialize)]
struct Process {
    #[serde(rename = "instanceId", default)]
    instance_id: String,
    #[serde(default)]
    status: String,
}

impl ConcordTask {
    /// Validates the metadata.
    pub fn from_metadata(md: &BTreeMap<String, String>) -> Result<Self, ConcordError> {
        let get = |k: &'static str| md.get(k).cloned().ok_or(ConcordError::Missing(k));
        let server_text = get("server")?;
        let server = reqwest::Url::parse(&server_text)
            .map_err(|e| ConcordError::Invalid(format!("invalid server URL {server_text}: {e}")))?;
        let seconds = |k: &str, default: u64| -> Result<Duration, ConcordError> {
            match md.get(k) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| ConcordError::Invalid(format!("unable to convert `{k}` to int"))),
            }
        };
        let mut arguments = BTreeMap::new();
        for (k, v) in md {
            if k == "arguments.endpoint" {
                return Err(ConcordError::Invalid(
                    "You cannot override Endpoint through arguments. You must override Endpoint directly".into(),
                ));
            }
            if let Some(name) = k.strip_prefix("arguments.") {
                arguments.insert(name.to_owned(), v.clone());
            }
        }
        let task = Self {
            server,
            org: get("org")?,
            project: get("project")?,
            repo: get("repo")?,
            entrypoint: get("entrypoint")?,
            api_key_path: get("apiKeyPath")?,
            endpoint: get("endpoint")?,
            arguments,
            poll_interval: seconds("pollInterval", 5)?.max(Duration::from_millis(100)),
            poll_timeout: seconds("pollTimeout", 30)?,
        };
        task.api_key()?;
        Ok(task)
    }

    fn api_key(&self) -> Result<String, ConcordError> {
        std::fs::read_to_string(&self.api_key_path)
            .map(|k| k.trim().to_owned())
            .map_err(|e| ConcordError::ApiKey {
                path: self.api_key_path.clone(),
                reason: e.to_string(),
            })
    }

    fn multipart(&self, boundary: &str) -> Vec<u8> {
        let mut fields: Vec<(String, &str)> = vec![
            ("org".into(), &self.org),
            ("project".into(), &self.project),
            ("repo".into(), &self.repo),
            ("entryPoint".into(), &self.entrypoint),
            ("arguments.endpoint".into(), &self.endpoint),
        ];
        for (k, v) in &self.arguments {
            fields.push((format!("arguments.{k}"), v));
        }
        let mut body = Vec::new();
        for (name, value) in fields {
            let name = name.replace('"', "%22");
            body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, ConcordError> {
        self.server
            .join(path)
            .map_err(|e| ConcordError::Invalid(format!("bad concord URL {path}: {e}")))
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Process, ConcordError> {
        let resp = req
            .header(reqwest::header::AUTHORIZATION, self.api_key()?)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| ConcordError::Http(e.to_string()))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| ConcordError::Http(e.to_string()))?;
        if !status.is_success() {
            return Err(ConcordError::Http(format!("status {status}: {text}")));
        }
        serde_json::from_str(&text)
            .map_err(|e| ConcordError::Http(format!("decoding {text:?}: {e}")))
    }

    /// Starts the process and polls it to the end.
    pub async fn run(&self, http: &reqwest::Client, canary: &str) -> Result<(), ConcordError> {
        let boundary = format!("serin-concord-{:x}", std::process::id());
        let start = self.url("/api/v1/process")?;
        info!(canary, "calling endpoint {start}");
        let process = self
            .call(
                http.post(start)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(self.multipart(&boundary)),
            )
            .await?;
        let id = process.instance_id;
        info!(canary, "created process id [{id}]");
        let deadline = Instant::now() + self.poll_timeout;
        loop {
            if Instant::now() + self.poll_interval > deadline {
                return Err(ConcordError::Timeout(self.poll_timeout.as_secs()));
            }
            tokio::time::sleep(self.poll_interval).await;
            let url = self.url(&format!("/api/v1/process/{id}"))?;
            let process = self.call(http.get(url)).await?;
            info!(
                canary,
                "process id [{id}] current status is {}", process.status
            );
            match process.status.as_str() {
                "FINISHED" => return Ok(()),
                "FAILED" => return Err(ConcordError::Failed(id)),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn metadata_validation() {
        let key = std::env::temp_dir().join(format!("serin-concord-key-{}", std::process::id()));
        std::fs::write(&key, "secret\n").unwrap();
        let key = key.to_str().unwrap().to_owned();
        let base = [
            ("server", "http://concord:8001"),
            ("org", "o"),
            ("project", "p"),
            ("repo", "r"),
            ("entrypoint", "e"),
            ("apiKeyPath", key.as_str()),
            ("endpoint", "http://x/"),
        ];
        let task = ConcordTask::from_metadata(&md(&base)).unwrap();
        assert_eq!(task.api_key().unwrap(), "secret");
        assert_eq!(task.poll_timeout, Duration::from_secs(30));
        let body = String::from_utf8(task.multipart("B")).unwrap();
        assert!(body.contains("name=\"entryPoint\"\r\n\r\ne\r\n"), "{body}");
        assert!(body.ends_with("--B--\r\n"));

        let mut m = md(&base);
        m.remove("org");
        assert_eq!(
            ConcordTask::from_metadata(&m).unwrap_err().to_string(),
            "`org` is required with type concord"
        );
        let mut m = md(&base);
        m.insert("arguments.endpoint".into(), "x".into());
        assert!(ConcordTask::from_metadata(&m).is_err());
        let mut m = md(&base);
        m.insert("pollInterval".into(), "soon".into());
        assert!(ConcordTask::from_metadata(&m).is_err());
        let mut m = md(&base);
        m.insert("apiKeyPath".into(), "/nonexistent/serin".into());
        assert!(matches!(
            ConcordTask::from_metadata(&m),
            Err(ConcordError::ApiKey { .. })
        ));
    }
}
