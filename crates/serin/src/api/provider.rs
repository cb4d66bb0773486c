//! The routing provider (`spec.provider` of a Canary, or the controller's `-mesh-provider`).
//!
//! Flagger compares provider strings by prefix in several places. Serin parses every spelling
//! once into [`Provider`] so that the router factory and the metric observer factory can use an
//! exhaustive `match`.

use std::fmt;
use std::str::FromStr;

/// Values of `spec.provider` that Flagger's CRD accepts (its OpenAPI enum).
pub const CRD_PROVIDER_VALUES: &[&str] = &[
    "apisix",
    "appmesh",
    "appmesh:v1beta2",
    "contour",
    "gatewayapi:v1",
    "gatewayapi:v1beta1",
    "gloo",
    "istio",
    "knative",
    "kubernetes",
    "kuma",
    "linkerd",
    "nginx",
    "osm",
    "skipper",
    "smi:v1alpha1",
    "smi:v1alpha2",
    "smi:v1alpha3",
    "traefik",
];

/// SMI TrafficSplit API versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmiVersion {
    V1alpha1,
    V1alpha2,
    V1alpha3,
}

impl SmiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SmiVersion::V1alpha1 => "v1alpha1",
            SmiVersion::V1alpha2 => "v1alpha2",
            SmiVersion::V1alpha3 => "v1alpha3",
        }
    }
}

/// Gateway API versions Serin can write HTTPRoutes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatewayApiVersion {
    V1,
    V1beta1,
}

/// App Mesh API versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppMeshVersion {
    V1beta1,
    V1beta2,
}

/// A routing provider, parsed from any spelling Flagger accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Provider {
    Istio,
    /// Linkerd (SMI v1alpha1 TrafficSplit, Linkerd metrics).
    Linkerd,
    /// SMI TrafficSplit of a given version, optionally naming the mesh (`smi:v1alpha3:istio`).
    Smi {
        version: SmiVersion,
        mesh: Option<String>,
    },
    /// Open Service Mesh (SMI v1alpha2 TrafficSplit, OSM metrics).
    Osm,
    AppMesh(AppMeshVersion),
    Contour,
    /// Gloo Edge; Flagger matches any value starting with `gloo`.
    Gloo,
    Nginx,
    Skipper,
    Traefik,
    Kuma,
    Apisix,
    GatewayApi(GatewayApiVersion),
    Knative,
    /// Blue/green without a mesh: no routing objects.
    Kubernetes,
}

/// A provider string no router understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?}; expected one of: {list}", list = CRD_PROVIDER_VALUES.join(", "))]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value = s.trim();
        let unknown = || UnknownProvider(s.to_string());
        let provider = match value {
            "istio" => Provider::Istio,
            "linkerd" => Provider::Linkerd,
            "osm" => Provider::Osm,
            "appmesh" => Provider::AppMesh(AppMeshVersion::V1beta1),
            "appmesh:v1beta2" => Provider::AppMesh(AppMeshVersion::V1beta2),
            "contour" => Provider::Contour,
            "nginx" => Provider::Nginx,
            "skipper" => Provider::Skipper,
            "traefik" => Provider::Traefik,
            "kuma" => Provider::Kuma,
            "apisix" => Provider::Apisix,
            "knative" => Provider::Knative,
            "kubernetes" => Provider::Kubernetes,
            // Flagger selects the v1 router for anything starting with `gatewayapi` other than the
            // explicit v1beta1 spelling (`gatewayapi`, `gatewayapi:v1`).
            "gatewayapi" | "gatewayapi:v1" => Provider::GatewayApi(GatewayApiVersion::V1),
            "gatewayapi:v1beta1" => Provider::GatewayApi(GatewayApiVersion::V1beta1),
            v if v.starts_with("gloo") => Provider::Gloo,
            v if v.starts_with("smi:") => {
                let mut parts = v.splitn(3, ':');
                let _smi = parts.next();
                let version = match parts.next() {
                    Some("v1alpha1") => SmiVersion::V1alpha1,
                    Some("v1alpha2") => SmiVersion::V1alpha2,
                    Some("v1alpha3") => SmiVersion::V1alpha3,
                    _ => return Err(unknown()),
                };
                let mesh = match parts.next() {
                    None => None,
                    Some("") => return Err(unknown()),
                    Some(mesh) => Some(mesh.to_string()),
                };
                Provider::Smi { version, mesh }
            }
            _ => return Err(unknown()),
        };
        Ok(provider)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Istio => f.write_str("istio"),
            Provider::Linkerd => f.write_str("linkerd"),
            Provider::Smi { version, mesh } => {
                write!(f, "smi:{}", version.as_str())?;
                if let Some(mesh) = mesh {
                    write!(f, ":{mesh}")?;
                }
                Ok(())
            }
            Provider::Osm => f.write_str("osm"),
            Provider::AppMesh(AppMeshVersion::V1beta1) => f.write_str("appmesh"),
            Provider::AppMesh(AppMeshVersion::V1beta2) => f.write_str("appmesh:v1beta2"),
            Provider::Contour => f.write_str("contour"),
            Provider::Gloo => f.write_str("gloo"),
            Provider::Nginx => f.write_str("nginx"),
            Provider::Skipper => f.write_str("skipper"),
            Provider::Traefik => f.write_str("traefik"),
            Provider::Kuma => f.write_str("kuma"),
            Provider::Apisix => f.write_str("apisix"),
            Provider::GatewayApi(GatewayApiVersion::V1) => f.write_str("gatewayapi:v1"),
            Provider::GatewayApi(GatewayApiVersion::V1beta1) => f.write_str("gatewayapi:v1beta1"),
            Provider::Knative => f.write_str("knative"),
            Provider::Kubernetes => f.write_str("kubernetes"),
        }
    }
}

impl Provider {
    /// Whether this provider can express traffic mirroring for the canary strategy
    /// (Flagger: only Istio; Gateway API mirrors only in blue/green mode).
    pub fn supports_canary_mirroring(&self) -> bool {
        matches!(self, Provider::Istio)
    }

    /// Whether this provider can mirror traffic during blue/green iterations.
    pub fn supports_blue_green_mirroring(&self) -> bool {
        matches!(self, Provider::Istio | Provider::GatewayApi(_))
    }

    /// Whether routing by `analysis.match` (A/B testing) is supported.
    pub fn supports_match(&self) -> bool {
        matches!(
            self,
            Provider::Istio
                | Provider::GatewayApi(_)
                | Provider::AppMesh(_)
                | Provider::Contour
                | Provider::Gloo
                | Provider::Nginx
        )
    }

    /// Whether session-affinity cookies are supported.
    pub fn supports_session_affinity(&self) -> bool {
        matches!(self, Provider::Istio | Provider::GatewayApi(_))
    }

    /// Whether Serin has a router for this provider yet. The router factory's test keeps this
    /// in step with the factory; `serin validate` warns about the others.
    pub fn routable_by_serin(&self) -> bool {
        matches!(self, Provider::Istio | Provider::Kubernetes)
    }
}

/// The providers Serin routes today, for messages.
pub const ROUTABLE_PROVIDERS: &str = "istio or kubernetes";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(s: &str) -> Provider {
        s.parse().unwrap()
    }

    #[test]
    fn every_crd_enum_value_parses_and_round_trips() {
        for value in CRD_PROVIDER_VALUES {
            let parsed = p(value);
            assert_eq!(parsed.to_string(), *value, "round trip of {value}");
        }
    }

    #[test]
    fn istio() {
        assert_eq!(p("istio"), Provider::Istio);
    }
    #[test]
    fn linkerd() {
        assert_eq!(p("linkerd"), Provider::Linkerd);
    }
    #[test]
    fn smi_versions() {
        assert_eq!(
            p("smi:v1alpha1"),
            Provider::Smi {
                version: SmiVersion::V1alpha1,
                mesh: None
            }
        );
        assert_eq!(
            p("smi:v1alpha2"),
            Provider::Smi {
                version: SmiVersion::V1alpha2,
                mesh: None
            }
        );
        assert_eq!(
            p("smi:v1alpha3"),
            Provider::Smi {
                version: SmiVersion::V1alpha3,
                mesh: None
            }
        );
    }
    #[test]
    fn smi_with_mesh() {
        assert_eq!(
            p("smi:v1alpha3:linkerd"),
            Provider::Smi {
                version: SmiVersion::V1alpha3,
                mesh: Some("linkerd".into())
            }
        );
        assert_eq!(p("smi:v1alpha3:istio").to_string(), "smi:v1alpha3:istio");
    }
    #[test]
    fn gateway_api() {
        assert_eq!(
            p("gatewayapi:v1"),
            Provider::GatewayApi(GatewayApiVersion::V1)
        );
        assert_eq!(p("gatewayapi"), Provider::GatewayApi(GatewayApiVersion::V1));
        assert_eq!(
            p("gatewayapi:v1beta1"),
            Provider::GatewayApi(GatewayApiVersion::V1beta1)
        );
    }
    #[test]
    fn kubernetes() {
        assert_eq!(p("kubernetes"), Provider::Kubernetes);
    }
    #[test]
    fn nginx() {
        assert_eq!(p("nginx"), Provider::Nginx);
    }
    #[test]
    fn contour() {
        assert_eq!(p("contour"), Provider::Contour);
    }
    #[test]
    fn gloo_and_prefixed_gloo() {
        assert_eq!(p("gloo"), Provider::Gloo);
        assert_eq!(p("gloo:edge"), Provider::Gloo);
    }
    #[test]
    fn skipper() {
        assert_eq!(p("skipper"), Provider::Skipper);
    }
    #[test]
    fn traefik() {
        assert_eq!(p("traefik"), Provider::Traefik);
    }
    #[test]
    fn kuma() {
        assert_eq!(p("kuma"), Provider::Kuma);
    }
    #[test]
    fn apisix() {
        assert_eq!(p("apisix"), Provider::Apisix);
    }
    #[test]
    fn appmesh_versions() {
        assert_eq!(p("appmesh"), Provider::AppMesh(AppMeshVersion::V1beta1));
        assert_eq!(
            p("appmesh:v1beta2"),
            Provider::AppMesh(AppMeshVersion::V1beta2)
        );
    }
    #[test]
    fn knative() {
        assert_eq!(p("knative"), Provider::Knative);
    }
    #[test]
    fn osm() {
        assert_eq!(p("osm"), Provider::Osm);
    }
    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(p(" istio "), Provider::Istio);
    }
    #[test]
    fn unknown_values_are_errors_with_the_accepted_list() {
        for bad in [
            "",
            "isito",
            "smi",
            "smi:v2",
            "smi:v1alpha3:",
            "appmesh:v1",
            "Istio",
        ] {
            let err = bad.parse::<Provider>().unwrap_err();
            assert!(err.to_string().contains("expected one of: apisix"), "{err}");
        }
    }
}
