#![allow(clippy::unwrap_used)]

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

use super::*;
use crate::api::Canary;

/// A Canary in the middle of an analysis: spec, conditions and `decisions` decision records.
fn canary(name: &str, version: u64, decisions: usize) -> Canary {
    let decisions: Vec<Value> = (0..decisions)
        .map(|i| {
            json!({
                "time": format!("2026-01-01T00:{i:02}:00Z"), "phase": "Progressing",
                "canaryWeight": 10 * (i + 1), "iterations": 0, "failedChecks": 0,
                "checks": [
                    {"name": "request-success-rate", "provider": "prometheus", "value": 99.9,
                     "min": 99.0, "verdict": "pass"},
                    {"name": "request-duration", "provider": "prometheus", "value": 212.5,
                     "max": 500.0, "verdict": "pass"}
                ],
                "step": {"action": "advance", "summary": format!("canary weight {}", 10 * (i + 1))}
            })
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {
            "name": name, "namespace": "test", "uid": format!("uid-{name}"),
            "resourceVersion": version.to_string(), "generation": 1,
            "labels": {"app.kubernetes.io/part-of": "shop", "team": "payments"}
        },
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 9898, "targetPort": 9898},
            "analysis": {
                "interval": "10s", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
                    {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "30s"}
                ],
                "webhooks": [{"name": "load-test", "url": "http://flagger-loadtester.test/",
                              "metadata": {"cmd": format!("hey -z 1m -q 10 -c 2 http://{name}-canary.test:9898/")}}]
            }
        },
        "status": {
            "phase": "Progressing", "canaryWeight": 10, "failedChecks": 0, "iterations": 0,
            "lastAppliedSpec": "5d8f7c9b6d", "lastPromotedSpec": "7f9c8d6b5a",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Promoted", "status": "Unknown", "reason": "Progressing",
                            "message": "New revision detected, progressing canary analysis.",
                            "lastUpdateTime": "2026-01-01T00:00:00Z",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "decisions": decisions
        }
    }))
    .unwrap()
}

/// The JSON of `canary`, to compare Canaries (kube's derive gives the object no `PartialEq`).
fn json_of(canary: Option<impl std::ops::Deref<Target = Canary>>) -> Option<Value> {
    canary.map(|c| serde_json::to_value(&*c).unwrap())
}

fn reference(name: &str) -> ObjectRef<Canary> {
    ObjectRef::new(name).within("test")
}

fn apply(store: &PackedStore<Canary>, canary: Canary) {
    store.apply(&watcher::Event::Apply(canary));
}

#[test]
fn an_object_reads_back_as_it_was_kept() {
    let store = PackedStore::default();
    let kept = canary("podinfo", 7, 3);
    apply(&store, kept.clone());
    apply(&store, canary("backend", 8, 0));
    let expected = serde_json::to_value(&kept).unwrap();
    assert_eq!(
        json_of(store.get(&reference("podinfo"))),
        Some(expected.clone())
    );
    assert_eq!(
        json_of(store.find("test", "podinfo").map(Box::new)),
        Some(expected)
    );
    assert!(store.find("other", "podinfo").is_none());
    assert_eq!(store.len(), 2);
    assert_eq!(store.state().len(), 2);
}

#[test]
fn an_older_version_does_not_replace_a_later_one() {
    let store = PackedStore::default();
    apply(&store, canary("podinfo", 9, 2));
    // The watch delivers the version before Serin's own write after the write's reply.
    apply(&store, canary("podinfo", 8, 1));
    let kept = store.find("test", "podinfo").unwrap();
    assert_eq!(kept.metadata.resource_version.as_deref(), Some("9"));
    apply(&store, canary("podinfo", 10, 3));
    let kept = store.find("test", "podinfo").unwrap();
    assert_eq!(kept.metadata.resource_version.as_deref(), Some("10"));
}

/// The watch's copy of a write whose reply was kept has the same `resourceVersion`: it is not
/// packed again (the copy here differs only to tell the two apart; the API server never sends
/// two contents under one version).
#[test]
fn the_version_already_kept_is_not_taken_again() {
    let store = PackedStore::default();
    apply(&store, canary("podinfo", 9, 2));
    apply(&store, canary("podinfo", 9, 5));
    let kept = store.find("test", "podinfo").unwrap();
    assert_eq!(
        json_of(Some(Box::new(kept))),
        json_of(Some(Box::new(canary("podinfo", 9, 2))))
    );
    // Without numbered versions every apply is taken.
    let mut unnumbered = canary("backend", 0, 1);
    unnumbered.metadata.resource_version = Some("a".into());
    apply(&store, unnumbered.clone());
    unnumbered.metadata.labels = None;
    apply(&store, unnumbered);
    assert!(
        store
            .find("test", "backend")
            .unwrap()
            .metadata
            .labels
            .is_none()
    );
}

#[test]
fn a_relist_drops_what_it_did_not_list_and_keeps_later_writes() {
    let store = PackedStore::default();
    apply(&store, canary("gone", 1, 0));
    apply(&store, canary("written", 2, 0));
    store.apply(&watcher::Event::Init);
    store.apply(&watcher::Event::InitApply(canary("written", 2, 0)));
    store.apply(&watcher::Event::InitApply(canary("new", 3, 0)));
    // Serin writes while the list runs; readers still see the state before the relist.
    apply(&store, canary("written", 4, 1));
    assert!(store.find("test", "gone").is_some());
    assert!(store.find("test", "new").is_none());
    store.apply(&watcher::Event::InitDone);
    assert!(store.find("test", "gone").is_none());
    assert!(store.find("test", "new").is_some());
    let written = store.find("test", "written").unwrap();
    assert_eq!(written.metadata.resource_version.as_deref(), Some("4"));
}

#[test]
fn a_delete_takes_the_object_out_even_during_a_relist() {
    let store = PackedStore::default();
    apply(&store, canary("podinfo", 1, 0));
    store.apply(&watcher::Event::Init);
    store.apply(&watcher::Event::InitApply(canary("podinfo", 1, 0)));
    store.apply(&watcher::Event::Delete(canary("podinfo", 2, 0)));
    assert!(store.find("test", "podinfo").is_none());
    store.apply(&watcher::Event::InitDone);
    assert!(store.is_empty());
    apply(&store, canary("backend", 3, 0));
    store.remove("test", "backend");
    assert!(store.is_empty());
}

#[test]
fn the_list_says_who_is_kept_without_decoding() {
    let store = PackedStore::default();
    apply(&store, canary("podinfo", 1, 0));
    apply(&store, canary("backend", 2, 0));
    let mut listed = store.list();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        listed,
        [
            Listed {
                namespace: "test".into(),
                name: "backend".into(),
                uid: Some("uid-backend".into()),
            },
            Listed {
                namespace: "test".into(),
                name: "podinfo".into(),
                uid: Some("uid-podinfo".into()),
            },
        ]
    );
}

#[tokio::test]
async fn it_is_ready_once_the_watch_listed_everything() {
    let store: PackedStore<Canary> = PackedStore::default();
    let waiting = store.clone();
    let ready = tokio::spawn(async move { waiting.wait_until_ready().await });
    // Two waiters: both wake (kube-runtime's own store woke only the last one).
    let other = store.clone();
    let other = tokio::spawn(async move { other.wait_until_ready().await });
    store.apply(&watcher::Event::Init);
    tokio::task::yield_now().await;
    assert!(!ready.is_finished());
    store.apply(&watcher::Event::InitDone);
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        ready.await.unwrap();
        other.await.unwrap();
    })
    .await
    .unwrap();
}

#[test]
fn canaries_of_one_kind_compress_against_each_other() {
    let store = PackedStore::default();
    let mut json = 0;
    for i in 0..200 {
        let canary = canary(&format!("app-{i}"), i, 6);
        json += serde_json::to_vec(&canary).unwrap().len();
        apply(&store, canary);
    }
    let packed = store.packed_bytes();
    // Measured: about a tenth. A fifth leaves room for a different LZ4 version.
    assert!(
        packed * 5 < json,
        "{packed} bytes packed of {json} bytes of JSON"
    );
}

#[test]
fn kept_objects_read_back_unchanged() {
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": "test", "resourceVersion": "42",
                     "labels": {"app": "podinfo"}, "annotations": {"a": "ü 日本"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{
                    "name": "podinfod", "image": "stefanprodan/podinfo:6.0.0",
                    "resources": {"limits": {"cpu": "2", "memory": "512Mi"}},
                    "env": [{"name": "X", "value": ""}]
                }]}
            }
        },
        "status": {"readyReplicas": 2}
    }))
    .unwrap();
    let mut dictionary: Arc<[u8]> = Arc::from(&[][..]);
    let kept = Packed::of(&deployment, &mut dictionary).unwrap();
    assert_eq!(kept.version, Some(42));
    assert_eq!(
        &*dictionary,
        serde_json::to_vec(&deployment).unwrap().as_slice()
    );
    let read: Deployment = kept.decode(&dictionary).unwrap();
    assert_eq!(read, deployment);
    let garbage = Packed {
        version: None,
        bytes: Arc::from(&b"not lz4"[..]),
    };
    assert!(garbage.decode::<Deployment>(&dictionary).is_err());

    // The next object of the kind is compressed against the first, and reads back.
    let mut other = serde_json::to_value(&deployment).unwrap();
    other["metadata"]["name"] = "frontend".into();
    other["metadata"]["resourceVersion"] = "43".into();
    other["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/x/frontend:1.2".into();
    let other: Deployment = serde_json::from_value(other).unwrap();
    let first = dictionary.clone();
    let kept = Packed::of(&other, &mut dictionary).unwrap();
    assert!(
        Arc::ptr_eq(&first, &dictionary),
        "the dictionary stays the first object's"
    );
    let read: Deployment = kept.decode(&dictionary).unwrap();
    assert_eq!(read, other);
    let json = serde_json::to_vec(&other).unwrap();
    let alone = lz4_flex::compress_prepend_size(&json).len();
    println!(
        "JSON {} bytes, LZ4 alone {alone}, against the dictionary {}",
        json.len(),
        kept.size()
    );
    assert!(kept.size() * 3 < alone, "the dictionary pays off");
}

#[test]
fn an_object_without_a_namespace_is_listed_and_read_by_its_name() {
    let store = PackedStore::default();
    let mut cluster_scoped = canary("global", 1, 0);
    cluster_scoped.metadata.namespace = None;
    apply(&store, cluster_scoped);
    assert_eq!(
        store.list(),
        [Listed {
            namespace: String::new(),
            name: "global".into(),
            uid: Some("uid-global".into()),
        }]
    );
    assert!(store.find("", "global").is_some());
    assert!(store.find("test", "global").is_none());
}
