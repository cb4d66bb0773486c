//! The cells of `kubectl get` Table rows for the built-in kinds.

use serde_json::{Value, json};

use super::{age_of, human_age};
use crate::registry::ResourceDef;
use crate::store::meta_str;

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

pub(super) fn s(v: &Value, ptr: &str) -> String {
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

pub(super) fn builtin_cells(def: &ResourceDef, o: &Value) -> Vec<Value> {
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
