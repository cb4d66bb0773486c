//! The pure half of GRPCRoute routing (Serin only, fluxcd/flagger#1935): a Canary with
//! `provider: gatewayapi:v1` and `service.appProtocol: grpc` is routed by the GRPCRoute `<apex>`
//! (`gateway.networking.k8s.io/v1`) instead of an HTTPRoute.
//!
//! The rules mirror the HTTPRoute ones: a weighted rule to `<apex>-primary` and `<apex>-canary`,
//! the A/B rules (analysis headers merged into every service match, then a primary-only rule)
//! and the blue/green mirror filter. A match's gRPC service and method come from the Canary's
//! `uri` (`exact: /<service>/<method>`, `prefix: /<service>/`), as gRPC requests are HTTP/2
//! requests to that path; headers match as in an HTTPRoute. Serin's rules are the ones routing
//! to `<apex>-primary`/`<apex>-canary` (or, in an adopted route, to `<apex>` only); others' rules
//! are kept.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use super::super::{RouterError, Routes};
use super::render::{
    EXACT, Names, REQUEST_HEADER_MODIFIER, REQUEST_MIRROR, RESPONSE_HEADER_MODIFIER,
    apex_metadata_patch, backend_ref, header_filter, is_canary_mirror, names, service, value_match,
};
use crate::api::Canary;
use crate::api::apis::gatewayapi::{
    BackendObjectReference, GrpcMethodMatch, GrpcRoute, GrpcRouteMatch, GrpcRouteRule,
    GrpcRouteSpec, HttpRequestMirrorFilter, HttpRouteFilter,
};
use crate::api::apis::istio::HttpMatchRequest;
use crate::api::provider::GatewayApiVersion;
use crate::api::provider::{
    GRPC_AFFINITY_ERROR, GRPC_METHOD_ERROR, GRPC_QUERY_ERROR, GRPC_URI_ERROR,
};
use crate::api::service::{CanaryService, grpc_method_of};
use crate::k8s::meta::{canary_owner_reference, prune};
use crate::router::object::{apex_annotations, apex_labels};

/// Whether a Canary routed by Gateway API `version` gets a GRPCRoute: `gatewayapi:v1` with
/// `service.appProtocol: grpc` (any case). GRPCRoute has no v1beta1 version, so
/// `gatewayapi:v1beta1` keeps its HTTPRoute.
pub fn wants_grpc_route(canary: &Canary, version: GatewayApiVersion) -> bool {
    version == GatewayApiVersion::V1
        && canary
            .spec
            .service
            .as_ref()
            .is_some_and(CanaryService::is_grpc)
}

fn invalid(message: &str) -> RouterError {
    RouterError::Invalid(message.to_string())
}

/// The gRPC service and method of a match's `uri` ([`grpc_method_of`]).
fn method_match(request: &HttpMatchRequest) -> Result<Option<GrpcMethodMatch>, RouterError> {
    let Some(uri) = &request.uri else {
        return Ok(None);
    };
    let (service, method) = grpc_method_of(uri).ok_or_else(|| invalid(GRPC_URI_ERROR))?;
    Ok(Some(GrpcMethodMatch {
        match_type: Some(EXACT.to_string()),
        service: Some(service),
        method,
        ..Default::default()
    }))
}

/// Istio-style match requests as GRPCRoute matches.
pub fn grpc_matches(requests: &[HttpMatchRequest]) -> Result<Vec<GrpcRouteMatch>, RouterError> {
    let mut out = Vec::new();
    for request in requests {
        if request.method.is_some() {
            return Err(invalid(GRPC_METHOD_ERROR));
        }
        if request.query_params.as_ref().is_some_and(|q| !q.is_empty()) {
            return Err(invalid(GRPC_QUERY_ERROR));
        }
        let headers = request
            .headers
            .iter()
            .flatten()
            .map(|(k, v)| value_match(k, v, "header"))
            .collect::<Result<Vec<_>, _>>()?;
        let m = GrpcRouteMatch {
            method: method_match(request)?,
            headers: (!headers.is_empty()).then_some(headers),
            ..Default::default()
        };
        if m != GrpcRouteMatch::default() {
            out.push(m);
        }
    }
    Ok(out)
}

/// One copy of each service match per analysis match, with the analysis' headers (and its gRPC
/// method where the service match has none).
pub fn merge_grpc_matches(
    analysis: &[GrpcRouteMatch],
    service: &[GrpcRouteMatch],
) -> Vec<GrpcRouteMatch> {
    if service.is_empty() {
        return analysis.to_vec();
    }
    if analysis.is_empty() {
        return service.to_vec();
    }
    let mut merged = Vec::with_capacity(analysis.len() * service.len());
    for a in analysis {
        for s in service {
            let mut m = s.clone();
            if a.headers.as_ref().is_some_and(|h| !h.is_empty()) {
                m.headers = a.headers.clone();
            }
            if m.method.is_none() {
                m.method = a.method.clone();
            }
            merged.push(m);
        }
    }
    merged
}

/// The filters of every Serin rule: `service.headers` (GRPCRoute has no rewrite or CORS).
fn filters(svc: &CanaryService) -> Option<Vec<HttpRouteFilter>> {
    let mut out = Vec::new();
    if let Some(headers) = &svc.headers {
        if let Some(req) = &headers.request {
            out.push(HttpRouteFilter {
                filter_type: REQUEST_HEADER_MODIFIER.to_string(),
                request_header_modifier: Some(header_filter(req)),
                ..Default::default()
            });
        }
        if let Some(resp) = &headers.response {
            out.push(HttpRouteFilter {
                filter_type: RESPONSE_HEADER_MODIFIER.to_string(),
                response_header_modifier: Some(header_filter(resp)),
                ..Default::default()
            });
        }
    }
    (!out.is_empty()).then_some(out)
}

fn some_matches(matches: &[GrpcRouteMatch]) -> Option<Vec<GrpcRouteMatch>> {
    (!matches.is_empty()).then(|| matches.to_vec())
}

/// The rules Serin writes for `routes`.
pub fn grpc_rules(canary: &Canary, routes: Routes) -> Result<Vec<GrpcRouteRule>, RouterError> {
    let svc = service(canary)?;
    let n = names(canary);
    let analysis = canary.spec.analysis();
    if analysis.is_some_and(|a| a.session_affinity.is_some()) {
        return Err(invalid(GRPC_AFFINITY_ERROR));
    }
    let matches = grpc_matches(svc.matches.as_deref().unwrap_or(&[]))?;
    let mut weighted = GrpcRouteRule {
        matches: some_matches(&matches),
        filters: filters(svc),
        backend_refs: Some(vec![
            backend_ref(&n.primary, routes.primary, svc.port),
            backend_ref(&n.canary, routes.canary, svc.port),
        ]),
        ..Default::default()
    };
    if routes.mirrored && analysis.is_some_and(|a| a.iterations() > 0) {
        weighted
            .filters
            .get_or_insert_with(Vec::new)
            .push(HttpRouteFilter {
                filter_type: REQUEST_MIRROR.to_string(),
                request_mirror: Some(HttpRequestMirrorFilter {
                    backend_ref: BackendObjectReference {
                        group: Some(String::new()),
                        kind: Some("Service".to_string()),
                        name: n.canary.clone(),
                        port: Some(svc.port),
                        ..Default::default()
                    },
                    ..Default::default()
                }),
                ..Default::default()
            });
    }
    let analysis_match = analysis.map(|a| a.matches()).unwrap_or(&[]);
    if analysis_match.is_empty() {
        return Ok(vec![weighted]);
    }
    weighted.matches = some_matches(&merge_grpc_matches(
        &grpc_matches(analysis_match)?,
        &matches,
    ));
    let fallback = GrpcRouteRule {
        matches: some_matches(&matches),
        filters: filters(svc),
        backend_refs: Some(vec![backend_ref(&n.primary, 100, svc.port)]),
        ..Default::default()
    };
    Ok(vec![weighted, fallback])
}

fn is_serin_rule(rule: &GrpcRouteRule, n: &Names) -> bool {
    rule.backend_refs
        .iter()
        .flatten()
        .any(|b| b.name == n.primary || b.name == n.canary)
}

fn is_apex_rule(rule: &GrpcRouteRule, n: &Names) -> bool {
    rule.backend_refs
        .as_ref()
        .is_some_and(|b| !b.is_empty() && b.iter().all(|b| b.name == n.apex))
}

/// Serin's rules in place of the live rules they replace (the first one's position); others'
/// rules kept. With nothing to replace, Serin's rules go first.
fn merge_rules(
    canary: &Canary,
    serin: Vec<GrpcRouteRule>,
    live: &[GrpcRouteRule],
) -> Vec<GrpcRouteRule> {
    let n = names(canary);
    let mut serin = Some(serin);
    let mut out = Vec::with_capacity(live.len() + 2);
    for rule in live {
        if is_serin_rule(rule, &n) || is_apex_rule(rule, &n) {
            if let Some(s) = serin.take() {
                out.extend(s);
            }
        } else {
            out.push(rule.clone());
        }
    }
    match serin {
        Some(s) => s.into_iter().chain(out).collect(),
        None => out,
    }
}

fn desired_spec(
    canary: &Canary,
    routes: Routes,
    live_rules: &[GrpcRouteRule],
) -> Result<GrpcRouteSpec, RouterError> {
    let svc = service(canary)?;
    Ok(GrpcRouteSpec {
        parent_refs: svc.gateway_refs.clone(),
        hostnames: svc.hosts.clone().filter(|h| !h.is_empty()),
        rules: Some(merge_rules(canary, grpc_rules(canary, routes)?, live_rules)),
        ..Default::default()
    })
}

/// The GRPCRoute `Reconcile` creates: weights 100/0.
pub fn grpc_route(canary: &Canary, set_owner_refs: bool) -> Result<GrpcRoute, RouterError> {
    let n = names(canary);
    let spec = desired_spec(canary, Routes::new(100, 0, false), &[])?;
    let mut route = GrpcRoute::new(&n.apex, spec);
    route.metadata = ObjectMeta {
        name: Some(n.apex.clone()),
        namespace: Some(n.namespace.clone()),
        labels: Some(apex_labels(canary)).filter(|l| !l.is_empty()),
        annotations: Some(apex_annotations(canary)),
        owner_references: if set_owner_refs {
            canary_owner_reference(canary).map(|o| vec![o])
        } else {
            None
        },
        ..Default::default()
    };
    Ok(route)
}

/// `parentRefs`, `hostnames` and `rules` as a merge patch body (absent ones as `null`).
fn owned_spec(spec: &GrpcRouteSpec) -> Value {
    json!({
        "parentRefs": spec.parent_refs,
        "hostnames": spec.hostnames,
        "rules": spec.rules,
    })
}

/// What `Reconcile` compares: the owned spec without the weights and the blue/green mirror.
fn comparable(canary: &Canary, spec: &GrpcRouteSpec) -> Value {
    let n = names(canary);
    let mut spec = spec.clone();
    for rule in spec.rules.iter_mut().flatten() {
        if !is_serin_rule(rule, &n) {
            continue;
        }
        if let Some(filters) = rule.filters.as_mut() {
            filters.retain(|f| !is_canary_mirror(f, &n));
        }
        for b in rule.backend_refs.iter_mut().flatten() {
            b.weight = None;
        }
    }
    prune(&owned_spec(&spec))
}

/// The merge patch `Reconcile` sends to an existing GRPCRoute (live weights kept), or `None`
/// when it is up to date. Labels and annotations as for the HTTPRoute.
pub fn grpc_reconcile_patch(
    canary: &Canary,
    live: &GrpcRoute,
) -> Result<Option<Value>, RouterError> {
    let live_rules = live.spec.rules.as_deref().unwrap_or(&[]);
    let routes = grpc_routes_of(canary, &live.spec).unwrap_or(Routes::new(100, 0, false));
    let desired = desired_spec(canary, routes, live_rules)?;
    let mut patch = Map::new();
    if let Some(meta) = apex_metadata_patch(canary, &live.metadata) {
        patch.insert("metadata".into(), meta);
    }
    if comparable(canary, &live.spec) != comparable(canary, &desired) {
        patch.insert("spec".into(), owned_spec(&desired));
    }
    Ok((!patch.is_empty()).then_some(Value::Object(patch)))
}

/// The `spec` merge patch of `SetRoutes`, or `None` when the live route already routes `routes`.
pub fn grpc_set_routes_patch(
    canary: &Canary,
    live: &GrpcRouteSpec,
    routes: Routes,
) -> Result<Option<Value>, RouterError> {
    let desired = desired_spec(canary, routes, live.rules.as_deref().unwrap_or(&[]))?;
    let desired_owned = owned_spec(&desired);
    Ok((prune(&owned_spec(live)) != prune(&desired_owned)).then(|| json!({"spec": desired_owned})))
}

/// The weights of the last Serin rule with two backendRefs (the A/B fallback has one);
/// `mirrored` when a Serin rule mirrors to the canary.
pub fn grpc_routes_of(canary: &Canary, spec: &GrpcRouteSpec) -> Result<Routes, RouterError> {
    let n = names(canary);
    let serin: Vec<&GrpcRouteRule> = spec
        .rules
        .iter()
        .flatten()
        .filter(|r| is_serin_rule(r, &n))
        .collect();
    let weighted = serin
        .iter()
        .rev()
        .find(|r| r.backend_refs.as_ref().is_some_and(|b| b.len() == 2));
    let mut routes = Routes::default();
    for b in weighted
        .iter()
        .flat_map(|r| r.backend_refs.iter().flatten())
    {
        if b.name == n.primary {
            routes.primary = b.weight.unwrap_or(1);
        }
        if b.name == n.canary {
            routes.canary = b.weight.unwrap_or(1);
        }
    }
    routes.mirrored = serin
        .iter()
        .any(|r| r.filters.iter().flatten().any(|f| is_canary_mirror(f, &n)));
    if weighted.is_none() || (routes.primary == 0 && routes.canary == 0) {
        return Err(RouterError::Routes(format!(
            "GRPCRoute {}.{} does not contain routes for {} and {}",
            n.apex, n.namespace, n.primary, n.canary
        )));
    }
    Ok(routes)
}

#[cfg(test)]
mod tests;
