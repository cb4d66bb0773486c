//! The Kubernetes API permissions of `serin controller`: one table, one row per API group and
//! resource, each naming the code that needs it.
//!
//! `deploy/rbac/clusterrole.yaml` is rendered from [`RULES`] (a test compares the committed file
//! with [`cluster_role_yaml`]; `SERIN_UPDATE_GOLDEN=1` rewrites it), and the Helm chart's and the
//! kustomize base's ClusterRoles are checked against the same table. A new kube-rs call needs a
//! row here: the source scan in the tests fails on a resource type or API group it cannot find in
//! the table. Which rule serves which code path is listed in docs/install.md.

use std::collections::BTreeSet;

/// When a rule is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// By every controller.
    Always,
    /// Only with `-enable-config-tracking` (the default): watching ConfigMaps and Secrets and
    /// writing their `-primary` copies. The Helm chart leaves these verbs out when
    /// `configTracking.enabled=false`.
    ConfigTracking,
    /// The routing objects of the providers Flagger supports beyond Istio (Gateway API, SMI,
    /// Contour, NGINX, Gloo, Traefik, Kuma, APISIX, App Mesh). They carry the Istio router's
    /// verbs (get, create, patch) so a router added to Serin needs no new RBAC release.
    Router,
}

/// One ClusterRole rule: an API group, its resources and the verbs Serin uses on them.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub need: Need,
    /// The code that makes these calls (documentation; shown in the rendered YAML).
    pub used_by: &'static str,
}

/// The verbs the Istio router uses, given to the other routers' kinds (list and watch: the
/// watch cache, `k8s/cache.rs`, that reconciles read routing objects from).
const ROUTER_VERBS: &[&str] = &["get", "list", "watch", "create", "patch"];

/// Every permission `serin controller` needs. Verbs are the ones the code sends: `get` (also
/// `get_opt`), `list` and `watch` (kube-runtime watchers, list calls, and the watch cache of
/// every kind a reconcile reads, `k8s/cache.rs`), `create`, `patch` (merge
/// patches), `update` (replace calls), `delete`.
pub const RULES: &[Rule] = &[
    Rule {
        group: "",
        resources: &["events"],
        verbs: &["create", "patch"],
        need: Need::Always,
        used_by: "controller/adapters/events.rs: Canary events (new ones, and counts of repeats)",
    },
    Rule {
        group: "",
        resources: &["services"],
        verbs: &["get", "list", "watch", "create", "patch"],
        need: Need::Always,
        used_by: "workload/services.rs: the apex, -canary and -primary Services; workload/service_target.rs: the copies of a Service target",
    },
    Rule {
        group: "",
        resources: &["secrets"],
        verbs: &["get"],
        need: Need::Always,
        used_by: "controller/adapters/alerts.rs, controller/adapters/metrics.rs: secretRef of AlertProviders and MetricTemplates; workload/config_tracker.rs: tracked Secrets",
    },
    Rule {
        group: "",
        resources: &["secrets"],
        verbs: &["list", "watch", "create", "patch"],
        need: Need::ConfigTracking,
        used_by: "controller/runtime.rs: Secret watch; workload/config_tracker.rs: -primary copies",
    },
    Rule {
        group: "",
        resources: &["configmaps"],
        verbs: &["get", "list", "watch", "create", "patch"],
        need: Need::ConfigTracking,
        used_by: "controller/runtime.rs: ConfigMap watch; workload/config_tracker.rs: tracked ConfigMaps and -primary copies",
    },
    Rule {
        group: "apps",
        resources: &["deployments", "daemonsets"],
        verbs: &["get", "list", "watch", "create", "patch"],
        need: Need::Always,
        used_by: "controller/runtime.rs: watches; workload/deployment.rs, workload/daemonset.rs, workload/pod.rs: targets and -primary workloads, scaling",
    },
    Rule {
        group: "autoscaling",
        resources: &["horizontalpodautoscalers"],
        verbs: &["get", "list", "watch", "create", "patch"],
        need: Need::Always,
        used_by: "workload/autoscaler.rs, workload/deployment.rs: the -primary HPA",
    },
    Rule {
        group: "keda.sh",
        resources: &["scaledobjects"],
        verbs: &["get", "list", "watch", "create", "patch"],
        need: Need::Always,
        used_by: "workload/autoscaler.rs, workload/deployment.rs: the -primary ScaledObject and the target's paused-replicas annotation",
    },
    Rule {
        group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["get", "create", "update"],
        need: Need::Always,
        used_by: "controller/leader.rs: the flagger-leader-election Lease",
    },
    Rule {
        group: "flagger.app",
        resources: &["canaries"],
        verbs: &["get", "list", "watch", "patch"],
        need: Need::Always,
        used_by: "controller/runtime.rs: watch and start-up check; controller/adapters/status.rs: reads and the finalizer patch",
    },
    Rule {
        group: "flagger.app",
        resources: &["canaries/status"],
        verbs: &["patch", "update"],
        need: Need::Always,
        used_by: "controller/adapters/status.rs: status writes (server-side apply; a replace when another manager's fields would survive it)",
    },
    Rule {
        group: "flagger.app",
        resources: &["canaries/finalizers"],
        verbs: &["update"],
        need: Need::Always,
        used_by: "k8s/meta.rs: ownerReferences with blockOwnerDeletion on generated objects",
    },
    Rule {
        group: "flagger.app",
        resources: &["metrictemplates", "alertproviders"],
        verbs: &["get", "list"],
        need: Need::Always,
        used_by: "controller/runtime.rs: start-up check; controller/adapters/metrics.rs, controller/adapters/alerts.rs: templateRef and providerRef",
    },
    Rule {
        group: "networking.istio.io",
        resources: &["virtualservices", "destinationrules"],
        verbs: &["get", "list", "watch", "create", "patch"],
        need: Need::Always,
        used_by: "router/istio/mod.rs: the Istio router",
    },
    Rule {
        group: "serving.knative.dev",
        resources: &["services"],
        verbs: &["get", "list", "watch", "patch"],
        need: Need::Always,
        used_by: "workload/knative.rs, router/knative.rs, controller/adapters/metrics.rs, controller/runtime.rs: the Knative target, router, observer and watch",
    },
    Rule {
        group: "serving.knative.dev",
        resources: &["revisions"],
        verbs: &["get", "list", "watch"],
        need: Need::Always,
        used_by: "workload/knative.rs: Knative revision readiness",
    },
    Rule {
        group: "metrics.keptn.sh",
        resources: &["keptnmetrics"],
        verbs: &["get"],
        need: Need::Always,
        used_by: "metrics/providers/keptn.rs: KeptnMetric queries",
    },
    Rule {
        group: "metrics.keptn.sh",
        resources: &["analyses"],
        verbs: &["get", "create", "delete"],
        need: Need::Always,
        used_by: "metrics/providers/keptn.rs: Analysis queries",
    },
    Rule {
        group: "external.metrics.k8s.io",
        resources: &["*"],
        verbs: &["get"],
        need: Need::Always,
        used_by: "metrics/providers/external_metrics.rs: the resource is the metric name a MetricTemplate chooses, so it cannot be listed",
    },
    Rule {
        group: "gateway.networking.k8s.io",
        resources: &["httproutes", "grpcroutes"],
        verbs: ROUTER_VERBS,
        need: Need::Router,
        used_by: "Gateway API router (GRPCRoute for service.appProtocol: grpc)",
    },
    Rule {
        group: "split.smi-spec.io",
        resources: &["trafficsplits"],
        verbs: ROUTER_VERBS,
        need: Need::Router,
        used_by: "Linkerd / SMI router",
    },
    Rule {
        group: "projectcontour.io",
        resources: &["httpproxies"],
        verbs: ROUTER_VERBS,
        need: Need::Router,
        used_by: "Contour router",
    },
    Rule {
        group: "networking.k8s.io",
        resources: &["ingresses"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        need: Need::Router,
        used_by: "NGINX and Skipper routers (Skipper's Finalize deletes its canary Ingress)",
    },
    Rule {
        group: "gloo.solo.io",
        resources: &["upstreams"],
        verbs: ROUTER_VERBS,
        need: Need::Router,
        used_by: "Gloo router",
    },
    Rule {
        group: "gateway.solo.io",
        resources: &["routetables"],
        verbs: ROUTER_VERBS,
        need: Need::Router,
        used_by: "Gloo router",
    },
    Rule {
        group: "traefik.io",
        resources: &["traefikservices"],
        verbs: ROUTER_VERBS,
        need: Need::Router,
        used_by: "Traefik router",
    },
    Rule {
        group: "kuma.io",
        resources: &["trafficroutes"],
        verbs: ROUTER_VERBS,
        need: Need::Router,
        used_by: "Kuma router",
    },
    Rule {
        group: "apisix.apache.org",
        resources: &["apisixroutes"],
        verbs: ROUTER_VERBS,
        need: Need::Router,
        used_by: "APISIX router",
    },
    Rule {
        group: "appmesh.k8s.aws",
        resources: &["virtualnodes", "virtualrouters", "virtualservices"],
        verbs: ROUTER_VERBS,
        need: Need::Router,
        used_by: "App Mesh router",
    },
];

/// Non-resource URLs: the start-up Kubernetes version check (`controller/runtime.rs`).
pub const NON_RESOURCE_URLS: &[&str] = &["/version"];

/// Every (group, resource, verb) the rules grant, for comparisons.
pub fn grants(include: impl Fn(Need) -> bool) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in RULES.iter().filter(|r| include(r.need)) {
        for resource in rule.resources {
            for verb in rule.verbs {
                out.insert((rule.group.into(), (*resource).into(), (*verb).into()));
            }
        }
    }
    out
}

fn quoted(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// The ClusterRole `name` as YAML, with each rule's code path as a comment.
pub fn cluster_role_yaml(name: &str) -> String {
    let mut out = String::from(
        "# Generated from crates/serin/src/rbac.rs: edit the table there, then run\n\
         # SERIN_UPDATE_GOLDEN=1 cargo test -p serin --lib rbac::\n\
         apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: ClusterRole\n\
         metadata:\n",
    );
    out.push_str(&format!(
        "  name: {name}\n  labels:\n    app.kubernetes.io/name: serin\nrules:\n"
    ));
    for rule in RULES {
        let need = match rule.need {
            Need::Always => "",
            Need::ConfigTracking => " [config tracking]",
            Need::Router => " [routers beyond Istio]",
        };
        out.push_str(&format!("  # {}{need}\n", rule.used_by));
        out.push_str(&format!(
            "  - apiGroups: {}\n    resources: {}\n    verbs: {}\n",
            quoted(&[rule.group]),
            quoted(rule.resources),
            quoted(rule.verbs)
        ));
    }
    out.push_str("  # controller/runtime.rs: the start-up Kubernetes version check\n");
    out.push_str(&format!(
        "  - nonResourceURLs: {}\n    verbs: [\"get\"]\n",
        quoted(NON_RESOURCE_URLS)
    ));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn read(rel: &str) -> String {
        std::fs::read_to_string(repo().join(rel))
            .unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// The (group, resource, verb) triples and non-resource URLs of the first document of
    /// `kind` in a YAML stream.
    fn rules_of(text: &str, kind: &str) -> (BTreeSet<(String, String, String)>, Vec<String>) {
        let docs = crate::api::manifest::parse_documents(text).unwrap();
        let role = docs
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in the stream"));
        let mut grants = BTreeSet::new();
        let mut urls = Vec::new();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        };
        for rule in role["rules"].as_array().unwrap() {
            urls.extend(strings(&rule["nonResourceURLs"]));
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        grants.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
        (grants, urls)
    }

    #[test]
    fn deploy_rbac_clusterrole_is_rendered_from_the_table() {
        let path = repo().join("deploy/rbac/clusterrole.yaml");
        let actual = cluster_role_yaml("serin");
        if std::env::var("SERIN_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            expected, actual,
            "deploy/rbac/clusterrole.yaml is not the table's rendering (SERIN_UPDATE_GOLDEN=1 rewrites it)"
        );
        // And parsed back, it grants exactly the table.
        let (grants_yaml, urls) = rules_of(&expected, "ClusterRole");
        assert_eq!(grants_yaml, grants(|_| true));
        assert_eq!(urls, NON_RESOURCE_URLS);
    }

    #[test]
    fn no_wildcard_verbs_or_groups_and_one_documented_wildcard_resource() {
        for rule in RULES {
            assert!(!rule.verbs.contains(&"*"), "{rule:?}");
            assert_ne!(rule.group, "*", "{rule:?}");
            assert!(!rule.verbs.is_empty() && !rule.resources.is_empty());
            if rule.resources.contains(&"*") {
                assert_eq!(rule.group, "external.metrics.k8s.io", "{rule:?}");
                assert_eq!(rule.verbs, ["get"]);
            }
        }
        // Secrets are never deleted or replaced; only config tracking lists, copies and patches.
        for (group, resource, verb) in grants(|n| n == Need::Always) {
            if group.is_empty() && resource == "secrets" {
                assert_eq!(verb, "get");
            }
        }
    }

    #[test]
    fn kustomize_base_grants_the_table() {
        let (grants_yaml, urls) = rules_of(&read("kustomize/base/serin/rbac.yaml"), "ClusterRole");
        assert_eq!(grants_yaml, grants(|_| true));
        assert_eq!(urls, NON_RESOURCE_URLS);
    }

    #[test]
    fn helm_chart_grants_the_table() {
        // Golden renders of charts/serin (tests/packaging/run.sh checks them against helm).
        let default = read("tests/packaging/golden/serin-default.yaml");
        let (grants_yaml, urls) = rules_of(&default, "ClusterRole");
        assert_eq!(grants_yaml, grants(|_| true));
        assert_eq!(urls, NON_RESOURCE_URLS);
        // configTracking.enabled=false drops the config tracking verbs.
        let (grants_yaml, _) = rules_of(
            &read("tests/packaging/golden/serin-no-config-tracking.yaml"),
            "ClusterRole",
        );
        assert_eq!(grants_yaml, grants(|n| n != Need::ConfigTracking));
        // rbac.scope=namespace: a Role with the namespaced rules only.
        let (grants_yaml, urls) = rules_of(
            &read("tests/packaging/golden/serin-namespaced.yaml"),
            "Role",
        );
        let namespaced: BTreeSet<_> = grants(|_| true)
            .into_iter()
            .filter(|(g, _, _)| g != "external.metrics.k8s.io")
            .collect();
        assert_eq!(grants_yaml, namespaced);
        assert!(urls.is_empty());
    }

    fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                // The kubectl plugin runs with its user's credentials, not the controller's
                // ServiceAccount (the RBAC it needs is in docs/operations.md).
                if name != "tests" && name != "testdata" && name != "testing" && name != "plugin" {
                    sources(&path, out);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" && name != "rbac.rs" {
                out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }

    /// The group and resource of the typed APIs the controller code uses.
    fn resource_of(type_name: &str) -> Option<(&'static str, &'static str)> {
        Some(match type_name {
            "Event" => ("", "events"),
            "Service" => ("", "services"),
            "Secret" => ("", "secrets"),
            "ConfigMap" => ("", "configmaps"),
            "Deployment" => ("apps", "deployments"),
            "DaemonSet" => ("apps", "daemonsets"),
            "HorizontalPodAutoscaler" => ("autoscaling", "horizontalpodautoscalers"),
            "Lease" => ("coordination.k8s.io", "leases"),
            "Canary" => ("flagger.app", "canaries"),
            "MetricTemplate" => ("flagger.app", "metrictemplates"),
            "AlertProvider" => ("flagger.app", "alertproviders"),
            "VirtualService" => ("networking.istio.io", "virtualservices"),
            "DestinationRule" => ("networking.istio.io", "destinationrules"),
            "Ingress" => ("networking.k8s.io", "ingresses"),
            "KnativeService" => ("serving.knative.dev", "services"),
            "KnativeRevision" => ("serving.knative.dev", "revisions"),
            _ => return None,
        })
    }

    /// Adding an API call on a new resource type or API group without a rule fails here.
    #[test]
    fn every_api_the_source_uses_has_a_rule() {
        let mut files = Vec::new();
        sources(&repo().join("crates/serin/src"), &mut files);
        assert!(files.len() > 50, "source scan found {} files", files.len());
        let typed = regex::Regex::new(
            r"(?:\bApi(?:::)?<|api_for::<|ApiResource::erase::<)([A-Za-z_$][A-Za-z0-9_]*)>",
        )
        .unwrap();
        let grouped = regex::Regex::new(
            r#"(?:"/apis/([a-z0-9.-]+)/|GroupVersionKind::gvk\(\s*"([a-z0-9.-]+)"|group: "([a-z0-9.-]+)"\.into\(\))"#,
        )
        .unwrap();
        let groups: BTreeSet<&str> = RULES.iter().map(|r| r.group).collect();
        let granted = grants(|_| true);
        let mut seen_types = BTreeSet::new();
        let mut seen_groups = BTreeSet::new();
        for (path, text) in &files {
            for c in typed.captures_iter(text) {
                let ty = &c[1];
                // Generic and dynamic APIs: their groups are checked by the second regex.
                if matches!(ty, "K" | "$t" | "DynamicObject") {
                    continue;
                }
                let (group, resource) = resource_of(ty).unwrap_or_else(|| {
                    panic!(
                        "{} uses Api<{ty}>: add its rule to rbac::RULES and its resource to resource_of",
                        path.display()
                    )
                });
                assert!(
                    granted.iter().any(|(g, r, _)| g == group && r == resource),
                    "{} uses Api<{ty}> but rbac::RULES has no rule for {group}/{resource}",
                    path.display()
                );
                seen_types.insert(ty.to_string());
            }
            for c in grouped.captures_iter(text) {
                let group = c.iter().skip(1).flatten().next().unwrap().as_str();
                assert!(
                    groups.contains(group),
                    "{} calls the API group {group}, which rbac::RULES does not grant",
                    path.display()
                );
                seen_groups.insert(group.to_string());
            }
        }
        // The scan itself works: it finds the calls this table was written from.
        for ty in [
            "Canary",
            "Lease",
            "Event",
            "Secret",
            "Deployment",
            "VirtualService",
        ] {
            assert!(seen_types.contains(ty), "scan did not find Api<{ty}>");
        }
        for group in [
            "keda.sh",
            "serving.knative.dev",
            "metrics.keptn.sh",
            "external.metrics.k8s.io",
        ] {
            assert!(seen_groups.contains(group), "scan did not find {group}");
        }
    }
}
