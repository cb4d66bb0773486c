//! The harness backend for a real API server (`SERIN_E2E_KUBECONFIG`): CRDs and the
//! controller's RBAC applied once per scenario (server-side apply, idempotent), the namespace
//! `test` emptied, the workload simulator in-process, the controller as a ServiceAccount.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::{Api, Client};
use serde_json::{Value, json};
use serin::api::Canary;
use serin::cli::simulate_workloads;
use tokio::sync::watch;

use super::{COUNTER, Cluster, NS};

/// The RBAC Serin ships (deploy/rbac/, rendered from `serin::rbac`): a permission the code
/// needs and the files lack fails a scenario.
const RBAC: &str = concat!(
    include_str!("../../../../../deploy/rbac/namespace.yaml"),
    "\n---\n",
    include_str!("../../../../../deploy/rbac/serviceaccount.yaml"),
    "\n---\n",
    include_str!("../../../../../deploy/rbac/clusterrole.yaml"),
    "\n---\n",
    include_str!("../../../../../deploy/rbac/clusterrolebinding.yaml"),
);
const MANAGER: &str = "serin-e2e";

pub async fn start(admin: &Path) -> Cluster {
    let kc = Kubeconfig::read_from(admin).expect("SERIN_E2E_KUBECONFIG is not a kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("SERIN_E2E_KUBECONFIG has no usable context");
    let client = Client::try_from(config.clone()).expect("client for SERIN_E2E_KUBECONFIG");
    install_crds(&client).await;
    let token = install_rbac(&client).await;
    reset_namespace(&client).await;

    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let kubeconfig = std::env::temp_dir().join(format!(
        "serin-controller-real-{}-{n}.kubeconfig",
        std::process::id()
    ));
    write_token_kubeconfig(&config, &token, &kubeconfig);

    let (stop, rx) = watch::channel(false);
    let args = simulate_workloads::Args {
        kubeconfig: admin.to_path_buf(),
        namespaces: vec![NS.to_string()],
        selector: None,
        ready_delay_ms: 200,
        tick_ms: 50,
    };
    let sim_client = client.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = simulate_workloads::simulate(sim_client, &args, rx).await {
            panic!("the workload simulator stopped: {e}");
        }
    });
    Cluster {
        dev: None,
        simulator: Some((stop, task)),
        client,
        kubeconfig,
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crds = super::crds();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap();
        let mut body = serde_json::to_value(crd).unwrap();
        body["apiVersion"] = json!("apiextensions.k8s.io/v1");
        body["kind"] = json!("CustomResourceDefinition");
        api.patch(&name, &apply_params(), &Patch::Apply(&body))
            .await
            .unwrap_or_else(|e| panic!("the API server refused the CRD {name}: {e}"));
    }
    let mut newest = None;
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap();
        let created = wait("CRD established", Duration::from_secs(30), || async {
            let c = api.get(&name).await.ok()?;
            let created = c.metadata.creation_timestamp.clone()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(created)
        })
        .await;
        newest = newest.max(Some(created.0));
    }
    // The garbage collector watches a new resource type only after its next discovery sync
    // (every 30 s in kube-controller-manager); until then, deleting a Canary would not collect
    // the objects it owns. Wait that long after the newest CRD was created.
    if let Some(newest) = newest {
        let age = k8s_openapi::jiff::Timestamp::now().duration_since(newest);
        let wanted = k8s_openapi::jiff::SignedDuration::from_secs(GC_DISCOVERY_SYNC_SECS);
        if age < wanted {
            let rest = (wanted - age).unsigned_abs();
            eprintln!("waiting {rest:?} for the garbage collector to watch the new CRDs");
            tokio::time::sleep(rest).await;
        }
    }
}

/// kube-controller-manager's garbage-collector discovery period (30 s) plus a margin.
const GC_DISCOVERY_SYNC_SECS: i64 = 35;

/// Applies the ServiceAccount, ClusterRole and binding, and returns a token of the account.
async fn install_rbac(client: &Client) -> String {
    for doc in RBAC.split("\n---\n") {
        let body: Value = serde_saphyr::from_str(doc).unwrap();
        let (Some(api_version), Some(kind), Some(name)) = (
            body["apiVersion"].as_str(),
            body["kind"].as_str(),
            body.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let plural = match kind {
            "Namespace" => "namespaces",
            "ServiceAccount" => "serviceaccounts",
            "ClusterRole" => "clusterroles",
            "ClusterRoleBinding" => "clusterrolebindings",
            other => panic!("unexpected kind {other} in deploy/rbac"),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> = match body.pointer("/metadata/namespace") {
            Some(Value::String(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        api.patch(name, &apply_params(), &Patch::Apply(&body))
            .await
            .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "serin-system");
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": 3600}
    }))
    .unwrap();
    let issued: TokenRequest = wait(
        "a token of serin-system/serin",
        Duration::from_secs(30),
        || {
            let (accounts, request) = (accounts.clone(), request.clone());
            async move {
                accounts
                    .create_subresource("token", "serin", &PostParams::default(), &request)
                    .await
                    .ok()
            }
        },
    )
    .await;
    issued.status.expect("TokenRequest without status").token
}

/// A kubeconfig for the same server with the ServiceAccount's bearer token (JSON is YAML).
fn write_token_kubeconfig(config: &kube::Config, token: &str, path: &PathBuf) {
    use base64::Engine;
    let ca: Vec<u8> = config
        .root_cert
        .as_ref()
        .map(|certs| {
            certs
                .iter()
                .flat_map(|der| {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
                    let lines: Vec<String> = b64
                        .as_bytes()
                        .chunks(64)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect();
                    format!(
                        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                        lines.join("\n")
                    )
                    .into_bytes()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut cluster = json!({"server": config.cluster_url.to_string()});
    if !ca.is_empty() {
        cluster["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(&ca));
    }
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "real", "cluster": cluster}],
        "users": [{"name": "serin", "user": {"token": token}}],
        "contexts": [{"name": "serin", "context": {"cluster": "real", "user": "serin"}}],
        "current-context": "serin"
    });
    std::fs::write(path, serde_json::to_vec_pretty(&kc).unwrap()).unwrap();
}

/// What a scenario may leave in `test`: (group, version, kind, plural).
const LEFTOVERS: &[(&str, &str, &str, &str)] = &[
    ("flagger.app", "v1beta1", "Canary", "canaries"),
    (
        "flagger.app",
        "v1beta1",
        "MetricTemplate",
        "metrictemplates",
    ),
    ("flagger.app", "v1beta1", "AlertProvider", "alertproviders"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ("", "v1", "Service", "services"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "Event", "events"),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    (
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
        "virtualservices",
    ),
    (
        "networking.istio.io",
        "v1beta1",
        "DestinationRule",
        "destinationrules",
    ),
];

fn leftovers(client: &Client, kind: &str) -> Api<DynamicObject> {
    let (group, version, kind, plural) = LEFTOVERS
        .iter()
        .find(|(_, _, k, _)| *k == kind)
        .copied()
        .unwrap();
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(
        client.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// Empties the namespace `test` (creating it when missing) and forgets a previous scenario's
/// leader lease. Emptying is much quicker than deleting the namespace, which waits for the
/// namespace controller to walk every resource type.
async fn reset_namespace(client: &Client) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let _ = leases
        .delete("flagger-leader-election", &DeleteParams::default())
        .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait("the namespace test", Duration::from_secs(120), || async {
        match namespaces.get_opt(NS).await.ok()? {
            // A namespace being deleted (by tests/e2e/real-cluster.sh) is waited for.
            Some(ns) if ns.metadata.deletion_timestamp.is_some() => None,
            Some(_) => Some(()),
            None => namespaces
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
                )
                .await
                .ok()
                .map(|_| ()),
        }
    })
    .await;
    clean(client).await;
    for kind in [
        "Canary",
        "Deployment",
        "DaemonSet",
        "Service",
        "VirtualService",
    ] {
        let api = leftovers(client, kind);
        wait(
            "the previous scenario's objects to go",
            Duration::from_secs(60),
            || async {
                api.list(&Default::default())
                    .await
                    .ok()?
                    .items
                    .is_empty()
                    .then_some(())
            },
        )
        .await;
    }
}

/// Deletes what scenarios create in `test` (the namespace stays, with its ServiceAccount and
/// root CA ConfigMap). Canary finalizers are removed first, since no controller is left to
/// remove them.
pub async fn clean(client: &Client) {
    let canaries: Api<Canary> = Api::namespaced(client.clone(), NS);
    if let Ok(list) = canaries.list(&Default::default()).await {
        for c in list.items {
            if c.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty())
            {
                let name = c.metadata.name.unwrap_or_default();
                let patch = json!({"metadata": {"finalizers": null}});
                let _ = canaries
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        }
    }
    for (_, _, kind, _) in LEFTOVERS {
        let mut lp = ListParams::default();
        if *kind == "ConfigMap" {
            lp = lp.fields("metadata.name!=kube-root-ca.crt");
        }
        let _ = leftovers(client, kind)
            .delete_collection(&DeleteParams::background(), &lp)
            .await;
    }
}

async fn wait<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
