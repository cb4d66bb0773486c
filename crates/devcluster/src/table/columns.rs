//! The column definitions of `kubectl get` Tables for the built-in kinds.

use serde_json::{Value, json};

use crate::registry::ResourceDef;

pub(super) fn col(
    name: &str,
    type_: &str,
    format: &str,
    description: &str,
    priority: i64,
) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

pub(super) fn name_col() -> Value {
    col(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    )
}

pub(super) fn age_col() -> Value {
    col(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    )
}

/// Column definitions and a cell function for one resource.
pub(super) fn builtin_columns(def: &ResourceDef) -> Option<Vec<Value>> {
    let c = |n: &str, t: &str| col(n, t, "", "", 0);
    let w = |n: &str| col(n, "string", "", "", 1);
    let cols = match (def.group.as_str(), def.plural.as_str()) {
        ("apps", "deployments") => vec![
            name_col(),
            c("Ready", "string"),
            c("Up-to-date", "integer"),
            c("Available", "integer"),
            age_col(),
            w("Containers"),
            w("Images"),
            w("Selector"),
        ],
        ("apps", "daemonsets") => vec![
            name_col(),
            c("Desired", "integer"),
            c("Current", "integer"),
            c("Ready", "integer"),
            c("Up-to-date", "integer"),
            c("Available", "integer"),
            c("Node Selector", "string"),
            age_col(),
        ],
        ("apps", "replicasets") => {
            vec![
                name_col(),
                c("Desired", "integer"),
                c("Current", "integer"),
                c("Ready", "integer"),
                age_col(),
            ]
        }
        ("", "pods") => vec![
            name_col(),
            c("Ready", "string"),
            c("Status", "string"),
            c("Restarts", "string"),
            age_col(),
            w("IP"),
            w("Node"),
        ],
        ("", "services") => vec![
            name_col(),
            c("Type", "string"),
            c("Cluster-IP", "string"),
            c("External-IP", "string"),
            c("Port(s)", "string"),
            age_col(),
            w("Selector"),
        ],
        ("", "namespaces") => vec![name_col(), c("Status", "string"), age_col()],
        ("", "configmaps") => vec![name_col(), c("Data", "integer"), age_col()],
        ("", "secrets") => vec![
            name_col(),
            c("Type", "string"),
            c("Data", "integer"),
            age_col(),
        ],
        ("", "events") | ("events.k8s.io", "events") => vec![
            c("Last Seen", "string"),
            c("Type", "string"),
            c("Reason", "string"),
            c("Object", "string"),
            c("Message", "string"),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            name_col(),
            c("Reference", "string"),
            c("Targets", "string"),
            c("MinPods", "string"),
            c("MaxPods", "string"),
            c("Replicas", "string"),
            age_col(),
        ],
        ("coordination.k8s.io", "leases") => vec![name_col(), c("Holder", "string"), age_col()],
        ("apiextensions.k8s.io", "customresourcedefinitions")
        | ("rbac.authorization.k8s.io", "roles" | "clusterroles") => {
            vec![name_col(), c("Created At", "date")]
        }
        ("apps", "statefulsets") => vec![
            name_col(),
            c("Ready", "string"),
            age_col(),
            w("Containers"),
            w("Images"),
        ],
        ("apps", "controllerrevisions") => vec![
            name_col(),
            c("Controller", "string"),
            c("Revision", "integer"),
            age_col(),
        ],
        ("batch", "jobs") => vec![
            name_col(),
            c("Status", "string"),
            c("Completions", "string"),
            c("Duration", "string"),
            age_col(),
            w("Containers"),
            w("Images"),
            w("Selector"),
        ],
        ("batch", "cronjobs") => vec![
            name_col(),
            c("Schedule", "string"),
            c("Timezone", "string"),
            c("Suspend", "string"),
            c("Active", "integer"),
            c("Last Schedule", "string"),
            age_col(),
            w("Containers"),
            w("Images"),
            w("Selector"),
        ],
        ("networking.k8s.io", "ingresses") => vec![
            name_col(),
            c("Class", "string"),
            c("Hosts", "string"),
            c("Address", "string"),
            c("Ports", "string"),
            age_col(),
        ],
        ("networking.k8s.io", "ingressclasses") => vec![
            name_col(),
            c("Controller", "string"),
            c("Parameters", "string"),
            age_col(),
        ],
        ("networking.k8s.io", "networkpolicies") => {
            vec![name_col(), c("Pod-Selector", "string"), age_col()]
        }
        ("policy", "poddisruptionbudgets") => vec![
            name_col(),
            c("Min Available", "string"),
            c("Max Unavailable", "string"),
            c("Allowed Disruptions", "integer"),
            age_col(),
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            name_col(),
            c("Role", "string"),
            age_col(),
            w("Users"),
            w("Groups"),
            w("ServiceAccounts"),
        ],
        ("", "serviceaccounts") => vec![name_col(), c("Secrets", "string"), age_col()],
        ("scheduling.k8s.io", "priorityclasses") => vec![
            name_col(),
            c("Value", "integer"),
            c("Global-Default", "boolean"),
            age_col(),
            c("Preemption-Policy", "string"),
        ],
        _ => return None,
    };
    Some(cols)
}
