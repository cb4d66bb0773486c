//! Kuma: the cluster-scoped TrafficRoute `<apex>` (`kuma.io/v1alpha1`), Flagger's `KumaRouter`.
//!
//! The mesh is the Canary's `kuma.io/mesh` annotation or `default`; traffic from any service to
//! `<apex>_<ns>_svc_<port>` is split between the primary and the canary services. Cluster-scoped,
//! so never owner-referenced. No A/B, no mirroring.

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};

use super::object::{RoutingObject, port, without_weights};
use super::{RouterError, Routes};
use crate::api::Canary;
use crate::k8s::meta::namespace;

const SERVICE_TAG: &str = "kuma.io/service";

pub struct TrafficRoute;

fn tag(canary: &Canary, service: &str) -> String {
    format!("{service}_{}_svc_{}", namespace(canary), port(canary))
}

impl RoutingObject for TrafficRoute {
    fn kind(&self) -> &'static str {
        "TrafficRoute"
    }

    fn resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk("kuma.io", "v1alpha1", "TrafficRoute");
        ApiResource::from_gvk_with_plural(&gvk, "trafficroutes")
    }

    fn cluster_scoped(&self) -> bool {
        true
    }

    fn owned_fields(&self) -> &'static [&'static str] {
        &["sources", "destinations", "conf"]
    }

    fn spec(&self, canary: &Canary, routes: Routes) -> Result<Value, RouterError> {
        let (apex, primary, canary_name) = canary.spec.service_names();
        Ok(json!({
            "sources": [{"match": {SERVICE_TAG: "*"}}],
            "destinations": [{"match": {SERVICE_TAG: tag(canary, &apex)}}],
            "conf": {"split": [
                {"weight": routes.primary, "destination": {SERVICE_TAG: tag(canary, &primary)}},
                {"weight": routes.canary, "destination": {SERVICE_TAG: tag(canary, &canary_name)}},
            ]}
        }))
    }

    fn unweighted(&self, spec: &Value) -> Value {
        without_weights(spec)
    }

    fn routes_of(&self, canary: &Canary, spec: &Value) -> Result<Routes, RouterError> {
        let (apex, primary, canary_name) = canary.spec.service_names();
        let mut routes = Routes::default();
        for split in spec
            .pointer("/conf/split")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let service = split
                .pointer("/destination/kuma.io~1service")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if service.split('_').next() == Some(primary.as_str()) {
                let w = split.get("weight").and_then(Value::as_i64).unwrap_or(0);
                routes.primary = i32::try_from(w).unwrap_or(0);
                routes.canary = 100 - routes.primary;
            }
        }
        if routes.primary == 0 && routes.canary == 0 {
            return Err(RouterError::Routes(format!(
                "TrafficRoute {apex} does not contain routes for {primary} and {canary_name}"
            )));
        }
        Ok(routes)
    }

    fn top_level(&self, canary: &Canary) -> Map<String, Value> {
        let mesh = canary
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kuma.io/mesh"))
            .cloned()
            .unwrap_or_else(|| "default".to_string());
        Map::from_iter([("mesh".to_string(), json!(mesh))])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::router::object::testing::{canary, routed};
    use crate::testing::assert_golden;

    #[test]
    fn golden_cluster_scoped_route_in_the_canarys_mesh() {
        let mut c = canary("kuma", json!({}), json!({}));
        c.metadata.annotations = Some([("kuma.io/mesh".to_string(), "edge".to_string())].into());
        let route = routed(&TrafficRoute, &c, Routes::new(60, 40, false));
        assert!(route["metadata"].get("namespace").is_none());
        assert!(route["metadata"].get("ownerReferences").is_none());
        assert_golden("router/testdata/kuma/weights.yaml", &route);
    }

    /// The cluster-scoped TrafficRoute is cached by a cluster-wide watch.
    #[tokio::test]
    async fn with_a_cache_a_step_reads_nothing_and_writes_the_same() {
        use crate::k8s::cache::Cache;
        use crate::router::cached::{assert_cached_steps_read_nothing, until_cached_dynamic};
        use crate::router::object::ObjectRouter;
        use crate::testing::TestCluster;
        assert_cached_steps_read_nothing(
            async |fake: &TestCluster| {
                fake.install_crds(include_str!("../../tests/fixtures/crds/kuma.yaml"))
                    .await;
                fake.store_canary(canary("kuma", json!({}), json!({})))
                    .await
            },
            |client, cache| {
                Box::new(ObjectRouter::new(client, true, TrafficRoute).with_cache(cache))
            },
            async |cache: &Cache, client: kube::Client| {
                until_cached_dynamic(cache, client, &TrafficRoute.resource(), None, "podinfo")
                    .await;
            },
        )
        .await;
    }
}
