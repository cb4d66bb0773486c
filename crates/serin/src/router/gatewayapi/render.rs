//! The pure half of the Gateway API router: the rules Serin writes into the HTTPRoute `<apex>`,
//! how they are merged with what others wrote, and how weights are read back.
//!
//! Serin's rules are the ones with a backendRef to `<apex>-primary` or `<apex>-canary`; in an
//! adopted HTTPRoute, the rules whose backendRefs all point at the `<apex>` Service are taken over
//! (replaced by Serin's). Every other rule (a redirect, a route to another backend) is kept where
//! it is (fluxcd/flagger#1857). On the rules Serin writes or takes over, filters of a type Serin
//! never writes (`ExtensionRef`, `RequestRedirect`, ...) and rule fields Serin does not model
//! (`retry`, `sessionPersistence`, `name`, ...) are carried over to every rule Serin writes. The
//! filter types Serin writes (`RequestHeaderModifier`, `ResponseHeaderModifier`, `URLRewrite`,
//! `RequestMirror`, `CORS`) are Serin's on those rules: they come from the Canary's
//! `service.headers`, `rewrite`, `mirror` and `corsPolicy`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use super::super::istio::render::update_session_cookies;
use super::super::{RouterError, Routes};
use crate::api::apis::gatewayapi::{
    BackendObjectReference, HttpBackendRef, HttpHeader, HttpHeaderFilter, HttpRequestMirrorFilter,
    HttpRoute, HttpRouteFilter, HttpRouteMatch, HttpRouteRule, HttpRouteSpec, HttpRouteTimeouts,
    HttpValueMatch,
};
use crate::api::provider::GatewayApiVersion;
use crate::api::service::CanaryService;
use crate::api::{Canary, CanaryStatus, duration};
use crate::k8s::meta::{canary_owner_reference, merge_patch_diff, metadata_map_patch, prune};
use crate::router::object::{apex_annotations, apex_labels};

mod matches;
mod readback;
mod rule_filters;

use matches::service_matches;
pub(super) use matches::value_match;
pub use matches::{merge_matches, route_matches};
pub(super) use readback::parents_accepted;
pub use readback::{parents_ready, routes_of};
use rule_filters::filters;
pub(super) use rule_filters::header_filter;

const COOKIE_HEADER: &str = "Cookie";
const SET_COOKIE_HEADER: &str = "Set-Cookie";
pub(super) const REGEX: &str = "RegularExpression";
pub(super) const EXACT: &str = "Exact";
const PATH_PREFIX: &str = "PathPrefix";
pub(super) const REQUEST_HEADER_MODIFIER: &str = "RequestHeaderModifier";
pub(super) const RESPONSE_HEADER_MODIFIER: &str = "ResponseHeaderModifier";
const URL_REWRITE: &str = "URLRewrite";
pub(super) const REQUEST_MIRROR: &str = "RequestMirror";
const CORS: &str = "CORS";
/// Filter types Serin writes on its rules; others found there are the user's and kept.
const SERIN_FILTER_TYPES: &[&str] = &[
    REQUEST_HEADER_MODIFIER,
    RESPONSE_HEADER_MODIFIER,
    URL_REWRITE,
    REQUEST_MIRROR,
    CORS,
];

pub(super) struct Names {
    pub apex: String,
    pub primary: String,
    pub canary: String,
    pub namespace: String,
}

pub(super) fn names(canary: &Canary) -> Names {
    let (apex, primary, canary_name) = canary.spec.service_names();
    Names {
        apex,
        primary,
        canary: canary_name,
        namespace: canary.metadata.namespace.clone().unwrap_or_default(),
    }
}

pub(super) fn service(canary: &Canary) -> Result<&CanaryService, RouterError> {
    let svc = canary.spec.service.as_ref().ok_or_else(|| {
        RouterError::Invalid(format!(
            "canary {}.{} has no spec.service",
            canary.metadata.name.as_deref().unwrap_or_default(),
            canary.metadata.namespace.as_deref().unwrap_or_default()
        ))
    })?;
    if svc.gateway_refs.as_ref().is_none_or(|r| r.is_empty()) {
        return Err(RouterError::Invalid(
            "GatewayRefs must be specified when using Gateway API as a provider.".to_string(),
        ));
    }
    Ok(svc)
}

pub(super) fn backend_ref(name: &str, weight: i32, port: i32) -> HttpBackendRef {
    HttpBackendRef {
        group: Some(String::new()),
        kind: Some("Service".to_string()),
        name: name.to_string(),
        port: Some(port),
        weight: Some(weight),
        ..Default::default()
    }
}

fn timeouts(svc: &CanaryService, version: GatewayApiVersion) -> Option<HttpRouteTimeouts> {
    let request = svc.timeout.clone().filter(|t| !t.is_empty());
    let backend = svc.backend_timeout.clone().filter(|t| !t.is_empty());
    (version == GatewayApiVersion::V1 && (request.is_some() || backend.is_some())).then(|| {
        HttpRouteTimeouts {
            request,
            backend_request: backend,
            ..Default::default()
        }
    })
}

fn cookie_match(cookie: &str) -> HttpRouteMatch {
    let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
    HttpRouteMatch {
        headers: Some(vec![HttpValueMatch {
            match_type: Some(REGEX.to_string()),
            name: COOKIE_HEADER.to_string(),
            value: format!(".*{name}.*{value}.*"),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn set_cookie_filter(value: String) -> HttpRouteFilter {
    HttpRouteFilter {
        filter_type: RESPONSE_HEADER_MODIFIER.to_string(),
        response_header_modifier: Some(HttpHeaderFilter {
            add: Some(vec![HttpHeader {
                name: SET_COOKIE_HEADER.to_string(),
                value,
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn interval_seconds(canary: &Canary) -> Result<u64, RouterError> {
    let interval = canary
        .spec
        .analysis()
        .and_then(|a| a.interval.clone())
        .unwrap_or_else(|| "60s".to_string());
    duration::parse(&interval)
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            RouterError::Invalid(format!(
                "failed to parse canary interval: invalid duration {interval:?}"
            ))
        })
}

/// Session-affinity bookkeeping before rendering (the same as Istio's).
pub fn update_cookies(
    canary: &Canary,
    status: &mut CanaryStatus,
    routes: Routes,
    generate: &mut dyn FnMut() -> Result<String, String>,
) -> Result<(), RouterError> {
    update_session_cookies(canary, status, routes, generate)
}

/// The rules Serin writes for `routes` (Flagger's `SetRoutes` body; `Reconcile` creates the
/// route with `rules(canary, 100/0, no cookies)`). Cookies are read from `status`.
pub fn rules(
    canary: &Canary,
    version: GatewayApiVersion,
    routes: Routes,
    status: &CanaryStatus,
) -> Result<Vec<HttpRouteRule>, RouterError> {
    let svc = service(canary)?;
    let n = names(canary);
    let matches = service_matches(svc)?;
    let analysis = canary.spec.analysis();
    let mut weighted = HttpRouteRule {
        matches: Some(matches.clone()),
        filters: Some(filters(svc, version)).filter(|f| !f.is_empty()),
        backend_refs: Some(vec![
            backend_ref(&n.primary, routes.primary, svc.port),
            backend_ref(&n.canary, routes.canary, svc.port),
        ]),
        timeouts: timeouts(svc, version),
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

    let mut out = Vec::new();
    if let Some(sa) = analysis.and_then(|a| a.session_affinity.as_ref()) {
        let attributes = sa.cookie_attributes();
        let primary_name = sa
            .primary_cookie_name
            .as_deref()
            .filter(|p| !p.is_empty() && version == GatewayApiVersion::V1);
        let sticky_base = weighted.clone();
        if routes.canary != 0 {
            let cookie = status.session_affinity_cookie.clone().unwrap_or_default();
            let primary_cookie = primary_name
                .and(status.primary_session_affinity_cookie.clone())
                .filter(|c| !c.is_empty());
            let primary_max_age = interval_seconds(canary)?;
            for backend in weighted.backend_refs.iter_mut().flatten() {
                if backend.name == n.canary && !cookie.is_empty() {
                    backend
                        .filters
                        .get_or_insert_with(Vec::new)
                        .push(set_cookie_filter(format!(
                            "{cookie}; Max-Age={}{attributes}",
                            sa.max_age()
                        )));
                }
                if backend.name == n.primary
                    && let Some(pc) = primary_cookie.as_deref()
                {
                    backend
                        .filters
                        .get_or_insert_with(Vec::new)
                        .push(set_cookie_filter(format!(
                            "{pc}; Max-Age={primary_max_age}{attributes}"
                        )));
                }
            }
            if !cookie.is_empty() {
                let mut sticky = sticky_base.clone();
                sticky.matches = Some(merge_matches(&[cookie_match(&cookie)], &matches));
                sticky.backend_refs = Some(vec![
                    backend_ref(&n.primary, 0, svc.port),
                    backend_ref(&n.canary, 100, svc.port),
                ]);
                out.push(sticky);
            }
            if let Some(pc) = primary_cookie.as_deref() {
                let mut sticky = sticky_base.clone();
                sticky.matches = Some(merge_matches(&[cookie_match(pc)], &matches));
                sticky.backend_refs = Some(vec![
                    backend_ref(&n.primary, 100, svc.port),
                    backend_ref(&n.canary, 0, svc.port),
                ]);
                out.push(sticky);
            }
        } else if let Some(previous) = status
            .previous_session_affinity_cookie
            .as_deref()
            .filter(|c| !c.is_empty())
        {
            let mut expire = sticky_base;
            expire.matches = Some(merge_matches(&[cookie_match(previous)], &matches));
            expire
                .filters
                .get_or_insert_with(Vec::new)
                .push(set_cookie_filter(format!("{previous}; Max-Age=-1")));
            out.push(expire);
        }
    }
    out.push(weighted);

    let analysis_match = analysis.map(|a| a.matches()).unwrap_or(&[]);
    if !analysis_match.is_empty() {
        let ab = route_matches(analysis_match)?;
        if let Some(first) = out.first_mut() {
            first.matches = Some(merge_matches(&ab, &matches));
        }
        out.push(HttpRouteRule {
            matches: Some(matches),
            filters: Some(filters(svc, version)).filter(|f| !f.is_empty()),
            backend_refs: Some(vec![backend_ref(&n.primary, 100, svc.port)]),
            timeouts: timeouts(svc, version),
            ..Default::default()
        });
    }
    Ok(out)
}

/// Whether `rule` is one of Serin's (routes to the primary or canary Service).
pub(super) fn is_serin_rule(rule: &HttpRouteRule, n: &Names) -> bool {
    rule.backend_refs
        .iter()
        .flatten()
        .any(|b| b.name == n.primary || b.name == n.canary)
}

/// Whether `rule` routes to the `<apex>` Service only (a rule of an adopted route that Serin takes
/// over).
fn is_apex_rule(rule: &HttpRouteRule, n: &Names) -> bool {
    rule.backend_refs
        .as_ref()
        .is_some_and(|b| !b.is_empty() && b.iter().all(|b| b.name == n.apex))
}

/// Serin's rules merged into the live ones: what others wrote is kept (see the module doc).
pub fn merge_rules(
    canary: &Canary,
    serin: Vec<HttpRouteRule>,
    live: &[HttpRouteRule],
) -> Vec<HttpRouteRule> {
    let n = names(canary);
    let replaced = |r: &HttpRouteRule| is_serin_rule(r, &n) || is_apex_rule(r, &n);
    let mut foreign_filters: Vec<HttpRouteFilter> = Vec::new();
    let mut extra: BTreeMap<String, Value> = BTreeMap::new();
    let mut rule_name: Option<String> = None;
    for rule in live.iter().filter(|r| replaced(r)) {
        for f in rule.filters.iter().flatten() {
            if !SERIN_FILTER_TYPES.contains(&f.filter_type.as_str()) && !foreign_filters.contains(f)
            {
                foreign_filters.push(f.clone());
            }
        }
        for (k, v) in &rule.extra {
            extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if rule_name.is_none() {
            rule_name = rule.name.clone();
        }
    }
    let serin: Vec<HttpRouteRule> = serin
        .into_iter()
        .enumerate()
        .map(|(i, mut rule)| {
            if !foreign_filters.is_empty() {
                let mut all = foreign_filters.clone();
                all.extend(rule.filters.take().unwrap_or_default());
                rule.filters = Some(all);
            }
            for (k, v) in &extra {
                rule.extra.entry(k.clone()).or_insert_with(|| v.clone());
            }
            // Rule names must be unique: only the first rule keeps the user's name.
            if i == 0 {
                rule.name = rule_name.clone();
            }
            rule
        })
        .collect();
    let mut out = Vec::with_capacity(live.len() + serin.len());
    let mut serin = Some(serin);
    for rule in live {
        if replaced(rule) {
            if let Some(s) = serin.take() {
                out.extend(s);
            }
        } else {
            out.push(rule.clone());
        }
    }
    match serin {
        // Nothing to replace: Serin's rules go first, so that they win ties with other rules of
        // the same match.
        Some(s) => s.into_iter().chain(out).collect(),
        None => out,
    }
}

fn desired_spec(
    canary: &Canary,
    version: GatewayApiVersion,
    routes: Routes,
    status: &CanaryStatus,
    live_rules: &[HttpRouteRule],
) -> Result<HttpRouteSpec, RouterError> {
    let svc = service(canary)?;
    let serin = rules(canary, version, routes, status)?;
    Ok(HttpRouteSpec {
        parent_refs: svc.gateway_refs.clone(),
        hostnames: svc.hosts.clone().filter(|h| !h.is_empty()),
        rules: Some(merge_rules(canary, serin, live_rules)),
        ..Default::default()
    })
}

/// The HTTPRoute `Reconcile` creates: weights 100/0.
pub fn http_route(
    canary: &Canary,
    version: GatewayApiVersion,
    set_owner_refs: bool,
) -> Result<HttpRoute, RouterError> {
    let n = names(canary);
    let spec = desired_spec(
        canary,
        version,
        Routes::new(100, 0, false),
        &CanaryStatus::default(),
        &[],
    )?;
    let mut route = HttpRoute::new(&n.apex, spec);
    route.api_version = api_version(version).to_string();
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

pub fn api_version(version: GatewayApiVersion) -> &'static str {
    match version {
        GatewayApiVersion::V1 => "gateway.networking.k8s.io/v1",
        GatewayApiVersion::V1beta1 => "gateway.networking.k8s.io/v1beta1",
    }
}

/// Whether a rule is one of the session-affinity cookie rules.
fn is_cookie_rule(rule: &HttpRouteRule, cookie_names: &[&str]) -> bool {
    rule.matches.iter().flatten().any(|m| {
        m.headers.iter().flatten().any(|h| {
            h.match_type.as_deref() == Some(REGEX)
                && h.name == COOKIE_HEADER
                && cookie_names
                    .iter()
                    .any(|c| !c.is_empty() && h.value.contains(c))
        })
    })
}

/// The parts of a spec `Reconcile` compares: everything but backend weights, the blue/green
/// mirror filter and (with session affinity) the cookie rules and backend filters.
pub fn comparable(canary: &Canary, spec: &HttpRouteSpec) -> Value {
    let n = names(canary);
    let sa = canary
        .spec
        .analysis()
        .and_then(|a| a.session_affinity.as_ref());
    let cookie_names: Vec<&str> = sa
        .map(|sa| {
            [
                Some(sa.cookie_name.as_str()),
                sa.primary_cookie_name.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect()
        })
        .unwrap_or_default();
    let mut spec = spec.clone();
    if let Some(rules) = spec.rules.as_mut() {
        if sa.is_some() {
            rules.retain(|r| !is_serin_rule(r, &n) || !is_cookie_rule(r, &cookie_names));
        }
        for rule in rules.iter_mut().filter(|r| is_serin_rule(r, &n)) {
            if let Some(filters) = rule.filters.as_mut() {
                filters.retain(|f| !is_canary_mirror(f, &n));
            }
            for b in rule.backend_refs.iter_mut().flatten() {
                b.weight = None;
                if sa.is_some() {
                    b.filters = None;
                }
            }
        }
    }
    prune(&json!({
        "parentRefs": spec.parent_refs,
        "hostnames": spec.hostnames,
        "rules": spec.rules,
    }))
}

pub(super) fn is_canary_mirror(f: &HttpRouteFilter, n: &Names) -> bool {
    f.filter_type == REQUEST_MIRROR
        && f.request_mirror
            .as_ref()
            .is_some_and(|m| m.backend_ref.name == n.canary)
}

/// The metadata part of a route's `Reconcile` patch (HTTPRoute and GRPCRoute alike), or `None`
/// when it is up to date: labels set to `service.apex.labels` (others removed only from a route
/// this Canary controls); annotations merged (others' kept, as in Flagger).
pub(super) fn apex_metadata_patch(canary: &Canary, live: &ObjectMeta) -> Option<Value> {
    let controlled = crate::k8s::meta::is_controlled_by(live, canary);
    let mut meta = Map::new();
    if let Some(p) = metadata_map_patch(live.labels.as_ref(), &apex_labels(canary), controlled, &[])
    {
        meta.insert("labels".into(), p);
    }
    let annotations = apex_annotations(canary);
    if let Some(p) = metadata_map_patch(live.annotations.as_ref(), &annotations, false, &[]) {
        meta.insert("annotations".into(), p);
    }
    (!meta.is_empty()).then_some(Value::Object(meta))
}

/// The merge patch `Reconcile` sends to an existing HTTPRoute, or `None` when it is up to date.
/// A spec difference (modulo weights, mirroring and cookie rules) rewrites `parentRefs`,
/// `hostnames` and `rules`, keeping the live weights and what others wrote. Labels are set to
/// `service.apex.labels` (others removed only from a route this Canary controls); annotations
/// are merged (others' kept, as in Flagger).
pub fn reconcile_patch(
    canary: &Canary,
    version: GatewayApiVersion,
    live: &HttpRoute,
) -> Result<Option<Value>, RouterError> {
    let live_rules = live.spec.rules.as_deref().unwrap_or(&[]);
    let routes = routes_of(canary, &live.spec).unwrap_or(Routes::new(100, 0, false));
    let status = canary.status.clone().unwrap_or_default();
    let desired = desired_spec(canary, version, routes, &status, live_rules)?;
    let mut patch = Map::new();
    if let Some(meta) = apex_metadata_patch(canary, &live.metadata) {
        patch.insert("metadata".into(), meta);
    }
    if comparable(canary, &live.spec) != comparable(canary, &desired) {
        patch.insert("spec".into(), owned_spec(&desired)?);
    }
    Ok((!patch.is_empty()).then_some(Value::Object(patch)))
}

/// `parentRefs`, `hostnames` and `rules` as a merge patch body (absent ones as `null`).
fn owned_spec(spec: &HttpRouteSpec) -> Result<Value, RouterError> {
    let to = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| RouterError::Routes(format!("serialising the HTTPRoute spec failed: {e}")))
    };
    Ok(json!({
        "parentRefs": to(serde_json::to_value(&spec.parent_refs))?,
        "hostnames": to(serde_json::to_value(&spec.hostnames))?,
        "rules": to(serde_json::to_value(&spec.rules))?,
    }))
}

/// The `spec` merge patch of `SetRoutes` (only `rules`, and `parentRefs`/`hostnames` when they
/// drifted), or `None` when the live route already routes `routes`.
pub fn set_routes_patch(
    canary: &Canary,
    version: GatewayApiVersion,
    live: &HttpRouteSpec,
    routes: Routes,
    status: &CanaryStatus,
) -> Result<Option<Value>, RouterError> {
    let desired = desired_spec(
        canary,
        version,
        routes,
        status,
        live.rules.as_deref().unwrap_or(&[]),
    )?;
    let live_owned = owned_spec(live)?;
    let desired_owned = owned_spec(&desired)?;
    Ok(
        merge_patch_diff(&prune(&live_owned), &prune(&desired_owned))
            .map(|_| json!({"spec": desired_owned})),
    )
}
