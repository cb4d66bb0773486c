//! The garbage collector and namespace lifecycle, standing in for kube-controller-manager:
//! owner-reference cascades (background, foreground, orphan) and namespace termination.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::ops::{self, DeleteOpts, Sub, WriteOpts};
use crate::store::{Store, meta_str, name_of, namespace_of, uid_of};

#[derive(Debug)]
enum Action {
    Delete {
        res: String,
        ns: String,
        name: String,
    },
    StripOwners {
        res: String,
        ns: String,
        name: String,
        uids: Vec<String>,
    },
    RemoveFinalizer {
        res: String,
        ns: String,
        name: String,
        finalizer: &'static str,
    },
    RemoveNamespace {
        name: String,
    },
}

fn has_finalizer(o: &Value, f: &str) -> bool {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == f))
}

fn owner_uids(o: &Value) -> Vec<String> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn plan(st: &Store) -> Vec<Action> {
    let mut live: HashMap<String, &Value> = HashMap::new();
    let mut dependents: HashMap<String, usize> = HashMap::new();
    for (_, o) in st.all_objects() {
        live.insert(uid_of(o).to_string(), o);
        for u in owner_uids(o) {
            *dependents.entry(u).or_default() += 1;
        }
    }
    let mut actions = Vec::new();
    for (res, o) in st.all_objects() {
        let (ns, name) = (namespace_of(o).to_string(), name_of(o).to_string());
        let deleting = meta_str(o, "deletionTimestamp").is_some();
        let owners = owner_uids(o);
        if !owners.is_empty() {
            let dangling: Vec<String> = owners
                .iter()
                .filter(|u| !live.contains_key(*u))
                .cloned()
                .collect();
            let orphaning: Vec<String> = owners
                .iter()
                .filter(|u| {
                    live.get(*u).is_some_and(|ow| {
                        meta_str(ow, "deletionTimestamp").is_some() && has_finalizer(ow, "orphan")
                    })
                })
                .cloned()
                .collect();
            let foreground = owners.iter().any(|u| {
                live.get(u).is_some_and(|ow| {
                    meta_str(ow, "deletionTimestamp").is_some()
                        && has_finalizer(ow, "foregroundDeletion")
                })
            });
            if dangling.len() == owners.len() || foreground {
                if !deleting {
                    actions.push(Action::Delete {
                        res: res.clone(),
                        ns: ns.clone(),
                        name: name.clone(),
                    });
                }
            } else if !dangling.is_empty() || !orphaning.is_empty() {
                let mut uids = dangling;
                uids.extend(orphaning);
                actions.push(Action::StripOwners {
                    res: res.clone(),
                    ns: ns.clone(),
                    name: name.clone(),
                    uids,
                });
            }
        }
        if deleting {
            let has_deps = dependents.get(uid_of(o)).is_some_and(|n| *n > 0);
            for f in ["orphan", "foregroundDeletion"] {
                if has_finalizer(o, f) && !has_deps {
                    actions.push(Action::RemoveFinalizer {
                        res: res.clone(),
                        ns: ns.clone(),
                        name: name.clone(),
                        finalizer: f,
                    });
                }
            }
        }
    }
    // Namespace termination.
    let terminating: HashSet<String> = st
        .list("/namespaces", None, None)
        .filter(|(_, o)| meta_str(o, "deletionTimestamp").is_some())
        .map(|(_, o)| name_of(o).to_string())
        .collect();
    for ns in terminating {
        let mut remaining = 0;
        // Views of another resource's objects (events.k8s.io) are deleted through it.
        for def in st
            .registry
            .all()
            .filter(|d| d.namespaced && d.storage.is_none())
        {
            for (_, o) in st.list(&def.key(), Some(&ns), None) {
                remaining += 1;
                if meta_str(o, "deletionTimestamp").is_none() {
                    actions.push(Action::Delete {
                        res: def.key(),
                        ns: ns.clone(),
                        name: name_of(o).to_string(),
                    });
                }
            }
        }
        if remaining == 0 {
            actions.push(Action::RemoveNamespace { name: ns });
        }
    }
    actions
}

fn execute(st: &mut Store, action: Action) {
    let opts = WriteOpts::default();
    match action {
        Action::Delete { res, ns, name } => {
            if let Some(def) = st.registry.by_key(&res) {
                let _ = ops::delete(
                    st,
                    &def,
                    &ns,
                    &name,
                    &DeleteOpts {
                        propagation: Some("Background".into()),
                        ..Default::default()
                    },
                );
            }
        }
        Action::StripOwners {
            res,
            ns,
            name,
            uids,
        } => {
            let (Some(def), Some(o)) =
                (st.registry.by_key(&res), st.get(&res, &ns, &name).cloned())
            else {
                return;
            };
            let mut next = o.clone();
            if let Some(refs) = next
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| {
                    !r.get("uid")
                        .and_then(Value::as_str)
                        .is_some_and(|u| uids.iter().any(|x| x == u))
                });
                if refs.is_empty()
                    && let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    m.remove("ownerReferences");
                }
            }
            let _ = ops::finish_update(st, &def, &o, next, Sub::Main, &opts);
        }
        Action::RemoveFinalizer {
            res,
            ns,
            name,
            finalizer,
        } => {
            let (Some(def), Some(o)) =
                (st.registry.by_key(&res), st.get(&res, &ns, &name).cloned())
            else {
                return;
            };
            let mut next = o.clone();
            if let Some(f) = next
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                f.retain(|x| x != finalizer);
            }
            let _ = ops::finish_update(st, &def, &o, next, Sub::Main, &opts);
        }
        Action::RemoveNamespace { name } => {
            if let Some(def) = st.registry.by_key("/namespaces") {
                if let Some(o) = st.get("/namespaces", "", &name).cloned() {
                    let mut next = o.clone();
                    next["spec"] = json!({});
                    let _ = ops::finish_update(st, &def, &o, next, Sub::Main, &opts);
                }
                ops::remove_object(st, &def, "", &name);
            }
        }
    }
}

/// Runs collection passes until nothing is left to do (bounded). Returns the number of actions.
pub fn collect(st: &mut Store) -> usize {
    let mut done = 0;
    for _ in 0..32 {
        let actions = plan(st);
        if actions.is_empty() {
            break;
        }
        done += actions.len();
        for a in actions {
            execute(st, a);
        }
    }
    done
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ops::{Deleted, create};

    fn cm(name: &str, owner: Option<&Value>) -> Value {
        let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        if let Some(o) = owner {
            v["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": name_of(o), "uid": uid_of(o)}]);
        }
        v
    }

    fn setup() -> Store {
        let mut st = Store::new(1000);
        let nsdef = st.registry.by_key("/namespaces").unwrap();
        create(
            &mut st,
            &nsdef,
            "v1",
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}),
            &WriteOpts::default(),
        )
        .unwrap();
        st
    }

    #[test]
    fn background_foreground_orphan() {
        let mut st = setup();
        let def = st.registry.by_key("/configmaps").unwrap();
        let o = WriteOpts::default();
        let owner = create(&mut st, &def, "v1", "d", cm("owner", None), &o).unwrap();
        let child = create(&mut st, &def, "v1", "d", cm("child", Some(&owner)), &o).unwrap();
        create(&mut st, &def, "v1", "d", cm("grandchild", Some(&child)), &o).unwrap();
        ops::delete(&mut st, &def, "d", "owner", &DeleteOpts::default()).unwrap();
        collect(&mut st);
        assert_eq!(st.count("/configmaps"), 0);

        let owner = create(&mut st, &def, "v1", "d", cm("owner", None), &o).unwrap();
        create(&mut st, &def, "v1", "d", cm("child", Some(&owner)), &o).unwrap();
        let fg = DeleteOpts {
            propagation: Some("Foreground".into()),
            ..Default::default()
        };
        assert!(matches!(
            ops::delete(&mut st, &def, "d", "owner", &fg).unwrap(),
            Deleted::Pending(_)
        ));
        collect(&mut st);
        assert_eq!(st.count("/configmaps"), 0);

        let owner = create(&mut st, &def, "v1", "d", cm("owner", None), &o).unwrap();
        create(&mut st, &def, "v1", "d", cm("child", Some(&owner)), &o).unwrap();
        let orphan = DeleteOpts {
            propagation: Some("Orphan".into()),
            ..Default::default()
        };
        ops::delete(&mut st, &def, "d", "owner", &orphan).unwrap();
        collect(&mut st);
        let child = st.get("/configmaps", "d", "child").unwrap();
        assert!(child["metadata"].get("ownerReferences").is_none());
        assert!(st.get("/configmaps", "d", "owner").is_none());
    }

    #[test]
    fn namespace_termination_removes_contents() {
        let mut st = setup();
        let def = st.registry.by_key("/configmaps").unwrap();
        create(
            &mut st,
            &def,
            "v1",
            "d",
            cm("a", None),
            &WriteOpts::default(),
        )
        .unwrap();
        let nsdef = st.registry.by_key("/namespaces").unwrap();
        ops::delete(&mut st, &nsdef, "", "d", &DeleteOpts::default()).unwrap();
        assert_eq!(
            st.get("/namespaces", "", "d").unwrap()["status"]["phase"],
            "Terminating"
        );
        collect(&mut st);
        assert!(st.get("/namespaces", "", "d").is_none());
        assert_eq!(st.count("/configmaps"), 0);
    }
}
