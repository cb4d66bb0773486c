//! Validation of names, labels and request bodies, and the small defaulting table of the
//! built-in kinds (what the real API server fills in on every write).

use serde_json::{Map, Value, json};

use crate::registry::ResourceDef;
use crate::status::ApiError;
use crate::store::{name_of, namespace_of, now_rfc3339};

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Checks `metadata.name` the way the real server does for this kind.
pub fn validate_name(def: &ResourceDef, name: &str) -> Result<(), ApiError> {
    let label_only =
        def.group.is_empty() && (def.plural == "namespaces" || def.plural == "services");
    let ok = if label_only {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if ok {
        return Ok(());
    }
    let msg = if label_only { LABEL_MSG } else { SUBDOMAIN_MSG };
    Err(ApiError::invalid(
        &def.kind,
        name,
        &format!("metadata.name: Invalid value: \"{name}\": {msg}"),
    ))
}

pub(crate) fn validate_labels(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let Some(labels) = obj.get("metadata").and_then(|m| m.get("labels")) else {
        return Ok(());
    };
    let Some(labels) = labels.as_object() else {
        return Err(ApiError::bad_request(
            "metadata.labels must be a map of strings",
        ));
    };
    for (k, v) in labels {
        let value = v
            .as_str()
            .ok_or_else(|| ApiError::bad_request("metadata.labels must be a map of strings"))?;
        let (prefix, name) = k.rsplit_once('/').unwrap_or(("", k));
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        let value_ok = value.is_empty()
            || (value.len() <= 63
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && value
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
                && value
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric()));
        if !name_ok || (!prefix.is_empty() && !is_dns_subdomain(prefix)) {
            return Err(ApiError::invalid(
                &def.kind,
                name_of(obj),
                &format!(
                    "metadata.labels: Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"
                ),
            ));
        }
        if !value_ok {
            return Err(ApiError::invalid(
                &def.kind,
                name_of(obj),
                &format!(
                    "metadata.labels: Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
    }
    Ok(())
}

/// Checks kind/apiVersion/namespace of a full-object body against the request.
pub(crate) fn check_body(
    def: &ResourceDef,
    version: &str,
    ns: &str,
    body: &Value,
) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    if body.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{body}'"
        )));
    }
    let expected = def.api_version(version);
    let api_version = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != expected {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected})"
        )));
    }
    if kind != def.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            def.kind
        )));
    }
    let body_ns = namespace_of(body);
    if def.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

pub(crate) fn get_path<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(v, |cur, p| cur.get(p))
}

pub(crate) fn set_path(v: &mut Value, dotted: &str, value: Value) {
    let parts: Vec<&str> = dotted.split('.').filter(|s| !s.is_empty()).collect();
    let mut cur = v;
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(m) = cur.as_object_mut() else { return };
        if i + 1 == parts.len() {
            m.insert((*p).to_string(), value);
            return;
        }
        cur = m
            .entry((*p).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Sets `path` when it is absent, `null` or an empty string (Go defaulters test the zero value).
fn default_field(obj: &mut Value, path: &str, v: Value) {
    if get_path(obj, path).is_none_or(|c| c.is_null() || c.as_str() == Some("")) {
        set_path(obj, path, v);
    }
}

fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_field(spec, "restartPolicy", json!("Always"));
    default_field(spec, "dnsPolicy", json!("ClusterFirst"));
    default_field(spec, "schedulerName", json!("default-scheduler"));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_field(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let tagged = image
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':') || last.contains('@'));
            let policy = if !tagged || image.ends_with(":latest") {
                "Always"
            } else {
                "IfNotPresent"
            };
            default_field(c, "imagePullPolicy", json!(policy));
            default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
            default_field(c, "terminationMessagePolicy", json!("File"));
            default_field(c, "resources", json!({}));
            for p in c
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                default_field(p, "protocol", json!("TCP"));
            }
        }
    }
}

/// `SetDefaults_Job` (the parts that need no feature gates) and the pod template inside.
fn default_job_spec(spec: Option<&mut Value>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        return;
    };
    default_field(spec, "completionMode", json!("NonIndexed"));
    default_field(spec, "backoffLimit", json!(6));
    default_field(spec, "suspend", json!(false));
    if get_path(spec, "completions").is_none_or(Value::is_null)
        && get_path(spec, "parallelism").is_none_or(Value::is_null)
    {
        default_field(spec, "completions", json!(1));
        default_field(spec, "parallelism", json!(1));
    }
    default_field(spec, "parallelism", json!(1));
    if let Some(pod) = spec.pointer_mut("/template/spec") {
        default_pod_spec(pod);
    }
}

/// A small defaulting table for the built-in kinds Serin touches.
pub(crate) fn apply_defaults(def: &ResourceDef, obj: &mut Value) {
    match (def.group.as_str(), def.plural.as_str()) {
        ("apps", "deployments") => {
            default_field(obj, "spec.replicas", json!(1));
            default_field(obj, "spec.progressDeadlineSeconds", json!(600));
            default_field(obj, "spec.revisionHistoryLimit", json!(10));
            // As `SetDefaults_Deployment`: the type first, then each rolling-update field.
            default_field(obj, "spec.strategy.type", json!("RollingUpdate"));
            if get_path(obj, "spec.strategy.type") == Some(&json!("RollingUpdate")) {
                default_field(
                    obj,
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    json!("25%"),
                );
                default_field(obj, "spec.strategy.rollingUpdate.maxSurge", json!("25%"));
            }
        }
        ("apps", "daemonsets") => {
            default_field(obj, "spec.revisionHistoryLimit", json!(10));
            default_field(obj, "spec.updateStrategy.type", json!("RollingUpdate"));
            if get_path(obj, "spec.updateStrategy.type") == Some(&json!("RollingUpdate")) {
                default_field(
                    obj,
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    json!(1),
                );
                default_field(obj, "spec.updateStrategy.rollingUpdate.maxSurge", json!(0));
            }
        }
        ("apps", "replicasets") => default_field(obj, "spec.replicas", json!(1)),
        ("apps", "statefulsets") => {
            default_field(obj, "spec.replicas", json!(1));
            default_field(obj, "spec.podManagementPolicy", json!("OrderedReady"));
            default_field(obj, "spec.revisionHistoryLimit", json!(10));
            default_field(obj, "spec.updateStrategy.type", json!("RollingUpdate"));
            if get_path(obj, "spec.updateStrategy.type") == Some(&json!("RollingUpdate")) {
                default_field(obj, "spec.updateStrategy.rollingUpdate.partition", json!(0));
            }
            default_field(
                obj,
                "spec.persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        ("batch", "jobs") => default_job_spec(obj.get_mut("spec")),
        ("batch", "cronjobs") => {
            default_field(obj, "spec.concurrencyPolicy", json!("Allow"));
            default_field(obj, "spec.suspend", json!(false));
            default_field(obj, "spec.successfulJobsHistoryLimit", json!(3));
            default_field(obj, "spec.failedJobsHistoryLimit", json!(1));
            default_job_spec(obj.pointer_mut("/spec/jobTemplate/spec"));
        }
        ("networking.k8s.io", "networkpolicies")
            if get_path(obj, "spec.policyTypes").is_none_or(Value::is_null) =>
        {
            let mut types = vec![json!("Ingress")];
            if get_path(obj, "spec.egress").is_some_and(|e| !e.is_null()) {
                types.push(json!("Egress"));
            }
            set_path(obj, "spec.policyTypes", Value::Array(types));
        }
        ("networking.k8s.io", "ingresses") => {
            for rule in obj
                .pointer_mut("/spec/rules")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                for path in rule
                    .pointer_mut("/http/paths")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    default_field(path, "path", json!("/"));
                }
            }
        }
        ("", "services") => {
            default_field(obj, "spec.type", json!("ClusterIP"));
            default_field(obj, "spec.sessionAffinity", json!("None"));
            if get_path(obj, "spec.type") != Some(&json!("ExternalName")) {
                default_field(obj, "spec.internalTrafficPolicy", json!("Cluster"));
                default_field(obj, "spec.ipFamilyPolicy", json!("SingleStack"));
                default_field(obj, "spec.ipFamilies", json!(["IPv4"]));
            }
            for p in obj
                .pointer_mut("/spec/ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                default_field(p, "protocol", json!("TCP"));
                if p.get("targetPort").is_none() {
                    let port = p.get("port").cloned().unwrap_or(Value::Null);
                    p["targetPort"] = port;
                }
            }
        }
        ("", "secrets") => default_field(obj, "type", json!("Opaque")),
        ("", "namespaces") => {
            default_field(obj, "spec.finalizers", json!(["kubernetes"]));
            let name = name_of(obj).to_string();
            if !obj
                .pointer("/metadata/labels")
                .is_some_and(Value::is_object)
            {
                set_path(obj, "metadata.labels", json!({}));
            }
            if let Some(l) = obj
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                l.insert("kubernetes.io/metadata.name".into(), Value::String(name));
            }
        }
        _ => {}
    }
    if def.group == "apps"
        && let Some(spec) = obj.pointer_mut("/spec/template/spec")
    {
        default_pod_spec(spec);
    }
    if def.group.is_empty()
        && def.plural == "pods"
        && let Some(spec) = obj.get_mut("spec")
    {
        default_pod_spec(spec);
        // `SetDefaults_Pod`, not `SetDefaults_PodSpec`: pods only, not templates.
        default_field(spec, "enableServiceLinks", json!(true));
    }
}

/// Status a kind has right after creation.
pub(crate) fn initial_status(def: &ResourceDef, obj: &Value) -> Option<Value> {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "namespaces") => Some(json!({"phase": "Active"})),
        ("", "pods") => Some(json!({"phase": "Pending", "qosClass": "BestEffort"})),
        ("", "services") | ("networking.k8s.io", "ingresses") => Some(json!({"loadBalancer": {}})),
        ("policy", "poddisruptionbudgets") => Some(json!({
            "currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0
        })),
        ("apiextensions.k8s.io", "customresourcedefinitions") => Some(crd_status(obj)),
        _ => None,
    }
}

fn crd_status(crd: &Value) -> Value {
    let now = now_rfc3339();
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    })
}
