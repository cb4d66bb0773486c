#![allow(clippy::unwrap_used)]
//! The dev cluster driven by the real kube-rs client: CRUD, every patch type, subresources,
//! lists, watches, finalizers, GC, CRDs, auth and bad input.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http;
use common::{cluster, eventually};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    PropagationPolicy, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Error, ResourceExt};
use serde_json::{Value, json};

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "demo"}},
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .unwrap()
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
          "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
            {"name": "app", "image": "app:1", "ports": [{"containerPort": 8080}]},
            {"name": "sidecar", "image": "proxy:1"}]}}}
    }))
    .unwrap()
}

fn api_status(e: Error) -> (u16, String) {
    match e {
        Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_conflicts_and_status_reasons() {
    let c = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let created = api
        .create(&PostParams::default(), &cm("a", &[("k", "v")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let rv1 = created.resource_version().unwrap();
    assert_eq!(
        api_status(
            api.create(&PostParams::default(), &cm("a", &[]))
                .await
                .unwrap_err()
        ),
        (409, "AlreadyExists".into())
    );
    assert!(api.get_opt("missing").await.unwrap().is_none());
    assert_eq!(
        api_status(api.get("missing").await.unwrap_err()),
        (404, "NotFound".into())
    );

    let mut upd = created.clone();
    upd.data = Some(BTreeMap::from([("k".into(), "w".into())]));
    let replaced = api
        .replace("a", &PostParams::default(), &upd)
        .await
        .unwrap();
    assert_ne!(replaced.resource_version().unwrap(), rv1);
    // The same stale object again: optimistic concurrency says no.
    assert_eq!(
        api_status(
            api.replace("a", &PostParams::default(), &upd)
                .await
                .unwrap_err()
        ),
        (409, "Conflict".into())
    );
    // A no-op write keeps the resourceVersion.
    let same = api
        .replace("a", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(same.resource_version(), replaced.resource_version());

    // generateName and dry run.
    let mut g = cm("", &[]);
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let dry = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &g,
        )
        .await
        .unwrap();
    assert!(dry.name_any().starts_with("gen-"));
    assert!(api.get_opt(&dry.name_any()).await.unwrap().is_none());
    let made = api.create(&PostParams::default(), &g).await.unwrap();
    assert!(made.name_any().starts_with("gen-") && made.name_any().len() == 9);

    // Invalid name, missing namespace.
    assert_eq!(
        api_status(
            api.create(&PostParams::default(), &cm("Not_Valid", &[]))
                .await
                .unwrap_err()
        )
        .1,
        "Invalid"
    );
    let other: Api<ConfigMap> = Api::namespaced(c.client(), "nope");
    assert_eq!(
        api_status(
            other
                .create(&PostParams::default(), &cm("a", &[]))
                .await
                .unwrap_err()
        ),
        (404, "NotFound".into())
    );

    let dump = c.dump_yaml().unwrap();
    assert!(
        dump.contains("kind: ConfigMap") && dump.contains("name: a\n"),
        "{dump}"
    );

    let deleted = api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_right());
    assert!(api.get_opt("a").await.unwrap().is_none());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_patch_type() {
    let c = cluster().await;
    let deps: Api<Deployment> = Api::namespaced(c.client(), "default");
    deps.create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    let pp = PatchParams::default();

    // Strategic merge: kubectl set image's body keeps the sidecar.
    let smp = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"name": "app", "image": "app:2"}]}}}});
    let d = deps
        .patch("web", &pp, &Patch::Strategic(&smp))
        .await
        .unwrap();
    let cs = d
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .clone();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].image.as_deref(), Some("app:2"));
    assert_eq!(cs[1].name, "sidecar");
    assert_eq!(d.metadata.generation, Some(2));

    // Merge patch replaces the list (RFC 7386).
    let merge = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:3"}]}}}});
    let d = deps.patch("web", &pp, &Patch::Merge(&merge)).await.unwrap();
    assert_eq!(d.spec.unwrap().template.spec.unwrap().containers.len(), 1);

    // JSON patch, including a failing test op.
    let jp: json_patch_kube::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]))
            .unwrap();
    let d = deps
        .patch("web", &pp, &Patch::Json::<()>(jp))
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(5));
    let bad: json_patch_kube::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 1}]))
            .unwrap();
    assert_eq!(
        api_status(
            deps.patch("web", &pp, &Patch::Json::<()>(bad))
                .await
                .unwrap_err()
        )
        .0,
        422
    );

    // Server-side apply: create, ownership conflict, force.
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1", "b": "2"}});
    let ssa = cms
        .patch("ssa", &PatchParams::apply("alice"), &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(ssa.data.unwrap().len(), 2);
    let bob = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "9"}});
    let err = cms
        .patch("ssa", &PatchParams::apply("bob"), &Patch::Apply(&bob))
        .await
        .unwrap_err();
    assert_eq!(api_status(err), (409, "Conflict".into()));
    let forced = cms
        .patch(
            "ssa",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&bob),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["a"], "9");
    // Alice stops applying "b": it is removed.
    let alice2 =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {}});
    let after = cms
        .patch("ssa", &PatchParams::apply("alice"), &Patch::Apply(&alice2))
        .await
        .unwrap();
    assert_eq!(
        after.data.unwrap(),
        BTreeMap::from([("a".to_string(), "9".to_string())])
    );
    // Apply needs a field manager.
    let no_manager = PatchParams {
        field_manager: None,
        ..PatchParams::default()
    };
    let err = cms
        .patch("ssa", &no_manager, &Patch::Apply(&alice2))
        .await
        .unwrap_err();
    assert_eq!(api_status(err).0, 422);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_scale_and_generation() {
    let c = cluster().await;
    c.simulator().set_enabled(false);
    let deps: Api<Deployment> = Api::namespaced(c.client(), "default");
    let d = deps
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let s = deps
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2, "readyReplicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(1));
    assert_eq!(s.status.unwrap().ready_replicas, Some(1));
    // Labels do not bump generation; annotations do for apps kinds.
    let l = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(l.metadata.generation, Some(1));
    let a = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(a.metadata.generation, Some(2));
    let scale = deps.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    let scaled = deps
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(0));
    let d = deps.get("web").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(0));
    assert_eq!(d.metadata.generation, Some(3));
    // Status written through the main resource is ignored.
    let ignored = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(ignored.status.unwrap().replicas, Some(2));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_selectors_pagination_and_metadata() {
    let c = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    for i in 0..5 {
        let mut m = cm(&format!("cm-{i}"), &[]);
        m.metadata.labels = Some(BTreeMap::from([
            ("idx".into(), i.to_string()),
            ("app".into(), "demo".into()),
        ]));
        api.create(&PostParams::default(), &m).await.unwrap();
    }
    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().unwrap();
    assert_eq!(page.metadata.remaining_item_count, Some(3));
    let rest = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 3);
    assert!(rest.metadata.continue_.is_none());
    let sel = api
        .list(&ListParams::default().labels("idx in (1,3),app=demo"))
        .await
        .unwrap();
    assert_eq!(
        sel.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
        ["cm-1", "cm-3"]
    );
    let byname = api
        .list(&ListParams::default().fields("metadata.name=cm-4"))
        .await
        .unwrap();
    assert_eq!(byname.items.len(), 1);
    let err = api
        .list(&ListParams::default().fields("data.x=1"))
        .await
        .unwrap_err();
    assert_eq!(api_status(err).0, 400);
    let meta = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(meta.items.len(), 5);
    assert!(meta.metadata.resource_version.is_some());
    let one = api.get_metadata("cm-0").await.unwrap();
    assert_eq!(one.metadata.labels.unwrap()["idx"], "0");
    // Cluster-wide list.
    let all: Api<ConfigMap> = Api::all(c.client());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        5
    );
    let n = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("idx!=0"),
        )
        .await
        .unwrap();
    assert!(n.is_left());
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_resume_bookmarks_and_gone() {
    let c = devcluster::DevCluster::start_with(devcluster::Config {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let a = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let rv_a = a.resource_version().unwrap();
    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    // Resume after "a": replays only "b", then a bookmark arrives.
    let wp = WatchParams::default().timeout(5);
    let mut s = api.watch(&wp, &rv_a).await.unwrap().boxed();
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "b"),
        other => panic!("unexpected {other:?}"),
    }
    api.delete("a", &DeleteParams::default()).await.unwrap();
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Deleted(o) => assert_eq!(o.name_any(), "a"),
        other => panic!("unexpected {other:?}"),
    }
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => assert!(!b.metadata.resource_version.is_empty()),
        other => panic!("unexpected {other:?}"),
    }
    c.compact();
    let mut old = api.watch(&wp, &rv_a).await.unwrap().boxed();
    match old.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("unexpected {other:?}"),
    }
    // A label selector turns a label change into ADDED/DELETED for the watcher.
    let mut sel = api
        .watch(
            &WatchParams::default().labels("tier=fe").timeout(5),
            &c.resource_version().to_string(),
        )
        .await
        .unwrap()
        .boxed();
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "fe"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        sel.try_next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": null}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        sel.try_next().await.unwrap().unwrap(),
        WatchEvent::Deleted(_)
    ));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_and_garbage_collection() {
    let c = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let mut f = cm("fin", &[]);
    f.metadata.finalizers = Some(vec!["serin.dev/test".into()]);
    api.create(&PostParams::default(), &f).await.unwrap();
    let pending = api.delete("fin", &DeleteParams::default()).await.unwrap();
    let obj = pending.left().unwrap();
    assert!(obj.metadata.deletion_timestamp.is_some());
    let err = api
        .patch(
            "fin",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["serin.dev/test", "x/y"]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_status(err), (422, "Invalid".into()));
    api.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("fin").await.unwrap().is_none());

    // Owner cascade (background), then orphan.
    let owner = api
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .unwrap();
    let mut child = cm("child", &[]);
    child.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.uid().unwrap(),
            ..Default::default()
        },
    ]);
    api.create(&PostParams::default(), &child).await.unwrap();
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("child collected", 5, || async {
        api.get_opt("child").await.unwrap().is_none().then_some(())
    })
    .await;

    let owner = api
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .unwrap();
    child.metadata.owner_references.as_mut().unwrap()[0].uid = owner.uid().unwrap();
    api.create(&PostParams::default(), &child).await.unwrap();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    api.delete("owner", &dp).await.unwrap();
    eventually("owner gone", 5, || async {
        api.get_opt("owner").await.unwrap().is_none().then_some(())
    })
    .await;
    let kept = api.get("child").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    // Namespace deletion terminates and empties it.
    let nss: Api<Namespace> = Api::all(c.client());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).unwrap(),
    )
    .await
    .unwrap();
    let tmp: Api<ConfigMap> = Api::namespaced(c.client(), "tmp");
    tmp.create(&PostParams::default(), &cm("x", &[]))
        .await
        .unwrap();
    nss.delete("tmp", &DeleteParams::default()).await.unwrap();
    eventually("namespace gone", 5, || async {
        nss.get_opt("tmp").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(tmp.get_opt("x").await.unwrap().is_none());
    c.shutdown().await;
}

async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    ct: &str,
    body: &str,
) -> Result<String, Error> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body.as_bytes().to_vec())
        .unwrap();
    client.request_text(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_from_yaml_is_served_with_printer_columns() {
    let c = cluster().await;
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(include_str!("fixtures/canary-crd.yaml")).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(c.client());
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conds = created.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let gvk = GroupVersionKind::gvk("flagger.app", "v1beta1", "Canary");
    let (ar, caps) = kube::discovery::pinned_kind(&c.client(), &gvk)
        .await
        .unwrap();
    assert_eq!(ar.plural, "canaries");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let api: Api<DynamicObject> =
        Api::namespaced_with(c.client(), "default", &ApiResource::from_gvk(&gvk));
    let obj: DynamicObject = serde_json::from_value(json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo"}, "spec": {"targetRef": {"name": "podinfo"}}, "status": {"phase": "x"}}))
    .unwrap();
    let made = api.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(made.metadata.generation, Some(1));
    assert!(
        made.data.get("status").is_none(),
        "status is dropped on create"
    );
    let st = api
        .patch_status(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Initialized", "canaryWeight": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(st.metadata.generation, Some(1));
    let spec = api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"x": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(spec.metadata.generation, Some(2));
    // Strategic merge is not for custom resources.
    let err = api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_status(err).0, 415);

    // Table with the CRD's printer columns.
    let req = http::Request::builder()
        .uri("/apis/flagger.app/v1beta1/namespaces/default/canaries")
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .unwrap();
    let table: Value = serde_json::from_str(&c.client().request_text(req).await.unwrap()).unwrap();
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Status",
            "Weight",
            "FailedChecks",
            "LastTransitionTime"
        ]
    );
    assert_eq!(table["rows"][0]["cells"][1], "Initialized");
    assert_eq!(table["rows"][0]["cells"][2], 0);

    // Wrong scope, unknown resource, malformed body.
    let e = raw(
        &c.client(),
        "GET",
        "/apis/apiextensions.k8s.io/v1/namespaces/default/customresourcedefinitions",
        "application/json",
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(api_status(e).0, 404);
    let e = raw(
        &c.client(),
        "GET",
        "/apis/flagger.app/v1beta1/namespaces/default/nothings",
        "application/json",
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(api_status(e), (404, "NotFound".into()));
    let e = raw(
        &c.client(),
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        "{not json",
    )
    .await
    .unwrap_err();
    assert_eq!(api_status(e), (400, "BadRequest".into()));
    let e = raw(
        &c.client(),
        "POST",
        "/api/v1/configmaps",
        "application/json",
        "{}",
    )
    .await
    .unwrap_err();
    assert_eq!(api_status(e), (405, "MethodNotAllowed".into()));

    // Removing the CRD removes its objects and stops serving it.
    crds.delete("canaries.flagger.app", &DeleteParams::default())
        .await
        .unwrap();
    let e = api.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(api_status(e).0, 404);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_and_two_clusters_are_independent() {
    let a = cluster().await;
    let b = cluster().await;
    assert_ne!(a.url(), b.url());
    let mut anon_cfg = kube::Config::new(a.url().parse().unwrap());
    anon_cfg.root_cert = Some(vec![a.ca_der().to_vec()]);
    let anonymous = Client::try_from(anon_cfg).unwrap();
    let err = Api::<ConfigMap>::namespaced(anonymous, "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_status(err), (401, "Unauthorized".into()));
    let wrong =
        kube::config::Kubeconfig::from_yaml(&a.kubeconfig().replace(a.token(), b.token())).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(wrong, &Default::default())
        .await
        .unwrap();
    let err = Api::<ConfigMap>::namespaced(Client::try_from(cfg).unwrap(), "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_status(err).0, 401);
    Api::<ConfigMap>::namespaced(a.client(), "default")
        .create(&PostParams::default(), &cm("only-a", &[]))
        .await
        .unwrap();
    assert!(
        Api::<ConfigMap>::namespaced(b.client(), "default")
            .get_opt("only-a")
            .await
            .unwrap()
            .is_none()
    );
    // The written kubeconfig works for kube-rs.
    let dir = std::env::temp_dir().join(format!("devcluster-kc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    a.write_kubeconfig(&path).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let v = Client::try_from(cfg)
        .unwrap()
        .apiserver_version()
        .await
        .unwrap();
    assert_eq!(v.major, "1");
    std::fs::remove_dir_all(&dir).unwrap();
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_records_requests_when_enabled() {
    let c = cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(c.client());
    api.create(&PostParams::default(), &cm("before", &[]))
        .await
        .unwrap();
    assert!(c.requests().entries().is_empty(), "off by default");
    c.requests().set_enabled(true);
    api.create(&PostParams::default(), &cm("logged", &[("a", "1")]))
        .await
        .unwrap();
    api.get("logged").await.unwrap();
    api.patch(
        "logged",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    let all = c.requests().entries();
    let verbs: Vec<&str> = all.iter().map(|r| r.verb.as_str()).collect();
    assert_eq!(verbs, ["create", "get", "patch"]);
    let writes = c.requests().writes();
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[0].method, "POST");
    assert_eq!(writes[0].path, "/api/v1/namespaces/default/configmaps");
    assert_eq!(writes[0].body["data"], json!({"a": "1"}));
    assert_eq!(writes[1].content_type, "application/merge-patch+json");
    assert_eq!(writes[1].body, json!({"data": {"a": "2"}}));
    assert!(writes[1].header("authorization").is_some());
    c.requests().clear();
    assert!(c.requests().entries().is_empty());
    // Counted only: the requests without their bodies.
    c.requests().set_bodies(false);
    api.patch(
        "logged",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "3"}})),
    )
    .await
    .unwrap();
    let counted = c.requests().take();
    assert_eq!(counted.len(), 1);
    assert_eq!(counted[0].verb, "patch");
    assert_eq!(counted[0].body, Value::Null);
    c.requests().set_bodies(true);
    c.requests().set_enabled(false);
    api.delete("logged", &DeleteParams::default())
        .await
        .unwrap();
    assert!(c.requests().entries().is_empty());
    c.shutdown().await;
}

/// A Service gets what a real server allocates and defaults, and an update that leaves the
/// cluster IP out keeps it.
#[tokio::test]
async fn services_get_cluster_ips_and_keep_them() {
    let c = cluster().await;
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::default_namespaced(c.client());
    let svc = |name: &str, headless: bool| {
        let mut spec = serde_json::json!({"selector": {"app": name}, "ports": [{"port": 80}]});
        if headless {
            spec["clusterIP"] = "None".into();
        }
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec}))
            .unwrap()
    };
    let a = svcs
        .create(&PostParams::default(), &svc("a", false))
        .await
        .unwrap();
    let b = svcs
        .create(&PostParams::default(), &svc("b", false))
        .await
        .unwrap();
    let h = svcs
        .create(&PostParams::default(), &svc("h", true))
        .await
        .unwrap();
    let spec = |s: &k8s_openapi::api::core::v1::Service| s.spec.clone().unwrap();
    assert_eq!(spec(&a).cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(spec(&b).cluster_ip.as_deref(), Some("10.96.0.11"));
    assert_eq!(spec(&h).cluster_ips, Some(vec!["None".to_string()]));
    assert_eq!(spec(&a).internal_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec(&a).ip_families, Some(vec!["IPv4".to_string()]));
    assert_eq!(spec(&a).ip_family_policy.as_deref(), Some("SingleStack"));
    let mut replaced = svc("a", false);
    replaced.metadata.resource_version = a.metadata.resource_version.clone();
    let a2 = svcs
        .replace("a", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(spec(&a2).cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(spec(&a2).cluster_ips, Some(vec!["10.96.0.10".to_string()]));
    c.shutdown().await;
}
