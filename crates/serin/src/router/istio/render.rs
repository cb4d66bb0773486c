//! The pure half of the Istio router: desired objects and the patches that reach them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use super::{RouterError, Routes, controlled};
use crate::api::apis::istio::{
    Destination, DestinationRule, DestinationRuleSpec, HeaderOperations, Headers, HttpMatchRequest,
    HttpRewrite, HttpRoute, HttpRouteDestination, L4MatchAttributes, Percent, PortSelector,
    RouteDestination, StringMatch, TcpRoute, VirtualService, VirtualServiceSpec,
};
use crate::api::service::CanaryService;
use crate::api::{Canary, CanaryStatus, duration};
use crate::k8s::meta::{
    KUBECTL_LAST_APPLIED, canary_owner_reference, merge_patch_diff, metadata_map_patch, prune,
};
use crate::router::object::{apex_annotations, apex_labels};

/// Annotation holding the spec of an adopted VirtualService as it was before Serin first
/// changed it (restored on deletion with `revertOnDeletion`).
pub const ORIGINAL_CONFIGURATION: &str = "flagger.kubernetes.io/original-configuration";
/// Name of the cookie-matching routes (ignored when comparing specs).
pub const STICKY_ROUTE_NAME: &str = "sticky-route";
const COOKIE_HEADER: &str = "Cookie";
const SET_COOKIE_HEADER: &str = "Set-Cookie";

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

fn service(canary: &Canary) -> Result<&CanaryService, RouterError> {
    canary.spec.service.as_ref().ok_or_else(|| {
        RouterError::Invalid(format!(
            "canary {}.{} has no spec.service",
            canary.metadata.name.as_deref().unwrap_or_default(),
            canary.metadata.namespace.as_deref().unwrap_or_default()
        ))
    })
}

/// `service.appProtocol` is `tcp` (any case): TCP routes instead of HTTP routes.
pub fn is_tcp(canary: &Canary) -> bool {
    canary
        .spec
        .service
        .as_ref()
        .and_then(|s| s.app_protocol.as_deref())
        .is_some_and(|p| p.eq_ignore_ascii_case("tcp"))
}

fn metadata(name: &str, namespace: &str, canary: &Canary, set_owner_refs: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        owner_references: if set_owner_refs {
            canary_owner_reference(canary).map(|o| vec![o])
        } else {
            None
        },
        ..Default::default()
    }
}

/// The two DestinationRules: `<apex>-canary` and `<apex>-primary`, host = own name,
/// `trafficPolicy` = `service.trafficPolicy`.
pub fn destination_rules(
    canary: &Canary,
    set_owner_refs: bool,
) -> Result<Vec<DestinationRule>, RouterError> {
    let svc = service(canary)?;
    let n = names(canary);
    Ok([&n.canary, &n.primary]
        .into_iter()
        .map(|name| {
            let mut dr = DestinationRule::new(
                name,
                DestinationRuleSpec {
                    host: name.clone(),
                    traffic_policy: svc.traffic_policy.clone(),
                    ..Default::default()
                },
            );
            dr.metadata = metadata(name, &n.namespace, canary, set_owner_refs);
            dr
        })
        .collect())
}

/// The merge patch of a live DestinationRule's `spec` towards the desired one (`host` and
/// `trafficPolicy` only; other fields, e.g. subsets a user added, are left alone).
pub fn destination_rule_spec_patch(
    live: &DestinationRule,
    desired: &DestinationRule,
) -> Option<Value> {
    let owned = |spec: &DestinationRuleSpec| {
        prune(&json!({
            "host": spec.host,
            "trafficPolicy": spec.traffic_policy,
        }))
    };
    let live = owned(&live.spec);
    let desired = owned(&desired.spec);
    merge_patch_diff(&live, &desired)
}

fn make_destination(svc: &CanaryService, host: &str, weight: i32) -> HttpRouteDestination {
    HttpRouteDestination {
        destination: destination(svc, host),
        weight,
        ..Default::default()
    }
}

fn destination(svc: &CanaryService, host: &str) -> Destination {
    let gateways = svc.gateways.as_deref().unwrap_or(&[]);
    let explicit_port = svc.port_discovery == Some(true)
        && ((!gateways.is_empty() && gateways[0] != "mesh") || svc.delegation == Some(true));
    Destination {
        host: host.to_string(),
        port: explicit_port.then(|| PortSelector {
            number: u32::try_from(svc.port).ok(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `service.rewrite` without Flagger's Gateway API `type` extension.
fn istio_rewrite(svc: &CanaryService) -> Option<HttpRewrite> {
    svc.rewrite.as_ref().map(|r| HttpRewrite {
        rewrite_type: None,
        ..r.clone()
    })
}

fn base_route(
    svc: &CanaryService,
    matches: Option<Vec<HttpMatchRequest>>,
    route: Vec<HttpRouteDestination>,
) -> HttpRoute {
    HttpRoute {
        matches: matches.filter(|m| !m.is_empty()),
        rewrite: istio_rewrite(svc),
        timeout: svc.timeout.clone().filter(|t| !t.is_empty()),
        retries: svc.retries.clone(),
        cors_policy: svc.cors_policy.clone(),
        headers: svc.headers.clone(),
        route: Some(route),
        ..Default::default()
    }
}

/// Flagger's match merge: with no `service.match`, the analysis match as is; otherwise the
/// Cartesian product where each element is a copy of a service match whose `headers` and
/// `sourceLabels` are replaced by the analysis match's (other analysis fields are dropped).
pub fn merge_match_conditions(
    analysis: &[HttpMatchRequest],
    defaults: &[HttpMatchRequest],
) -> Vec<HttpMatchRequest> {
    if defaults.is_empty() {
        return analysis.to_vec();
    }
    let mut merged = Vec::with_capacity(analysis.len() * defaults.len());
    for a in analysis {
        for d in defaults {
            let mut m = d.clone();
            if a.headers.is_some() {
                m.headers = a.headers.clone();
            }
            if a.source_labels.is_some() {
                m.source_labels = a.source_labels.clone();
            }
            merged.push(m);
        }
    }
    merged
}

/// `(hosts, gateways)` of the VirtualService (both absent with delegation).
type HostsAndGateways = (Option<Vec<String>>, Option<Vec<String>>);

fn hosts_and_gateways(svc: &CanaryService, n: &Names) -> Result<HostsAndGateways, RouterError> {
    let hosts = svc.hosts.clone().unwrap_or_default();
    let gateways = svc.gateways.clone().unwrap_or_default();
    if svc.delegation == Some(true) {
        if !hosts.is_empty() || !gateways.is_empty() {
            return Err(RouterError::Invalid(format!(
                "VirtualService {}.{} cannot have hosts and gateways when delegation enabled",
                n.apex, n.namespace
            )));
        }
        return Ok((None, None));
    }
    let mut hosts = hosts;
    if !hosts.iter().any(|h| h == &n.apex || h == "*") {
        hosts.push(n.apex.clone());
    }
    let gateways = if gateways.is_empty() {
        vec!["mesh".to_string()]
    } else {
        gateways
    };
    Ok((Some(hosts), Some(gateways)))
}

fn cookie_regex_match(cookie: &str) -> HttpMatchRequest {
    let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
    HttpMatchRequest {
        headers: Some(BTreeMap::from([(
            COOKIE_HEADER.to_string(),
            StringMatch {
                regex: Some(format!(".*{name}.*{value}.*")),
                ..Default::default()
            },
        )])),
        ..Default::default()
    }
}

fn add_response_header(headers: Option<Headers>, name: &str, value: String) -> Headers {
    let mut headers = headers.unwrap_or_default();
    let response = headers
        .response
        .get_or_insert_with(HeaderOperations::default);
    response
        .add
        .get_or_insert_with(BTreeMap::new)
        .insert(name.to_string(), value);
    headers
}

/// Seconds of `analysis.interval` as written (Max-Age of the primary cookie).
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

/// Session-affinity bookkeeping before `SetRoutes` renders (Flagger semantics): with canary
/// traffic, generate the run's cookie (and the primary cookie) when missing; without, move
/// the run's cookie to `previousSessionAffinityCookie`.
pub fn update_session_cookies(
    canary: &Canary,
    status: &mut CanaryStatus,
    routes: Routes,
    generate: &mut dyn FnMut() -> Result<String, String>,
) -> Result<(), RouterError> {
    let Some(sa) = canary
        .spec
        .analysis()
        .and_then(|a| a.session_affinity.as_ref())
    else {
        return Ok(());
    };
    if is_tcp(canary) {
        return Ok(());
    }
    if routes.canary != 0 {
        if status
            .session_affinity_cookie
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            let value = generate().map_err(RouterError::Invalid)?;
            status.session_affinity_cookie = Some(format!("{}={value}", sa.cookie_name));
        }
        let primary_name = sa.primary_cookie_name.as_deref().unwrap_or_default();
        if !primary_name.is_empty()
            && status
                .primary_session_affinity_cookie
                .as_deref()
                .unwrap_or_default()
                .is_empty()
        {
            let value = generate().map_err(RouterError::Invalid)?;
            status.primary_session_affinity_cookie = Some(format!("{primary_name}={value}"));
        }
    } else {
        if let Some(current) = status
            .session_affinity_cookie
            .take()
            .filter(|c| !c.is_empty())
        {
            status.previous_session_affinity_cookie = Some(current);
        }
        status.session_affinity_cookie = None;
    }
    Ok(())
}

/// The VirtualService spec routing `routes` (Flagger's `SetRoutes` body; the initial spec of
/// `Reconcile` is `spec(canary, 100/0, no cookies)`). Cookies are read from `status`; call
/// [`update_session_cookies`] first.
pub fn spec(
    canary: &Canary,
    routes: Routes,
    status: &CanaryStatus,
) -> Result<VirtualServiceSpec, RouterError> {
    let svc = service(canary)?;
    let n = names(canary);
    let (hosts, gateways) = hosts_and_gateways(svc, &n)?;
    let service_match = svc.matches.clone().unwrap_or_default();

    if is_tcp(canary) {
        let matches: Vec<L4MatchAttributes> = service_match
            .iter()
            .map(|m| L4MatchAttributes {
                port: m.port,
                ..Default::default()
            })
            .collect();
        let tcp_dest = |host: &str, weight: i32| RouteDestination {
            destination: destination(svc, host),
            weight,
            ..Default::default()
        };
        return Ok(VirtualServiceSpec {
            hosts,
            gateways,
            tcp: Some(vec![TcpRoute {
                matches: (!matches.is_empty()).then_some(matches),
                route: Some(vec![
                    tcp_dest(&n.primary, routes.primary),
                    tcp_dest(&n.canary, routes.canary),
                ]),
                ..Default::default()
            }]),
            ..Default::default()
        });
    }

    let analysis = canary.spec.analysis();
    let weighted_dests = || {
        vec![
            make_destination(svc, &n.primary, routes.primary),
            make_destination(svc, &n.canary, routes.canary),
        ]
    };
    let mut weighted = base_route(svc, Some(service_match.clone()), weighted_dests());
    let mut http = vec![];

    if let Some(sa) = analysis.and_then(|a| a.session_affinity.as_ref()) {
        let attributes = sa.cookie_attributes();
        if routes.canary != 0 {
            let cookie = status.session_affinity_cookie.clone().unwrap_or_default();
            let primary_cookie = status.primary_session_affinity_cookie.clone().filter(|_| {
                sa.primary_cookie_name
                    .as_deref()
                    .is_some_and(|p| !p.is_empty())
            });
            let primary_max_age = interval_seconds(canary)?;
            for dest in weighted.route.iter_mut().flatten() {
                if dest.destination.host == n.canary && !cookie.is_empty() {
                    dest.headers = Some(add_response_header(
                        dest.headers.take(),
                        SET_COOKIE_HEADER,
                        format!("{cookie}; Max-Age={}{attributes}", sa.max_age()),
                    ));
                }
                if dest.destination.host == n.primary
                    && let Some(pc) = primary_cookie.as_deref()
                {
                    dest.headers = Some(add_response_header(
                        dest.headers.take(),
                        SET_COOKIE_HEADER,
                        format!("{pc}; Max-Age={primary_max_age}{attributes}"),
                    ));
                }
            }
            if !cookie.is_empty() {
                let mut sticky = base_route(
                    svc,
                    Some(merge_match_conditions(
                        &[cookie_regex_match(&cookie)],
                        &service_match,
                    )),
                    vec![
                        make_destination(svc, &n.primary, 0),
                        make_destination(svc, &n.canary, 100),
                    ],
                );
                sticky.name = Some(STICKY_ROUTE_NAME.to_string());
                http.push(sticky);
            }
            if let Some(pc) = primary_cookie.as_deref() {
                let mut sticky = base_route(
                    svc,
                    Some(merge_match_conditions(
                        &[cookie_regex_match(pc)],
                        &service_match,
                    )),
                    vec![
                        make_destination(svc, &n.primary, 100),
                        make_destination(svc, &n.canary, 0),
                    ],
                );
                sticky.name = Some(STICKY_ROUTE_NAME.to_string());
                http.push(sticky);
            }
        } else if let Some(previous) = status
            .previous_session_affinity_cookie
            .as_deref()
            .filter(|c| !c.is_empty())
        {
            let mut expire = weighted.clone();
            expire.name = Some(STICKY_ROUTE_NAME.to_string());
            expire.matches = Some(merge_match_conditions(
                &[cookie_regex_match(previous)],
                &service_match,
            ));
            expire.headers = Some(add_response_header(
                expire.headers.take(),
                SET_COOKIE_HEADER,
                format!("{previous}; Max-Age=-1"),
            ));
            http.push(expire);
        }
    }
    http.push(weighted);

    if routes.mirrored
        && let Some(first) = http.first_mut()
    {
        first.mirror = Some(Destination {
            host: n.canary.clone(),
            ..Default::default()
        });
        if let Some(mw) = analysis.and_then(|a| a.mirror_weight).filter(|w| *w > 0) {
            first.mirror_percentage = Some(Percent {
                value: f64::from(mw),
            });
        }
    }

    let analysis_match = analysis.map(|a| a.matches()).unwrap_or(&[]);
    if !analysis_match.is_empty() {
        http = vec![
            base_route(
                svc,
                Some(merge_match_conditions(analysis_match, &service_match)),
                weighted_dests(),
            ),
            base_route(
                svc,
                Some(service_match.clone()),
                vec![make_destination(svc, &n.primary, routes.primary)],
            ),
        ];
    }

    Ok(VirtualServiceSpec {
        hosts,
        gateways,
        http: Some(http),
        ..Default::default()
    })
}

/// The VirtualService `Reconcile` creates: initial weights 100/0, no cookie routes.
pub fn virtual_service(
    canary: &Canary,
    set_owner_refs: bool,
) -> Result<VirtualService, RouterError> {
    let n = names(canary);
    let spec = spec(canary, Routes::new(100, 0, false), &CanaryStatus::default())?;
    let mut vs = VirtualService::new(&n.apex, spec);
    vs.metadata = metadata(&n.apex, &n.namespace, canary, set_owner_refs);
    vs.metadata.labels = Some(apex_labels(canary)).filter(|l| !l.is_empty());
    vs.metadata.annotations = Some(apex_annotations(canary));
    Ok(vs)
}

/// The owned spec fields, as JSON.
fn owned_spec(spec: &VirtualServiceSpec) -> Value {
    json!({
        "hosts": spec.hosts,
        "gateways": spec.gateways,
        "http": spec.http,
        "tcp": spec.tcp,
    })
}

/// The owned spec fields with what `Reconcile` ignores removed: destination weights,
/// `mirror` and `mirrorPercentage`, and with session affinity the sticky routes and the
/// destination headers. Empty and absent compare equal.
pub fn comparable_spec(canary: &Canary, spec: &VirtualServiceSpec) -> Value {
    let session_affinity = canary
        .spec
        .analysis()
        .is_some_and(|a| a.session_affinity.is_some());
    let mut spec = spec.clone();
    if let Some(http) = spec.http.as_mut() {
        if session_affinity {
            http.retain(|r| r.name.as_deref() != Some(STICKY_ROUTE_NAME));
        }
        for route in http.iter_mut() {
            route.mirror = None;
            route.mirror_percentage = None;
            for dest in route.route.iter_mut().flatten() {
                dest.weight = 0;
                if session_affinity {
                    dest.headers = None;
                }
            }
        }
    }
    for route in spec.tcp.iter_mut().flatten() {
        for dest in route.route.iter_mut().flatten() {
            dest.weight = 0;
        }
    }
    prune(&owned_spec(&spec))
}

/// The merge patch `Reconcile` sends to an existing VirtualService, or `None` when it is up to
/// date. A spec difference (modulo weights, mirroring and cookie routes) rewrites the owned
/// spec fields, keeping the live weights (100/0 when there are none). Desired labels/annotations are set; other keys
/// are removed only from a VirtualService this Canary controls (an adopted one keeps the
/// user's). The first time Serin changes the spec of an adopted VirtualService without a
/// `kubectl` record, the user's spec is kept in `original-configuration` (never overwritten
/// later).
pub fn virtual_service_update_patch(
    canary: &Canary,
    live: &VirtualService,
    live_raw_spec: &Value,
    desired: &VirtualService,
) -> Result<Option<Value>, RouterError> {
    let is_controlled = controlled(&live.metadata, canary);
    let spec_differs =
        comparable_spec(canary, &live.spec) != comparable_spec(canary, &desired.spec);
    let mut patch = Map::new();
    let mut meta = Map::new();
    if let Some(p) = metadata_map_patch(
        live.metadata.labels.as_ref(),
        desired.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
        is_controlled,
        &[],
    ) {
        meta.insert("labels".into(), p);
    }
    let mut desired_annotations = desired.metadata.annotations.clone().unwrap_or_default();
    let live_annotations = live.metadata.annotations.clone().unwrap_or_default();
    if spec_differs
        && !is_controlled
        && !live_annotations.contains_key(KUBECTL_LAST_APPLIED)
        && !live_annotations.contains_key(ORIGINAL_CONFIGURATION)
    {
        let original = live_raw_spec.to_string();
        desired_annotations.insert(ORIGINAL_CONFIGURATION.to_string(), original);
    }
    if let Some(p) = metadata_map_patch(
        live.metadata.annotations.as_ref(),
        &desired_annotations,
        is_controlled,
        &[KUBECTL_LAST_APPLIED, ORIGINAL_CONFIGURATION],
    ) {
        meta.insert("annotations".into(), p);
    }
    if !meta.is_empty() {
        patch.insert("metadata".into(), Value::Object(meta));
    }
    if spec_differs {
        // Keep the live weights and mirroring (Flagger resets them to 100/0, restarting a
        // run whenever a non-routing field such as `service.timeout` changes).
        let routes = routes_of(canary, &live.spec).unwrap_or(Routes::new(100, 0, false));
        let status = canary.status.clone().unwrap_or_default();
        let owned = owned_spec(&spec(canary, routes, &status)?);
        patch.insert("spec".into(), owned);
    }
    Ok((!patch.is_empty()).then_some(Value::Object(patch)))
}

/// The `spec` merge patch of `SetRoutes`: replaces `http` (or `tcp` in TCP mode) when the
/// desired routes differ from the live ones.
pub fn routes_patch(
    canary: &Canary,
    live: &VirtualServiceSpec,
    desired: &VirtualServiceSpec,
) -> Result<Option<Value>, RouterError> {
    let field = if is_tcp(canary) { "tcp" } else { "http" };
    let live = serde_json::to_value(live).map_err(|e| {
        RouterError::Routes(format!("serialising the VirtualService spec failed: {e}"))
    })?;
    let desired = serde_json::to_value(desired).map_err(|e| {
        RouterError::Routes(format!("serialising the VirtualService spec failed: {e}"))
    })?;
    let pick = |v: &Value| json!({ field: v.get(field).cloned().unwrap_or(Value::Null) });
    Ok(merge_patch_diff(&pick(&live), &pick(&desired)))
}

/// Reads the weights from a live spec (Flagger's `GetRoutes`): the last route holding the
/// canary destination; with session affinity, the destinations that set cookies win.
pub fn routes_of(canary: &Canary, spec: &VirtualServiceSpec) -> Result<Routes, RouterError> {
    let n = names(canary);
    let mut routes = Routes::default();
    if is_tcp(canary) {
        let route = spec.tcp.iter().flatten().rev().find(|r| {
            r.route
                .iter()
                .flatten()
                .any(|d| d.destination.host == n.canary)
        });
        for d in route.and_then(|r| r.route.as_ref()).into_iter().flatten() {
            if d.destination.host == n.primary {
                routes.primary = d.weight;
            }
            if d.destination.host == n.canary {
                routes.canary = d.weight;
            }
        }
    } else {
        let route = spec.http.iter().flatten().rev().find(|r| {
            r.route
                .iter()
                .flatten()
                .any(|d| d.destination.host == n.canary)
        });
        if let Some(route) = route {
            for d in route.route.iter().flatten() {
                if d.destination.host == n.primary {
                    routes.primary = d.weight;
                }
                if d.destination.host == n.canary {
                    routes.canary = d.weight;
                }
            }
            routes.mirrored = route.mirror.as_ref().is_some_and(|m| !m.host.is_empty());
        }
        if canary
            .spec
            .analysis()
            .is_some_and(|a| a.session_affinity.is_some())
        {
            for d in spec
                .http
                .iter()
                .flatten()
                .flat_map(|r| r.route.iter().flatten())
            {
                if d.headers.is_some() {
                    if d.destination.host == n.primary {
                        routes.primary = d.weight;
                    }
                    if d.destination.host == n.canary {
                        routes.canary = d.weight;
                    }
                }
            }
        }
    }
    if routes.primary == 0 && routes.canary == 0 {
        return Err(RouterError::Routes(format!(
            "VirtualService {}.{} does not contain routes for {}-primary and {}-canary",
            n.apex, n.namespace, n.apex, n.apex
        )));
    }
    Ok(routes)
}

/// The user's spec recorded on a VirtualService: from `kubectl`'s last-applied configuration,
/// else from `original-configuration`.
pub fn stored_spec(canary: &Canary, live: &VirtualService) -> Result<Option<Value>, RouterError> {
    let n = names(canary);
    let annotations = live.metadata.annotations.clone().unwrap_or_default();
    let parse_error = |key: &str| {
        RouterError::Routes(format!(
            "VirtualService {}.{} failed to unMarshal annotation {key}",
            n.apex, n.namespace
        ))
    };
    if let Some(a) = annotations.get(KUBECTL_LAST_APPLIED) {
        let stored: Value =
            serde_json::from_str(a).map_err(|_| parse_error(KUBECTL_LAST_APPLIED))?;
        return Ok(Some(
            stored.get("spec").cloned().unwrap_or_else(|| json!({})),
        ));
    }
    if let Some(a) = annotations.get(ORIGINAL_CONFIGURATION) {
        let stored: Value =
            serde_json::from_str(a).map_err(|_| parse_error(ORIGINAL_CONFIGURATION))?;
        if !stored.is_object() {
            return Err(parse_error(ORIGINAL_CONFIGURATION));
        }
        return Ok(Some(stored));
    }
    Ok(None)
}

/// The merge patch that restores the stored user spec on `Finalize`, or `None` when there is
/// nothing stored or nothing to change (`live_raw_spec` is the spec as stored).
pub fn restore_patch(
    canary: &Canary,
    live: &VirtualService,
    live_raw_spec: &Value,
) -> Result<Option<Value>, RouterError> {
    let Some(stored) = stored_spec(canary, live)? else {
        return Ok(None);
    };
    Ok(merge_patch_diff(live_raw_spec, &stored).map(|p| json!({"spec": p})))
}
