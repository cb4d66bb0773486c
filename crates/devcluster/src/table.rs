//! Response views: full objects, PartialObjectMetadata, and `meta.k8s.io/v1` Tables for `kubectl get`.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::registry::{PrinterColumn, ResourceDef};
use crate::store::meta_str;

/// What the client asked for in its Accept header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Full,
    Meta,
    /// A Table; rows carry `includeObject` (None, Metadata or Object).
    Table(Include),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl View {
    pub fn from_accept(accept: &str, include_object: Option<&str>) -> Self {
        // The first acceptable entry wins; protobuf is answered as JSON.
        for part in accept.split(',') {
            let p = part.replace(' ', "");
            if p.contains("as=Table") {
                let inc = match include_object {
                    Some("None") => Include::None,
                    Some("Object") => Include::Object,
                    _ => Include::Metadata,
                };
                return Self::Table(inc);
            }
            if p.contains("as=PartialObjectMetadata") {
                return Self::Meta;
            }
            if p.starts_with("application/json") || p.starts_with("*/*") || p.is_empty() {
                return Self::Full;
            }
        }
        Self::Full
    }
}

/// The object as served in `version` (CRD versions and HPA versions share one stored form;
/// `events.k8s.io` events are converted from the stored core form): copied only when that
/// changes it, which a watch event or a write's reply mostly is not.
pub fn versioned<'a>(def: &ResourceDef, version: &str, obj: &'a Value) -> Cow<'a, Value> {
    let mut o = crate::convert::from_storage(def, obj);
    if o.is_object() {
        let api_version = def.api_version(version);
        let served = |field: &str, want: &str| o.get(field).and_then(Value::as_str) == Some(want);
        if !served("apiVersion", &api_version) || !served("kind", &def.kind) {
            let m = o.to_mut();
            m["apiVersion"] = Value::String(api_version);
            m["kind"] = Value::String(def.kind.clone());
        }
    }
    o
}

/// One object as `view` asks for it (a GET, a write's reply, a watch event).
pub fn one<'a>(def: &ResourceDef, version: &str, view: View, obj: &'a Value) -> Cow<'a, Value> {
    match view {
        View::Full => versioned(def, version, obj),
        View::Meta => Cow::Owned(partial_metadata(obj)),
        View::Table(inc) => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null);
            Cow::Owned(table(
                def,
                version,
                std::slice::from_ref(obj),
                json!({"resourceVersion": rv}),
                inc,
            ))
        }
    }
}

pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Human age like kubectl prints (`5s`, `3m20s`, `4h`, `2d3h`).
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age_of(ts: Option<&str>) -> Value {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return Value::String("<unknown>".into());
    };
    Value::String(human_age(
        jiff::Timestamp::now().as_second() - t.as_second(),
    ))
}

/// Evaluates the simple JSONPath used by printer columns: `.a.b`, `[0]`, `['x.y']`,
/// `[?(@.type=="Ready")]`. Returns every match.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur: Vec<&Value> = vec![obj];
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let field: String = chars[start..i].iter().collect();
                if !field.is_empty() {
                    cur = cur.into_iter().filter_map(|v| v.get(&field)).collect();
                }
            }
            '[' => {
                let start = i + 1;
                let mut depth = 1;
                i += 1;
                while i < chars.len() && depth > 0 {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                let inner: String = chars[start..i.saturating_sub(1)].iter().collect();
                cur = step_bracket(cur, inner.trim());
            }
            _ => {
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let field: String = chars[start..i].iter().collect();
                cur = cur.into_iter().filter_map(|v| v.get(&field)).collect();
            }
        }
    }
    cur
}

fn step_bracket<'a>(cur: Vec<&'a Value>, inner: &str) -> Vec<&'a Value> {
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let (lhs, rhs) = filter.split_once("==").unwrap_or((filter, ""));
        let field = lhs.trim().trim_start_matches("@.");
        let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
        return cur
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter(|e| {
                let got = json_path(e, &format!(".{field}"));
                got.first().is_some_and(|g| match g {
                    Value::String(s) => s == want,
                    other => *other == want,
                })
            })
            .collect();
    }
    if inner == "*" {
        return cur
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .collect();
    }
    if let Ok(n) = inner.parse::<i64>() {
        return cur
            .into_iter()
            .filter_map(Value::as_array)
            .filter_map(|a| {
                let idx = if n < 0 { a.len() as i64 + n } else { n };
                usize::try_from(idx).ok().and_then(|i| a.get(i))
            })
            .collect();
    }
    let key = inner.trim_matches(|c| c == '"' || c == '\'');
    cur.into_iter().filter_map(|v| v.get(key)).collect()
}

fn col(name: &str, type_: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

fn name_col() -> Value {
    col(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    )
}

fn age_col() -> Value {
    col(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    )
}

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn s(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn or_none(x: String) -> Value {
    Value::String(if x.is_empty() { "<none>".into() } else { x })
}

fn containers_images(obj: &Value, ptr: &str) -> (String, String) {
    let cs = obj
        .pointer(ptr)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<String> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn selector_string(obj: &Value) -> String {
    obj.pointer("/spec/selector")
        .map(crate::selectors::LabelSelector::from_label_selector)
        .map(|s| s.to_selector_string())
        .unwrap_or_default()
}

/// Column definitions and a cell function for one resource.
fn builtin_columns(def: &ResourceDef) -> Option<Vec<Value>> {
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

fn builtin_cells(def: &ResourceDef, o: &Value) -> Vec<Value> {
    let name = Value::String(s(o, "/metadata/name"));
    let age = age_of(meta_str(o, "creationTimestamp"));
    match (def.group.as_str(), def.plural.as_str()) {
        ("apps", "deployments") => {
            let (cs, imgs) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(o, "/status/readyReplicas"),
                    int(o, "/spec/replicas")
                )),
                json!(int(o, "/status/updatedReplicas")),
                json!(int(o, "/status/availableReplicas")),
                age,
                json!(cs),
                json!(imgs),
                json!(selector_string(o)),
            ]
        }
        ("apps", "daemonsets") => {
            let sel = o
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(int(o, "/status/desiredNumberScheduled")),
                json!(int(o, "/status/currentNumberScheduled")),
                json!(int(o, "/status/numberReady")),
                json!(int(o, "/status/updatedNumberScheduled")),
                json!(int(o, "/status/numberAvailable")),
                or_none(sel),
                age,
            ]
        }
        ("apps", "replicasets") => vec![
            name,
            json!(int(o, "/spec/replicas")),
            json!(int(o, "/status/replicas")),
            json!(int(o, "/status/readyReplicas")),
            age,
        ],
        ("", "pods") => {
            let total = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses.iter().map(|c| int(c, "/restartCount")).sum();
            let status = {
                let reason = s(o, "/status/reason");
                if meta_str(o, "deletionTimestamp").is_some() {
                    "Terminating".to_string()
                } else if reason.is_empty() {
                    s(o, "/status/phase")
                } else {
                    reason
                }
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age,
                or_none(s(o, "/status/podIP")),
                or_none(s(o, "/spec/nodeName")),
            ]
        }
        ("", "services") => {
            let ports: Vec<String> = o
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    let node = p
                        .get("nodePort")
                        .map(|n| format!(":{n}"))
                        .unwrap_or_default();
                    format!("{}{node}/{}", s(p, "/port"), s(p, "/protocol"))
                })
                .collect();
            let sel = o
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(s(o, "/spec/type")),
                or_none(s(o, "/spec/clusterIP")),
                json!("<none>"),
                or_none(ports.join(",")),
                age,
                or_none(sel),
            ]
        }
        ("", "namespaces") => vec![name, json!(s(o, "/status/phase")), age],
        ("", "configmaps") => {
            let n = ["/data", "/binaryData"]
                .iter()
                .filter_map(|p| o.pointer(p).and_then(Value::as_object).map(|m| m.len()))
                .sum::<usize>();
            vec![name, json!(n), age]
        }
        ("", "secrets") => {
            let n = o
                .pointer("/data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + o.pointer("/stringData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name, json!(s(o, "/type")), json!(n), age]
        }
        ("", "events") | ("events.k8s.io", "events") => {
            let last = o
                .pointer("/lastTimestamp")
                .or_else(|| o.pointer("/eventTime"))
                .and_then(Value::as_str)
                .or_else(|| meta_str(o, "creationTimestamp"));
            vec![
                age_of(last),
                json!(s(o, "/type")),
                json!(s(o, "/reason")),
                json!(format!(
                    "{}/{}",
                    s(o, "/involvedObject/kind").to_lowercase(),
                    s(o, "/involvedObject/name")
                )),
                json!(s(o, "/message")),
            ]
        }
        ("autoscaling", "horizontalpodautoscalers") => vec![
            name,
            json!(format!(
                "{}/{}",
                s(o, "/spec/scaleTargetRef/kind"),
                s(o, "/spec/scaleTargetRef/name")
            )),
            json!("<unknown>"),
            json!(
                o.pointer("/spec/minReplicas")
                    .map_or("1".to_string(), |v| v.to_string())
            ),
            json!(s(o, "/spec/maxReplicas")),
            json!(int(o, "/status/currentReplicas").to_string()),
            age,
        ],
        ("coordination.k8s.io", "leases") => vec![name, or_none(s(o, "/spec/holderIdentity")), age],
        ("apiextensions.k8s.io", "customresourcedefinitions")
        | ("rbac.authorization.k8s.io", "roles" | "clusterroles") => {
            vec![name, json!(s(o, "/metadata/creationTimestamp"))]
        }
        _ => more_cells(def, o, name, age),
    }
}

/// Cells of the kinds that are stored and served but that nothing acts on.
fn more_cells(def: &ResourceDef, o: &Value, name: Value, age: Value) -> Vec<Value> {
    match (def.group.as_str(), def.plural.as_str()) {
        ("apps", "statefulsets") => {
            let (cs, imgs) = containers_images(o, "/spec/template/spec/containers");
            let ready = format!(
                "{}/{}",
                int(o, "/status/readyReplicas"),
                o.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            );
            vec![name, json!(ready), age, json!(cs), json!(imgs)]
        }
        ("apps", "controllerrevisions") => {
            let owner = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| {
                    refs.iter()
                        .find(|r| r.get("controller") == Some(&json!(true)))
                })
                .map(|r| {
                    let (group, _) =
                        crate::registry::split_api_version(r["apiVersion"].as_str().unwrap_or(""));
                    let kind = s(r, "/kind").to_lowercase();
                    let resource = if group.is_empty() {
                        kind
                    } else {
                        format!("{kind}.{group}")
                    };
                    format!("{resource}/{}", s(r, "/name"))
                })
                .unwrap_or_default();
            vec![name, or_none(owner), json!(int(o, "/revision")), age]
        }
        ("batch", "jobs") => {
            let conds = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let has = |t: &str| {
                conds
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == "True")
            };
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if meta_str(o, "deletionTimestamp").is_some() {
                "Terminating"
            } else if has("Suspended") {
                "Suspended"
            } else {
                "Running"
            };
            let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
                Some(n) => format!("{}/{n}", int(o, "/status/succeeded")),
                None => format!(
                    "{}/1 of {}",
                    int(o, "/status/succeeded"),
                    int(o, "/spec/parallelism").max(1)
                ),
            };
            let duration = match (
                o.pointer("/status/startTime").and_then(Value::as_str),
                o.pointer("/status/completionTime").and_then(Value::as_str),
            ) {
                (Some(start), end) => {
                    let start = start.parse::<jiff::Timestamp>().ok();
                    let end = end
                        .and_then(|e| e.parse::<jiff::Timestamp>().ok())
                        .unwrap_or_else(jiff::Timestamp::now);
                    start.map_or(String::new(), |st| {
                        human_age(end.as_second() - st.as_second())
                    })
                }
                (None, _) => String::new(),
            };
            let (cs, imgs) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(status),
                json!(completions),
                json!(duration),
                age,
                json!(cs),
                json!(imgs),
                json!(selector_string(o)),
            ]
        }
        ("batch", "cronjobs") => {
            let (cs, imgs) =
                containers_images(o, "/spec/jobTemplate/spec/template/spec/containers");
            let last = o
                .pointer("/status/lastScheduleTime")
                .and_then(Value::as_str)
                .map_or(json!("<none>"), |t| age_of(Some(t)));
            vec![
                name,
                json!(s(o, "/spec/schedule")),
                or_none(s(o, "/spec/timeZone")),
                json!(match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                    Some(true) => "True",
                    Some(false) => "False",
                    None => "<unset>",
                }),
                json!(
                    o.pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                ),
                last,
                age,
                json!(cs),
                json!(imgs),
                json!("<none>"),
            ]
        }
        ("networking.k8s.io", "ingresses") => {
            let rules = o
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let hosts: Vec<String> = rules
                .iter()
                .filter_map(|r| r.get("host").and_then(Value::as_str).map(str::to_string))
                .collect();
            let hosts = if hosts.is_empty() {
                "*".to_string()
            } else {
                hosts.join(",")
            };
            let address: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|i| {
                    let ip = s(i, "/ip");
                    if ip.is_empty() { s(i, "/hostname") } else { ip }
                })
                .collect();
            let tls = o
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
            vec![
                name,
                or_none(s(o, "/spec/ingressClassName")),
                json!(hosts),
                json!(address.join(",")),
                json!(if tls { "80, 443" } else { "80" }),
                age,
            ]
        }
        ("networking.k8s.io", "ingressclasses") => {
            let params = o.pointer("/spec/parameters").map_or(String::new(), |p| {
                let group = s(p, "/apiGroup");
                let kind = if group.is_empty() {
                    s(p, "/kind")
                } else {
                    format!("{}.{group}", s(p, "/kind"))
                };
                format!("{kind}/{}", s(p, "/name"))
            });
            vec![name, json!(s(o, "/spec/controller")), or_none(params), age]
        }
        ("networking.k8s.io", "networkpolicies") => {
            let sel = o
                .pointer("/spec/podSelector")
                .map(crate::selectors::LabelSelector::from_label_selector)
                .map(|s| s.to_selector_string())
                .unwrap_or_default();
            vec![name, or_none(sel), age]
        }
        ("policy", "poddisruptionbudgets") => {
            let na = |p: &str| match o.pointer(p) {
                Some(Value::String(v)) => json!(v),
                Some(Value::Number(n)) => json!(n.to_string()),
                _ => json!("N/A"),
            };
            vec![
                name,
                na("/spec/minAvailable"),
                na("/spec/maxUnavailable"),
                json!(int(o, "/status/disruptionsAllowed")),
                age,
            ]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            let subjects = o
                .pointer("/subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let of = |kind: &str| {
                subjects
                    .iter()
                    .filter(|x| x["kind"] == kind)
                    .map(|x| {
                        if kind == "ServiceAccount" {
                            format!("{}/{}", s(x, "/namespace"), s(x, "/name"))
                        } else {
                            s(x, "/name")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(o, "/roleRef/kind"),
                    s(o, "/roleRef/name")
                )),
                age,
                json!(of("User")),
                json!(of("Group")),
                json!(of("ServiceAccount")),
            ]
        }
        ("", "serviceaccounts") => {
            let n = o
                .pointer("/secrets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![name, json!(n.to_string()), age]
        }
        ("scheduling.k8s.io", "priorityclasses") => vec![
            name,
            json!(int(o, "/value")),
            json!(
                o.pointer("/globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age,
            json!(s(o, "/preemptionPolicy")),
        ],
        _ => vec![name, age],
    }
}

fn crd_cell(c: &PrinterColumn, o: &Value) -> Value {
    let found = json_path(o, &c.json_path);
    let Some(v) = found.first() else {
        return Value::Null;
    };
    if c.type_ == "date" {
        return age_of(v.as_str());
    }
    match v {
        Value::Object(_) | Value::Array(_) => Value::String(v.to_string()),
        other => (*other).clone(),
    }
}

/// Column definitions of a resource in one version.
pub fn columns(def: &ResourceDef, version: &str) -> Vec<Value> {
    if def.crd {
        let cols = def.columns.get(version).cloned().unwrap_or_default();
        if cols.is_empty() {
            return vec![name_col(), age_col()];
        }
        let mut out = vec![name_col()];
        out.extend(cols.iter().map(|c| {
            let t = if c.type_ == "date" {
                "date"
            } else {
                c.type_.as_str()
            };
            col(&c.name, t, &c.format, &c.description, c.priority)
        }));
        return out;
    }
    builtin_columns(def).unwrap_or_else(|| vec![name_col(), age_col()])
}

fn cells(def: &ResourceDef, version: &str, o: &Value) -> Vec<Value> {
    if def.crd {
        let cols = def.columns.get(version).cloned().unwrap_or_default();
        if cols.is_empty() {
            return vec![
                Value::String(s(o, "/metadata/name")),
                age_of(meta_str(o, "creationTimestamp")),
            ];
        }
        let mut out = vec![Value::String(s(o, "/metadata/name"))];
        out.extend(cols.iter().map(|c| crd_cell(c, o)));
        return out;
    }
    builtin_cells(def, o)
}

/// A `meta.k8s.io/v1` Table of `objs`.
pub fn table(
    def: &ResourceDef,
    version: &str,
    objs: &[Value],
    list_meta: Value,
    include: Include,
) -> Value {
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(def, version, o)});
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial_metadata(o),
                Include::Object => row["object"] = versioned(def, version, o).into_owned(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(def, version),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests;
