//! Semantic checks of Canaries, MetricTemplates and AlertProviders: what the CRD schema cannot
//! express, plus the numeric ranges the schema states (the controller cannot rely on the API
//! server having enforced them: an older CRD may be installed, and the dev cluster does not
//! validate custom resources). `serin validate` runs them after the schema check; the controller
//! runs them on every reconcile and reports errors as an event instead of running the canary.
//! Errors are what both refuse; warnings are for `serin validate` only (deprecated spellings,
//! values the controller clamps or ignores).

use std::collections::BTreeMap;

use super::alert_provider::{AlertProvider, AlertProviderKind};
use super::analysis::{CanaryAnalysis, CanaryMetric, Strategy};
use super::apis::istio::{HttpMatchRequest, StringMatch};
use super::canary::{Canary, CanarySpec};
use super::duration;
use super::metric_template::{MetricProviderKind, MetricTemplate};
use super::provider::Provider;
use super::structural::Problem;

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

fn check_analysis(
    path: &str,
    analysis: &CanaryAnalysis,
    spec: &CanarySpec,
    provider: Option<&Provider>,
    out: &mut Vec<Problem>,
) {
    let p = |field: &str| format!("{path}.{field}");

    // Schedule.
    if let Some(interval) = analysis.interval.as_deref() {
        match duration::parse(interval) {
            None => out.push(Problem::warning(
                p("interval"),
                format!("cannot parse {interval:?} as a duration; 60s is used"),
            )),
            Some(d) if d < super::analysis::MIN_INTERVAL => {
                out.push(Problem::warning(
                    p("interval"),
                    format!("{interval} is below the 10s minimum; 10s is used"),
                ));
            }
            Some(d) if d > super::analysis::MAX_INTERVAL => {
                out.push(Problem::warning(
                    p("interval"),
                    format!("{interval} is above the 24h maximum; 24h is used"),
                ));
            }
            Some(_) => {}
        }
    }
    if analysis.preflight.is_some() && (analysis.metrics().is_empty() || spec.skip_analysis()) {
        let why = "has no effect: the query pre-flight runs only for an analysis with metrics";
        out.push(Problem::warning(p("preflight"), why));
    }
    if analysis.threshold == Some(0) {
        out.push(Problem::warning(
            p("threshold"),
            "threshold below 1; 1 is used",
        ));
    }
    for (field, value, min, max) in [
        ("threshold", analysis.threshold, 0, i32::MAX),
        ("iterations", analysis.iterations, 0, i32::MAX),
        ("mirrorWeight", analysis.mirror_weight, 0, 100),
        ("maxWeight", analysis.max_weight, 0, 100),
        ("stepWeight", analysis.step_weight, 0, 100),
        (
            "stepWeightPromotion",
            analysis.step_weight_promotion,
            0,
            100,
        ),
        (
            "primaryReadyThreshold",
            analysis.primary_ready_threshold,
            0,
            100,
        ),
        (
            "canaryReadyThreshold",
            analysis.canary_ready_threshold,
            0,
            100,
        ),
    ] {
        check_range(&p(field), value, min, max, out);
    }
    if let Some(sa) = &analysis.session_affinity {
        check_range(&p("sessionAffinity.maxAge"), sa.max_age, 0, i32::MAX, out);
    }

    // Strategy: exactly one of iterations, stepWeight, stepWeights (Flagger's CRD oneOf).
    let has_iterations = analysis.iterations.is_some_and(|i| i > 0);
    let has_step = analysis.step_weight.is_some();
    let has_steps = analysis
        .step_weights
        .as_ref()
        .is_some_and(|s| !s.is_empty());
    if has_iterations && (has_step || has_steps) {
        out.push(Problem::new(
            path,
            "iterations cannot be combined with stepWeight or stepWeights: set iterations for A/B testing or blue/green, or step weights for a canary",
        ));
    }
    if has_step && has_steps {
        out.push(Problem::new(
            path,
            "stepWeight and stepWeights are mutually exclusive",
        ));
    }
    if !has_iterations && !has_step && !has_steps && !spec.skip_analysis.unwrap_or(false) {
        out.push(Problem::new(
            path,
            "one of iterations, stepWeight or stepWeights is required; without it the analysis never advances",
        ));
    }
    if analysis.step_weight == Some(0) && !has_iterations && !has_steps {
        out.push(Problem::new(
            p("stepWeight"),
            "must be greater than 0; with 0 the canary never advances",
        ));
    }
    if let (Some(step), Some(max)) = (analysis.step_weight, analysis.max_weight)
        && !has_steps
        && step > max
        && max > 0
    {
        out.push(Problem::new(
            p("stepWeight"),
            format!("stepWeight ({step}) is greater than maxWeight ({max})"),
        ));
    }
    if let Some(steps) = analysis.step_weights.as_deref() {
        for (i, w) in steps.iter().enumerate() {
            check_range(&format!("{path}.stepWeights[{i}]"), Some(*w), 1, 100, out);
            if i > 0 && *w <= steps[i - 1] {
                out.push(Problem::new(
                    format!("{path}.stepWeights[{i}]"),
                    format!("step weights must increase ({w} follows {})", steps[i - 1]),
                ));
            }
        }
        if has_steps && analysis.max_weight.is_some() {
            out.push(Problem::warning(
                p("maxWeight"),
                format!(
                    "ignored when stepWeights is set (the last step, {}, is the maximum)",
                    steps.last().copied().unwrap_or(0)
                ),
            ));
        }
    }

    let strategy = analysis.strategy();
    check_matches(&p("match"), analysis.matches(), out);
    if let Some(provider) = provider {
        out.extend(super::provider::capability_problems(
            provider, path, analysis, spec,
        ));
    }
    if analysis.mirror_weight.is_some() && !analysis.mirror() {
        out.push(Problem::warning(
            p("mirrorWeight"),
            "ignored because mirror is not enabled",
        ));
    }
    if let Some(sa) = &analysis.session_affinity {
        if sa.cookie_name.is_empty() {
            out.push(Problem::new(
                p("sessionAffinity.cookieName"),
                "must not be empty",
            ));
        }
        if sa.primary_cookie_name.as_deref() == Some(sa.cookie_name.as_str()) {
            out.push(Problem::new(
                p("sessionAffinity"),
                "can't use the same cookie name for both primary and cookie name; please update them to be different",
            ));
        }
        if strategy != Strategy::Canary {
            out.push(Problem::warning(
                p("sessionAffinity"),
                "session affinity is only used by the canary strategy",
            ));
        }
    }

    check_metrics(path, analysis.metrics(), out);
    check_webhooks(path, analysis, out);
    for (i, alert) in analysis.alerts().iter().enumerate() {
        if alert.provider_ref.name.is_empty() {
            out.push(Problem::new(
                format!("{path}.alerts[{i}].providerRef.name"),
                "must not be empty",
            ));
        }
        if alert.severity().is_none() {
            out.push(Problem::new(
                format!("{path}.alerts[{i}].severity"),
                format!(
                    "unknown severity {:?}; must be info, warn or error",
                    alert.severity.as_deref().unwrap_or("")
                ),
            ));
        }
    }
}

fn check_metrics(path: &str, metrics: &[CanaryMetric], out: &mut Vec<Problem>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, metric) in metrics.iter().enumerate() {
        let mp = format!("{path}.metrics[{i}]");
        if metric.name.is_empty() {
            out.push(Problem::new(format!("{mp}.name"), "must not be empty"));
        } else if let Some(first) = seen.insert(&metric.name, i) {
            out.push(Problem::new(
                format!("{mp}.name"),
                format!(
                    "duplicate metric name {:?} (also metrics[{first}])",
                    metric.name
                ),
            ));
        }
        if !metric.is_usable() {
            out.push(Problem::new(
                mp.clone(),
                format!(
                    "metric {:?} has no query or templateRef and is not a built-in check (request-success-rate, request-duration)",
                    metric.name
                ),
            ));
        }
        if metric.name != "request-success-rate"
            && metric.name != "request-duration"
            && let Some(builtin) = metric.builtin()
        {
            out.push(Problem::warning(
                format!("{mp}.name"),
                format!(
                    "{:?} is the deprecated name of the built-in check {}; use name: {}",
                    metric.name,
                    builtin.as_str(),
                    builtin.as_str()
                ),
            ));
        }
        if let Some(threshold) = metric.threshold
            && metric.threshold_range.is_none()
        {
            let bound =
                if metric.builtin() == Some(super::analysis::BuiltinMetric::RequestSuccessRate) {
                    "min"
                } else {
                    "max"
                };
            out.push(Problem::warning(
                format!("{mp}.threshold"),
                format!("deprecated: use thresholdRange: {{{bound}: {threshold}}}"),
            ));
        }
        if let Some(tr) = &metric.template_ref {
            if tr.name.is_empty() {
                out.push(Problem::new(
                    format!("{mp}.templateRef.name"),
                    "must not be empty",
                ));
            }
            if metric.builtin().is_some() {
                out.push(Problem::warning(
                    mp.clone(),
                    format!(
                        "{:?} is a built-in check name: Serin runs only the template (Flagger also runs the built-in query)",
                        metric.name
                    ),
                ));
            }
        }
        super::comparison::validate(&mp, metric, out);
        if let Some(interval) = metric.interval.as_deref()
            && duration::parse(interval).is_none()
        {
            out.push(Problem::new(
                format!("{mp}.interval"),
                format!("cannot parse {interval:?} as a duration (e.g. 30s, 1m)"),
            ));
        }
        match &metric.threshold_range {
            Some(range) => {
                if let (Some(min), Some(max)) = (range.min, range.max)
                    && min > max
                {
                    out.push(Problem::new(
                        format!("{mp}.thresholdRange"),
                        format!("min ({min}) is greater than max ({max})"),
                    ));
                }
                if range.min.is_none() && range.max.is_none() {
                    out.push(Problem::warning(
                        format!("{mp}.thresholdRange"),
                        "has neither min nor max: the check always passes",
                    ));
                }
            }
            None if metric.threshold.is_none() && metric.is_usable() => {
                let message = if metric.builtin().is_some() {
                    "no thresholdRange: the check always passes"
                } else {
                    "no thresholdRange: the check passes only while the value is 0 or below"
                };
                out.push(Problem::warning(mp.clone(), message));
            }
            None => {}
        }
    }
}

fn check_webhooks(path: &str, analysis: &CanaryAnalysis, out: &mut Vec<Problem>) {
    for (i, hook) in analysis.webhooks().iter().enumerate() {
        let hp = format!("{path}.webhooks[{i}]");
        if hook.name.is_empty() {
            out.push(Problem::new(format!("{hp}.name"), "must not be empty"));
        }
        if let Err(err) = hook.hook_type() {
            out.push(Problem::new(format!("{hp}.type"), err.to_string()));
        }
        match url::Url::parse(&hook.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            Ok(_) | Err(_) => out.push(Problem::new(
                format!("{hp}.url"),
                format!("{:?} is not an absolute http:// or https:// URL", hook.url),
            )),
        }
        check_range(&format!("{hp}.retries"), hook.retries, 0, i32::MAX, out);
        if let Some(timeout) = hook.timeout.as_deref().filter(|t| t.len() >= 2) {
            match duration::parse(timeout) {
                None => out.push(Problem::warning(
                    format!("{hp}.timeout"),
                    format!("cannot parse {timeout:?}; 10s is used"),
                )),
                Some(d) if d > super::analysis::MAX_WEBHOOK_TIMEOUT => {
                    out.push(Problem::warning(
                        format!("{hp}.timeout"),
                        format!("{timeout} is above the 1h maximum; 1h is used"),
                    ));
                }
                Some(_) => {}
            }
        }
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

/// Checks a MetricTemplate. Paths start at `spec`.
pub fn validate_metric_template(template: &MetricTemplate) -> Vec<Problem> {
    let mut out = Vec::new();
    let provider = &template.spec.provider;
    let kind = match provider.kind() {
        Ok(kind) => Some(kind),
        Err(err) => {
            out.push(Problem::new("spec.provider.type", err.to_string()));
            None
        }
    };
    if template.spec.query.trim().is_empty() {
        out.push(Problem::new("spec.query", "must not be empty"));
    }
    let address = provider.address.as_deref().filter(|a| !a.is_empty());
    if let Some(kind) = kind {
        let needs_address = matches!(
            kind,
            MetricProviderKind::Prometheus
                | MetricProviderKind::Graphite
                | MetricProviderKind::InfluxDb
                | MetricProviderKind::Dynatrace
                | MetricProviderKind::Splunk
        );
        if needs_address && address.is_none() {
            out.push(Problem::new(
                "spec.provider.address",
                format!("required by the {kind} provider"),
            ));
        }
        if kind == MetricProviderKind::CloudWatch
            && provider.region.as_deref().is_none_or(str::is_empty)
        {
            out.push(Problem::new(
                "spec.provider.region",
                "required by the cloudwatch provider",
            ));
        }
        if provider.headers.is_some() && kind != MetricProviderKind::Prometheus {
            out.push(Problem::warning(
                "spec.provider.headers",
                format!("only used by the prometheus provider, ignored by {kind}"),
            ));
        }
    }
    if let Some(address) = address {
        check_url("spec.provider.address", address, &mut out);
    }
    out
}

/// Checks an AlertProvider. Paths start at `spec`.
pub fn validate_alert_provider(provider: &AlertProvider) -> Vec<Problem> {
    let mut out = Vec::new();
    let spec = &provider.spec;
    if let Err(err) = spec.provider_type.parse::<AlertProviderKind>() {
        out.push(Problem::new("spec.type", err.to_string()));
    }
    match (
        spec.address.as_deref().filter(|a| !a.is_empty()),
        &spec.secret_ref,
    ) {
        (None, None) => out.push(Problem::new("spec", "must set address or secretRef")),
        (Some(address), None) => check_url("spec.address", address, &mut out),
        (Some(_), Some(_)) => out.push(Problem::warning(
            "spec.address",
            "ignored because secretRef is set (the secret's address key is used)",
        )),
        (None, Some(secret)) => {
            if secret.name.is_empty() {
                out.push(Problem::new("spec.secretRef.name", "must not be empty"));
            }
        }
    }
    if let Some(proxy) = spec.proxy.as_deref().filter(|p| !p.is_empty()) {
        check_url("spec.proxy", proxy, &mut out);
    }
    out
}

fn check_url(path: &str, value: &str, out: &mut Vec<Problem>) {
    match url::Url::parse(value) {
        Ok(url) if url.host().is_some() => {}
        _ => out.push(Problem::new(
            path,
            format!("{value:?} is not an absolute URL"),
        )),
    }
}

#[cfg(test)]
mod tests;
