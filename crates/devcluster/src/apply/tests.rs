#![allow(clippy::unwrap_used)]
use super::*;
use serde_json::json;

const STAMP: (&str, &str) = ("v1", "2026-01-02T03:04:05Z");

/// The changed fields as defined: every field of `new` whose value differs from `old`'s,
/// list elements only when `old` lacks them (what `collect_changed` must find).
fn changed_by_definition(old: &Value, new: &Value) -> BTreeSet<FieldPath> {
    tracked(field_set(new))
        .into_iter()
        .filter(|p| get(old, p) != get(new, p))
        .filter(|p| !matches!(p.last(), Some(Seg::Item(..))) || get(old, p).is_none())
        .collect()
}

#[test]
fn changed_fields_are_found_without_walking_equal_subtrees() {
    let old = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "n", "resourceVersion": "3", "uid": "u",
            "labels": {"app": "d", "team": "a"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "a:1", "ports": [{"containerPort": 80}],
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "s:1"}]}}},
        "status": {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}
    });
    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<Edit> = vec![
        Box::new(|_| {}),
        Box::new(|v| v["status"]["replicas"] = json!(2)),
        Box::new(|v| v["metadata"]["resourceVersion"] = json!("4")),
        Box::new(|v| v["metadata"]["labels"]["team"] = json!("b")),
        Box::new(|v| v["metadata"]["labels"] = json!({})),
        Box::new(|v| v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("a:2")),
        Box::new(|v| {
            v["spec"]["template"]["spec"]["containers"][0]["env"][1] =
                json!({"name": "C", "value": "3"})
        }),
        Box::new(|v| {
            let c = v["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap();
            c.push(json!({"name": "new", "image": "n:1"}));
            c.swap(0, 1);
        }),
        Box::new(|v| v["spec"]["template"]["spec"]["containers"][1] = json!({"image": "no-name"})),
        Box::new(|v| v["status"]["conditions"][0]["status"] = json!("False")),
        Box::new(|v| v["status"] = json!({"conditions": []})),
        Box::new(|v| v["spec"] = json!("replaced by a string")),
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut new = old.clone();
        edit(&mut new);
        let mut found = BTreeSet::new();
        collect_changed(Some(&old), &new, None, &mut Vec::new(), &mut found);
        assert_eq!(
            tracked(without_identity(found)),
            changed_by_definition(&old, &new),
            "edit {i}"
        );
    }
}

fn applier(name: &str) -> Manager {
    Manager::new(name, Operation::Apply, "")
}

#[test]
fn ownership_conflicts_force_and_removal() {
    let mut owners = Owners::new();
    let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"x": "1", "y": "2"}});
    let live = apply(None, &a, &applier("alice"), false, &mut owners, STAMP).unwrap();
    assert_eq!(live["data"], json!({"x": "1", "y": "2"}));
    // Bob sets a different value for x: conflict; same value: shared.
    let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "9"}});
    let err = apply(Some(&live), &b, &applier("bob"), false, &mut owners, STAMP).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"alice\": .data.x"
    );
    let live = apply(Some(&live), &b, &applier("bob"), true, &mut owners, STAMP).unwrap();
    assert_eq!(live["data"]["x"], "9");
    // Alice stops applying y: removed. x is bob's now, so it stays.
    let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"z": "3"}});
    let live = apply(
        Some(&live),
        &a2,
        &applier("alice"),
        false,
        &mut owners,
        STAMP,
    )
    .unwrap();
    assert_eq!(live["data"], json!({"x": "9", "z": "3"}));
}

#[test]
fn a_dropped_struct_goes_with_its_fields() {
    let mut owners = Owners::new();
    let who = Manager::new("serin", Operation::Apply, "status");
    let first = json!({"status": {"phase": "Progressing",
        "paused": {"by": "jane", "since": "2026-01-02T03:04:05Z"}}});
    let live = apply(None, &first, &who, true, &mut owners, STAMP).unwrap();
    let second = json!({"status": {"phase": "Progressing"}});
    let live = apply(Some(&live), &second, &who, true, &mut owners, STAMP).unwrap();
    assert_eq!(live, json!({"status": {"phase": "Progressing"}}));
    // A map that keeps a field another manager owns stays, with that field.
    let third = json!({"status": {"phase": "Progressing", "paused": {"by": "jane"}}});
    let live = apply(Some(&live), &third, &who, true, &mut owners, STAMP).unwrap();
    let editor = Manager::new("kubectl-edit", Operation::Update, "status");
    let mut edited = live.clone();
    edited["status"]["paused"]["note"] = json!("x");
    record_update(Some(&live), &edited, &editor, &mut owners, STAMP);
    let live = apply(Some(&edited), &second, &who, true, &mut owners, STAMP).unwrap();
    assert_eq!(
        live,
        json!({"status": {"phase": "Progressing", "paused": {"note": "x"}}})
    );
    // Emptied by the removal all the way up: only what is left stays.
    let nested = json!({"status": {"phase": "Progressing", "a": {"b": {"c": 1}}}});
    let live = apply(Some(&live), &nested, &who, true, &mut owners, STAMP).unwrap();
    let live = apply(Some(&live), &second, &who, true, &mut owners, STAMP).unwrap();
    assert_eq!(
        live,
        json!({"status": {"phase": "Progressing", "paused": {"note": "x"}}})
    );
}

#[test]
fn keyed_lists_merge_by_name() {
    let mut owners = Owners::new();
    let live = json!({"spec": {"containers": [{"name": "app", "image": "a:1"}, {"name": "mesh", "image": "m"}]}});
    owners.insert(
        applier("injector"),
        Entry {
            fields: std::sync::Arc::new(field_set(
                &json!({"spec": {"containers": [{"name": "mesh", "image": "m"}]}}),
            )),
            ..Entry::default()
        },
    );
    let cfg = json!({"spec": {"containers": [{"name": "app", "image": "a:2"}]}});
    let out = apply(Some(&live), &cfg, &applier("me"), false, &mut owners, STAMP).unwrap();
    assert_eq!(out["spec"]["containers"][0]["image"], "a:2");
    assert_eq!(out["spec"]["containers"][1]["name"], "mesh");
}

#[test]
fn updates_take_ownership_and_applies_then_conflict_with_them() {
    let mut owners = Owners::new();
    let v1 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "uid": "u"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}}});
    let live = apply(None, &v1, &applier("kubectl"), false, &mut owners, STAMP).unwrap();
    // `kubectl scale` (an update through the scale subresource) takes .spec.replicas.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(3);
    let scaler = Manager::new("kubectl", Operation::Update, "scale");
    record_update(
        Some(&live),
        &scaled,
        &scaler,
        &mut owners,
        ("apps/v1", "2026-01-02T03:04:06Z"),
    );
    assert_eq!(
        owners[&scaler]
            .fields
            .iter()
            .map(display)
            .collect::<Vec<_>>(),
        [".spec.replicas"]
    );
    assert!(!owners[&applier("kubectl")].fields.contains(&vec![
        Seg::Field("spec".into()),
        Seg::Field("replicas".into())
    ]));
    // Applying the old replica count now conflicts; the rest of the object does not.
    let err = apply(
        Some(&scaled),
        &v1,
        &applier("kubectl"),
        false,
        &mut owners,
        STAMP,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        managed_fields(&owners),
        json!([
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": STAMP.1,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}},
            {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2026-01-02T03:04:06Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"}
        ])
    );
    // What a client sends back in managedFields reads as the same ownership.
    assert_eq!(decode_managed_fields(&managed_fields(&owners)), owners);
    assert!(decode_managed_fields(&json!([{}])).is_empty());
    // Fields that leave the object leave every set.
    let mut gone = scaled.clone();
    gone["spec"].as_object_mut().unwrap().remove("replicas");
    let editor = Manager::new("kubectl-edit", Operation::Update, "");
    record_update(Some(&scaled), &gone, &editor, &mut owners, STAMP);
    assert!(!owners.contains_key(&scaler));
    assert!(!owners.contains_key(&editor));
}

#[test]
fn managed_fields_are_ordered_as_the_api_server_orders_them() {
    let entry = |api_version: &str, time: &str| Entry {
        fields: std::sync::Arc::new(BTreeSet::from([vec![Seg::Field("spec".into())]])),
        api_version: api_version.into(),
        time: time.into(),
    };
    let order = |owners: &Owners| -> Vec<String> {
        managed_fields(owners)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    e["operation"].as_str().unwrap(),
                    e["manager"].as_str().unwrap(),
                    e["apiVersion"].as_str().unwrap(),
                    e["subresource"].as_str().unwrap_or("-")
                )
            })
            .collect()
    };
    let (early, late) = ("2026-01-02T03:04:05Z", "2026-01-02T03:04:06Z");
    // Written in the same second: by manager, then API version, then subresource.
    let same_second = Owners::from([
        (Manager::new("b", Operation::Update, ""), entry("v1", early)),
        (
            Manager::new("a", Operation::Update, "status"),
            entry("v1", early),
        ),
        (Manager::new("a", Operation::Update, ""), entry("v2", early)),
        (Manager::new("z", Operation::Apply, ""), entry("v1", late)),
    ]);
    assert_eq!(
        order(&same_second),
        [
            "Apply z v1 -",
            "Update a v1 status",
            "Update a v2 -",
            "Update b v1 -"
        ]
    );
    // A second apart: the earlier one first, whatever the names.
    let apart = Owners::from([
        (Manager::new("a", Operation::Update, ""), entry("v1", late)),
        (
            Manager::new("a", Operation::Update, "status"),
            entry("v1", early),
        ),
    ]);
    assert_eq!(order(&apart), ["Update a v1 status", "Update a v1 -"]);
}

/// A write that leaves a manager's fields as they were keeps its rendered `fieldsV1`, and the
/// result is what rendering from scratch gives; a manager whose fields changed is rendered anew.
#[test]
fn managed_fields_of_a_rewrite_equal_a_fresh_rendering() {
    let obj = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "app", "image": "a:1"}]}}}, "status": {"replicas": 1}});
    let status = Manager::new("simulator", Operation::Update, "status");
    let editor = Manager::new("kubectl-edit", Operation::Update, "");
    let mut before = Owners::new();
    record_update(None, &obj, &editor, &mut before, STAMP);
    let mut with_status = before.clone();
    let mut updated = obj.clone();
    updated["status"]["readyReplicas"] = json!(1);
    record_update(Some(&obj), &updated, &status, &mut with_status, STAMP);
    let rendered_before = managed_fields(&with_status);

    // Only a value changes, at a later time: the same fields.
    let mut again = updated.clone();
    again["status"]["replicas"] = json!(2);
    let mut after = with_status.clone();
    record_update(
        Some(&updated),
        &again,
        &status,
        &mut after,
        ("v1", "2026-01-02T03:04:09Z"),
    );
    let reused = managed_fields_after(&after, Some((&with_status, &rendered_before)));
    assert_eq!(reused, managed_fields(&after));
    assert_eq!(reused[1]["time"], json!("2026-01-02T03:04:09Z"));

    // A new field: the changed manager's set is rendered again.
    let mut more = again.clone();
    more["status"]["availableReplicas"] = json!(1);
    let mut grown = after.clone();
    record_update(Some(&again), &more, &status, &mut grown, STAMP);
    let rendered_after = managed_fields(&after);
    let fresh = managed_fields_after(&grown, Some((&after, &rendered_after)));
    assert_eq!(fresh, managed_fields(&grown));
    assert!(fresh.to_string().contains("f:availableReplicas"));
}
