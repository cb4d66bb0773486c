//! Reading a live HTTPRoute back: the weights its rules route (Flagger's `GetRoutes`) and
//! whether its parents accepted its current generation.

use super::{is_canary_mirror, is_serin_rule, names};
use crate::api::Canary;
use crate::api::apis::gatewayapi::{HttpRoute, HttpRouteRule, HttpRouteSpec};
use crate::router::{RouterError, Routes};

/// Reads the weights (Flagger's `GetRoutes`): from Serin's rule with two backendRefs (with
/// session affinity, the one whose backendRefs carry cookie filters); `mirrored` when a rule
/// mirrors to the canary.
pub fn routes_of(canary: &Canary, spec: &HttpRouteSpec) -> Result<Routes, RouterError> {
    let n = names(canary);
    let mut routes = Routes::default();
    let mut found = false;
    let session_affinity = canary
        .spec
        .analysis()
        .is_some_and(|a| a.session_affinity.is_some());
    let read = |rule: &HttpRouteRule, routes: &mut Routes| {
        for b in rule.backend_refs.iter().flatten() {
            if b.name == n.primary {
                routes.primary = b.weight.unwrap_or(1);
            }
            if b.name == n.canary {
                routes.canary = b.weight.unwrap_or(1);
            }
        }
    };
    let serin_rules: Vec<&HttpRouteRule> = spec
        .rules
        .iter()
        .flatten()
        .filter(|r| is_serin_rule(r, &n))
        .collect();
    let with_cookie_filters = serin_rules.iter().find(|r| {
        r.backend_refs
            .iter()
            .flatten()
            .any(|b| b.filters.as_ref().is_some_and(|f| !f.is_empty()))
    });
    match with_cookie_filters {
        Some(rule) if session_affinity => {
            read(rule, &mut routes);
            found = true;
        }
        _ => {
            // Without cookies the weighted rule is the last Serin rule with two backendRefs
            // (sticky rules come first; the A/B fallback rule has one backendRef).
            if let Some(rule) = serin_rules
                .iter()
                .rev()
                .find(|r| r.backend_refs.as_ref().is_some_and(|b| b.len() == 2))
            {
                read(rule, &mut routes);
                found = true;
            }
        }
    }
    routes.mirrored = serin_rules
        .iter()
        .any(|r| r.filters.iter().flatten().any(|f| is_canary_mirror(f, &n)));
    if !found || (routes.primary == 0 && routes.canary == 0) {
        return Err(RouterError::Routes(format!(
            "HTTPRoute {}.{} does not contain routes for {} and {}",
            n.apex, n.namespace, n.primary, n.canary
        )));
    }
    Ok(routes)
}

/// Flagger's readiness check of `GetRoutes`: every parent that reported an `Accepted` condition
/// must have accepted the current generation.
pub fn parents_ready(canary: &Canary, route: &HttpRoute) -> Result<(), RouterError> {
    parents_accepted(
        "HTTPRoute",
        canary,
        route.metadata.generation,
        route.spec.parent_refs.as_deref(),
        route.status.as_ref(),
    )
}

/// [`parents_ready`] for any route kind: its generation, `parentRefs` and status.
pub(in crate::router::gatewayapi) fn parents_accepted(
    kind: &str,
    canary: &Canary,
    generation: Option<i64>,
    parent_refs: Option<&[crate::api::apis::gatewayapi::ParentReference]>,
    status: Option<&crate::api::apis::gatewayapi::HttpRouteStatus>,
) -> Result<(), RouterError> {
    let n = names(canary);
    let generation = generation.unwrap_or(0);
    let parents = status.and_then(|s| s.parents.as_deref()).unwrap_or(&[]);
    for parent_ref in parent_refs.unwrap_or(&[]) {
        for parent in parents
            .iter()
            .filter(|p| same_parent(&p.parent_ref, parent_ref))
        {
            for c in parent.conditions.iter().flatten() {
                if c.type_ == "Accepted"
                    && (c.status != "True" || c.observed_generation.unwrap_or(0) < generation)
                {
                    return Err(RouterError::Routes(format!(
                        "{kind} {}.{} parent {} is not ready (status: {}, observed generation: {}, current generation: {})",
                        n.apex,
                        n.namespace,
                        parent_ref.name,
                        c.status,
                        c.observed_generation.unwrap_or(0),
                        generation
                    )));
                }
            }
        }
    }
    Ok(())
}

fn same_parent(
    a: &crate::api::apis::gatewayapi::ParentReference,
    b: &crate::api::apis::gatewayapi::ParentReference,
) -> bool {
    a.name == b.name
        && a.namespace == b.namespace
        && a.section_name == b.section_name
        && a.port == b.port
        && a.kind.as_deref().unwrap_or("Gateway") == b.kind.as_deref().unwrap_or("Gateway")
        && a.group.as_deref().unwrap_or("gateway.networking.k8s.io")
            == b.group.as_deref().unwrap_or("gateway.networking.k8s.io")
}
