#![allow(clippy::unwrap_used)]
use super::*;

fn canary(annotations: serde_json::Value) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "annotations": annotations},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                 "service": {"port": 9898}}
    }))
    .unwrap()
}

fn annotation(patch: &Value, key: &str) -> Value {
    patch["metadata"]["annotations"][key].clone()
}

#[test]
fn one_shot_requests_carry_id_action_and_user() {
    let c = canary(json!({}));
    let cases = [
        (
            Write::Promote { force: false },
            r#"{"id":"r-1","action":"promote","by":"alice"}"#,
        ),
        (
            Write::Promote { force: true },
            r#"{"id":"r-1","action":"promote","by":"alice","force":true}"#,
        ),
        (
            Write::Abort,
            r#"{"id":"r-1","action":"abort","by":"alice"}"#,
        ),
        (
            Write::Retry,
            r#"{"id":"r-1","action":"retry","by":"alice"}"#,
        ),
    ];
    for (write, expected) in cases {
        let patch = patch_for(write, &c, "alice", "r-1").unwrap();
        assert_eq!(
            annotation(&patch, REQUEST_ANNOTATION),
            json!(expected),
            "{write:?}"
        );
        assert_eq!(
            patch["metadata"]["annotations"].as_object().unwrap().len(),
            1
        );
    }
}

#[test]
fn pause_and_resume_follow_the_annotation() {
    let running = canary(json!({}));
    let patch = patch_for(Write::Pause, &running, "alice", "r-1").unwrap();
    assert_eq!(
        annotation(&patch, PAUSE_ANNOTATION),
        json!(r#"{"by":"alice"}"#)
    );
    assert_eq!(
        patch_for(Write::Resume, &running, "bob", "r-2"),
        Err("podinfo.test is not paused".to_string())
    );

    let paused = canary(json!({PAUSE_ANNOTATION: r#"{"by":"alice"}"#}));
    assert_eq!(
        patch_for(Write::Pause, &paused, "bob", "r-2"),
        Err("podinfo.test is already paused (by alice)".to_string())
    );
    let patch = patch_for(Write::Resume, &paused, "bob", "r-2").unwrap();
    assert_eq!(annotation(&patch, PAUSE_ANNOTATION), Value::Null);
    assert!(
        patch["metadata"]["annotations"]
            .as_object()
            .unwrap()
            .contains_key(PAUSE_ANNOTATION),
        "null removes the key in a merge patch"
    );
    assert_eq!(
        annotation(&patch, REQUEST_ANNOTATION),
        json!(r#"{"id":"r-2","action":"resume","by":"bob"}"#)
    );
}

#[test]
fn messages() {
    let c = canary(json!({}));
    assert_eq!(
        confirmation(Write::Promote { force: false }, &c, "alice", "r-1"),
        "promotion of podinfo.test requested by alice (request r-1)\nthe controller acts on it at once; `kubectl serin status podinfo` shows what it did\n"
    );
    assert_eq!(
        confirmation(Write::Pause, &c, "alice", "r-1"),
        "podinfo.test paused by alice\n"
    );
    assert_eq!(
        forbidden("bob", "test"),
        r#"user "bob" may not patch canaries.flagger.app in namespace "test": ask for the "patch" verb on canaries"#
    );
}

#[test]
fn request_ids_differ_and_start_with_the_time() {
    let now = k8s_openapi::jiff::Timestamp::from_second(1_767_225_600).unwrap();
    let a = request_id(now);
    let b = request_id(now);
    assert!(a.starts_with("2026-01-01T00:00:00Z-"), "{a}");
    assert_eq!(a.len(), "2026-01-01T00:00:00Z-".len() + 8);
    assert_ne!(a, b);
}
