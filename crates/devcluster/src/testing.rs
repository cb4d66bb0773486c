//! Test harnesses on a dev cluster (the `testing` feature; built for tests only): a cluster per
//! test with the CustomResourceDefinitions it needs, the write requests a client under test
//! made, and golden-file comparison of rendered objects.
//!
//! A crate's unit and integration tests reach this module through a dev-dependency on
//! `devcluster` with `features = ["testing"]`; release builds of the crate do not compile it.
//!
//! Everything here panics on failure, as a test should.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use axum::http::{HeaderName, HeaderValue};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::{Config, DevCluster};

/// The namespace of a [`TestCluster`]'s client under test.
pub const NAMESPACE: &str = "test";

/// Requests of the setup client carry this header and are not counted as writes.
const SETUP_HEADER: &str = "x-devcluster-test-setup";

/// One write request the cluster received from the client under test.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Value,
}

/// A dev cluster for one test, with two clients: the client under test, whose write requests
/// are logged ([`TestCluster::writes`]), and a setup client that stores objects as someone else
/// would. Namespaces `default` and [`NAMESPACE`] exist (the latter is the default namespace of
/// both clients). The workload simulator is off: workload status is only what a test writes, as
/// in a cluster whose controllers have not acted yet.
pub struct TestCluster {
    cluster: DevCluster,
    client: Client,
    setup: Client,
}

fn make_client(cluster: &DevCluster, setup: bool) -> Client {
    let mut config = kube::Config::new(cluster.url().parse().unwrap());
    config.default_namespace = NAMESPACE.into();
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

/// A minimal CRD for `resource`: namespaced, any content, with a status subresource. Enough for
/// a kind the code under test writes when its schema does not matter.
pub fn open_crd(resource: &ApiResource) -> CustomResourceDefinition {
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

/// The CustomResourceDefinitions of a multi-document YAML stream (e.g. a provider's CRDs).
pub fn crds_from_yaml(yaml: &str) -> Vec<CustomResourceDefinition> {
    yaml.split("\n---\n")
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| serde_saphyr::from_str(doc).unwrap())
        .collect()
}

/// Creates `crds` through `client`.
pub async fn install_crds(client: &Client, crds: Vec<CustomResourceDefinition>) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds {
        api.create(&PostParams::default(), &crd).await.unwrap();
    }
}

fn resource_of(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

impl TestCluster {
    /// Starts a cluster serving `crds`; its request log is on.
    pub async fn start(crds: Vec<CustomResourceDefinition>) -> Self {
        let cluster = DevCluster::start_with(Config {
            namespaces: vec!["default".into(), NAMESPACE.into()],
            ..Config::default()
        })
        .await
        .unwrap();
        cluster.simulator().set_enabled(false);
        cluster.requests().set_enabled(true);
        let client = make_client(&cluster, false);
        let setup = make_client(&cluster, true);
        install_crds(&setup, crds).await;
        Self {
            cluster,
            client,
            setup,
        }
    }

    /// Installs the CustomResourceDefinitions of a multi-document YAML stream.
    pub async fn install_crds(&self, yaml: &str) {
        install_crds(&self.setup, crds_from_yaml(yaml)).await;
    }

    /// The client under test.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The setup client: its requests are not counted as writes.
    pub fn setup_client(&self) -> Client {
        self.setup.clone()
    }

    /// The dev cluster itself (fault hooks, simulator, request log).
    pub fn dev(&self) -> &DevCluster {
        &self.cluster
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

    /// Paths of the single-object reads (GETs) the client under test made since the last
    /// [`TestCluster::clear_writes`] (lists and watches are not counted).
    pub fn gets(&self) -> Vec<String> {
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

    /// Forgets the requests logged so far.
    pub fn clear_writes(&self) {
        self.cluster.requests().clear();
    }
}

/// Compares `value`, serialised as YAML, with the golden file at `path`. With
/// `SERIN_UPDATE_GOLDEN=1` in the environment the file is (re)written instead; review the diff
/// before committing it.
pub fn assert_golden<T: serde::Serialize>(path: &Path, value: &T) {
    let update = std::env::var("SERIN_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    check_golden(path, value, update);
}

fn check_golden<T: serde::Serialize>(path: &Path, value: &T, update: bool) {
    let value = serde_json::to_value(value).unwrap();
    let actual = serde_saphyr::to_string(&value).unwrap();
    if update {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "golden file {} unreadable ({e}); run with SERIN_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "rendered objects differ from {} (SERIN_UPDATE_GOLDEN=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn setup_requests_are_not_counted_as_writes() {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"));
        let cluster = TestCluster::start(vec![open_crd(&resource)]).await;
        cluster
            .insert(json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "a", "namespace": NAMESPACE}, "spec": {"size": 1},
                "status": {"ready": true}}))
            .await;
        assert_eq!(cluster.writes(), vec![]);
        let stored = cluster
            .get("example.com/v1", "Widget", NAMESPACE, "a")
            .await
            .unwrap();
        assert_eq!(stored["status"], json!({"ready": true}));

        let api: Api<DynamicObject> = Api::default_namespaced_with(cluster.client(), &resource);
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
        let writes = cluster.writes();
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert_eq!(writes[0].method, "PATCH");
        assert_eq!(
            writes[0].path,
            "/apis/example.com/v1/namespaces/test/widgets/a"
        );
        assert_eq!(writes[0].body, json!({"spec": {"size": 2}}));
        cluster.clear_writes();
        assert_eq!(cluster.writes(), vec![]);
        cluster.cluster.shutdown().await;
    }

    #[test]
    fn crds_from_yaml_reads_every_document() {
        let yaml = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: a.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: a, kind: A}\n  versions: []\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: b.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: b, kind: B}\n  versions: []\n";
        let names: Vec<String> = crds_from_yaml(yaml).iter().map(|c| c.name_any()).collect();
        assert_eq!(names, ["a.example.com", "b.example.com"]);
    }

    #[test]
    fn golden_files_match_or_fail_with_both_texts() {
        let dir = std::env::temp_dir().join(format!("devcluster-golden-{}", std::process::id()));
        let path = dir.join("object.yaml");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, "a: 1\n").unwrap();
        check_golden(&path, &json!({"a": 1}), false);
        let failure = std::panic::catch_unwind(|| check_golden(&path, &json!({"a": 2}), false))
            .expect_err("a different object must not match");
        let text = failure
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            text.contains("--- expected\na: 1\n\n--- actual\na: 2\n"),
            "{text}"
        );
        check_golden(&path, &json!({"a": 2}), true);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a: 2\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
