//! The routing provider (`spec.provider` of a Canary, or the controller's `-mesh-provider`).
//!
//! Flagger compares provider strings by prefix in several places. Serin parses every spelling
//! once into [`Provider`] so that the router factory and the metric observer factory can use an
//! exhaustive `match`.

use std::fmt;
use std::str::FromStr;

use super::analysis::{CanaryAnalysis, Strategy};
use super::apis::istio::{HttpMatchRequest, StringMatch};
use super::canary::CanarySpec;
use super::structural::Problem;

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
    /// What this provider's router can do (the one place this is decided).
    pub fn capabilities(&self) -> Capabilities {
        capabilities(self)
    }

    /// Whether this provider can express traffic mirroring for the canary strategy
    /// (Flagger: only Istio; Gateway API mirrors only in blue/green mode).
    pub fn supports_canary_mirroring(&self) -> bool {
        self.capabilities().canary_mirroring
    }

    /// Whether this provider can mirror traffic during blue/green iterations.
    pub fn supports_blue_green_mirroring(&self) -> bool {
        self.capabilities().blue_green_mirroring
    }

    /// Whether routing by `analysis.match` (A/B testing) is supported.
    pub fn supports_match(&self) -> bool {
        self.capabilities().ab_match.is_some()
    }

    /// Whether session-affinity cookies are supported.
    pub fn supports_session_affinity(&self) -> bool {
        self.capabilities().session_affinity != SessionAffinitySupport::None
    }
}

/// How a string is matched in an `analysis.match` condition (Istio `StringMatch` kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::Prefix => "prefix",
            MatchKind::Suffix => "suffix",
            MatchKind::Regex => "regex",
        }
    }

    fn of(m: &StringMatch) -> Option<MatchKind> {
        if m.exact.is_some() {
            Some(MatchKind::Exact)
        } else if m.prefix.is_some() {
            Some(MatchKind::Prefix)
        } else if m.suffix.is_some() {
            Some(MatchKind::Suffix)
        } else if m.regex.is_some() {
            Some(MatchKind::Regex)
        } else {
            None
        }
    }
}

const ALL_KINDS: &[MatchKind] = &[
    MatchKind::Exact,
    MatchKind::Prefix,
    MatchKind::Suffix,
    MatchKind::Regex,
];

/// Which `analysis.match` conditions a provider routes A/B traffic by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchSupport {
    /// String-match kinds accepted for `headers` (empty: headers are not routed by).
    pub header_kinds: &'static [MatchKind],
    /// `queryParams` (exact or regex).
    pub query_params: bool,
    /// `method` (exact).
    pub method: bool,
    /// Every other field (`uri`, `sourceLabels`, ...) is honoured too (Istio).
    pub all_fields: bool,
    /// At most this many header conditions over all match entries (NGINX: one header or cookie).
    pub max_headers: Option<usize>,
}

/// Session-affinity support of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAffinitySupport {
    None,
    /// The canary cookie only (`primaryCookieName` is not used).
    CanaryCookie,
    /// The canary cookie and the primary cookie.
    CanaryAndPrimaryCookies,
}

/// What a provider's router can do. Built by one exhaustive `match` ([`Provider::capabilities`]);
/// validation ([`capability_problems`]), the strategies and the router factory's tests all read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Progressive canary weights (false only for `kubernetes`: blue/green is forced).
    pub weights: bool,
    /// A/B testing by `analysis.match`, and which conditions.
    pub ab_match: Option<MatchSupport>,
    /// Mirroring with the canary strategy.
    pub canary_mirroring: bool,
    /// Mirroring during blue/green iterations.
    pub blue_green_mirroring: bool,
    pub session_affinity: SessionAffinitySupport,
    /// TCP routing (`service.appProtocol: tcp`).
    pub tcp: bool,
}

const NO_FEATURES: Capabilities = Capabilities {
    weights: true,
    ab_match: None,
    canary_mirroring: false,
    blue_green_mirroring: false,
    session_affinity: SessionAffinitySupport::None,
    tcp: false,
};

fn headers(kinds: &'static [MatchKind]) -> MatchSupport {
    MatchSupport {
        header_kinds: kinds,
        query_params: false,
        method: false,
        all_fields: false,
        max_headers: None,
    }
}

fn capabilities(provider: &Provider) -> Capabilities {
    match provider {
        Provider::Istio => Capabilities {
            ab_match: Some(MatchSupport {
                all_fields: true,
                query_params: true,
                method: true,
                ..headers(ALL_KINDS)
            }),
            canary_mirroring: true,
            blue_green_mirroring: true,
            session_affinity: SessionAffinitySupport::CanaryAndPrimaryCookies,
            tcp: true,
            ..NO_FEATURES
        },
        Provider::GatewayApi(version) => Capabilities {
            ab_match: Some(MatchSupport {
                query_params: true,
                ..headers(&[MatchKind::Exact, MatchKind::Regex])
            }),
            blue_green_mirroring: true,
            session_affinity: match version {
                GatewayApiVersion::V1 => SessionAffinitySupport::CanaryAndPrimaryCookies,
                GatewayApiVersion::V1beta1 => SessionAffinitySupport::CanaryCookie,
            },
            ..NO_FEATURES
        },
        Provider::AppMesh(_) => Capabilities {
            ab_match: Some(headers(ALL_KINDS)),
            ..NO_FEATURES
        },
        // Contour turns prefix and suffix into `contains` (Flagger); regex is not expressible.
        Provider::Contour => Capabilities {
            ab_match: Some(headers(&[
                MatchKind::Exact,
                MatchKind::Prefix,
                MatchKind::Suffix,
            ])),
            ..NO_FEATURES
        },
        Provider::Gloo => Capabilities {
            ab_match: Some(MatchSupport {
                method: true,
                ..headers(&[MatchKind::Exact, MatchKind::Regex])
            }),
            ..NO_FEATURES
        },
        Provider::Nginx => Capabilities {
            ab_match: Some(MatchSupport {
                max_headers: Some(1),
                ..headers(&[MatchKind::Exact, MatchKind::Regex])
            }),
            ..NO_FEATURES
        },
        Provider::Linkerd
        | Provider::Smi { .. }
        | Provider::Osm
        | Provider::Skipper
        | Provider::Traefik
        | Provider::Kuma
        | Provider::Apisix
        | Provider::Knative => NO_FEATURES,
        Provider::Kubernetes => Capabilities {
            weights: false,
            ..NO_FEATURES
        },
    }
}

/// Names of the providers that can do what `wanted` asks, for error messages.
fn providers_with(wanted: impl Fn(&Capabilities) -> bool) -> String {
    CRD_PROVIDER_VALUES
        .iter()
        .filter_map(|v| v.parse::<Provider>().ok())
        .filter(|p| wanted(&p.capabilities()))
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The problems of asking `provider` for what it cannot do: A/B match conditions, mirroring,
/// session affinity, progressive weights and TCP. `path` is the analysis' field path.
pub fn capability_problems(
    provider: &Provider,
    path: &str,
    analysis: &CanaryAnalysis,
    spec: &CanarySpec,
) -> Vec<Problem> {
    let caps = provider.capabilities();
    let p = |field: &str| format!("{path}.{field}");
    let mut out = Vec::new();
    let strategy = analysis.strategy();
    let matches = analysis.matches();
    let has_steps = analysis.step_weight.is_some()
        || analysis
            .step_weights
            .as_ref()
            .is_some_and(|s| !s.is_empty());

    if !caps.weights {
        if !matches.is_empty() {
            out.push(Problem::warning(
                p("match"),
                format!("A/B testing is not supported when using the {provider} provider; blue/green is used"),
            ));
        }
        if has_steps {
            out.push(Problem::warning(
                path,
                format!("Progressive traffic is not supported when using the {provider} provider; blue/green is used"),
            ));
        }
    } else if !matches.is_empty() {
        match caps.ab_match {
            None => out.push(Problem::new(
                p("match"),
                format!(
                    "the {provider} provider does not support routing by match conditions; remove analysis.match (blue/green) or use a provider that supports A/B testing ({})",
                    providers_with(|c| c.ab_match.is_some())
                ),
            )),
            Some(support) => check_match_support(provider, &p("match"), matches, support, &mut out),
        }
    }

    if analysis.mirror() {
        match strategy {
            Strategy::Canary if !caps.canary_mirroring && caps.weights => {
                out.push(Problem::new(
                    p("mirror"),
                    format!(
                        "the {provider} provider cannot mirror traffic for the canary strategy; the canary would never advance. Remove mirror, or use iterations (blue/green) with {}",
                        providers_with(|c| c.blue_green_mirroring)
                    ),
                ));
            }
            Strategy::BlueGreen if !caps.blue_green_mirroring => {
                out.push(Problem::warning(
                    p("mirror"),
                    format!("the {provider} provider does not mirror traffic; mirror is ignored"),
                ));
            }
            Strategy::AbTesting => {
                out.push(Problem::warning(
                    p("mirror"),
                    "mirroring is not used with A/B testing",
                ));
            }
            _ => {}
        }
    }

    if let Some(sa) = &analysis.session_affinity {
        match caps.session_affinity {
            SessionAffinitySupport::None => out.push(Problem::new(
                p("sessionAffinity"),
                format!(
                    "the {provider} provider does not support session affinity; remove sessionAffinity or use {}",
                    providers_with(|c| c.session_affinity != SessionAffinitySupport::None)
                ),
            )),
            SessionAffinitySupport::CanaryCookie if sa.primary_cookie_name.is_some() => {
                out.push(Problem::warning(
                    p("sessionAffinity.primaryCookieName"),
                    format!("the {provider} router does not set the primary cookie"),
                ));
            }
            _ => {}
        }
    }

    if *provider == Provider::GatewayApi(GatewayApiVersion::V1)
        && let Some(service) = spec.service.as_ref().filter(|s| s.is_grpc())
    {
        grpc_route_problems(path, analysis, service, &mut out);
    }

    let tcp = spec
        .service
        .as_ref()
        .and_then(|s| s.app_protocol.as_deref())
        .is_some_and(|p| p.eq_ignore_ascii_case("tcp"));
    if tcp && !caps.tcp && caps.weights {
        out.push(Problem::warning(
            "spec.service.appProtocol",
            format!(
                "the {provider} provider routes HTTP only; appProtocol tcp only sets the Services' appProtocol"
            ),
        ));
    }
    out
}

/// What a GRPCRoute cannot express (the router refuses the same with the same words).
pub const GRPC_URI_ERROR: &str = "GRPCRoute matches a gRPC service and method: write the match's uri as exact: /<service>/<method> or prefix: /<service>/";
pub const GRPC_METHOD_ERROR: &str = "GRPCRoute has no HTTP method match (gRPC requests are all POST); match the gRPC method with the uri /<service>/<method>";
pub const GRPC_QUERY_ERROR: &str = "GRPCRoute has no query parameter match";
pub const GRPC_AFFINITY_ERROR: &str = "GRPCRoute cannot route by cookie: remove analysis.sessionAffinity, or route with an HTTPRoute (service.appProtocol other than grpc)";

/// The problems of a Canary routed by a GRPCRoute (`gatewayapi:v1`, `appProtocol: grpc`):
/// session affinity, and matches a GRPCRoute cannot express.
fn grpc_route_problems(
    path: &str,
    analysis: &CanaryAnalysis,
    service: &crate::api::service::CanaryService,
    out: &mut Vec<Problem>,
) {
    if analysis.session_affinity.is_some() {
        out.push(Problem::new(
            format!("{path}.sessionAffinity"),
            GRPC_AFFINITY_ERROR,
        ));
    }
    let lists = [
        (format!("{path}.match"), analysis.matches()),
        (
            "spec.service.match".to_string(),
            service.matches.as_deref().unwrap_or(&[]),
        ),
    ];
    for (list_path, matches) in lists {
        for (i, m) in matches.iter().enumerate() {
            let mp = format!("{list_path}[{i}]");
            if m.method.is_some() {
                out.push(Problem::new(format!("{mp}.method"), GRPC_METHOD_ERROR));
            }
            if m.query_params.as_ref().is_some_and(|q| !q.is_empty()) {
                out.push(Problem::new(format!("{mp}.queryParams"), GRPC_QUERY_ERROR));
            }
            if let Some(uri) = &m.uri
                && crate::api::service::grpc_method_of(uri).is_none()
            {
                out.push(Problem::new(format!("{mp}.uri"), GRPC_URI_ERROR));
            }
        }
    }
}

fn check_match_support(
    provider: &Provider,
    path: &str,
    matches: &[HttpMatchRequest],
    support: MatchSupport,
    out: &mut Vec<Problem>,
) {
    if support.all_fields {
        return;
    }
    let kinds = || {
        support
            .header_kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let mut header_count = 0;
    for (i, m) in matches.iter().enumerate() {
        let mp = format!("{path}[{i}]");
        for (name, sm) in m.headers.iter().flatten() {
            header_count += 1;
            if let Some(kind) = MatchKind::of(sm)
                && !support.header_kinds.contains(&kind)
            {
                out.push(Problem::new(
                    format!("{mp}.headers.{name}"),
                    format!(
                        "the {provider} provider matches headers by {}; change {} to one of them",
                        kinds(),
                        kind.as_str()
                    ),
                ));
            }
        }
        if let Some(q) = m.query_params.as_ref().filter(|q| !q.is_empty()) {
            if !support.query_params {
                out.push(Problem::new(
                    format!("{mp}.queryParams"),
                    format!("the {provider} provider does not route by query parameters; match on headers instead"),
                ));
            } else {
                for (name, sm) in q {
                    if let Some(kind) = MatchKind::of(sm)
                        && !matches!(kind, MatchKind::Exact | MatchKind::Regex)
                    {
                        out.push(Problem::new(
                            format!("{mp}.queryParams.{name}"),
                            format!("the {provider} provider matches query parameters by exact or regex; change {} to one of them", kind.as_str()),
                        ));
                    }
                }
            }
        }
        if m.method.is_some() && !support.method {
            out.push(Problem::warning(
                format!("{mp}.method"),
                format!("ignored by the {provider} provider (it routes A/B traffic by headers)"),
            ));
        }
        let ignored: Vec<&str> = [
            ("uri", m.uri.is_some()),
            ("scheme", m.scheme.is_some()),
            ("authority", m.authority.is_some()),
            ("port", m.port.is_some()),
            ("sourceLabels", m.source_labels.is_some()),
            ("gateways", m.gateways.is_some()),
            ("withoutHeaders", m.without_headers.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        if !ignored.is_empty() {
            out.push(Problem::warning(
                mp.clone(),
                format!(
                    "{} ignored by the {provider} provider (it routes A/B traffic by headers{})",
                    ignored.join(", "),
                    if support.query_params {
                        " and query parameters"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    if let Some(max) = support.max_headers
        && header_count > max
    {
        out.push(Problem::new(
            path,
            format!("the {provider} provider routes by one header or cookie ({header_count} conditions given); keep a single header condition"),
        ));
    }
}

#[cfg(test)]
mod tests;
