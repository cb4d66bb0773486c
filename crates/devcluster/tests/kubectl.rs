#![allow(clippy::unwrap_used)]
//! The machine's kubectl (1.32) against an in-process dev cluster, through the written kubeconfig.
//! Skipped, with a message, only when kubectl is not installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{cluster, eventually};
use devcluster::DevCluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Resource;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn kubectl_path() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("/usr/bin/kubectl"),
        PathBuf::from("/usr/local/bin/kubectl"),
    ];
    candidates.into_iter().find(|p| p.exists())
}

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    fn new(c: &DevCluster, name: &str) -> Option<Self> {
        let Some(bin) = kubectl_path() else {
            eprintln!(
                "SKIPPED: kubectl not found at /usr/bin/kubectl; the kubectl contract tests did not run"
            );
            return None;
        };
        let dir =
            std::env::temp_dir().join(format!("devcluster-kubectl-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        c.write_kubeconfig(&kubeconfig).unwrap();
        Some(Self {
            bin,
            kubeconfig,
            dir,
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=10s")
            .args(args);
        cmd.env("HOME", &self.dir)
            .env("KUBECACHEDIR", self.dir.join("cache"));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl (20 s limit); returns (success, stdout, stderr).
    async fn run_in(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut child = self.cmd(args).spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} hung"))
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run_in(args, None).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }

    async fn apply(&self, args: &[&str], yaml: &str) -> (bool, String, String) {
        let mut all = vec!["apply", "-f", "-"];
        all.extend_from_slice(args);
        self.run_in(&all, Some(yaml)).await
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: 2
  selector:
    matchLabels: {app: podinfo}
  template:
    metadata:
      labels: {app: podinfo}
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.0.0
        ports:
        - containerPort: 9898
      - name: sidecar
        image: envoy:1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_deployment_workflow() {
    let c = cluster().await;
    let Some(k) = Kubectl::new(&c, "deploy") else {
        return;
    };
    let (ok, out, err) = k.apply(&[], DEPLOYMENT).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("deployment.apps/podinfo created"), "{out}");
    let (_, out, _) = k.apply(&[], DEPLOYMENT).await;
    assert!(out.contains("unchanged"), "{out}");
    let out = k.ok(&["get", "deployments"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let out = k
        .ok(&["rollout", "status", "deployment/podinfo", "--timeout=10s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let out = k.ok(&["get", "deploy", "podinfo"]).await;
    assert!(out.lines().nth(1).unwrap().contains("2/2"), "{out}");

    k.ok(&[
        "set",
        "image",
        "deployment/podinfo",
        "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1",
    ])
    .await;
    let images = k
        .ok(&[
            "get",
            "deploy",
            "podinfo",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].image}",
        ])
        .await;
    assert_eq!(images, "ghcr.io/stefanprodan/podinfo:6.0.1 envoy:1");

    k.ok(&[
        "patch",
        "deploy",
        "podinfo",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"envoy:2"}]}}}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "deploy",
        "podinfo",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"team":"a"}}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "deploy",
        "podinfo",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
    ])
    .await;
    let out = k
        .ok(&["get", "deploy", "podinfo", "-o", "jsonpath={.spec.template.spec.containers[*].image} {.metadata.labels.team} {.spec.replicas}"])
        .await;
    assert_eq!(out, "ghcr.io/stefanprodan/podinfo:6.0.1 envoy:2 a 3");

    k.ok(&["scale", "deployment/podinfo", "--replicas=4"]).await;
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "podinfo",
            "-o",
            "jsonpath={.spec.replicas}"
        ])
        .await,
        "4"
    );
    k.ok(&["rollout", "restart", "deployment/podinfo"]).await;
    let restarted = k
        .ok(&[
            "get",
            "deploy",
            "podinfo",
            "-o",
            r#"jsonpath={.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}"#,
        ])
        .await;
    assert!(!restarted.is_empty());
    k.ok(&["rollout", "status", "deployment/podinfo", "--timeout=10s"])
        .await;
    let out = k
        .ok(&[
            "wait",
            "--for=condition=Available",
            "deployment/podinfo",
            "--timeout=10s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    let out = k
        .ok(&[
            "wait",
            "--for=jsonpath={.status.readyReplicas}=4",
            "deployment/podinfo",
            "--timeout=10s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");

    let out = k.ok(&["describe", "deployment", "podinfo"]).await;
    assert!(
        out.contains("Replicas:") && out.contains("4 desired") && out.contains("envoy:2"),
        "{out}"
    );
    assert!(out.contains("Port:") && out.contains("9898/TCP"), "{out}");

    let out = k
        .ok(&["delete", "deployment", "podinfo", "--wait", "--timeout=10s"])
        .await;
    assert!(out.contains("deleted"), "{out}");
    let (ok, _, err) = k.run_in(&["get", "deployment", "podinfo"], None).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    c.shutdown().await;
}

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa
data:
  a: \"1\"
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_crds_and_printer_columns() {
    let c = cluster().await;
    let Some(k) = Kubectl::new(&c, "ssa") else {
        return;
    };
    let (ok, out, err) = k.apply(&["--server-side"], CONFIGMAP).await;
    assert!(ok && out.contains("serverside-applied"), "{out}{err}");
    let changed = CONFIGMAP.replace("\"1\"", "\"2\"");
    let (ok, _, err) = k
        .apply(&["--server-side", "--field-manager=other"], &changed)
        .await;
    assert!(!ok && err.contains("conflict"), "{err}");
    let (ok, _, err) = k
        .apply(
            &[
                "--server-side",
                "--field-manager=other",
                "--force-conflicts",
            ],
            &changed,
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(
        k.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.a}"])
            .await,
        "2"
    );
    // Server-side dry run leaves the object alone.
    let (ok, _, err) = k
        .apply(
            &["--server-side", "--field-manager=other", "--dry-run=server"],
            &CONFIGMAP.replace("\"1\"", "\"3\""),
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(
        k.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.a}"])
            .await,
        "2"
    );

    let crd = include_str!("fixtures/canary-crd.yaml");
    let (ok, out, err) = k.apply(&[], crd).await;
    assert!(ok, "{out}{err}");
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/canaries.flagger.app",
        "--timeout=10s",
    ])
    .await;
    let canary = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
";
    let (ok, out, err) = k.apply(&[], canary).await;
    assert!(
        ok && out.contains("canary.flagger.app/podinfo created"),
        "{out}{err}"
    );
    let gvk = GroupVersionKind::gvk("flagger.app", "v1beta1", "Canary");
    let api: Api<DynamicObject> =
        Api::namespaced_with(c.client(), "default", &ApiResource::from_gvk(&gvk));
    api.patch_status(
        "podinfo",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"phase": "Initialized", "canaryWeight": 0, "failedChecks": 0}}),
        ),
    )
    .await
    .unwrap();
    let out = k.ok(&["get", "canary"]).await;
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "WEIGHT", "LASTTRANSITIONTIME"]);
    assert!(lines.next().unwrap().contains("Initialized"), "{out}");
    let wide = k
        .ok(&["get", "canaries.flagger.app", "podinfo", "-o", "wide"])
        .await;
    assert!(
        wide.lines().next().unwrap().contains("FAILEDCHECKS"),
        "{wide}"
    );
    // Applying the same canary again is a no-op; a client-side apply of a CR uses a merge patch.
    let (_, out, _) = k.apply(&[], canary).await;
    assert!(out.contains("unchanged"), "{out}");
    let (ok, out, err) = k
        .apply(
            &[],
            &canary.replace("name: podinfo\n", "name: podinfo\n  labels: {a: b}\n"),
        )
        .await;
    assert!(ok && out.contains("configured"), "{out}{err}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_sees_changes() {
    let c = cluster().await;
    let Some(k) = Kubectl::new(&c, "watch") else {
        return;
    };
    let mut child = k.cmd(&["get", "configmaps", "--watch"]).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // Let the initial list and watch start, then create an object.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let obj: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "watched"}, "data": {"k": "v"}}))
            .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let l = lines.next_line().await.unwrap().unwrap();
            if l.contains("watched") {
                return l;
            }
        }
    })
    .await
    .expect("kubectl get -w never printed the new object");
    assert_eq!(
        line.split_whitespace().take(2).collect::<Vec<_>>(),
        ["watched", "1"]
    );
    child.kill().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_errors_auth_and_finalizers() {
    let c = cluster().await;
    let Some(k) = Kubectl::new(&c, "errors") else {
        return;
    };
    let (ok, _, err) = k.run_in(&["get", "nosuchthings"], None).await;
    assert!(!ok && err.contains("doesn't have a resource type"), "{err}");
    let (ok, _, err) = k.run_in(&["get", "deployment", "missing"], None).await;
    assert!(
        !ok && err.contains("NotFound") && err.contains("\"missing\" not found"),
        "{err}"
    );
    let bad = CONFIGMAP.replace("name: ssa", "name: Bad_Name");
    let (ok, _, err) = k.apply(&[], &bad).await;
    assert!(!ok && err.contains("is invalid"), "{err}");
    // A finalizer holds deletion: `delete --wait` times out until it is removed.
    let held = CONFIGMAP.replace("name: ssa", "name: held\n  finalizers: [serin.dev/hold]");
    assert!(k.apply(&[], &held).await.0);
    let (ok, _, _) = k
        .run_in(&["delete", "cm", "held", "--timeout=1s"], None)
        .await;
    assert!(!ok, "delete --wait must time out while a finalizer is set");
    let ts = k
        .ok(&[
            "get",
            "cm",
            "held",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .await;
    assert!(!ts.is_empty());
    k.ok(&[
        "patch",
        "cm",
        "held",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await;
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    eventually("held gone", 5, || async {
        api.get_opt("held").await.unwrap().is_none().then_some(())
    })
    .await;
    // A kubeconfig with the wrong token is rejected.
    let text = std::fs::read_to_string(&k.kubeconfig)
        .unwrap()
        .replace(c.token(), "wrong-token");
    let wrong = k.dir.join("wrong");
    std::fs::write(&wrong, text).unwrap();
    let out = Command::new(&k.bin)
        .args([
            "--kubeconfig",
            path(&wrong),
            "--request-timeout=5s",
            "get",
            "ns",
        ])
        .env("HOME", &k.dir)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("provide credentials"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_shows_recorder_events() {
    let c = cluster().await;
    let Some(k) = Kubectl::new(&c, "describe") else {
        return;
    };
    let (ok, out, err) = k.apply(&[], include_str!("fixtures/canary-crd.yaml")).await;
    assert!(ok, "{out}{err}");
    let canary = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
";
    let (ok, out, err) = k.apply(&[], canary).await;
    assert!(ok, "{out}{err}");
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("flagger.app", "v1beta1", "Canary"));
    let api: Api<DynamicObject> = Api::namespaced_with(c.client(), "default", &ar);
    let obj = api.get("podinfo").await.unwrap();
    let recorder = Recorder::new(
        c.client(),
        Reporter {
            controller: "serin".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Warning,
        reason: "Synced".into(),
        note: Some("Halt advancement podinfo-primary.default waiting for rollout".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&ev, &obj.object_ref(&ar)).await.unwrap();
    let out = k.ok(&["describe", "canary", "podinfo"]).await;
    let events = out
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section:\n{out}"));
    assert!(
        events.contains("Warning")
            && events.contains("Synced")
            && events.contains("serin")
            && events.contains("Halt advancement podinfo-primary.default waiting for rollout"),
        "{out}"
    );
    // `kubectl get events` lists it through both groups.
    for resource in ["events", "events.events.k8s.io"] {
        let out = k.ok(&["get", resource]).await;
        assert!(
            out.contains("canary/podinfo") && out.contains("Synced"),
            "{resource}: {out}"
        );
    }
    let note = k
        .ok(&[
            "get",
            "events.events.k8s.io",
            "--field-selector",
            "regarding.kind=Canary,reason=Synced",
            "-o",
            "jsonpath={.items[*].note}",
        ])
        .await;
    assert_eq!(
        note,
        "Halt advancement podinfo-primary.default waiting for rollout"
    );
    c.shutdown().await;
}

/// kubectl's generator commands send `application/vnd.kubernetes.protobuf` bodies; the seeds'
/// `kubectl create ns`, `kubectl create secret generic --from-file` and the other generators
/// work, and the objects read back as a real server would store them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_generator_commands_send_protobuf() {
    let c = cluster().await;
    let Some(k) = Kubectl::new(&c, "generators") else {
        return;
    };
    c.requests().set_enabled(true);
    assert_eq!(
        k.ok(&["create", "ns", "test"]).await.trim(),
        "namespace/test created"
    );
    assert_eq!(
        k.ok(&["create", "ns", "istio-system"]).await.trim(),
        "namespace/istio-system created"
    );
    let file = k.dir.join("kubeconfig-copy");
    std::fs::write(&file, "apiVersion: v1\nkind: Config\n").unwrap();
    let out = k
        .ok(&[
            "-n",
            "istio-system",
            "create",
            "secret",
            "generic",
            "istio-kubeconfig",
            "--from-file",
            &format!("kubeconfig={}", path(&file)),
        ])
        .await;
    assert_eq!(out.trim(), "secret/istio-kubeconfig created");
    k.ok(&[
        "-n",
        "istio-system",
        "label",
        "secret",
        "istio-kubeconfig",
        "istio/multiCluster=true",
    ])
    .await;
    k.ok(&["label", "namespace", "test", "istio-injection=enabled"])
        .await;
    let out = k
        .ok(&[
            "-n",
            "istio-system",
            "get",
            "secret",
            "istio-kubeconfig",
            "-o",
            "jsonpath={.type} {.data.kubeconfig} {.metadata.labels}",
        ])
        .await;
    assert_eq!(
        out,
        r#"Opaque YXBpVmVyc2lvbjogdjEKa2luZDogQ29uZmlnCg== {"istio/multiCluster":"true"}"#
    );
    k.ok(&[
        "-n",
        "test",
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=canary",
        "--from-literal=weight=10",
    ])
    .await;
    let out = k
        .ok(&[
            "-n",
            "test",
            "get",
            "cm",
            "settings",
            "-o",
            "jsonpath={.data}",
        ])
        .await;
    assert_eq!(out, r#"{"mode":"canary","weight":"10"}"#);
    k.ok(&[
        "-n",
        "test",
        "create",
        "secret",
        "generic",
        "token",
        "--from-literal=token=s3cret",
    ])
    .await;
    k.ok(&[
        "-n",
        "test",
        "create",
        "deployment",
        "podinfo",
        "--image=ghcr.io/stefanprodan/podinfo:6.0.0",
        "--replicas=2",
        "--port=9898",
    ])
    .await;
    let out = k
        .ok(&[
            "-n",
            "test",
            "get",
            "deploy",
            "podinfo",
            "-o",
            "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.strategy.type}",
        ])
        .await;
    assert_eq!(
        out,
        "2 podinfo ghcr.io/stefanprodan/podinfo:6.0.0 9898 RollingUpdate"
    );
    let out = k
        .ok(&[
            "-n",
            "test",
            "rollout",
            "status",
            "deploy/podinfo",
            "--timeout=10s",
        ])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    k.ok(&[
        "-n",
        "test",
        "run",
        "loadtester",
        "--image=ghcr.io/fluxcd/flagger-loadtester:0.29.0",
        "--labels=app=loadtester",
        "--env=MODE=load",
        "--",
        "hey",
        "-z",
        "1m",
    ])
    .await;
    let out = k
        .ok(&[
            "-n",
            "test",
            "get",
            "pod",
            "loadtester",
            "-o",
            "jsonpath={.metadata.labels.app} {.spec.containers[0].args} {.spec.containers[0].env[0].value} {.spec.restartPolicy}",
        ])
        .await;
    assert_eq!(out, r#"loadtester ["hey","-z","1m"] load Always"#);
    // The `create` generators wrote protobuf (kubectl 1.32's `run` sends JSON), and asked for
    // protobuf or JSON back; they got JSON.
    let writes = c.requests().writes();
    let creates: Vec<_> = writes.iter().filter(|w| w.verb == "create").collect();
    let types: Vec<&str> = creates.iter().map(|w| w.content_type.as_str()).collect();
    let pb = devcluster::protobuf::MEDIA_TYPE;
    assert_eq!(types, [pb, pb, pb, pb, pb, pb, "application/json"]);
    for w in &creates[..6] {
        let accept = w
            .headers
            .iter()
            .find(|(k, _)| k == "accept")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            accept,
            Some("application/vnd.kubernetes.protobuf,application/json")
        );
    }
    // An existing name is still AlreadyExists, in kubectl's words.
    let (ok, _, err) = k.run_in(&["create", "ns", "test"], None).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        r#"Error from server (AlreadyExists): namespaces "test" already exists"#
    );
    c.shutdown().await;
}

/// The built-in kinds that Serin's chart, the routers or the users' manifests create, although
/// nothing in the dev cluster acts on them: stored and served, created by kubectl's generators
/// (protobuf) and by `apply` (JSON), listed as Tables with a real server's columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_serves_rbac_networking_policy_and_batch_kinds() {
    let c = cluster().await;
    let Some(k) = Kubectl::new(&c, "kinds") else {
        return;
    };
    let out = k.ok(&["api-resources", "--no-headers"]).await;
    for (name, short, group, namespaced, kind) in [
        (
            "ingresses",
            "ing",
            "networking.k8s.io/v1",
            "true",
            "Ingress",
        ),
        (
            "ingressclasses",
            "",
            "networking.k8s.io/v1",
            "false",
            "IngressClass",
        ),
        (
            "networkpolicies",
            "netpol",
            "networking.k8s.io/v1",
            "true",
            "NetworkPolicy",
        ),
        (
            "poddisruptionbudgets",
            "pdb",
            "policy/v1",
            "true",
            "PodDisruptionBudget",
        ),
        ("statefulsets", "sts", "apps/v1", "true", "StatefulSet"),
        ("roles", "", "rbac.authorization.k8s.io/v1", "true", "Role"),
        (
            "rolebindings",
            "",
            "rbac.authorization.k8s.io/v1",
            "true",
            "RoleBinding",
        ),
        (
            "clusterroles",
            "",
            "rbac.authorization.k8s.io/v1",
            "false",
            "ClusterRole",
        ),
        (
            "clusterrolebindings",
            "",
            "rbac.authorization.k8s.io/v1",
            "false",
            "ClusterRoleBinding",
        ),
        ("jobs", "", "batch/v1", "true", "Job"),
        ("cronjobs", "cj", "batch/v1", "true", "CronJob"),
        (
            "priorityclasses",
            "pc",
            "scheduling.k8s.io/v1",
            "false",
            "PriorityClass",
        ),
    ] {
        let want: Vec<&str> = [name, short, group, namespaced, kind]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == want),
            "{want:?} missing from:\n{out}"
        );
    }
    // Generators (protobuf bodies).
    for args in [
        &["create", "sa", "serin"][..],
        &[
            "create",
            "clusterrole",
            "serin",
            "--verb=get,list,watch",
            "--resource=deployments.apps,leases.coordination.k8s.io",
        ],
        &[
            "create",
            "clusterrolebinding",
            "serin",
            "--clusterrole=serin",
            "--serviceaccount=default:serin",
        ],
        &[
            "create",
            "role",
            "leader",
            "--verb=get,update",
            "--resource=leases.coordination.k8s.io",
        ],
        &[
            "create",
            "rolebinding",
            "leader",
            "--role=leader",
            "--serviceaccount=default:serin",
            "--user=alice",
        ],
        &[
            "create",
            "ingress",
            "podinfo",
            "--class=nginx",
            "--rule=app.example.com/*=podinfo:9898",
        ],
        &[
            "create",
            "pdb",
            "podinfo",
            "--selector=app=podinfo",
            "--min-available=1",
        ],
        &[
            "create",
            "job",
            "smoke",
            "--image=curlimages/curl:8.8.0",
            "--",
            "curl",
            "-s",
            "http://podinfo",
        ],
        &[
            "create",
            "cronjob",
            "nightly",
            "--image=busybox:1",
            "--schedule=0 3 * * *",
        ],
        &[
            "create",
            "priorityclass",
            "high",
            "--value=1000",
            "--description=serin",
        ],
    ] {
        k.ok(args).await;
    }
    let (ok, out, err) = k
        .apply(
            &[],
            "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny}
spec:
  podSelector: {matchLabels: {app: podinfo}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: 'postgres:16'}]
",
        )
        .await;
    assert!(ok, "{out}{err}");
    assert_eq!(
        k.ok(&[
            "get",
            "clusterrole",
            "serin",
            "-o",
            "jsonpath={.rules[*].resources}"
        ])
        .await,
        r#"["deployments"] ["leases"]"#
    );
    assert_eq!(
        k.ok(&["get", "rolebinding", "leader", "-o", "wide", "--no-headers"])
            .await
            .split_whitespace()
            .filter(|c| !c.ends_with('s'))
            .collect::<Vec<_>>(),
        ["leader", "Role/leader", "alice", "default/serin"]
    );
    let ing = k.ok(&["get", "ing", "podinfo", "--no-headers"]).await;
    let ing: Vec<&str> = ing.split_whitespace().collect();
    assert_eq!(ing[..3], ["podinfo", "nginx", "app.example.com"], "{ing:?}");
    assert_eq!(ing[3], "80", "{ing:?}");
    assert_eq!(
        k.ok(&["get", "ingressclass", "nginx", "--no-headers"])
            .await
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>(),
        ["nginx", "k8s.io/ingress-nginx", "<none>"]
    );
    assert_eq!(
        k.ok(&["get", "pdb", "podinfo", "--no-headers"])
            .await
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>(),
        ["podinfo", "1", "N/A", "0"]
    );
    assert_eq!(
        k.ok(&[
            "get",
            "netpol",
            "deny",
            "-o",
            "jsonpath={.spec.policyTypes}"
        ])
        .await,
        r#"["Ingress"]"#
    );
    assert_eq!(
        k.ok(&[
            "get",
            "sts",
            "db",
            "-o",
            "jsonpath={.spec.podManagementPolicy} {.spec.updateStrategy.rollingUpdate.partition} {.spec.template.spec.containers[0].imagePullPolicy}"
        ])
        .await,
        "OrderedReady 0 IfNotPresent"
    );
    assert_eq!(
        k.ok(&["get", "job", "smoke", "-o", "jsonpath={.spec.completions} {.spec.backoffLimit} {.spec.template.spec.restartPolicy} {.spec.template.spec.containers[0].command}"])
            .await,
        r#"1 6 Never ["curl","-s","http://podinfo"]"#
    );
    assert_eq!(
        k.ok(&["get", "cj", "nightly", "--no-headers"])
            .await
            .split_whitespace()
            .take(8)
            .collect::<Vec<_>>(),
        ["nightly", "0", "3", "*", "*", "*", "<none>", "False"]
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pc",
            "high",
            "-o",
            "jsonpath={.value} {.description}"
        ])
        .await,
        "1000 serin"
    );
    k.ok(&["scale", "sts", "db", "--replicas=3"]).await;
    assert_eq!(
        k.ok(&[
            "get",
            "sts",
            "db",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ])
        .await,
        "3 2"
    );
    let all = k.ok(&["get", "all", "--no-headers"]).await;
    assert!(all.contains("statefulset.apps/db"), "{all}");
    assert!(all.contains("cronjob.batch/nightly"), "{all}");
    assert!(!all.contains("ingress"), "{all}");
    k.ok(&["delete", "ing", "podinfo", "--wait=true"]).await;
    let (ok, _, err) = k.run_in(&["get", "ing", "podinfo"], None).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): ingresses.networking.k8s.io "podinfo" not found"#
    );
    c.shutdown().await;
}

const SERIN_CRDS: &str = include_str!("../../../deploy/crds/crds.yaml");

fn canary(spec_extra: &str, analysis_extra: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service: {{port: 9898}}
{spec_extra}  analysis:
    threshold: 5
    maxWeight: 50
{analysis_extra}"
    )
}

/// Custom resources are pruned, defaulted and validated with the CRD's schema, and kubectl
/// shows the real server's words: a strict-decoding 400 for unknown fields under
/// `--validate=strict` (kubectl's default), pruning without it, and 422 field errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_custom_resources_are_pruned_defaulted_and_validated() {
    let c = cluster().await;
    let Some(k) = Kubectl::new(&c, "schema") else {
        return;
    };
    let (ok, out, err) = k.apply(&[], SERIN_CRDS).await;
    assert!(ok, "{out}{err}");

    let with_unknown = canary("  bogus: 1\n", "    interval: 1m\n    stepWeight: 10\n");
    let (ok, _, err) = k.apply(&[], &with_unknown).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        r#"Error from server (BadRequest): error when creating "STDIN": Canary in version "v1beta1" cannot be handled as a Canary: strict decoding error: unknown field "spec.bogus""#
    );
    let (ok, out, err) = k.apply(&["--validate=false"], &with_unknown).await;
    assert!(ok, "{out}{err}");
    let spec = k
        .ok(&["get", "canary", "podinfo", "-o", "jsonpath={.spec}"])
        .await;
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    assert!(spec.get("bogus").is_none(), "{spec}");
    assert_eq!(spec["analysis"]["interval"], "1m");

    let bad = canary("", "    interval: 1x\n    stepWeight: 120\n");
    let (ok, _, err) = k.apply(&[], &bad).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        r#"The Canary "podinfo" is invalid: 
* spec.analysis.interval: Invalid value: "1x": spec.analysis.interval in body should match '^[0-9]+(m|s)'
* spec.analysis.stepWeight: Invalid value: 120: spec.analysis.stepWeight in body should be less than or equal to 100"#
    );

    // Defaults and x-kubernetes-preserve-unknown-fields, on a small CRD.
    let (ok, out, err) = k
        .apply(
            &[],
            "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: string, enum: [small, large]}
              replicas: {type: integer, default: 1, minimum: 0}
              policy:
                type: object
                default: {}
                properties:
                  mode: {type: string, default: Auto}
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
",
        )
        .await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = k
        .apply(
            &[],
            "apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec:
  size: small
  extra: {anything: [1, 2]}
",
        )
        .await;
    assert!(ok, "{out}{err}");
    assert_eq!(
        k.ok(&["get", "widget", "w", "-o", "jsonpath={.spec}"])
            .await,
        r#"{"extra":{"anything":[1,2]},"policy":{"mode":"Auto"},"replicas":1,"size":"small"}"#
    );
    let (ok, _, err) = k
        .apply(
            &[],
            "apiVersion: example.com/v1
kind: Widget
metadata: {name: v}
spec: {size: huge}
",
        )
        .await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        r#"The Widget "v" is invalid: spec.size: Unsupported value: "huge": supported values: "small", "large""#
    );
    let (ok, _, err) = k
        .apply(
            &[],
            "apiVersion: example.com/v1
kind: Widget
metadata: {name: v}
spec: {replicas: -1}
",
        )
        .await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "The Widget \"v\" is invalid: \n* spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0\n* spec.size: Required value"
    );
    c.shutdown().await;
}

/// Field ownership as a real server keeps it: updates (`kubectl scale`, `kubectl label`) own
/// what they change, a later server-side apply of other values conflicts with them in the real
/// server's words, and `metadata.managedFields` shows every manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_managed_fields_and_update_conflicts() {
    let c = cluster().await;
    let Some(k) = Kubectl::new(&c, "managed") else {
        return;
    };
    let (ok, out, err) = k.apply(&["--server-side"], DEPLOYMENT).await;
    assert!(ok, "{out}{err}");
    k.ok(&["scale", "deployment/podinfo", "--replicas=3"]).await;
    k.ok(&["label", "deployment/podinfo", "team=a"]).await;
    let (ok, _, err) = k.apply(&["--server-side"], DEPLOYMENT).await;
    assert!(!ok);
    let err = err.trim();
    assert!(
        err.starts_with(
            r#"error: Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas"#
        ),
        "{err}"
    );
    let json = k
        .ok(&[
            "get",
            "deploy",
            "podinfo",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    let obj: serde_json::Value = serde_json::from_str(&json).unwrap();
    let entries: Vec<(String, String, String)> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap().to_string(),
                e["subresource"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("kubectl".into(), "Apply".into(), "".into()),
            ("kubectl".into(), "Update".into(), "scale".into()),
            ("kubectl-label".into(), "Update".into(), "".into()),
        ]
    );
    let fields = &obj["metadata"]["managedFields"];
    assert_eq!(fields[1]["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(
        fields[2]["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:team": {}}}})
    );
    assert!(
        fields[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
            .get(r#"k:{"name":"podinfod"}"#)
            .is_some(),
        "{}",
        fields[0]
    );
    // kubectl hides them unless asked.
    let plain = k.ok(&["get", "deploy", "podinfo", "-o", "json"]).await;
    assert!(!plain.contains("managedFields"));
    // --force-conflicts takes .spec.replicas back.
    let (ok, out, err) = k
        .apply(&["--server-side", "--force-conflicts"], DEPLOYMENT)
        .await;
    assert!(ok, "{out}{err}");
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "podinfo",
            "-o",
            "jsonpath={.spec.replicas}"
        ])
        .await,
        "2"
    );
    // From client-side to server-side apply: kubectl rewrites managedFields so that the
    // client-side applier's fields become the server-side applier's, as on a real server.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: moved}\ndata: {a: \"1\"}\n";
    let (ok, out, err) = k.apply(&[], cm).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = k.apply(&["--server-side"], cm).await;
    assert!(ok, "{out}{err}");
    let managers = k
        .ok(&[
            "get",
            "cm",
            "moved",
            "--show-managed-fields",
            "-o",
            "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation} {end}",
        ])
        .await;
    assert_eq!(managers.trim(), "kubectl/Apply kubectl-last-applied/Apply");
    // The client-side-apply annotation now holds what `kubectl` applied server-side.
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "moved",
            "-o",
            r#"jsonpath={.metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration}"#,
        ])
        .await
        .trim(),
        r#"{"apiVersion":"v1","data":{"a":"1"},"kind":"ConfigMap","metadata":{"name":"moved","namespace":"default"}}"#
    );
    c.shutdown().await;
}
