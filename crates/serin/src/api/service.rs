//! `spec.service` of a Canary: how the apex/primary/canary Services and the routing objects are
//! generated.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::apis::gatewayapi::{HttpRequestMirrorFilter, ParentReference};
use super::apis::istio::{
    CorsPolicy, Headers, HttpMatchRequest, HttpRetry, HttpRewrite, TrafficPolicy,
};
use super::schema;

/// Labels and annotations for a generated Service (`service.apex|primary|canary`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Label and annotation keys Serin leaves alone on the Services it owns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnmanagedMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Vec<String>>,
}

/// `spec.service`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryService {
    /// Apex Service name (defaults to the target name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Service port; also the container port unless `targetPort` is set.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Name of the main port (default `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// Container port number or name (default `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// Application protocol of the port; `tcp` switches Istio to TCP routes; `grpc` makes
    /// `gatewayapi:v1` route with a GRPCRoute (Serin only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::traffic_distribution")]
    pub traffic_distribution: Option<String>,
    /// Add the target's other container ports to the generated Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_discovery: Option<bool>,
    /// Generate headless Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headless: Option<bool>,
    /// HTTP or gRPC request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Backend request timeout (Gateway API only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_timeout: Option<String>,
    /// Istio gateways (default `mesh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    /// Gateway API parent references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_refs: Option<Vec<ParentReference>>,
    /// Host names of the routing object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Generate an Istio delegate VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<bool>,
    /// Istio traffic policy, copied into both DestinationRules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserved_object")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// URI match conditions.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<HttpMatchRequest>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
    /// Gateway API request mirrors added to every generated rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Vec<HttpRequestMirrorFilter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// App Mesh mesh name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_name: Option<String>,
    /// App Mesh backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apex: Option<CustomMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<CustomMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CustomMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_metadata: Option<UnmanagedMetadata>,
}

impl CanaryService {
    /// `portName`, defaulting to `http`.
    pub fn port_name(&self) -> &str {
        match self.port_name.as_deref() {
            Some(name) if !name.is_empty() => name,
            _ => "http",
        }
    }

    /// `targetPort`, defaulting to `port`.
    pub fn target_port(&self) -> IntOrString {
        self.target_port
            .clone()
            .unwrap_or(IntOrString::Int(self.port))
    }

    /// Whether `appProtocol` is `grpc` (any case): `gatewayapi:v1` then routes with a GRPCRoute.
    pub fn is_grpc(&self) -> bool {
        self.app_protocol
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(GRPC_APP_PROTOCOL))
    }
}

/// The `service.appProtocol` that asks `gatewayapi:v1` for a GRPCRoute.
pub const GRPC_APP_PROTOCOL: &str = "grpc";

/// The gRPC service and method a match's `uri` names, as a gRPC call is an HTTP/2 request to
/// `/<service>/<method>`: `exact: /<service>/<method>` gives both, `prefix: /<service>/` the
/// service only. `None` for any other `uri` (a regex, another shape).
pub fn grpc_method_of(uri: &super::apis::istio::StringMatch) -> Option<(String, Option<String>)> {
    let (service, method) = if let Some(exact) = uri.exact.as_deref().filter(|v| !v.is_empty()) {
        let (service, method) = exact.strip_prefix('/')?.split_once('/')?;
        (service, Some(method))
    } else {
        (
            uri.prefix
                .as_deref()
                .filter(|v| !v.is_empty())?
                .strip_prefix('/')?
                .trim_end_matches('/'),
            None,
        )
    };
    let valid = |part: &str| !part.is_empty() && !part.contains('/');
    (valid(service) && method.is_none_or(valid))
        .then(|| (service.to_string(), method.map(str::to_string)))
}
