//! The install manifests start the real command line: every `serin` container of the Helm
//! chart renders and kustomize builds under tests/packaging/golden (checked against helm and
//! kubectl by tests/packaging/run.sh) parses with `serin`'s own flag parser, and the chart values
//! the seeds set reach the flags they stand for.
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use serde_json::Value;
use serin::cli::{Cli, Command, normalize_args};

fn golden(name: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/packaging/golden")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serin::api::manifest::parse_documents(&text).unwrap()
}

fn golden_names() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/packaging/golden");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

/// The containers of every Deployment in the stream whose command is the serin binary.
fn serin_containers(docs: &[Value]) -> Vec<Value> {
    docs.iter()
        .filter(|d| d["kind"] == "Deployment")
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|c| c["command"][0] == "/usr/local/bin/serin")
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Parses a container's command and args as `serin` does.
fn parse(container: &Value) -> Cli {
    let mut argv: Vec<OsString> = vec!["serin".into()];
    argv.extend(
        strings(&container["command"])
            .into_iter()
            .skip(1)
            .map(Into::into),
    );
    argv.extend(strings(&container["args"]).into_iter().map(Into::into));
    Cli::try_parse_from(normalize_args(argv.clone()))
        .unwrap_or_else(|e| panic!("serin rejects {argv:?}: {e}"))
}

fn controller(name: &str) -> serin::cli::controller::Args {
    let containers = serin_containers(&golden(name));
    assert_eq!(containers.len(), 1, "{name}: one serin container");
    match parse(&containers[0]).command {
        Command::Controller(args) => *args,
        other => panic!("{name}: expected the controller, got {other:?}"),
    }
}

#[test]
fn every_rendered_serin_command_parses() {
    let mut seen = 0;
    for name in golden_names() {
        for container in serin_containers(&golden(&name)) {
            parse(&container);
            seen += 1;
        }
    }
    // 8 controller renders and 2 loadtester renders of the chart, 3 kustomize Deployments.
    assert!(seen >= 13, "only {seen} serin containers found");
}

#[test]
fn seed_values_reach_the_controller_flags() {
    // helm upgrade -i flagger ... --set istio.kubeconfig.secretName=istio-kubeconfig ...
    let a = controller("seed-001-istio-kubeconfig.yaml");
    assert_eq!(a.mesh_provider, "istio");
    assert_eq!(a.metrics_server, "http://prometheus:9090");
    assert_eq!(
        a.kubeconfig_service_mesh,
        Some(PathBuf::from("/tmp/controlplane/kubeconfig"))
    );
    assert!(a.enable_config_tracking);
    assert!(!a.enable_leader_election);

    let a = controller("issue-istio-slack.yaml");
    assert_eq!(a.notifier.slack_channel.as_deref(), Some("general"));
    assert_eq!(a.notifier.slack_user, "flagger");
    assert_eq!(
        a.notifier.slack_url.as_deref(),
        Some("https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK")
    );

    let a = controller("serin-default.yaml");
    assert!(a.kubeconfig_service_mesh.is_none());
    assert_eq!(a.mesh_provider, "istio");

    let a = controller("serin-no-config-tracking.yaml");
    assert!(!a.enable_config_tracking);
}

#[test]
fn dashboard_values_reach_the_controller_and_its_service() {
    // Off by default: no flag, no port.
    let a = controller("serin-default.yaml");
    assert_eq!(a.dashboard.port, None);
    assert!(a.dashboard.address.is_loopback());

    let a = controller("serin-dashboard.yaml");
    assert_eq!(a.dashboard.port, Some(9090));
    // Reachable through the Service only when it listens beyond the pod's loopback.
    assert_eq!(a.dashboard.address.to_string(), "0.0.0.0");
    let docs = golden("serin-dashboard.yaml");
    let service = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    let port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "dashboard")
        .unwrap();
    assert_eq!(port["port"], 9090);
    assert_eq!(port["targetPort"], "dashboard");
    let container = &serin_containers(&docs)[0];
    assert!(
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "dashboard" && p["containerPort"] == 9090)
    );
}

#[test]
fn every_flag_value_of_the_chart_reaches_the_controller() {
    let a = controller("serin-all-values.yaml");
    assert_eq!(a.mesh_provider, "kubernetes");
    // prometheus.install points the controller at the bundled Prometheus.
    assert_eq!(a.metrics_server, "http://flagger-prometheus:9090");
    assert_eq!(a.selector_labels, "app");
    assert_eq!(a.namespace.as_deref(), Some("apps"));
    assert_eq!(
        a.notifier.slack_proxy_url.as_deref(),
        Some("http://proxy:3128")
    );
    assert_eq!(
        a.notifier.msteams_url.as_deref(),
        Some("https://teams.example/hook")
    );
    assert_eq!(
        a.notifier.msteams_proxy_url.as_deref(),
        Some("http://proxy:3128")
    );
    assert!(a.enable_leader_election);
    assert_eq!(a.leader_election_namespace, "flagger-system");
    assert_eq!(a.ingress_annotations_prefix, "custom.ingress.kubernetes.io");
    assert_eq!(a.include_label_prefix, "app.kubernetes.io");
    assert_eq!(a.ingress_class, "contour");
    assert_eq!(a.event_webhook.as_deref(), Some("http://events.example/"));
    assert_eq!(a.kubeconfig_qps, 200);
    assert_eq!(a.kubeconfig_burst, 400);
    assert_eq!(
        a.kubeconfig_service_mesh,
        Some(PathBuf::from("/tmp/controlplane/config"))
    );
    assert_eq!(a.threadiness, 4);
    assert_eq!(a.notifier.cluster_name.as_deref(), Some("prod-eu"));
    assert!(a.no_cross_namespace_refs);

    let docs = golden("serin-all-values.yaml");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "flagger")
        .unwrap();
    // leaderElection.replicaCount is used only with leader election.
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"]["path"],
        "/healthz"
    );
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "mesh-kubeconfig");
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "PodDisruptionBudget",
        "AuthorizationPolicy",
        "Service",
    ] {
        assert!(docs.iter().any(|d| d["kind"] == kind), "no {kind}");
    }
}

#[test]
fn controller_pods_are_probed_and_locked_down() {
    for name in ["serin-default.yaml", "kustomize-istio.yaml"] {
        let docs = golden(name);
        let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
        let pod = &deployment["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        let user = if c["securityContext"]["runAsUser"].is_null() {
            &pod["securityContext"]["runAsUser"]
        } else {
            &c["securityContext"]["runAsUser"]
        };
        assert_eq!(*user, 65532, "{name}");
        // Without leader election: one replica, replaced (never two controllers at once).
        assert_eq!(deployment["spec"]["replicas"], 1, "{name}");
        assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate", "{name}");
    }
}

#[test]
fn loadtester_values_reach_its_flags() {
    let containers = serin_containers(&golden("loadtester-all-values.yaml"));
    let Command::Loadtester(a) = parse(&containers[0]).command else {
        panic!("expected the loadtester");
    };
    assert_eq!(a.port, 8080);
    assert_eq!(a.namespace_regexp, "^test$");
    assert_eq!(a.timeout, std::time::Duration::from_secs(30 * 60));
}

fn repo_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

#[test]
fn gitops_apps_leave_replicas_to_the_hpa() {
    let docs = golden("kustomize-flux-apps.yaml");
    let canaries: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Canary").collect();
    assert_eq!(canaries.len(), 2);
    for canary in canaries {
        let target = canary["spec"]["targetRef"]["name"].as_str().unwrap();
        let deployment = docs
            .iter()
            .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == target)
            .unwrap_or_else(|| panic!("no Deployment {target}"));
        // Git does not own the replica count: Serin scales the target, the HPA the primary.
        assert!(
            deployment["spec"]["replicas"].is_null(),
            "{target} sets spec.replicas"
        );
        let hpa = canary["spec"]["autoscalerRef"]["name"].as_str().unwrap();
        assert!(
            docs.iter()
                .any(|d| d["kind"] == "HorizontalPodAutoscaler" && d["metadata"]["name"] == hpa),
            "no HPA {hpa}"
        );
        assert_eq!(canary["metadata"]["namespace"], "prod");
        // Releases are image tags in the app's kustomization.yaml.
        let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap();
        assert_eq!(image, "ghcr.io/stefanprodan/podinfo:6.0.0");
    }
}

#[test]
fn flux_applies_the_apps_after_serin() {
    let apps = serin::api::manifest::parse_documents(&repo_file(
        "examples/gitops/flux/clusters/my-cluster/apps.yaml",
    ))
    .unwrap();
    let serin = serin::api::manifest::parse_documents(&repo_file(
        "examples/gitops/flux/clusters/my-cluster/serin.yaml",
    ))
    .unwrap();
    assert_eq!(
        apps[0]["spec"]["dependsOn"][0]["name"],
        serin[0]["metadata"]["name"]
    );
    for k in [&apps[0], &serin[0]] {
        assert_eq!(k["kind"], "Kustomization");
        // Flux paths are relative to the repository root: each one has a kustomization.yaml.
        let path = k["spec"]["path"].as_str().unwrap().trim_start_matches("./");
        repo_file(&format!("{path}/kustomization.yaml"));
    }
    // Argo CD: the same directories, Serin in an earlier sync wave.
    let argo = golden("kustomize-argocd.yaml");
    let wave = |name: &str| {
        let app = argo
            .iter()
            .find(|d| d["kind"] == "Application" && d["metadata"]["name"] == name)
            .unwrap();
        repo_file(&format!(
            "{}/kustomization.yaml",
            app["spec"]["source"]["path"].as_str().unwrap()
        ));
        app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .unwrap()
            .parse::<i32>()
            .unwrap()
    };
    assert!(wave("serin") < wave("apps"));
}

/// Every build of the workspace bakes the allocator settings of `.cargo/config.toml` into
/// `serin` (they keep its memory down at 10,000 Canaries; docs/performance.md). A build made
/// without them (the file lost, or the variable renamed upstream) would still run, only with
/// more memory; this says so.
#[test]
fn the_binary_carries_the_allocator_settings() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serin"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    let baked = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("config.malloc_conf: "))
        .unwrap_or_else(|| panic!("no jemalloc statistics on stderr:\n{stats}"));
    assert_eq!(
        baked,
        "\"narenas:1,background_thread:true,dirty_decay_ms:0,muzzy_decay_ms:0\""
    );
}
