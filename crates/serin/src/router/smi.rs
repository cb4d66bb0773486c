//! Linkerd, OSM and SMI: the TrafficSplit `<apex>` (`split.smi-spec.io` v1alpha1, v1alpha2 or
//! v1alpha3), Flagger's `SmiRouter`, `Smiv1alpha2Router` and `Smiv1alpha3Router`.
//!
//! `spec.service` is `service.hosts[0]` or `<apex>`; `spec.backends` are the canary and the
//! primary with their weights (resource quantities in v1alpha1, integers later). No A/B, no
//! mirroring. With `smi:<version>:istio` and `service.gateways`, the gateways are passed in the
//! `VirtualService.v1alpha3.networking.istio.io/spec.gateways` annotation.

use std::collections::BTreeMap;

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::object::RoutingObject;
use super::{RouterError, Routes};
use crate::api::Canary;
use crate::api::provider::SmiVersion;

const GATEWAYS_ANNOTATION: &str = "VirtualService.v1alpha3.networking.istio.io/spec.gateways";

/// A TrafficSplit of one SMI version, for one target mesh.
pub struct TrafficSplit {
    pub version: SmiVersion,
    pub mesh: Option<String>,
}

impl TrafficSplit {
    fn weight(&self, w: i32) -> Value {
        match self.version {
            SmiVersion::V1alpha1 => json!(w.to_string()),
            SmiVersion::V1alpha2 | SmiVersion::V1alpha3 => json!(w),
        }
    }
}

/// A weight written as an integer or as a resource quantity (`"10"`).
fn weight_of(v: &Value) -> Option<i32> {
    match v {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl RoutingObject for TrafficSplit {
    fn kind(&self) -> &'static str {
        "TrafficSplit"
    }

    fn resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk("split.smi-spec.io", self.version.as_str(), "TrafficSplit");
        ApiResource::from_gvk_with_plural(&gvk, "trafficsplits")
    }

    fn owned_fields(&self) -> &'static [&'static str] {
        &["service", "backends"]
    }

    fn spec(&self, canary: &Canary, routes: Routes) -> Result<Value, RouterError> {
        let (apex, primary, canary_name) = canary.spec.service_names();
        let host = canary
            .spec
            .service
            .as_ref()
            .and_then(|s| s.hosts.as_ref())
            .and_then(|h| h.first())
            .cloned()
            .unwrap_or(apex);
        Ok(json!({
            "service": host,
            "backends": [
                {"service": canary_name, "weight": self.weight(routes.canary)},
                {"service": primary, "weight": self.weight(routes.primary)},
            ]
        }))
    }

    fn unweighted(&self, spec: &Value) -> Value {
        let mut spec = spec.clone();
        if let Some(backends) = spec.get_mut("backends").and_then(Value::as_array_mut) {
            for b in backends.iter_mut().filter_map(Value::as_object_mut) {
                b.remove("weight");
            }
        }
        spec
    }

    fn routes_of(&self, canary: &Canary, spec: &Value) -> Result<Routes, RouterError> {
        let (apex, primary, canary_name) = canary.spec.service_names();
        let mut routes = Routes::default();
        for b in spec
            .get("backends")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let weight = b.get("weight").and_then(weight_of).unwrap_or(0);
            match b.get("service").and_then(Value::as_str) {
                Some(s) if s == primary => routes.primary = weight,
                Some(s) if s == canary_name => routes.canary = weight,
                _ => {}
            }
        }
        if routes.primary == 0 && routes.canary == 0 {
            return Err(RouterError::Routes(format!(
                "TrafficSplit {apex}.{} does not contain routes for {primary} and {canary_name}",
                canary.metadata.namespace.as_deref().unwrap_or_default()
            )));
        }
        Ok(routes)
    }

    /// No labels (as in Flagger).
    fn labels(&self, _canary: &Canary) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Only the Istio gateways annotation (as in Flagger).
    fn annotations(&self, canary: &Canary) -> BTreeMap<String, String> {
        let gateways = canary
            .spec
            .service
            .as_ref()
            .and_then(|s| s.gateways.clone())
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        if self.mesh.as_deref() == Some("istio") && !gateways.is_empty() {
            out.insert(GATEWAYS_ANNOTATION.to_string(), json!(gateways).to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::router::Router;
    use crate::router::object::{ObjectRouter, reconcile_patch, testing::routed};
    use crate::testing::TestCluster;
    use crate::testing::assert_golden;

    fn canary(service: Value) -> Canary {
        let mut svc = json!({"port": 9898});
        crate::k8s::meta::apply_merge_patch(&mut svc, &service);
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "canary-uid"},
            "spec": {
                "provider": "linkerd",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": svc,
                "analysis": {"interval": "1m", "stepWeight": 10, "maxWeight": 50}
            }
        }))
        .unwrap()
    }

    fn split(version: SmiVersion, mesh: Option<&str>) -> TrafficSplit {
        TrafficSplit {
            version,
            mesh: mesh.map(str::to_string),
        }
    }

    #[test]
    fn golden_every_version() {
        let c = canary(json!({}));
        let out: Vec<Value> = [
            SmiVersion::V1alpha1,
            SmiVersion::V1alpha2,
            SmiVersion::V1alpha3,
        ]
        .into_iter()
        .map(|v| routed(&split(v, None), &c, Routes::new(70, 30, false)))
        .collect();
        assert_golden("router/testdata/smi/versions.yaml", &out);
    }

    #[test]
    fn golden_host_and_istio_gateways() {
        let c = canary(json!({"hosts": ["podinfo.example.com"], "gateways": ["public-gateway"]}));
        let istio = routed(
            &split(SmiVersion::V1alpha3, Some("istio")),
            &c,
            Routes::new(100, 0, false),
        );
        let linkerd = routed(
            &split(SmiVersion::V1alpha1, Some("linkerd")),
            &c,
            Routes::new(100, 0, false),
        );
        assert!(linkerd["metadata"].get("annotations").is_none());
        assert_golden("router/testdata/smi/istio-gateways.yaml", &istio);
    }

    #[test]
    fn a_changed_host_is_reconciled_keeping_the_weights() {
        let ts = split(SmiVersion::V1alpha2, Some("osm"));
        let live = routed(&ts, &canary(json!({})), Routes::new(60, 40, false));
        let c = canary(json!({"hosts": ["other"]}));
        let patch = reconcile_patch(&ts, &c, &live).unwrap().unwrap();
        assert_eq!(patch, json!({"spec": {"service": "other"}}));
    }

    #[test]
    fn no_routes_is_an_error() {
        let ts = split(SmiVersion::V1alpha1, None);
        let err = ts
            .routes_of(&canary(json!({})), &json!({"backends": []}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "TrafficSplit podinfo.test does not contain routes for podinfo-primary and podinfo-canary"
        );
    }

    #[tokio::test]
    async fn one_read_and_no_write_when_nothing_changed() {
        let fake = TestCluster::start().await;
        fake.install_crds(include_str!("../../tests/fixtures/crds/smi.yaml"))
            .await;
        let c = fake.store_canary(canary(json!({}))).await;
        let router = ObjectRouter::new(fake.client(), true, split(SmiVersion::V1alpha1, None));
        router.reconcile(&c).await.unwrap();
        assert_eq!(fake.writes().len(), 1);
        fake.clear_writes();
        router.reconcile(&c).await.unwrap();
        let mut status = Default::default();
        router
            .set_routes(&c, &mut status, Routes::new(100, 0, false))
            .await
            .unwrap();
        assert!(fake.writes().is_empty(), "{:?}", fake.writes());
        router
            .set_routes(&c, &mut status, Routes::new(80, 20, false))
            .await
            .unwrap();
        let writes = fake.writes();
        assert_eq!(writes.len(), 1);
        assert_eq!(
            writes[0].body,
            json!({"spec": {"backends": [
                {"service": "podinfo-canary", "weight": "20"},
                {"service": "podinfo-primary", "weight": "80"}
            ]}})
        );
        assert_eq!(
            router.get_routes(&c).await.unwrap(),
            Routes::new(80, 20, false)
        );
    }

    #[tokio::test]
    async fn with_a_cache_a_step_reads_nothing_and_writes_the_same() {
        use crate::k8s::cache::Cache;
        use crate::router::cached::{assert_cached_steps_read_nothing, until_cached_dynamic};
        let ts = split(SmiVersion::V1alpha1, None);
        assert_cached_steps_read_nothing(
            async |fake: &TestCluster| {
                fake.install_crds(include_str!("../../tests/fixtures/crds/smi.yaml"))
                    .await;
                fake.store_canary(canary(json!({}))).await
            },
            |client, cache| {
                let ts = split(SmiVersion::V1alpha1, None);
                Box::new(ObjectRouter::new(client, true, ts).with_cache(cache))
            },
            async |cache: &Cache, client: kube::Client| {
                until_cached_dynamic(cache, client, &ts.resource(), Some("test"), "podinfo").await;
            },
        )
        .await;
    }
}
