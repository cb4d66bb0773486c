#![allow(clippy::unwrap_used)]
//! The same kube-rs requests against an in-process dev cluster and against the API server of
//! `$KUBECONFIG`, compared step by step (normalised: uids, resourceVersions and times left out).
//! Runs only with `DEVCLUSTER_COMPARE_REAL=1`, on a fresh server:
//!
//! ```sh
//! scripts/real-cluster.sh env DEVCLUSTER_COMPARE_REAL=1 cargo test -p devcluster --test compare_real
//! ```

mod common;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Error};
use serde_json::{Value, json};

const NS: &str = "compare";

fn clean(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "selfLink",
                "time",
            ] {
                m.remove(k);
            }
            // Who owns what is compared; the FieldsV1 details are not (see docs/devcluster.md).
            // Nor is the order: it follows the entries' times in whole seconds, so two writes a
            // few milliseconds apart are in one order on the server where a second boundary
            // fell between them and in the other where none did (the order itself is
            // unit-tested in devcluster's apply.rs).
            if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
                for e in entries.iter_mut() {
                    if let Some(e) = e.as_object_mut() {
                        e.remove("fieldsV1");
                    }
                }
                entries.sort_by_key(|e| e.to_string());
            }
            if m.contains_key("deletionTimestamp") {
                m.insert("deletionTimestamp".into(), json!("SET"));
            }
            for c in m.values_mut() {
                clean(c);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(clean),
        _ => {}
    }
}

fn outcome<T: serde::Serialize>(r: Result<T, Error>) -> Value {
    let mut v = match r {
        Ok(o) => json!({"ok": serde_json::to_value(o).unwrap()}),
        Err(Error::Api(s)) => json!({"code": s.code, "reason": s.reason, "message": s.message,
        "causes": s.details.map(|d| {
            let mut c: Vec<Value> = d.causes.iter().map(|c| json!([c.field, c.reason, c.message])).collect();
            c.sort_by_key(|x| x.to_string());
            c
        })}),
        Err(e) => json!({"error": e.to_string()}),
    };
    clean(&mut v);
    v
}

fn canary_api(client: &Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flagger.app", "v1beta1", "Canary"),
        "canaries",
    );
    Api::namespaced_with(client.clone(), NS, &ar)
}

fn canary(name: &str, analysis: Value, extra: Value) -> DynamicObject {
    let mut spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": analysis,
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// The scripted requests; returns (step, normalised outcome) pairs.
async fn scenario(client: Client) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    out.push((
        "namespace",
        outcome(nss.create(&PostParams::default(), &ns).await),
    ));

    // CRDs: Serin's own, then wait until the Canary kind is served.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let text = include_str!("../../../deploy/crds/crds.yaml");
    for doc in text.split("\n---") {
        if doc.trim().is_empty() {
            continue;
        }
        let crd = serde_saphyr::from_str(doc).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let canaries = canary_api(&client);
    let ok = canary(
        "ok",
        json!({"interval": "1m", "threshold": 5, "maxWeight": 50}),
        json!({"bogus": 1}),
    );
    let mut created = None;
    for _ in 0..200 {
        match canaries.create(&PostParams::default(), &ok).await {
            Err(Error::Api(s)) if s.code == 404 => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => {
                created = Some(other);
                break;
            }
        }
    }
    // No fieldValidation from kube-rs: the unknown field is pruned (with a warning).
    out.push(("canary with an unknown field", outcome(created.unwrap())));
    let bad = canary("bad", json!({"interval": "1x", "threshold": 5}), json!({}));
    out.push((
        "invalid canary",
        outcome(canaries.create(&PostParams::default(), &bad).await),
    ));
    let status = json!({"status": {"phase": "Initialized", "failedChecks": 0}});
    out.push((
        "canary status",
        outcome(
            canaries
                .patch_status("ok", &PatchParams::default(), &Patch::Merge(&status))
                .await,
        ),
    ));
    let main = json!({"spec": {"analysis": {"threshold": 6}}, "status": {"phase": "Failed"}});
    out.push((
        "canary spec patch ignores status",
        outcome(
            canaries
                .patch("ok", &PatchParams::default(), &Patch::Merge(&main))
                .await,
        ),
    ));

    // Server-side apply between two managers.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let cfg = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"k": v}});
    out.push((
        "apply by a",
        outcome(
            cms.patch("shared", &PatchParams::apply("a"), &Patch::Apply(cfg("1")))
                .await,
        ),
    ));
    out.push((
        "apply by b conflicts",
        outcome(
            cms.patch("shared", &PatchParams::apply("b"), &Patch::Apply(cfg("2")))
                .await,
        ),
    ));
    out.push((
        "apply by b forced",
        outcome(
            cms.patch(
                "shared",
                &PatchParams::apply("b").force(),
                &Patch::Apply(cfg("2")),
            )
            .await,
        ),
    ));
    out.push((
        "update by c",
        outcome(
            cms.patch(
                "shared",
                &PatchParams {
                    field_manager: Some("c".into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(json!({"data": {"k": "3", "other": "x"}})),
            )
            .await,
        ),
    ));
    out.push((
        "apply by b conflicts with the update",
        outcome(
            cms.patch("shared", &PatchParams::apply("b"), &Patch::Apply(cfg("2")))
                .await,
        ),
    ));

    // Watch events for create, update, delete.
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.clone().unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let fin = serde_json::from_value::<ConfigMap>(
        json!({"metadata": {"name": "w", "finalizers": ["example.com/hold"]}, "data": {"a": "1"}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &fin).await.unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    out.push((
        "delete with a finalizer",
        outcome(
            cms.delete("w", &DeleteParams::default())
                .await
                .map(|e| e.left().map(|o| o.metadata)),
        ),
    ));
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let mut events = Vec::new();
    while events.len() < 4 {
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await
        else {
            break;
        };
        let e = match ev.unwrap() {
            WatchEvent::Added(o) => json!(["ADDED", o.metadata.name, o.data]),
            WatchEvent::Modified(o) => json!([
                "MODIFIED",
                o.metadata.name,
                o.data,
                o.metadata.deletion_timestamp.is_some()
            ]),
            WatchEvent::Deleted(o) => json!(["DELETED", o.metadata.name]),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => json!(["ERROR", e.code]),
        };
        events.push(e);
    }
    out.push(("watch events", json!(events)));
    out.push((
        "get after the finalizer is gone",
        outcome(cms.get("w").await),
    ));
    // Paging.
    // (Label-selected: a real cluster also publishes `kube-root-ca.crt` in every namespace.)
    for name in ["p1", "p2"] {
        let cm = json!({"metadata": {"name": name, "labels": {"page": "yes"}}});
        cms.create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
            .await
            .unwrap();
    }
    let page = cms
        .list(&ListParams::default().labels("page=yes").limit(1))
        .await
        .unwrap();
    out.push((
        "list with limit",
        json!([
            page.items.len(),
            page.metadata.continue_.is_some(),
            page.metadata.remaining_item_count
        ]),
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_requests_answer_as_on_a_real_server() {
    if std::env::var("DEVCLUSTER_COMPARE_REAL").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: set DEVCLUSTER_COMPARE_REAL=1 and KUBECONFIG to a fresh real API server"
        );
        return;
    }
    let config = kube::Config::infer().await.unwrap();
    let real = scenario(Client::try_from(config).unwrap()).await;
    let c = common::cluster().await;
    let dev = scenario(c.client()).await;
    c.shutdown().await;
    let mut differing = Vec::new();
    for ((step, r), (_, d)) in real.iter().zip(&dev) {
        if r != d {
            eprintln!("== {step}\nreal: {r}\ndev:  {d}");
            differing.push(*step);
        }
    }
    assert!(differing.is_empty(), "steps that differ: {differing:?}");
}
