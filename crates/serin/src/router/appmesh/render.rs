//! The App Mesh objects a Canary wants, and the patches that bring live objects there. Pure:
//! no I/O, golden-tested.
//!
//! `appmesh:v1beta2` (Flagger's `pkg/router/appmesh_v1beta2.go`): VirtualNodes `<apex>-primary`
//! and `<apex>-canary` (pod selectors on the target's selector label), VirtualRouters and
//! VirtualServices `<apex>` (weighted, the one `SetRoutes` changes) and `<apex>-canary` (all
//! traffic to the canary). `appmesh` (v1beta1, `pkg/router/appmesh.go`): VirtualNodes `<apex>`,
//! `<apex>-primary` and `<apex>-canary` in the mesh `service.meshName`, and VirtualServices
//! `<apex>.<ns>` and `<apex>-canary.<ns>` that embed their router and routes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

use crate::api::Canary;
use crate::api::provider::AppMeshVersion;
use crate::k8s::meta::{
    KUBECTL_LAST_APPLIED, canary_owner_reference, is_controlled_by, merge_patch_diff,
    metadata_map_patch, namespace, prune,
};
use crate::router::object::{apex_annotations, apex_labels, without_weights};
use crate::router::{RouterError, Routes};

/// The Canary annotation that turns on the virtual nodes' Envoy access log.
pub const ACCESS_LOG_ANNOTATION: &str = "appmesh.flagger.app/accesslog";
/// Prefix of the App Mesh gateway annotations on the apex VirtualService.
pub const GATEWAY_PREFIX: &str = "gateway.appmesh.k8s.aws/";

/// The App Mesh kinds Serin writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    VirtualNode,
    VirtualRouter,
    VirtualService,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VirtualNode => "VirtualNode",
            Kind::VirtualRouter => "VirtualRouter",
            Kind::VirtualService => "VirtualService",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::VirtualNode => "virtualnodes",
            Kind::VirtualRouter => "virtualrouters",
            Kind::VirtualService => "virtualservices",
        }
    }

    /// The top-level `spec` fields Serin owns; others (`awsName`, `meshRef`, ...) are left to
    /// the App Mesh controller and the user.
    fn owned_fields(self, version: AppMeshVersion) -> &'static [&'static str] {
        match (self, version) {
            (Kind::VirtualNode, AppMeshVersion::V1beta2) => &[
                "listeners",
                "serviceDiscovery",
                "podSelector",
                "logging",
                "backends",
            ],
            (Kind::VirtualNode, AppMeshVersion::V1beta1) => &[
                "meshName",
                "listeners",
                "serviceDiscovery",
                "logging",
                "backends",
            ],
            (Kind::VirtualRouter, _) => &["listeners", "routes"],
            (Kind::VirtualService, AppMeshVersion::V1beta2) => &["provider"],
            (Kind::VirtualService, AppMeshVersion::V1beta1) => {
                &["meshName", "virtualRouter", "routes"]
            }
        }
    }
}

pub fn api_version(version: AppMeshVersion) -> &'static str {
    match version {
        AppMeshVersion::V1beta1 => "appmesh.k8s.aws/v1beta1",
        AppMeshVersion::V1beta2 => "appmesh.k8s.aws/v1beta2",
    }
}

/// One object Serin wants: its kind, name, metadata and the spec fields it owns.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub kind: Kind,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Pruned; only owned fields.
    pub spec: Value,
}

/// What the v1beta2 router needs besides the Canary: the target's selector label key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    pub label: String,
}

fn service(canary: &Canary) -> Option<&crate::api::service::CanaryService> {
    canary.spec.service.as_ref()
}

/// `grpc` when `service.portName` contains it, else `http`.
fn protocol(canary: &Canary) -> &'static str {
    match service(canary).and_then(|s| s.port_name.as_deref()) {
        Some(name) if name.contains("grpc") => "grpc",
        _ => "http",
    }
}

fn port(canary: &Canary) -> i32 {
    service(canary).map_or(0, |s| s.port)
}

/// The listener port: `service.targetPort` when it is a number, else `service.port`.
fn container_port(canary: &Canary) -> i32 {
    match service(canary).and_then(|s| s.target_port.as_ref()) {
        Some(IntOrString::Int(p)) if *p > 0 => *p,
        _ => port(canary),
    }
}

/// `service.timeout` in milliseconds (unset or unparsable: none, as Flagger).
fn timeout_ms(canary: &Canary) -> Option<u64> {
    let t = service(canary)?.timeout.as_deref()?;
    crate::api::duration::parse(t).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `service.match[0].uri.prefix` or `/` (App Mesh routes by URI prefix only).
fn route_prefix(canary: &Canary) -> String {
    service(canary)
        .and_then(|s| s.matches.as_ref())
        .and_then(|m| m.first())
        .and_then(|m| m.uri.as_ref())
        .and_then(|u| u.prefix.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// The retry policy of `service.retries` (defaults: one retry after 250ms on gateway errors).
fn retry_policy(canary: &Canary, version: AppMeshVersion) -> Option<Value> {
    let retries = service(canary)?.retries.as_ref()?;
    let per_try = retries
        .per_try_timeout
        .as_deref()
        .and_then(crate::api::duration::parse)
        .map_or(250, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let attempts = retries.attempts.filter(|a| *a > 0).unwrap_or(1);
    let events: Vec<&str> = match retries.retry_on.as_deref() {
        Some(on) if !on.is_empty() => on.split(',').collect(),
        _ => vec!["gateway-error"],
    };
    Some(match version {
        AppMeshVersion::V1beta2 => json!({
            "perRetryTimeout": {"unit": "ms", "value": per_try},
            "maxRetries": attempts,
            "httpRetryEvents": events,
        }),
        AppMeshVersion::V1beta1 => json!({
            "perRetryTimeoutMillis": per_try,
            "maxRetries": attempts,
            "httpRetryEvents": events,
        }),
    })
}

/// The header conditions of `analysis.match` (every string-match kind App Mesh has).
fn headers(canary: &Canary) -> Vec<Value> {
    let mut out = Vec::new();
    for m in canary.spec.analysis().map(|a| a.matches()).unwrap_or(&[]) {
        for (name, sm) in m.headers.iter().flatten() {
            let mut matcher = Map::new();
            for (key, value) in [
                ("exact", &sm.exact),
                ("prefix", &sm.prefix),
                ("regex", &sm.regex),
                ("suffix", &sm.suffix),
            ] {
                if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                    matcher.insert(key.into(), json!(v));
                }
            }
            out.push(json!({"name": name, "match": matcher}));
        }
    }
    out
}

fn has_ab_match(canary: &Canary) -> bool {
    canary
        .spec
        .analysis()
        .is_some_and(|a| !a.matches().is_empty())
}

/// The weighted targets, canary first (as Flagger writes them).
fn targets(canary: &Canary, version: AppMeshVersion, routes: Routes) -> Value {
    let (_, primary, canary_name) = canary.spec.service_names();
    let target = |name: &str, weight: i32| match version {
        AppMeshVersion::V1beta2 => json!({"virtualNodeRef": {"name": name}, "weight": weight}),
        AppMeshVersion::V1beta1 => json!({"virtualNodeName": name, "weight": weight}),
    };
    json!([
        target(&canary_name, routes.canary),
        target(&primary, routes.primary)
    ])
}

/// The routes of a router: one weighted route, or with `analysis.match` (apex only) the
/// weighted route `<apex>-a` for matching requests and `<apex>-b` sending the rest to the
/// primary.
fn routes(canary: &Canary, version: AppMeshVersion, apex: bool, weights: Routes) -> Vec<Value> {
    let (apex_name, primary, _) = canary.spec.service_names();
    let prefix = route_prefix(canary);
    let route_key = match version {
        AppMeshVersion::V1beta2 => "httpRoute",
        AppMeshVersion::V1beta1 => "http",
    };
    let http = |headers: Vec<Value>, targets: Value| {
        let mut route = json!({
            "match": {"prefix": prefix, "headers": headers},
            "action": {"weightedTargets": targets},
        });
        if version == AppMeshVersion::V1beta2
            && let Some(ms) = timeout_ms(canary)
        {
            route["timeout"] = json!({"perRequest": {"unit": "ms", "value": ms}});
        }
        if let Some(retry) = retry_policy(canary, version) {
            route["retryPolicy"] = retry;
        }
        route
    };
    if apex && has_ab_match(canary) {
        let primary_only = match version {
            AppMeshVersion::V1beta2 => {
                json!([{"virtualNodeRef": {"name": primary}, "weight": 100}])
            }
            AppMeshVersion::V1beta1 => json!([{"virtualNodeName": primary, "weight": 100}]),
        };
        return vec![
            json!({
                "name": format!("{apex_name}-a"),
                "priority": 10,
                route_key: http(headers(canary), targets(canary, version, weights)),
            }),
            json!({
                "name": format!("{apex_name}-b"),
                "priority": 20,
                route_key: http(Vec::new(), primary_only),
            }),
        ];
    }
    let name = if apex {
        apex_name
    } else {
        format!("{apex_name}-canary")
    };
    vec![json!({"name": name, route_key: http(Vec::new(), targets(canary, version, weights))})]
}

/// The listener of nodes and routers.
fn port_mapping(canary: &Canary, version: AppMeshVersion) -> Value {
    let port = match version {
        AppMeshVersion::V1beta2 => container_port(canary),
        AppMeshVersion::V1beta1 => port(canary),
    };
    json!({"port": port, "protocol": protocol(canary)})
}

fn access_log(canary: &Canary) -> Option<Value> {
    let enabled = canary
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ACCESS_LOG_ANNOTATION))
        .is_some_and(|v| v == "enabled");
    enabled.then(|| json!({"accessLog": {"file": {"path": "/dev/stdout"}}}))
}

fn backends(canary: &Canary, version: AppMeshVersion) -> Vec<Value> {
    service(canary)
        .and_then(|s| s.backends.as_ref())
        .into_iter()
        .flatten()
        .map(|b| match version {
            AppMeshVersion::V1beta2 if b.starts_with("arn:aws") => {
                json!({"virtualService": {"virtualServiceARN": b}})
            }
            AppMeshVersion::V1beta2 => {
                json!({"virtualService": {"virtualServiceRef": {"name": b}}})
            }
            AppMeshVersion::V1beta1 => json!({"virtualService": {"virtualServiceName": b}}),
        })
        .collect()
}

fn mesh_name(canary: &Canary) -> String {
    service(canary)
        .and_then(|s| s.mesh_name.clone())
        .unwrap_or_default()
}

fn virtual_node(
    canary: &Canary,
    version: AppMeshVersion,
    name: String,
    host: String,
    pod_selector: Option<(&str, String)>,
) -> Desired {
    let mut listener = json!({"portMapping": port_mapping(canary, version)});
    let mut spec = match version {
        AppMeshVersion::V1beta2 => {
            if let Some(ms) = timeout_ms(canary) {
                listener["timeout"] = json!({"http": {"perRequest": {"unit": "ms", "value": ms}}});
            }
            json!({"serviceDiscovery": {"dns": {"hostname": host}}})
        }
        AppMeshVersion::V1beta1 => json!({
            "meshName": mesh_name(canary),
            "serviceDiscovery": {"dns": {"hostName": host}},
        }),
    };
    spec["listeners"] = json!([listener]);
    if let Some((label, value)) = pod_selector {
        spec["podSelector"] = json!({"matchLabels": {label: value}});
    }
    if let Some(logging) = access_log(canary) {
        spec["logging"] = logging;
    }
    spec["backends"] = json!(backends(canary, version));
    Desired {
        kind: Kind::VirtualNode,
        name,
        labels: apex_labels(canary),
        annotations: apex_annotations(canary),
        spec: prune(&spec),
    }
}

/// The App Mesh gateway annotations of the apex VirtualService (when `service.hosts` is set).
pub fn gateway_annotations(canary: &Canary) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let hosts = service(canary)
        .and_then(|s| s.hosts.as_ref())
        .cloned()
        .unwrap_or_default();
    if hosts.is_empty() {
        return out;
    }
    let domains: String = hosts.iter().map(|h| format!("{h},")).collect();
    out.insert(format!("{GATEWAY_PREFIX}expose"), "true".to_string());
    out.insert(format!("{GATEWAY_PREFIX}domain"), domains);
    if let Some(t) = service(canary)
        .and_then(|s| s.timeout.clone())
        .filter(|t| !t.is_empty())
    {
        out.insert(format!("{GATEWAY_PREFIX}timeout"), t);
    }
    if let Some(a) = service(canary)
        .and_then(|s| s.retries.as_ref())
        .and_then(|r| r.attempts)
        .filter(|a| *a > 0)
    {
        out.insert(format!("{GATEWAY_PREFIX}retries"), a.to_string());
    }
    out
}

/// Every object of `version`, in the order `Reconcile` writes them (nodes first), routing
/// `Routes` 100/0 where weights are set.
pub fn desired(
    canary: &Canary,
    version: AppMeshVersion,
    selector: &Selector,
) -> Result<Vec<Desired>, RouterError> {
    let (apex, primary, canary_name) = canary.spec.service_names();
    let ns = namespace(canary);
    let target = &canary.spec.target_ref.name;
    let initial = Routes::new(100, 0, false);
    let all_canary = Routes::new(0, 100, false);
    match version {
        AppMeshVersion::V1beta2 => {
            let host = |name: &str| format!("{name}.{ns}.svc.cluster.local.");
            let router = |name: &str, apex_router: bool, weights: Routes| Desired {
                kind: Kind::VirtualRouter,
                name: name.to_string(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                spec: prune(&json!({
                    "listeners": [{"portMapping": port_mapping(canary, version)}],
                    "routes": routes(canary, version, apex_router, weights),
                })),
            };
            let service = |name: &str, annotations: BTreeMap<String, String>| Desired {
                kind: Kind::VirtualService,
                name: name.to_string(),
                labels: BTreeMap::new(),
                annotations,
                spec: json!({"provider": {"virtualRouter": {"virtualRouterRef": {"name": name}}}}),
            };
            Ok(vec![
                virtual_node(
                    canary,
                    version,
                    primary.clone(),
                    host(&primary),
                    Some((&selector.label, format!("{target}-primary"))),
                ),
                virtual_node(
                    canary,
                    version,
                    canary_name.clone(),
                    host(&canary_name),
                    Some((&selector.label, target.clone())),
                ),
                router(&apex, true, initial),
                service(&apex, gateway_annotations(canary)),
                router(&canary_name, false, all_canary),
                service(&canary_name, BTreeMap::new()),
            ])
        }
        AppMeshVersion::V1beta1 => {
            if mesh_name(canary).is_empty() {
                return Err(RouterError::Invalid(
                    "mesh name cannot be empty: set spec.service.meshName (required by the appmesh provider) or use appmesh:v1beta2".to_string(),
                ));
            }
            let primary_host = format!("{primary}.{ns}");
            let service =
                |name: String, router: &str, apex_router: bool, weights: Routes| Desired {
                    kind: Kind::VirtualService,
                    name,
                    labels: BTreeMap::new(),
                    annotations: if apex_router {
                        gateway_annotations(canary)
                    } else {
                        BTreeMap::new()
                    },
                    spec: prune(&json!({
                        "meshName": mesh_name(canary),
                        "virtualRouter": {
                            "name": router,
                            "listeners": [{"portMapping": port_mapping(canary, version)}],
                        },
                        "routes": routes(canary, version, apex_router, weights),
                    })),
                };
            Ok(vec![
                // Flagger points the apex node at the primary's DNS name.
                virtual_node(canary, version, apex.clone(), primary_host.clone(), None),
                virtual_node(canary, version, primary.clone(), primary_host, None),
                virtual_node(
                    canary,
                    version,
                    canary_name.clone(),
                    format!("{canary_name}.{ns}"),
                    None,
                ),
                service(format!("{apex}.{ns}"), &apex, true, initial),
                service(
                    format!("{canary_name}.{ns}"),
                    &canary_name,
                    false,
                    all_canary,
                ),
            ])
        }
    }
}

/// The whole object `Reconcile` creates.
pub fn object(
    canary: &Canary,
    version: AppMeshVersion,
    d: &Desired,
    set_owner_refs: bool,
) -> Value {
    let mut metadata = json!({"name": d.name, "namespace": namespace(canary)});
    if !d.labels.is_empty() {
        metadata["labels"] = json!(d.labels);
    }
    if !d.annotations.is_empty() {
        metadata["annotations"] = json!(d.annotations);
    }
    if set_owner_refs && let Some(owner) = canary_owner_reference(canary) {
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({
        "apiVersion": api_version(version),
        "kind": d.kind.as_str(),
        "metadata": metadata,
        "spec": d.spec,
    })
}

/// Where the weighted targets of the weighted route are: `(kind, name, pointer into spec)`.
pub fn weighted(canary: &Canary, version: AppMeshVersion) -> (Kind, String, &'static str) {
    let apex = canary.spec.apex_name();
    match version {
        AppMeshVersion::V1beta2 => (
            Kind::VirtualRouter,
            apex.to_string(),
            "/routes/0/httpRoute/action/weightedTargets",
        ),
        AppMeshVersion::V1beta1 => (
            Kind::VirtualService,
            format!("{apex}.{}", namespace(canary)),
            "/routes/0/http/action/weightedTargets",
        ),
    }
}

fn action_pointer(version: AppMeshVersion) -> &'static str {
    match version {
        AppMeshVersion::V1beta2 => "/routes/0/httpRoute/action",
        AppMeshVersion::V1beta1 => "/routes/0/http/action",
    }
}

fn owned(kind: Kind, version: AppMeshVersion, spec: &Value) -> Value {
    let mut out = Map::new();
    for field in kind.owned_fields(version) {
        if let Some(v) = spec.get(*field) {
            out.insert((*field).to_string(), v.clone());
        }
    }
    prune(&Value::Object(out))
}

/// The merge patch `Reconcile` sends to a live object, or `None` when it is up to date. The spec
/// is compared without weights; when it differs, the owned fields are rewritten with the live
/// first route's action kept (the weights `SetRoutes` wrote, as Flagger). Labels and annotations
/// are set; others are removed only from an object this Canary controls.
pub fn reconcile_patch(
    canary: &Canary,
    version: AppMeshVersion,
    d: &Desired,
    live: &Value,
) -> Option<Value> {
    let empty = json!({});
    let live_spec = live.get("spec").unwrap_or(&empty);
    let current = owned(d.kind, version, live_spec);
    let mut desired = d.spec.clone();
    let pointer = action_pointer(version);
    if let (Some(live_action), Some(slot)) = (
        live_spec.pointer(pointer).cloned(),
        desired.pointer_mut(pointer),
    ) {
        *slot = live_action;
    }
    let desired = owned(d.kind, version, &desired);
    let mut patch = Map::new();
    if without_weights(&current) != without_weights(&owned(d.kind, version, &d.spec))
        && let Some(p) = merge_patch_diff(&current, &desired)
    {
        patch.insert("spec".into(), p);
    }
    let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
        serde_json::from_value(live.get("metadata").cloned().unwrap_or_default())
            .unwrap_or_default();
    let controlled = is_controlled_by(&meta, canary);
    let mut m = Map::new();
    if let Some(p) = metadata_map_patch(meta.labels.as_ref(), &d.labels, controlled, &[]) {
        m.insert("labels".into(), p);
    }
    let mut annotations = metadata_map_patch(
        meta.annotations.as_ref(),
        &d.annotations,
        controlled,
        &[KUBECTL_LAST_APPLIED],
    );
    // Gateway annotations Serin wrote for hosts that are gone are removed from any object.
    if !controlled && d.kind == Kind::VirtualService {
        let stale: Map<String, Value> = meta
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(GATEWAY_PREFIX) && !d.annotations.contains_key(*k))
            .map(|(k, _)| (k.clone(), Value::Null))
            .collect();
        if !stale.is_empty() {
            let mut merged = annotations.take().unwrap_or_else(|| json!({}));
            if let Some(obj) = merged.as_object_mut() {
                obj.extend(stale);
            }
            annotations = Some(merged);
        }
    }
    if let Some(p) = annotations {
        m.insert("annotations".into(), p);
    }
    if !m.is_empty() {
        patch.insert("metadata".into(), Value::Object(m));
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// The weights of the live weighted object (exactly two targets, as Flagger requires).
pub fn routes_of(
    canary: &Canary,
    version: AppMeshVersion,
    live: &Value,
) -> Result<Routes, RouterError> {
    let (kind, name, pointer) = weighted(canary, version);
    let (_, primary, canary_name) = canary.spec.service_names();
    let id = format!("{} {name}.{}", kind.as_str(), namespace(canary));
    let targets = live
        .get("spec")
        .and_then(|s| s.pointer(pointer))
        .and_then(Value::as_array)
        .filter(|t| t.len() == 2)
        .ok_or_else(|| RouterError::Routes(format!("{id} routes not found")))?;
    let name_of = |t: &Value| {
        let p = match version {
            AppMeshVersion::V1beta2 => "/virtualNodeRef/name",
            AppMeshVersion::V1beta1 => "/virtualNodeName",
        };
        t.pointer(p).and_then(Value::as_str).map(str::to_string)
    };
    let mut out = Routes::default();
    for t in targets {
        let weight = t
            .get("weight")
            .and_then(Value::as_i64)
            .and_then(|w| i32::try_from(w).ok())
            .unwrap_or(0);
        match name_of(t) {
            Some(n) if n == canary_name => out.canary = weight,
            Some(n) if n == primary => out.primary = weight,
            _ => {}
        }
    }
    if out.primary == 0 && out.canary == 0 {
        return Err(RouterError::Routes(format!(
            "{id} does not contain routes for {primary} and {canary_name}"
        )));
    }
    Ok(out)
}

/// The merge patch of `SetRoutes` on the live weighted object, or `None` when it already routes
/// `routes`: the first route's weighted targets are rewritten, every other route is kept.
pub fn set_routes_patch(
    canary: &Canary,
    version: AppMeshVersion,
    live: &Value,
    routes: Routes,
) -> Result<Option<Value>, RouterError> {
    let (kind, name, pointer) = weighted(canary, version);
    let mut spec = live.get("spec").cloned().unwrap_or_else(|| json!({}));
    let slot = spec.pointer_mut(pointer).ok_or_else(|| {
        RouterError::Routes(format!(
            "{} {name}.{} routes not found",
            kind.as_str(),
            namespace(canary)
        ))
    })?;
    let desired = targets(canary, version, routes);
    if *slot == desired {
        return Ok(None);
    }
    *slot = desired;
    Ok(Some(json!({"spec": {"routes": spec.get("routes")}})))
}
