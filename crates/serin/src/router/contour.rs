//! Contour: the HTTPProxy `<apex>` (`projectcontour.io/v1`), Flagger's `ContourRouter`.
//!
//! The proxy has no virtual host: a root HTTPProxy includes it. Serin owns `spec.routes` and
//! `spec.ingressClassName` (from `-ingress-class`); other fields (e.g. `includes`, `tcpproxy`)
//! are left to their writers. Route 0 weights primary/canary (each service gets Linkerd's
//! `l5d-dst-override` header); with `analysis.match`, route 0 carries one condition per header
//! (prefix and suffix become `contains`) and route 1 sends the rest to the primary.

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::object::{RoutingObject, port, reject_no_weights, without_weights};
use super::{RouterError, Routes};
use crate::api::Canary;
use crate::k8s::meta::namespace;

pub struct HttpProxy {
    /// `-ingress-class` (empty: not set).
    pub ingress_class: String,
}

fn prefix(canary: &Canary) -> String {
    canary
        .spec
        .service
        .as_ref()
        .and_then(|s| s.matches.as_ref())
        .and_then(|m| m.first())
        .and_then(|m| m.uri.as_ref())
        .and_then(|u| u.prefix.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

fn conditions(canary: &Canary) -> Result<Vec<Value>, RouterError> {
    let prefix = prefix(canary);
    let mut out = Vec::new();
    for m in canary.spec.analysis().map(|a| a.matches()).unwrap_or(&[]) {
        for (name, sm) in m.headers.iter().flatten() {
            let header = if let Some(v) = sm.prefix.as_ref().or(sm.suffix.as_ref()) {
                json!({"name": name, "contains": v})
            } else if let Some(v) = &sm.exact {
                json!({"name": name, "exact": v})
            } else {
                return Err(RouterError::Invalid(format!(
                    "Contour matches header {name} by exact, prefix or suffix only; change its regex to one of them"
                )));
            };
            out.push(json!({"prefix": prefix, "header": header}));
        }
    }
    Ok(out)
}

impl HttpProxy {
    fn route(&self, canary: &Canary, conditions: Vec<Value>, routes: Routes) -> Value {
        let (_, primary, canary_name) = canary.spec.service_names();
        let svc = canary.spec.service.as_ref();
        let ns = namespace(canary);
        let service = |name: &str, weight: i32| {
            json!({
                "name": name,
                "port": port(canary),
                "weight": weight,
                "requestHeadersPolicy": {"set": [{
                    "name": "l5d-dst-override",
                    "value": format!("{name}.{ns}.svc.cluster.local:{}", port(canary)),
                }]}
            })
        };
        let mut route = json!({
            "conditions": conditions,
            "services": [service(&primary, routes.primary), service(&canary_name, routes.canary)],
        });
        if let Some(timeout) = svc
            .and_then(|s| s.timeout.as_ref())
            .filter(|t| !t.is_empty())
        {
            route["timeoutPolicy"] = json!({"response": timeout, "idle": "5m"});
        }
        if let Some(retries) = svc.and_then(|s| s.retries.as_ref()) {
            let retry_on: Vec<&str> = retries
                .retry_on
                .as_deref()
                .map(|r| r.split(',').collect())
                .unwrap_or_default();
            route["retryPolicy"] = json!({
                "count": retries.attempts.unwrap_or(0),
                "perTryTimeout": retries.per_try_timeout,
                "retryOn": retry_on,
            });
        }
        route
    }
}

impl RoutingObject for HttpProxy {
    fn kind(&self) -> &'static str {
        "HTTPProxy"
    }

    fn resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk("projectcontour.io", "v1", "HTTPProxy");
        ApiResource::from_gvk_with_plural(&gvk, "httpproxies")
    }

    fn owned_fields(&self) -> &'static [&'static str] {
        &["routes", "ingressClassName"]
    }

    fn spec(&self, canary: &Canary, routes: Routes) -> Result<Value, RouterError> {
        let plain = vec![json!({"prefix": prefix(canary)})];
        let ab = conditions(canary)?;
        let rules = if ab.is_empty() {
            vec![self.route(canary, plain, routes)]
        } else {
            vec![
                self.route(canary, ab, routes),
                self.route(canary, plain, Routes::new(100, 0, false)),
            ]
        };
        let mut spec = json!({"routes": rules});
        if !self.ingress_class.is_empty() {
            spec["ingressClassName"] = json!(self.ingress_class);
        }
        Ok(spec)
    }

    fn unweighted(&self, spec: &Value) -> Value {
        without_weights(spec)
    }

    fn routes_of(&self, canary: &Canary, spec: &Value) -> Result<Routes, RouterError> {
        let (apex, primary, _) = canary.spec.service_names();
        let not_found = || {
            RouterError::Routes(format!(
                "HTTPProxy {apex}.{} services not found",
                namespace(canary)
            ))
        };
        let services = spec
            .pointer("/routes/0/services")
            .and_then(Value::as_array)
            .filter(|s| s.len() >= 2)
            .ok_or_else(not_found)?;
        let primary_weight = services
            .iter()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(primary.as_str()))
            .and_then(|s| s.get("weight").and_then(Value::as_i64))
            .and_then(|w| i32::try_from(w).ok())
            .ok_or_else(not_found)?;
        Ok(Routes::new(primary_weight, 100 - primary_weight, false))
    }

    fn check_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        reject_no_weights(self.kind(), canary, routes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::router::object::reconcile_patch;
    use crate::router::object::testing::{canary, routed};
    use crate::testing::assert_golden;

    fn proxy(class: &str) -> HttpProxy {
        HttpProxy {
            ingress_class: class.to_string(),
        }
    }

    #[test]
    fn golden_weights_with_options_and_ingress_class() {
        let c = canary(
            "contour",
            json!({
                "match": [{"uri": {"prefix": "/api"}}],
                "timeout": "15s",
                "retries": {"attempts": 3, "perTryTimeout": "5s", "retryOn": "5xx,gateway-error"}
            }),
            json!({}),
        );
        assert_golden(
            "router/testdata/contour/weights.yaml",
            &routed(&proxy("contour-external"), &c, Routes::new(80, 20, false)),
        );
    }

    #[test]
    fn golden_ab_headers() {
        let c = canary(
            "contour",
            json!({}),
            json!({"stepWeight": null, "maxWeight": null, "iterations": 5, "match": [
                {"headers": {"x-canary": {"exact": "insider"}, "user-agent": {"prefix": "Mozilla"}}}
            ]}),
        );
        assert_golden(
            "router/testdata/contour/ab.yaml",
            &routed(&proxy(""), &c, Routes::new(0, 100, false)),
        );
    }

    #[test]
    fn fields_serin_does_not_own_are_left_alone() {
        let c = canary("contour", json!({}), json!({}));
        let mut live = routed(&proxy(""), &c, Routes::new(90, 10, false));
        live["spec"]["includes"] = json!([{"name": "other"}]);
        assert_eq!(reconcile_patch(&proxy(""), &c, &live).unwrap(), None);
        let patch = reconcile_patch(&proxy("internal"), &c, &live)
            .unwrap()
            .unwrap();
        assert_eq!(patch, json!({"spec": {"ingressClassName": "internal"}}));
    }

    #[test]
    fn regex_headers_are_an_error() {
        let c = canary(
            "contour",
            json!({}),
            json!({"iterations": 5, "match": [{"headers": {"x": {"regex": ".*"}}}]}),
        );
        let err = proxy("")
            .spec(&c, Routes::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("exact, prefix or suffix"), "{err}");
    }
}
