//! Gateway API matches: Istio-style match requests mapped (Flagger's `mapRouteMatches`), the
//! service's matches, and their merge with an analysis' matches.

use super::{EXACT, PATH_PREFIX, REGEX};
use crate::api::apis::gatewayapi::{HttpPathMatch, HttpRouteMatch, HttpValueMatch};
use crate::api::apis::istio::{HttpMatchRequest, StringMatch};
use crate::api::service::CanaryService;
use crate::router::RouterError;

pub(in crate::router::gatewayapi) fn value_match(
    name: &str,
    sm: &StringMatch,
    what: &str,
) -> Result<HttpValueMatch, RouterError> {
    let (kind, value) = match (&sm.exact, &sm.regex) {
        (Some(v), _) if !v.is_empty() => (EXACT, v),
        (_, Some(v)) if !v.is_empty() => (REGEX, v),
        _ => {
            return Err(RouterError::Invalid(format!(
                "Gateway API matches {what} {name} by exact or regex only; change the match of {name} to one of them"
            )));
        }
    };
    Ok(HttpValueMatch {
        match_type: Some(kind.to_string()),
        name: name.to_string(),
        value: value.clone(),
        ..Default::default()
    })
}

/// Istio-style match requests as Gateway API matches (Flagger's `mapRouteMatches`).
pub fn route_matches(requests: &[HttpMatchRequest]) -> Result<Vec<HttpRouteMatch>, RouterError> {
    let mut out = Vec::new();
    for request in requests {
        let mut m = HttpRouteMatch::default();
        if let Some(uri) = &request.uri {
            let (kind, value) = if let Some(v) = uri.regex.as_ref().filter(|v| !v.is_empty()) {
                (REGEX, v)
            } else if let Some(v) = uri.exact.as_ref().filter(|v| !v.is_empty()) {
                (EXACT, v)
            } else if let Some(v) = uri.prefix.as_ref().filter(|v| !v.is_empty()) {
                (PATH_PREFIX, v)
            } else {
                return Err(RouterError::Invalid(
                    "Gateway API matches the uri by exact, prefix or regex only; change service.match uri to one of them"
                        .to_string(),
                ));
            };
            m.path = Some(HttpPathMatch {
                match_type: Some(kind.to_string()),
                value: Some(value.clone()),
                ..Default::default()
            });
        }
        if let Some(method) = &request.method {
            match method.exact.as_ref().filter(|v| !v.is_empty()) {
                Some(v) => m.method = Some(v.clone()),
                None => {
                    return Err(RouterError::Invalid(
                        "Gateway API matches the method exactly only; use method.exact".to_string(),
                    ));
                }
            }
        }
        let headers = request
            .headers
            .iter()
            .flatten()
            .map(|(k, v)| value_match(k, v, "header"))
            .collect::<Result<Vec<_>, _>>()?;
        m.headers = (!headers.is_empty()).then_some(headers);
        let params = request
            .query_params
            .iter()
            .flatten()
            .map(|(k, v)| value_match(k, v, "query parameter"))
            .collect::<Result<Vec<_>, _>>()?;
        m.query_params = (!params.is_empty()).then_some(params);
        if m != HttpRouteMatch::default() {
            out.push(m);
        }
    }
    Ok(out)
}

/// `service.match` as Gateway API matches, `PathPrefix /` when there are none.
pub(super) fn service_matches(svc: &CanaryService) -> Result<Vec<HttpRouteMatch>, RouterError> {
    let mut matches = route_matches(svc.matches.as_deref().unwrap_or(&[]))?;
    if matches.is_empty() {
        matches.push(HttpRouteMatch {
            path: Some(HttpPathMatch {
                match_type: Some(PATH_PREFIX.to_string()),
                value: Some("/".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    Ok(matches)
}

/// Flagger's merge: one copy of each service match per analysis match, with the analysis'
/// headers and query parameters.
pub fn merge_matches(
    analysis: &[HttpRouteMatch],
    service: &[HttpRouteMatch],
) -> Vec<HttpRouteMatch> {
    if analysis.is_empty() {
        return service.to_vec();
    }
    if service.is_empty() {
        return analysis.to_vec();
    }
    let mut merged = Vec::with_capacity(analysis.len() * service.len());
    for a in analysis {
        for s in service {
            let mut m = s.clone();
            if a.headers.as_ref().is_some_and(|h| !h.is_empty()) {
                m.headers = a.headers.clone();
            }
            if a.query_params.as_ref().is_some_and(|q| !q.is_empty()) {
                m.query_params = a.query_params.clone();
            }
            merged.push(m);
        }
    }
    merged
}
