//! Raw Kubernetes API calls for the `keptn` and `externalmetrics` providers.

use super::ProviderError;

/// A client from the controller's configuration.
pub fn client(kind: &str, config: Option<kube::Config>) -> Result<kube::Client, ProviderError> {
    let config = config.ok_or_else(|| {
        ProviderError::Config(format!(
            "{kind} provider needs access to the Kubernetes API, which is not configured"
        ))
    })?;
    kube::Client::try_from(config)
        .map_err(|e| ProviderError::Config(format!("{kind}: building Kubernetes client: {e}")))
}

fn request(
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<http::Request<Vec<u8>>, ProviderError> {
    let mut builder = http::Request::builder().method(method).uri(path);
    if !body.is_empty() {
        builder = builder.header("Content-Type", "application/json");
    }
    builder
        .body(body)
        .map_err(|e| ProviderError::Config(format!("invalid Kubernetes API request: {e}")))
}

fn api_error(kind: &str, err: kube::Error) -> ProviderError {
    match err {
        kube::Error::Api(status) => ProviderError::Http {
            backend: "kubernetes api",
            status: status.code,
            body: format!("{kind}: {}", status.message),
        },
        other => ProviderError::Request(format!("{kind}: {}", crate::k8s::error::describe(&other))),
    }
}

/// `GET path` → JSON.
pub async fn get(
    kind: &str,
    client: &kube::Client,
    path: &str,
) -> Result<serde_json::Value, ProviderError> {
    client
        .request::<serde_json::Value>(request("GET", path, Vec::new())?)
        .await
        .map_err(|e| api_error(kind, e))
}

/// `POST path` with a JSON body → JSON.
pub async fn post(
    kind: &str,
    client: &kube::Client,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, ProviderError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ProviderError::Config(format!("{kind}: encoding request: {e}")))?;
    client
        .request::<serde_json::Value>(request("POST", path, bytes)?)
        .await
        .map_err(|e| api_error(kind, e))
}

/// `DELETE path`.
pub async fn delete(kind: &str, client: &kube::Client, path: &str) -> Result<(), ProviderError> {
    client
        .request_text(request("DELETE", path, Vec::new())?)
        .await
        .map(|_| ())
        .map_err(|e| api_error(kind, e))
}
