#![allow(clippy::unwrap_used)]
use super::*;

fn setup() -> (Store, std::sync::Arc<ResourceDef>) {
    let mut st = Store::new(100);
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
    let def = st.registry.by_key("apps/deployments").unwrap();
    (st, def)
}

fn deploy() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
          "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}}}})
}

/// A patch of the Deployment `d/web`.
fn patch_web(
    st: &mut Store,
    def: &ResourceDef,
    ptype: PatchType,
    body: Value,
    sub: Sub,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    patch(st, def, "v1", "d", "web", ptype, &body, sub, opts).map(Arc::unwrap_or_clone)
}

#[test]
fn generation_rules_for_apps() {
    let (mut st, def) = setup();
    let o = WriteOpts::default();
    let d = create(&mut st, &def, "v1", "d", deploy(), &o).unwrap();
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    let l = patch_web(
        &mut st,
        &def,
        PatchType::Merge,
        json!({"metadata": {"labels": {"x": "y"}}}),
        Sub::Main,
        &o,
    )
    .unwrap();
    assert_eq!(l["metadata"]["generation"], 1);
    let s = patch_web(
        &mut st,
        &def,
        PatchType::Merge,
        json!({"status": {"replicas": 2}}),
        Sub::Status,
        &o,
    )
    .unwrap();
    assert_eq!(s["metadata"]["generation"], 1);
    assert_eq!(s["status"]["replicas"], 2);
    // Status is ignored on the main resource.
    let m = patch_web(
        &mut st,
        &def,
        PatchType::Merge,
        json!({"status": {"replicas": 9}, "spec": {"replicas": 3}}),
        Sub::Main,
        &o,
    )
    .unwrap();
    assert_eq!(m["metadata"]["generation"], 2);
    assert_eq!(m["status"]["replicas"], 2);
    let sc = patch_web(
        &mut st,
        &def,
        PatchType::Merge,
        json!({"spec": {"replicas": 0}}),
        Sub::Scale,
        &o,
    )
    .unwrap();
    assert_eq!(sc["kind"], "Scale");
    assert_eq!(sc["status"]["selector"], "app=web");
    assert_eq!(
        st.get("apps/deployments", "d", "web").unwrap()["spec"]["replicas"],
        0
    );
}

#[test]
fn a_status_write_changes_the_status_only() {
    let (mut st, def) = setup();
    let o = WriteOpts::default();
    create(&mut st, &def, "v1", "d", deploy(), &o).unwrap();
    let before = st.get("apps/deployments", "d", "web").unwrap().clone();
    let merged = patch_web(
        &mut st,
        &def,
        PatchType::Merge,
        json!({"status": {"replicas": 2}, "spec": {"replicas": 7}, "metadata": {"labels": {"x": "y"}}}),
        Sub::Status,
        &o,
    )
    .unwrap();
    assert_eq!(merged["status"]["replicas"], 2);
    assert_eq!(merged["spec"], before["spec"]);
    assert_eq!(merged["metadata"]["labels"], before["metadata"]["labels"]);
    let applied = patch_web(
        &mut st,
        &def,
        PatchType::Apply,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"z": "w"}},
            "spec": {"replicas": 5}, "status": {"readyReplicas": 1}}),
        Sub::Status,
        &WriteOpts {
            field_manager: Some("test".into()),
            ..WriteOpts::default()
        },
    )
    .unwrap();
    assert_eq!(applied["status"]["readyReplicas"], 1);
    assert_eq!(applied["spec"], before["spec"]);
    assert_eq!(applied["metadata"]["labels"], before["metadata"]["labels"]);
    assert_eq!(applied["metadata"]["generation"], 1);
}

#[test]
fn stale_rv_conflicts_and_finalizers() {
    let (mut st, def) = setup();
    let o = WriteOpts::default();
    let mut d = deploy();
    d["metadata"]["finalizers"] = json!(["x/y"]);
    let d = create(&mut st, &def, "v1", "d", d, &o).unwrap();
    let mut stale = Value::clone(&d);
    stale["metadata"]["resourceVersion"] = json!("1");
    assert_eq!(
        update(&mut st, &def, "v1", "d", "web", stale, Sub::Main, &o)
            .unwrap_err()
            .reason,
        "Conflict"
    );
    let Deleted::Pending(p) = delete(&mut st, &def, "d", "web", &DeleteOpts::default()).unwrap()
    else {
        panic!("expected pending")
    };
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    let add = patch_web(
        &mut st,
        &def,
        PatchType::Merge,
        json!({"metadata": {"finalizers": ["x/y", "z"]}}),
        Sub::Main,
        &o,
    );
    assert_eq!(add.unwrap_err().code, 422);
    patch_web(
        &mut st,
        &def,
        PatchType::Json,
        json!([{"op": "remove", "path": "/metadata/finalizers"}]),
        Sub::Main,
        &o,
    )
    .unwrap();
    assert!(st.get("apps/deployments", "d", "web").is_none());
}

#[test]
fn create_errors() {
    let (mut st, def) = setup();
    let o = WriteOpts::default();
    let mut bad = deploy();
    bad["metadata"]["name"] = json!("Bad_Name");
    assert_eq!(
        create(&mut st, &def, "v1", "d", bad, &o)
            .unwrap_err()
            .reason,
        "Invalid"
    );
    assert_eq!(
        create(&mut st, &def, "v1", "nope", deploy(), &o)
            .unwrap_err()
            .reason,
        "NotFound"
    );
    create(&mut st, &def, "v1", "d", deploy(), &o).unwrap();
    assert_eq!(
        create(&mut st, &def, "v1", "d", deploy(), &o)
            .unwrap_err()
            .reason,
        "AlreadyExists"
    );
    let mut k = deploy();
    k["kind"] = json!("Pod");
    assert_eq!(
        create(&mut st, &def, "v1", "d", k, &o).unwrap_err().code,
        400
    );
    let dry = WriteOpts {
        dry_run: true,
        ..Default::default()
    };
    let mut g = deploy();
    g["metadata"] = json!({"generateName": "web-"});
    let made = create(&mut st, &def, "v1", "d", g, &dry).unwrap();
    assert!(name_of(&made).starts_with("web-"));
    assert!(st.get("apps/deployments", "d", name_of(&made)).is_none());
}

/// The managers of an object's `metadata.managedFields`, in order, each with the top-level
/// fields it owns.
fn managers(obj: &Value) -> Vec<(String, Vec<String>)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let name = format!(
                "{}/{}",
                e["manager"].as_str().unwrap(),
                e["subresource"].as_str().unwrap_or_default()
            );
            let top = e["fieldsV1"].as_object().unwrap().keys().cloned().collect();
            (name, top)
        })
        .collect()
}

/// Merge patches and status writes change a copy of the object without its managedFields
/// (they are rendered from the ownership kept beside it): the ownership they show must be what
/// the writes made, and a patch that sets managedFields itself must still set them.
#[test]
fn writes_render_managed_fields_from_the_ownership_kept() {
    let (mut st, def) = setup();
    let by = |m: &str| WriteOpts {
        field_manager: Some(m.to_string()),
        user_agent: Some(String::new()),
        ..Default::default()
    };
    create(&mut st, &def, "v1", "d", deploy(), &by("maker")).unwrap();
    let spec = json!({"spec": {"replicas": 3}});
    let patched = patch_web(
        &mut st,
        &def,
        PatchType::Merge,
        spec,
        Sub::Main,
        &by("scaler"),
    );
    let status = json!({"status": {"replicas": 3}});
    let stat = patch_web(
        &mut st,
        &def,
        PatchType::Merge,
        status,
        Sub::Status,
        &by("kcm"),
    );
    let labels = json!({"metadata": {"labels": {"x": "y"}}});
    let strategic = patch_web(
        &mut st,
        &def,
        PatchType::Strategic,
        labels,
        Sub::Main,
        &by("lab"),
    );
    let (patched, stat, strategic) = (patched.unwrap(), stat.unwrap(), strategic.unwrap());
    let owned = |m: &str, f: &[&str]| (m.to_string(), f.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        managers(&patched),
        vec![owned("maker/", &["f:spec"]), owned("scaler/", &["f:spec"])]
    );
    assert_eq!(
        managers(&stat),
        vec![
            owned("kcm/status", &["f:status"]),
            owned("maker/", &["f:spec"]),
            owned("scaler/", &["f:spec"]),
        ]
    );
    // An unchanged manager's entry is the one rendered before, field for field.
    let entry = |obj: &Value, m: &str| {
        let all = obj["metadata"]["managedFields"].as_array().unwrap().clone();
        all.into_iter().find(|e| e["manager"] == m).unwrap()
    };
    assert_eq!(entry(&strategic, "maker"), entry(&stat, "maker"));
    assert_eq!(entry(&strategic, "kcm"), entry(&stat, "kcm"));
    assert_eq!(managers(&strategic)[1], owned("lab/", &["f:metadata"]));
    // A status write that rebuilds the object from the stored one keeps every manager.
    let rebuilt = finish_update(
        &mut st,
        &def,
        &strategic,
        json!({"status": {"replicas": 2}}),
        Sub::Status,
        &WriteOpts::default(),
    )
    .unwrap();
    assert_eq!(managers(&rebuilt), managers(&strategic));
    assert_eq!(rebuilt["status"]["replicas"], 2);
    // A merge patch that sets managedFields replaces the ownership.
    let mine = json!({"metadata": {"managedFields": [{"manager": "mine", "operation": "Update",
        "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]}});
    let replaced = patch_web(&mut st, &def, PatchType::Merge, mine, Sub::Main, &by("x")).unwrap();
    assert_eq!(managers(&replaced), vec![owned("mine/", &["f:spec"])]);
    // A JSON patch still sees the stored managedFields.
    let test = json!([{"op": "test", "path": "/metadata/managedFields/0/manager", "value": "mine"},
        {"op": "replace", "path": "/spec/replicas", "value": 4}]);
    let json_patched = patch_web(&mut st, &def, PatchType::Json, test, Sub::Main, &by("j"));
    assert_eq!(json_patched.unwrap()["spec"]["replicas"], 4);
}
