//! Traefik: the TraefikService `<apex>` (`traefik.io/v1alpha1`), Flagger's `TraefikRouter`.
//!
//! `spec.weighted.services` lists the primary and, while it gets traffic, the canary; users
//! reference the TraefikService from their IngressRoute. No A/B, no mirroring.

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::object::{RoutingObject, port, reject_no_weights, without_weights};
use super::{RouterError, Routes};
use crate::api::Canary;
use crate::k8s::meta::namespace;

pub struct TraefikService;

impl RoutingObject for TraefikService {
    fn kind(&self) -> &'static str {
        "TraefikService"
    }

    fn resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk("traefik.io", "v1alpha1", "TraefikService");
        ApiResource::from_gvk_with_plural(&gvk, "traefikservices")
    }

    fn owned_fields(&self) -> &'static [&'static str] {
        &["weighted"]
    }

    fn spec(&self, canary: &Canary, routes: Routes) -> Result<Value, RouterError> {
        let (_, primary, canary_name) = canary.spec.service_names();
        let ns = namespace(canary);
        let entry = |name: &str, weight: i32| json!({"name": name, "namespace": ns, "port": port(canary), "weight": weight});
        let mut services = vec![entry(&primary, routes.primary)];
        if routes.canary > 0 {
            services.push(entry(&canary_name, routes.canary));
        }
        Ok(json!({"weighted": {"services": services}}))
    }

    fn unweighted(&self, spec: &Value) -> Value {
        // The canary entry comes and goes with its weight.
        let mut spec = without_weights(spec);
        if let Some(services) = spec
            .pointer_mut("/weighted/services")
            .and_then(Value::as_array_mut)
        {
            services.truncate(1);
        }
        spec
    }

    fn routes_of(&self, canary: &Canary, spec: &Value) -> Result<Routes, RouterError> {
        let (apex, primary, _) = canary.spec.service_names();
        let services = spec
            .pointer("/weighted/services")
            .and_then(Value::as_array)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                RouterError::Routes(format!(
                    "TraefikService {apex}.{} services not found",
                    namespace(canary)
                ))
            })?;
        let primary_weight = services
            .iter()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(primary.as_str()))
            .and_then(|s| s.get("weight").and_then(Value::as_i64))
            .and_then(|w| i32::try_from(w).ok())
            .ok_or_else(|| {
                RouterError::Routes(format!(
                    "TraefikService {apex}.{} does not route to {primary}",
                    namespace(canary)
                ))
            })?;
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
    use crate::router::object::testing::{canary, routed};
    use crate::router::object::{reconcile_patch, set_routes_patch};
    use crate::testing::assert_golden;

    #[test]
    fn golden_weights_and_apex_metadata() {
        let c = canary(
            "traefik",
            json!({"apex": {"labels": {"team": "web"}, "annotations": {"example.com/a": "b"}}}),
            json!({}),
        );
        let initial = routed(&TraefikService, &c, Routes::new(100, 0, false));
        let step = routed(&TraefikService, &c, Routes::new(70, 30, false));
        assert_golden(
            "router/testdata/traefik/weights.yaml",
            &json!({"initial": initial, "step": step}),
        );
    }

    #[test]
    fn no_valid_weights() {
        let c = canary("traefik", json!({}), json!({}));
        let live = routed(&TraefikService, &c, Routes::new(100, 0, false));
        let err = set_routes_patch(&TraefikService, &c, &live, Routes::new(0, 0, false))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "TraefikService podinfo.test update failed: no valid weights"
        );
    }

    #[test]
    fn a_port_change_is_reconciled_keeping_the_weights() {
        let c = canary("traefik", json!({}), json!({}));
        let live = routed(&TraefikService, &c, Routes::new(60, 40, false));
        let changed = canary("traefik", json!({"port": 8080}), json!({}));
        let patch = reconcile_patch(&TraefikService, &changed, &live)
            .unwrap()
            .unwrap();
        let services = &patch["spec"]["weighted"]["services"];
        assert_eq!(services[0]["port"], 8080);
        assert_eq!(services[0]["weight"], 60);
        assert_eq!(services[1]["weight"], 40);
    }
}
