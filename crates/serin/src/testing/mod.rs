//! Test only: the unit tests' harnesses on top of `devcluster::testing` (a dev cluster per
//! test, golden files), with what needs Serin's types: a [`TestCluster`] that serves Serin's
//! CRDs and the kinds the routers and scalers write, and golden files kept under `src/`.
//!
//! Canaries that own objects are stored in the cluster first ([`TestCluster::store_canary`]) so
//! that the garbage collector sees a live owner.
#![allow(clippy::unwrap_used)]

use std::ops::Deref;
use std::path::PathBuf;

use devcluster::testing::open_crd;
use kube::ResourceExt;
use kube::api::{Api, ApiResource};
use kube::core::GroupVersionKind;

use crate::api::apis::istio::{DestinationRule, VirtualService};
use crate::api::canary::Canary;
use crate::k8s::cache::{Cache, Cacheable, Source};

/// A dev cluster for one unit test (see `devcluster::testing::TestCluster`, which it derefs
/// to) with Serin's CRDs, Istio's VirtualService and DestinationRule, and KEDA's ScaledObject.
pub struct TestCluster(devcluster::testing::TestCluster);

impl Deref for TestCluster {
    type Target = devcluster::testing::TestCluster;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl TestCluster {
    pub async fn start() -> Self {
        let mut crds = crate::api::crd::all();
        crds.push(open_crd(&ApiResource::erase::<VirtualService>(&())));
        crds.push(open_crd(&ApiResource::erase::<DestinationRule>(&())));
        // KEDA's ScaledObject, spelled out here so that this harness of the workload tests does
        // not depend on workload (the autoscaler tests fail if the two ever differ).
        crds.push(open_crd(&ApiResource::from_gvk(&GroupVersionKind::gvk(
            "keda.sh",
            "v1alpha1",
            "ScaledObject",
        ))));
        Self(devcluster::testing::TestCluster::start(crds).await)
    }

    /// Stores a Canary (create or replace) and returns it as stored, with the uid the cluster
    /// gave it (objects it owns are garbage-collected when their owner does not exist).
    pub async fn store_canary(&self, canary: Canary) -> Canary {
        let mut v = serde_json::to_value(&canary).unwrap();
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("uid");
        }
        v.as_object_mut().unwrap().remove("status");
        self.insert(v).await;
        let api: Api<Canary> = Api::namespaced(self.setup_client(), &canary.namespace().unwrap());
        let mut stored = api.get(&canary.name_any()).await.unwrap();
        stored.status = canary.status;
        stored
    }
}

/// Reads `name` through `cache` until the kind's watch has synced and answers it (the first
/// reads of a kind go to the API server). Panics after about two seconds.
pub async fn until_cached<K: Cacheable>(cache: &Cache, api: &Api<K>, name: &str) {
    for _ in 0..200 {
        if cache.read(api, name).await.unwrap().1 == Source::Cache {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the watch of {} never synced", api.resource_url());
}

/// Compares `value` (serialised as YAML) with the golden file `crates/serin/src/<rel_path>`
/// (`SERIN_UPDATE_GOLDEN=1` rewrites it).
pub fn assert_golden<T: serde::Serialize>(rel_path: &str, value: &T) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(rel_path);
    devcluster::testing::assert_golden(&path, value);
}
