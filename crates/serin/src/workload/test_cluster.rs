//! Test only: the kube-facing code of `router/` and `workload/` against a real (in-memory) API
//! server, `devcluster::DevCluster`, one per test.
//!
//! The cluster has a namespace `test` (the client's default), serves Serin's CRDs and the
//! Istio and KEDA kinds the routers and scalers write, and logs every request so that tests can
//! assert which writes were made. The workload simulator is off: workload status is only what a
//! test writes, as in a cluster whose controllers have not acted yet. Canaries that own objects
//! are stored in the cluster first ([`TestCluster::store_canary`]) so that the garbage collector
//! sees a live owner.
#![allow(clippy::unwrap_used)]

use devcluster::{Config, DevCluster};
use http::{HeaderName, HeaderValue};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::api::apis::istio::{DestinationRule, VirtualService};
use crate::api::canary::Canary;
use crate::k8s::cache::{Cache, Cacheable, Source};

/// Requests made by the test's own setup client carry this header and are not counted as writes.
const SETUP_HEADER: &str = "x-serin-test-setup";

/// One write request the cluster received from the client under test.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Value,
}

/// A dev cluster for one test.
pub struct TestCluster {
    cluster: DevCluster,
    client: Client,
    setup: Client,
}

fn make_client(cluster: &DevCluster, setup: bool) -> Client {
    let mut config = kube::Config::new(cluster.url().parse().unwrap());
    config.default_namespace = "test".into();
    config.auth_info.token = Some(cluster.token().to_string().into());
    config.root_cert = Some(vec![cluster.ca_der().to_vec()]);
    if setup {
        config.headers.push((
            HeaderName::from_static(SETUP_HEADER),
            HeaderValue::from_static("1"),
        ));
    }
    Client::try_from(config).unwrap()
}

/// A minimal CRD (any content, status subresource) for a kind the code under test writes.
fn crd_for(resource: &ApiResource) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", resource.plural, resource.group)},
        "spec": {
            "group": resource.group, "scope": "Namespaced",
            "names": {"plural": resource.plural, "kind": resource.kind},
            "versions": [{"name": resource.version, "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap()
}

fn resource_of(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

impl TestCluster {
    pub async fn start() -> Self {
        let cluster = DevCluster::start_with(Config {
            namespaces: vec!["default".into(), "test".into()],
            ..Config::default()
        })
        .await
        .unwrap();
        cluster.simulator().set_enabled(false);
        cluster.requests().set_enabled(true);
        let client = make_client(&cluster, false);
        let setup = make_client(&cluster, true);
        let crds: Api<CustomResourceDefinition> = Api::all(setup.clone());
        let mut all = crate::api::crd::all();
        all.push(crd_for(&ApiResource::erase::<VirtualService>(&())));
        all.push(crd_for(&ApiResource::erase::<DestinationRule>(&())));
        all.push(crd_for(
            &crate::workload::autoscaler::scaled_object_resource(),
        ));
        for crd in all {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        Self {
            cluster,
            client,
            setup,
        }
    }

    /// Installs the CustomResourceDefinitions of a multi-document YAML (e.g. a provider's CRDs
    /// from `tests/fixtures/crds/`).
    pub async fn install_crds(&self, yaml: &str) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.setup.clone());
        for doc in yaml.split("\n---\n") {
            let crd: CustomResourceDefinition = serde_saphyr::from_str(doc).unwrap();
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
    }

    /// The client under test (default namespace `test`).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn dynamic(&self, api_version: &str, kind: &str, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.setup.clone(),
            namespace,
            &resource_of(api_version, kind),
        )
    }

    /// Stores an object as someone else would (not counted as a write): creates it, or replaces
    /// the stored one; a `status` is written through the status subresource where there is one.
    pub async fn insert(&self, obj: Value) {
        let api_version = obj["apiVersion"].as_str().unwrap();
        let kind = obj["kind"].as_str().unwrap();
        let namespace = obj["metadata"]["namespace"].as_str().unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap();
        let api = self.dynamic(api_version, kind, namespace);
        let mut desired: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
        match api.get_opt(name).await.unwrap() {
            Some(live) => {
                desired.metadata.resource_version = live.resource_version();
                api.replace(name, &PostParams::default(), &desired)
                    .await
                    .unwrap();
            }
            None => {
                desired.metadata.resource_version = None;
                desired.metadata.uid = None;
                api.create(&PostParams::default(), &desired).await.unwrap();
            }
        }
        if let Some(status) = obj.get("status") {
            match api
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
            {
                Ok(_) => {}
                // No status subresource: the status was stored with the object.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => panic!("writing the status of {kind} {name}: {e}"),
            }
        }
    }

    /// Writes `status` through the status subresource (merge patch), as a controller would;
    /// not counted as a write.
    pub async fn set_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        status: Value,
    ) {
        self.dynamic(api_version, kind, namespace)
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap();
    }

    /// The stored object, if any, as JSON.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.dynamic(api_version, kind, namespace)
            .get_opt(name)
            .await
            .unwrap()
            .map(|o| serde_json::to_value(o).unwrap())
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
        let api: Api<Canary> = Api::namespaced(self.setup.clone(), &canary.namespace().unwrap());
        let mut stored = api.get(&canary.name_any()).await.unwrap();
        stored.status = canary.status;
        stored
    }

    /// Write requests made by the client under test so far.
    pub fn writes(&self) -> Vec<Write> {
        self.cluster
            .requests()
            .writes()
            .into_iter()
            .filter(|r| r.header(SETUP_HEADER).is_none())
            .map(|r| Write {
                method: r.method,
                path: r.path,
                content_type: r.content_type,
                body: r.body,
            })
            .collect()
    }

    /// Paths of the single-object reads (GETs) the client under test made so far.
    pub fn gets(&self) -> Vec<String> {
        self.cluster
            .requests()
            .entries()
            .into_iter()
            .filter(|r| r.verb == "get" && r.header(SETUP_HEADER).is_none())
            .map(|r| r.path)
            .collect()
    }

    pub fn clear_writes(&self) {
        self.cluster.requests().clear();
    }

    /// Paths of the single-object reads (GETs) the client under test made since the last
    /// [`TestCluster::clear_writes`] (lists and watches are not counted).
    pub fn reads(&self) -> Vec<String> {
        self.cluster
            .requests()
            .entries()
            .into_iter()
            .filter(|r| r.verb == "get" && r.header(SETUP_HEADER).is_none())
            .map(|r| r.path)
            .collect()
    }

    /// Method and path of each write of the client under test (bodies left out: they carry
    /// generated ids).
    pub fn write_paths(&self) -> Vec<(String, String)> {
        self.writes()
            .into_iter()
            .map(|w| (w.method, w.path))
            .collect()
    }
}

/// Reads `name` through `cache` until the kind's watch has synced and answers it (the first
/// reads of a kind go to the API server). Panics after about two seconds.
pub async fn until_cached<K: Cacheable>(
    cache: &Cache,
    api: &Api<K>,
    dyntype: &K::DynamicType,
    name: &str,
) {
    for _ in 0..200 {
        if cache.read(api, dyntype, name).await.unwrap().1 == Source::Cache {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the watch of {} never synced", api.resource_url());
}
