#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn accept_headers() {
    let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    assert_eq!(
        View::from_accept(kubectl, None),
        View::Table(Include::Metadata)
    );
    assert_eq!(
        View::from_accept(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            None
        ),
        View::Meta
    );
    assert_eq!(
        View::from_accept("application/vnd.kubernetes.protobuf,application/json", None),
        View::Full
    );
}

#[test]
fn json_paths() {
    let o = json!({"status": {"phase": "Ok", "conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]},
        "metadata": {"labels": {"a.b/c": "x"}}});
    assert_eq!(json_path(&o, ".status.phase"), vec![&json!("Ok")]);
    assert_eq!(
        json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
        vec![&json!("True")]
    );
    assert_eq!(
        json_path(&o, ".status.conditions[0].type"),
        vec![&json!("A")]
    );
    assert_eq!(
        json_path(&o, ".metadata.labels['a.b/c']"),
        vec![&json!("x")]
    );
    assert!(json_path(&o, ".spec.x").is_empty());
}

#[test]
fn ages() {
    assert_eq!(human_age(5), "5s");
    assert_eq!(human_age(200), "3m20s");
    assert_eq!(human_age(3600 * 5), "5h");
    assert_eq!(human_age(86400 * 3 + 3600), "3d1h");
}
