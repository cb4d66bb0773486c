//! The resource registry: built-in kinds and the kinds that applied CRDs make served.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::status::ApiError;

/// When `metadata.generation` moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenRule {
    /// No generation at all (ConfigMaps, Services, ...).
    None,
    /// apps/v1 kinds: spec or `metadata.annotations` changed.
    Apps,
    /// Any change outside metadata and status.
    Spec,
    /// Any change outside metadata (custom resources without a status subresource).
    NonMetadata,
}

/// JSON paths (dotted, leading dot) of a scale subresource.
#[derive(Debug, Clone)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// A CRD `additionalPrinterColumns` entry.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// One served resource (all its served versions).
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    /// Served versions; the first is the preferred one.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status: bool,
    pub scale: Option<ScalePaths>,
    pub generation: GenRule,
    /// Built-in kinds accept strategic merge patches; custom resources do not.
    pub strategic: bool,
    /// Printer columns of a custom resource (per version, by version name).
    pub columns: BTreeMap<String, Vec<PrinterColumn>>,
    pub crd: bool,
    /// The `openAPIV3Schema` of each served version of a custom resource.
    pub schemas: BTreeMap<String, Arc<Value>>,
    /// Another view of a resource stored under this store key (`events.k8s.io` events are
    /// stored as core events); objects are converted on read and write (see `convert`).
    pub storage: Option<String>,
}

impl ResourceDef {
    /// `group/plural`, the store key of this resource.
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// The store key objects of this resource live under: `key()` unless this resource is
    /// another view of a stored resource.
    pub fn store_key(&self) -> String {
        self.storage.clone().unwrap_or_else(|| self.key())
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn preferred_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

struct Builtin {
    group: &'static str,
    versions: &'static [&'static str],
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
    generation: GenRule,
}

#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    versions: &'static [&'static str],
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
    generation: GenRule,
) -> Builtin {
    Builtin {
        group,
        versions,
        plural,
        kind,
        namespaced,
        short,
        status,
        scale,
        generation,
    }
}

const BUILTINS: &[Builtin] = &[
    b(
        "",
        &["v1"],
        "namespaces",
        "Namespace",
        false,
        &["ns"],
        true,
        false,
        GenRule::None,
    ),
    b(
        "",
        &["v1"],
        "pods",
        "Pod",
        true,
        &["po"],
        true,
        false,
        GenRule::None,
    ),
    b(
        "",
        &["v1"],
        "services",
        "Service",
        true,
        &["svc"],
        true,
        false,
        GenRule::None,
    ),
    b(
        "",
        &["v1"],
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        false,
        false,
        GenRule::None,
    ),
    b(
        "",
        &["v1"],
        "configmaps",
        "ConfigMap",
        true,
        &["cm"],
        false,
        false,
        GenRule::None,
    ),
    b(
        "",
        &["v1"],
        "secrets",
        "Secret",
        true,
        &[],
        false,
        false,
        GenRule::None,
    ),
    b(
        "",
        &["v1"],
        "events",
        "Event",
        true,
        &["ev"],
        false,
        false,
        GenRule::None,
    ),
    b(
        "",
        &["v1"],
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        false,
        false,
        GenRule::None,
    ),
    b(
        "apps",
        &["v1"],
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        true,
        true,
        GenRule::Apps,
    ),
    b(
        "apps",
        &["v1"],
        "daemonsets",
        "DaemonSet",
        true,
        &["ds"],
        true,
        false,
        GenRule::Apps,
    ),
    b(
        "apps",
        &["v1"],
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        true,
        true,
        GenRule::Apps,
    ),
    b(
        "autoscaling",
        &["v2", "v2beta2", "v2beta1"],
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        true,
        false,
        GenRule::Spec,
    ),
    b(
        "coordination.k8s.io",
        &["v1"],
        "leases",
        "Lease",
        true,
        &[],
        false,
        false,
        GenRule::None,
    ),
    b(
        "apps",
        &["v1"],
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        true,
        true,
        GenRule::Apps,
    ),
    b(
        "apps",
        &["v1"],
        "controllerrevisions",
        "ControllerRevision",
        true,
        &[],
        false,
        false,
        GenRule::None,
    ),
    b(
        "batch",
        &["v1"],
        "jobs",
        "Job",
        true,
        &[],
        true,
        false,
        GenRule::Spec,
    ),
    b(
        "batch",
        &["v1"],
        "cronjobs",
        "CronJob",
        true,
        &["cj"],
        true,
        false,
        GenRule::Spec,
    ),
    b(
        "networking.k8s.io",
        &["v1"],
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        true,
        false,
        GenRule::Spec,
    ),
    b(
        "networking.k8s.io",
        &["v1"],
        "ingressclasses",
        "IngressClass",
        false,
        &[],
        false,
        false,
        GenRule::Spec,
    ),
    b(
        "networking.k8s.io",
        &["v1"],
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
        false,
        false,
        GenRule::Spec,
    ),
    b(
        "policy",
        &["v1"],
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        true,
        false,
        GenRule::Spec,
    ),
    b(
        "rbac.authorization.k8s.io",
        &["v1"],
        "roles",
        "Role",
        true,
        &[],
        false,
        false,
        GenRule::None,
    ),
    b(
        "rbac.authorization.k8s.io",
        &["v1"],
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        false,
        false,
        GenRule::None,
    ),
    b(
        "rbac.authorization.k8s.io",
        &["v1"],
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        false,
        false,
        GenRule::None,
    ),
    b(
        "rbac.authorization.k8s.io",
        &["v1"],
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        false,
        false,
        GenRule::None,
    ),
    b(
        "scheduling.k8s.io",
        &["v1"],
        "priorityclasses",
        "PriorityClass",
        false,
        &["pc"],
        false,
        false,
        GenRule::None,
    ),
    b(
        "discovery.k8s.io",
        &["v1"],
        "endpointslices",
        "EndpointSlice",
        true,
        &[],
        false,
        false,
        GenRule::None,
    ),
    b(
        "events.k8s.io",
        &["v1"],
        "events",
        "Event",
        true,
        &["ev"],
        false,
        false,
        GenRule::None,
    ),
    b(
        "apiextensions.k8s.io",
        &["v1"],
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
        false,
        GenRule::Spec,
    ),
];

/// The built-in resources of the `all` category (`kubectl get all`), as a real server lists them.
const IN_ALL: &[&str] = &[
    "pods",
    "services",
    "daemonsets",
    "deployments",
    "replicasets",
    "statefulsets",
    "horizontalpodautoscalers",
    "jobs",
    "cronjobs",
];

/// All served resources, by store key.
#[derive(Debug, Clone)]
pub struct Registry {
    defs: BTreeMap<String, Arc<ResourceDef>>,
    /// Bumped on every registration change (used in openapi hashes).
    pub epoch: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

fn singular_of(kind: &str) -> String {
    kind.to_ascii_lowercase()
}

impl Registry {
    pub fn new() -> Self {
        let mut defs = BTreeMap::new();
        for bi in BUILTINS {
            let def = ResourceDef {
                group: bi.group.to_string(),
                versions: bi.versions.iter().map(|v| v.to_string()).collect(),
                plural: bi.plural.to_string(),
                singular: singular_of(bi.kind),
                kind: bi.kind.to_string(),
                namespaced: bi.namespaced,
                short_names: bi.short.iter().map(|s| s.to_string()).collect(),
                categories: if IN_ALL.contains(&bi.plural) {
                    vec!["all".to_string()]
                } else {
                    Vec::new()
                },
                status: bi.status,
                scale: bi.scale.then(|| ScalePaths {
                    spec_replicas: ".spec.replicas".into(),
                    status_replicas: ".status.replicas".into(),
                    label_selector: Some(".spec.selector".into()),
                }),
                generation: bi.generation,
                strategic: true,
                columns: BTreeMap::new(),
                crd: false,
                schemas: BTreeMap::new(),
                storage: crate::convert::storage_of(bi.group, bi.plural).map(str::to_string),
            };
            defs.insert(def.key(), Arc::new(def));
        }
        Self { defs, epoch: 1 }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceDef>> {
        self.defs.values()
    }

    pub fn by_key(&self, key: &str) -> Option<Arc<ResourceDef>> {
        self.defs.get(key).cloned()
    }

    /// The resource `plural` served in `group/version`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .get(&format!("{group}/{plural}"))
            .filter(|d| d.versions.iter().any(|v| v == version))
            .cloned()
    }

    /// The resource of `apiVersion` + `kind` (for owner references and apply bodies).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        let (group, version) = split_api_version(api_version);
        self.defs
            .values()
            .find(|d| d.group == group && d.kind == kind && d.versions.iter().any(|v| v == version))
            .cloned()
    }

    /// Served groups with their versions (preferred first), core group excluded.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.defs.values().filter(|d| !d.group.is_empty()) {
            let entry = out.entry(d.group.clone()).or_default();
            for v in &d.versions {
                if !entry.contains(v) {
                    entry.push(v.clone());
                }
            }
        }
        for versions in out.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    /// Resources served in one group/version.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.defs
            .values()
            .filter(|d| d.group == group && d.versions.iter().any(|v| v == version))
            .cloned()
            .collect()
    }

    /// Checks a CustomResourceDefinition body and makes its resource served.
    pub fn register_crd(&mut self, crd: &Value) -> Result<Arc<ResourceDef>, ApiError> {
        let def = crd_to_def(crd)?;
        let key = def.key();
        if let Some(existing) = self.defs.get(&key)
            && !existing.crd
        {
            return Err(ApiError::invalid(
                "CustomResourceDefinition",
                &format!("{}.{}", def.plural, def.group),
                "spec.group: Invalid value: a built-in resource already uses this name",
            ));
        }
        let def = Arc::new(def);
        self.defs.insert(key, def.clone());
        self.epoch += 1;
        Ok(def)
    }

    pub fn unregister(&mut self, key: &str) {
        if self.defs.get(key).is_some_and(|d| d.crd) {
            self.defs.remove(key);
            self.epoch += 1;
        }
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, num) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (stage, major, num)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn crd_to_def(crd: &Value) -> Result<ResourceDef, ApiError> {
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    let invalid = |msg: &str| ApiError::invalid("CustomResourceDefinition", name, msg);
    let spec = crd
        .get("spec")
        .ok_or_else(|| invalid("spec: Required value"))?;
    let group = str_at(spec, &["group"]).ok_or_else(|| invalid("spec.group: Required value"))?;
    let plural = str_at(spec, &["names", "plural"])
        .ok_or_else(|| invalid("spec.names.plural: Required value"))?;
    let kind = str_at(spec, &["names", "kind"])
        .ok_or_else(|| invalid("spec.names.kind: Required value"))?;
    if name != format!("{plural}.{group}") {
        return Err(invalid(&format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        )));
    }
    if !group.contains('.') {
        return Err(invalid(
            "spec.group: Invalid value: should be a domain with at least one dot",
        ));
    }
    let scope = str_at(spec, &["scope"]).unwrap_or("Namespaced");
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            return Err(invalid(&format!(
                "spec.scope: Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
            )));
        }
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions_v = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid("spec.versions: Invalid value: must have exactly one version marked as storage version"))?;
    let mut served: Vec<(String, bool)> = Vec::new();
    let mut status = false;
    let mut scale = None;
    let mut columns = BTreeMap::new();
    let mut schemas = BTreeMap::new();
    let mut storage_count = 0;
    for v in versions_v {
        let vname =
            str_at(v, &["name"]).ok_or_else(|| invalid("spec.versions[].name: Required value"))?;
        let is_storage = v.get("storage").and_then(Value::as_bool).unwrap_or(false);
        if is_storage {
            storage_count += 1;
        }
        if !v.get("served").and_then(Value::as_bool).unwrap_or(false) {
            continue;
        }
        served.push((vname.to_string(), is_storage));
        let subs = v.get("subresources").or_else(|| spec.get("subresources"));
        if let Some(subs) = subs {
            if subs.get("status").is_some() {
                status = true;
            }
            if let Some(sc) = subs.get("scale") {
                scale = Some(ScalePaths {
                    spec_replicas: str_at(sc, &["specReplicasPath"])
                        .unwrap_or(".spec.replicas")
                        .to_string(),
                    status_replicas: str_at(sc, &["statusReplicasPath"])
                        .unwrap_or(".status.replicas")
                        .to_string(),
                    label_selector: str_at(sc, &["labelSelectorPath"]).map(str::to_string),
                });
            }
        }
        let cols_v = v
            .get("additionalPrinterColumns")
            .or_else(|| spec.get("additionalPrinterColumns"));
        let cols = cols_v
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: str_at(c, &["name"])?.to_string(),
                            type_: str_at(c, &["type"]).unwrap_or("string").to_string(),
                            format: str_at(c, &["format"]).unwrap_or("").to_string(),
                            description: str_at(c, &["description"]).unwrap_or("").to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                            json_path: str_at(c, &["jsonPath"])
                                .or_else(|| str_at(c, &["JSONPath"]))?
                                .to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        columns.insert(vname.to_string(), cols);
        if let Some(schema) = v
            .pointer("/schema/openAPIV3Schema")
            .or_else(|| spec.pointer("/validation/openAPIV3Schema"))
            .filter(|s| s.is_object())
        {
            schemas.insert(vname.to_string(), Arc::new(schema.clone()));
        }
    }
    if storage_count != 1 {
        return Err(invalid(
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        ));
    }
    if served.is_empty() {
        return Err(invalid(
            "spec.versions: Invalid value: must have at least one served version",
        ));
    }
    // Preferred version: the highest by Kubernetes version priority.
    let mut versions: Vec<String> = served.into_iter().map(|(v, _)| v).collect();
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    Ok(ResourceDef {
        group: group.to_string(),
        versions,
        plural: plural.to_string(),
        singular: str_at(spec, &["names", "singular"])
            .map(str::to_string)
            .unwrap_or_else(|| singular_of(kind)),
        kind: kind.to_string(),
        namespaced,
        short_names: strings(spec.get("names").and_then(|n| n.get("shortNames"))),
        categories: strings(spec.get("names").and_then(|n| n.get("categories"))),
        status,
        scale,
        generation: if status {
            GenRule::Spec
        } else {
            GenRule::NonMetadata
        },
        strategic: false,
        columns,
        crd: true,
        schemas,
        storage: None,
    })
}

#[cfg(test)]
mod tests;
