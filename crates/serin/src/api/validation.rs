//! Semantic checks of Canaries, MetricTemplates and AlertProviders: what the CRD schema cannot
//! express, plus the numeric ranges the schema states (the controller cannot rely on the API
//! server having enforced them: an older CRD may be installed, and the dev cluster does not
//! validate custom resources). `serin validate` runs them after the schema check; the controller
//! runs them on every reconcile and reports errors as an event instead of running the canary.
//! Errors are what both refuse; warnings are for `serin validate` only (deprecated spellings,
//! values the controller clamps or ignores).

use super::apis::istio::{HttpMatchRequest, StringMatch};
use super::canary::{Canary, CanarySpec};
use super::duration;
use super::provider::Provider;
use super::structural::Problem;

mod canary_analysis;
mod providers;

use canary_analysis::check_analysis;
pub use providers::{validate_alert_provider, validate_metric_template};

/// Settings the checks depend on.
#[derive(Clone, Debug)]
pub struct Options {
    /// The controller's `-mesh-provider`, used when `spec.provider` is unset.
    pub default_provider: Provider,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            default_provider: Provider::Istio,
        }
    }
}

/// Checks a Canary. Paths start at `spec`.
pub fn validate_canary(canary: &Canary, options: &Options) -> Vec<Problem> {
    validate_canary_spec(&canary.spec, options)
}

/// Checks a Canary spec. Paths start at `spec`.
pub fn validate_canary_spec(spec: &CanarySpec, options: &Options) -> Vec<Problem> {
    let mut out = Vec::new();

    let provider = match spec.provider(&options.default_provider) {
        Ok(p) => Some(p),
        Err(err) => {
            out.push(Problem::new("spec.provider", err.to_string()));
            None
        }
    };
    check_target(spec, provider.as_ref(), &mut out);
    check_generated_names(spec, &mut out);
    check_range(
        "spec.progressDeadlineSeconds",
        spec.progress_deadline_seconds,
        0,
        i32::MAX,
        &mut out,
    );

    match &spec.service {
        // A Knative target has no generated Services (Flagger's Knative manifests have no
        // `service`).
        None if spec.targets_knative_service() => {}
        None => out.push(Problem::new(
            "spec.service",
            "required field is missing: service.port sets the port of the generated Services",
        )),
        Some(service) => {
            check_range("spec.service.port", Some(service.port), 1, 65535, &mut out);
            if let Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name)) =
                &service.target_port
                && !is_port_name(name)
            {
                out.push(Problem::new(
                        "spec.service.targetPort",
                        format!("{name:?} is not a valid port name (lower-case letters, digits and '-', at most 15 characters)"),
                    ));
            }
            for (field, value) in [
                ("timeout", &service.timeout),
                ("backendTimeout", &service.backend_timeout),
            ] {
                if let Some(v) = value.as_deref().filter(|v| !v.is_empty())
                    && duration::parse(v).is_none()
                {
                    out.push(Problem::new(
                        format!("spec.service.{field}"),
                        format!("cannot parse {v:?} as a duration (e.g. 30s, 1m)"),
                    ));
                }
            }
            if service.delegation == Some(true)
                && (has_items(&service.hosts) || has_items(&service.gateways))
            {
                let (apex, _, _) = spec.service_names();
                out.push(Problem::new(
                    "spec.service.delegation",
                    format!("VirtualService {apex} cannot have hosts and gateways when delegation enabled"),
                ));
            }
            check_matches(
                "spec.service.match",
                service.matches.as_deref().unwrap_or(&[]),
                &mut out,
            );
        }
    }

    if let Some(provider) = &provider {
        check_provider_requirements(spec, provider, &mut out);
    }

    if spec.analysis.is_some() && spec.canary_analysis.is_some() {
        out.push(Problem::warning(
            "spec.canaryAnalysis",
            "ignored because spec.analysis is set; remove the deprecated field",
        ));
    } else if spec.canary_analysis.is_some() {
        out.push(Problem::warning(
            "spec.canaryAnalysis",
            "deprecated spelling: rename it to spec.analysis",
        ));
    }
    let analysis_path = if spec.analysis.is_some() {
        "spec.analysis"
    } else {
        "spec.canaryAnalysis"
    };
    match spec.analysis() {
        Some(analysis) => {
            check_analysis(analysis_path, analysis, spec, provider.as_ref(), &mut out)
        }
        None if spec.skip_analysis.unwrap_or(false) => {}
        None => out.push(Problem::new("spec", "must set analysis or canaryAnalysis")),
    }
    out
}

/// Longest name of a Service (an RFC 1035 label).
const MAX_SERVICE_NAME: usize = 63;

/// The Services Serin generates (`<apex>`, `<apex>-primary`, `<apex>-canary`) need names of at
/// most 63 characters; the API server refuses longer ones on every attempt. A plain Service
/// target's copies are named after the target while routers send traffic to the apex's names.
fn check_generated_names(spec: &CanarySpec, out: &mut Vec<Problem>) {
    let (apex, primary, _canary) = spec.service_names();
    let target = &spec.target_ref.name;
    if spec.target_ref.kind == "Service" && !spec.targets_knative_service() && &apex != target {
        out.push(Problem::warning(
            "spec.service.name",
            format!("the copies of the target Service are {target}-primary and {target}-canary, but the router sends traffic to {primary} and {apex}-canary; leave service.name unset with a Service target"),
        ));
    }
    if apex.is_empty() || primary.len() <= MAX_SERVICE_NAME {
        return;
    }
    let path = if spec.apex_name() == spec.target_ref.name {
        "spec.targetRef.name"
    } else {
        "spec.service.name"
    };
    let longest = MAX_SERVICE_NAME - "-primary".len();
    out.push(Problem::new(
        path,
        format!(
            "{apex:?} is {} characters long: the generated Service name {primary} would have {} characters, Kubernetes allows at most {MAX_SERVICE_NAME}; use at most {longest} characters",
            apex.len(),
            primary.len()
        ),
    ));
}

/// An integer outside `min..=max` (the bounds of the generated CRD schema).
fn check_range(path: &str, value: Option<i32>, min: i32, max: i32, out: &mut Vec<Problem>) {
    match value {
        Some(v) if v < min => out.push(Problem::new(
            path,
            format!("must be at least {min} (got {v})"),
        )),
        Some(v) if v > max => out.push(Problem::new(
            path,
            format!("must be at most {max} (got {v})"),
        )),
        _ => {}
    }
}

fn has_items(list: &Option<Vec<String>>) -> bool {
    list.as_ref().is_some_and(|l| !l.is_empty())
}

fn is_port_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.chars().any(|c| c.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

fn check_target(spec: &CanarySpec, provider: Option<&Provider>, out: &mut Vec<Problem>) {
    let target = &spec.target_ref;
    if target.name.is_empty() {
        out.push(Problem::new("spec.targetRef.name", "must not be empty"));
    }
    let knative_target = spec.targets_knative_service();
    let knative_provider = spec.provider.as_deref() == Some("knative");
    if knative_target && !knative_provider {
        let p = provider.map(|p| p.to_string()).unwrap_or_default();
        out.push(Problem::new(
            "spec.provider",
            format!("can't use {p} provider with Knative Service as target"),
        ));
    }
    if knative_provider && !knative_target {
        out.push(Problem::new(
            "spec.targetRef",
            format!(
                "can't use {}/{} as target if provider is set to knative",
                target.api_version, target.kind
            ),
        ));
    }
    if knative_target && spec.autoscaler_ref.is_some() {
        out.push(Problem::new(
            "spec.autoscalerRef",
            "can't use autoscaler with Knative Service",
        ));
    }
    if let Some(scaler) = &spec.autoscaler_ref {
        if scaler.name.is_empty() {
            out.push(Problem::new("spec.autoscalerRef.name", "must not be empty"));
        }
        let removed_in = match scaler.api_version.as_str() {
            "autoscaling/v2beta1" => Some("1.25"),
            "autoscaling/v2beta2" => Some("1.26"),
            _ => None,
        };
        if let Some(release) = removed_in.filter(|_| scaler.kind == "HorizontalPodAutoscaler") {
            out.push(Problem::warning(
                "spec.autoscalerRef.apiVersion",
                format!(
                    "{} is deprecated (removed in Kubernetes {release}); Serin reads the HorizontalPodAutoscaler as autoscaling/v2: use apiVersion: autoscaling/v2",
                    scaler.api_version
                ),
            ));
        }
        if let Some(replicas) = &scaler.primary_scaler_replicas {
            let rp = "spec.autoscalerRef.primaryScalerReplicas";
            check_range(
                &format!("{rp}.minReplicas"),
                replicas.min_replicas,
                1,
                i32::MAX,
                out,
            );
            check_range(
                &format!("{rp}.maxReplicas"),
                replicas.max_replicas,
                1,
                i32::MAX,
                out,
            );
        }
        if let Some(replicas) = &scaler.primary_scaler_replicas
            && let (Some(min), Some(max)) = (replicas.min_replicas, replicas.max_replicas)
            && min > max
        {
            out.push(Problem::new(
                "spec.autoscalerRef.primaryScalerReplicas",
                format!("minReplicas ({min}) is greater than maxReplicas ({max})"),
            ));
        }
    }
}

fn check_provider_requirements(spec: &CanarySpec, provider: &Provider, out: &mut Vec<Problem>) {
    let service = spec.service.as_ref();
    match provider {
        Provider::GatewayApi(_)
            if service
                .and_then(|s| s.gateway_refs.as_ref())
                .is_none_or(|r| r.is_empty()) =>
        {
            out.push(Problem::new(
                "spec.service.gatewayRefs",
                "GatewayRefs must be specified when using Gateway API as a provider.",
            ));
        }
        Provider::Nginx | Provider::Skipper if spec.ingress_ref.is_none() => {
            out.push(Problem::new(
                "spec.ingressRef",
                format!("required by the {provider} provider (ingress selector is empty)"),
            ));
        }
        Provider::Apisix if spec.route_ref.is_none() => {
            out.push(Problem::new(
                "spec.routeRef",
                "required by the apisix provider (apisix route selector is empty)",
            ));
        }
        Provider::AppMesh(super::provider::AppMeshVersion::V1beta1)
            if service
                .and_then(|s| s.mesh_name.as_deref())
                .is_none_or(str::is_empty) =>
        {
            out.push(Problem::new(
                "spec.service.meshName",
                "required by the appmesh (v1beta1) provider",
            ));
        }
        _ => {}
    }
    if spec.upstream_ref.is_some() && *provider != Provider::Gloo {
        out.push(Problem::warning(
            "spec.upstreamRef",
            format!("only used by the gloo provider, ignored by {provider}"),
        ));
    }
}

fn check_matches(path: &str, matches: &[HttpMatchRequest], out: &mut Vec<Problem>) {
    for (i, m) in matches.iter().enumerate() {
        let mp = format!("{path}[{i}]");
        for (field, value) in [
            ("uri", &m.uri),
            ("scheme", &m.scheme),
            ("method", &m.method),
            ("authority", &m.authority),
        ] {
            if let Some(sm) = value {
                check_string_match(&format!("{mp}.{field}"), sm, out);
            }
        }
        for (field, map) in [
            ("headers", &m.headers),
            ("queryParams", &m.query_params),
            ("withoutHeaders", &m.without_headers),
        ] {
            for (key, sm) in map.iter().flatten() {
                check_string_match(&format!("{mp}.{field}.{key}"), sm, out);
            }
        }
    }
}

fn check_string_match(path: &str, sm: &StringMatch, out: &mut Vec<Problem>) {
    let set = [&sm.exact, &sm.prefix, &sm.suffix, &sm.regex]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if set != 1 {
        out.push(Problem::new(
            path,
            "must set exactly one of exact, prefix, suffix or regex",
        ));
    }
    if let Some(re) = sm.regex.as_deref()
        && let Err(err) = regex::Regex::new(re)
    {
        let first_line = err
            .to_string()
            .lines()
            .last()
            .unwrap_or("invalid")
            .trim()
            .to_string();
        out.push(Problem::new(
            format!("{path}.regex"),
            format!("invalid regular expression {re:?}: {first_line}"),
        ));
    }
}

#[cfg(test)]
mod tests;
