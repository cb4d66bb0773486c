//! Google Cloud Monitoring (Stackdriver): MQL through
//! `POST <address>/v3/projects/<project>/timeSeries:query` with `{"query": …}`; the value is
//! `timeSeriesData[0].pointData[0].values[0]` (`doubleValue`, or `int64Value`).
//!
//! The Secret must hold `project`. Authentication:
//! * `serviceAccountKey` (a service-account JSON key): an OAuth access token is obtained with
//!   the JWT-bearer grant (RS256 JWT signed with the key, sent to the key's `token_uri`);
//! * otherwise the GCE/GKE metadata server (Workload Identity):
//!   `http://<GCE_METADATA_HOST or metadata.google.internal>/computeMetadata/v1/instance/service-accounts/default/token`.
//!
//! Availability: an empty query answers 200 or 400 (`InvalidArgument` proves the endpoint and the
//! token were accepted).

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::client::{self, DEFAULT_TIMEOUT};
use super::{MetricsProvider, ProviderEnv, ProviderError, optional_key, required_key};
use crate::api::metric_template::MetricTemplateProvider;

const KIND: &str = "stackdriver";
pub const DEFAULT_ADDRESS: &str = "https://monitoring.googleapis.com";
pub const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.read";
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

/// The fields of a service-account key Serin uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub token_uri: Option<String>,
}

enum TokenSource {
    ServiceAccount {
        email: String,
        key: Box<ring::signature::RsaKeyPair>,
        token_uri: String,
    },
    Metadata {
        url: String,
    },
}

pub struct StackdriverProvider {
    http: reqwest::Client,
    query_url: reqwest::Url,
    source: TokenSource,
    token: Mutex<Option<String>>,
}

impl StackdriverProvider {
    pub fn new(
        provider: &MetricTemplateProvider,
        env: &ProviderEnv,
    ) -> Result<Self, ProviderError> {
        let creds = env.credentials.as_ref();
        let project = required_key(KIND, creds, "project")?;
        let base = client::parse_url(KIND, &super::address_or(provider, DEFAULT_ADDRESS))?;
        let source = match optional_key(creds, "serviceAccountKey") {
            Some(json) => {
                let key: ServiceAccountKey = serde_json::from_str(&json).map_err(|e| {
                    ProviderError::Config(format!(
                        "stackdriver: serviceAccountKey is not a service-account JSON key: {e}"
                    ))
                })?;
                TokenSource::ServiceAccount {
                    email: key.client_email,
                    key: Box::new(parse_pkcs8_pem(&key.private_key)?),
                    token_uri: key
                        .token_uri
                        .filter(|u| !u.is_empty())
                        .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string()),
                }
            }
            None => {
                let host = std::env::var("GCE_METADATA_HOST")
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| DEFAULT_METADATA_HOST.to_string());
                TokenSource::Metadata {
                    url: format!(
                        "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
                    ),
                }
            }
        };
        Ok(Self {
            http: client::http_client(DEFAULT_TIMEOUT, provider.insecure_skip_verify())?,
            query_url: client::join_path(&base, &format!("v3/projects/{project}/timeSeries:query")),
            source,
            token: Mutex::new(None),
        })
    }

    async fn access_token(&self) -> Result<String, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let request = match &self.source {
            TokenSource::ServiceAccount {
                email,
                key,
                token_uri,
            } => {
                let now = client::unix_now().as_secs();
                let assertion = signed_jwt(key, email, token_uri, now)?;
                self.http.post(token_uri.as_str()).form(&[
                    ("grant_type", JWT_BEARER_GRANT),
                    ("assertion", assertion.as_str()),
                ])
            }
            TokenSource::Metadata { url } => self
                .http
                .get(url.as_str())
                .header("Metadata-Flavor", "Google"),
        };
        let (status, body) = client::send(request, DEFAULT_TIMEOUT).await?;
        if status != 200 {
            return Err(client::http_error(
                "stackdriver token endpoint",
                status,
                &body,
            ));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
        }
        let token: TokenResponse = serde_json::from_str(&body).map_err(|e| {
            ProviderError::Response(format!("stackdriver: unexpected token response: {e}"))
        })?;
        *cached = Some(token.access_token.clone());
        Ok(token.access_token)
    }

    async fn query(&self, mql: &str) -> Result<(u16, String), ProviderError> {
        let token = self.access_token().await?;
        let request = self
            .http
            .post(self.query_url.clone())
            .bearer_auth(token)
            .json(&serde_json::json!({ "query": mql }));
        client::send(request, DEFAULT_TIMEOUT).await
    }
}

/// Decodes a PKCS#8 PEM RSA private key.
pub fn parse_pkcs8_pem(pem: &str) -> Result<ring::signature::RsaKeyPair, ProviderError> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(b64.as_bytes()).map_err(|_| {
        ProviderError::Config("stackdriver: serviceAccountKey private_key is not valid PEM".into())
    })?;
    ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|e| {
        ProviderError::Config(format!(
            "stackdriver: serviceAccountKey private_key is not a PKCS#8 RSA key: {e}"
        ))
    })
}

/// The RS256 JWT of the JWT-bearer grant, valid for one hour from `now`.
pub fn signed_jwt(
    key: &ring::signature::RsaKeyPair,
    email: &str,
    audience: &str,
    now: u64,
) -> Result<String, ProviderError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": email,
        "scope": SCOPE,
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{claims}");
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| ProviderError::Config("stackdriver: signing the JWT failed".into()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// `timeSeriesData[0].pointData[0].values[0]`.
pub fn parse_response(body: &str) -> Result<f64, ProviderError> {
    let response: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| ProviderError::Response(format!("stackdriver: unexpected response: {e}")))?;
    let value = response
        .get("timeSeriesData")
        .and_then(|d| d.get(0))
        .and_then(|d| d.get("pointData"))
        .and_then(|p| p.get(0))
        .and_then(|p| p.get("values"))
        .and_then(|v| v.get(0))
        .ok_or(ProviderError::NoValuesFound)?;
    if let Some(v) = value.get("doubleValue") {
        // Cloud Monitoring encodes NaN/Infinity as strings.
        return match v {
            serde_json::Value::Number(n) => n.as_f64().ok_or(ProviderError::NoValuesFound),
            serde_json::Value::String(s) if s == "NaN" => Err(ProviderError::NoValuesFound),
            serde_json::Value::String(s) => s.parse().map_err(|_| {
                ProviderError::Response(format!("stackdriver: doubleValue {s:?} is not a number"))
            }),
            _ => Err(ProviderError::NoValuesFound),
        };
    }
    if let Some(v) = value.get("int64Value") {
        let parsed = match v {
            serde_json::Value::String(s) => s.parse::<i64>().ok(),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        };
        return parsed
            .map(|i| i as f64)
            .ok_or_else(|| ProviderError::Response("stackdriver: bad int64Value".into()));
    }
    Err(ProviderError::Response(
        "stackdriver: the point holds neither doubleValue nor int64Value".into(),
    ))
}

#[async_trait]
impl MetricsProvider for StackdriverProvider {
    async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
        let (status, body) = self.query(query.trim()).await?;
        if status != 200 {
            return Err(client::http_error(KIND, status, &body));
        }
        parse_response(&body)
    }

    async fn is_online(&self) -> Result<(), ProviderError> {
        let (status, body) = self.query("").await?;
        match status {
            200 | 400 => Ok(()),
            _ => Err(client::http_error(KIND, status, &body)),
        }
    }
}
