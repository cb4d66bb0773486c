#![allow(clippy::unwrap_used)]
//! kube-runtime against the dev cluster: watcher (both initial-list strategies), reflector,
//! a Controller with `owns()`, the events Recorder; plus the simulator and fault hooks.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{cluster, eventually};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Secret};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
    )
    .unwrap()
}

async fn watcher_sequence(cfg: watcher::Config) {
    let c = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    api.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), cfg).boxed();
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::Init => seen.push("Init".to_string()),
            watcher::Event::InitApply(o) => seen.push(format!("InitApply {}", o.name_any())),
            watcher::Event::InitDone => {
                seen.push("InitDone".into());
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["Init", "InitApply before", "InitDone"]);
    api.create(&PostParams::default(), &cm("after"))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, watcher::Event::Apply(ref o) if o.name_any() == "after"),
        "{ev:?}"
    );
    api.delete("after", &DeleteParams::default()).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, watcher::Event::Delete(ref o) if o.name_any() == "after"),
        "{ev:?}"
    );
    // Dropped watch streams are resumed by the watcher without losing events.
    c.faults().drop_watches();
    tokio::time::sleep(Duration::from_millis(50)).await;
    api.create(&PostParams::default(), &cm("resumed"))
        .await
        .unwrap();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) = ev
            && o.name_any() == "resumed"
        {
            break;
        }
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_list_watch() {
    watcher_sequence(watcher::Config::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_streaming_list() {
    watcher_sequence(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_gone() {
    let c = devcluster::DevCluster::start_with(devcluster::Config {
        max_watch_duration: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let (reader, writer) = reflector::store();
    let rf = reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move { rf.for_each(|_| async {}).await });
    api.create(&PostParams::default(), &cm("one"))
        .await
        .unwrap();
    eventually("reflector sees one", 5, || async {
        (reader.state().len() == 1).then_some(())
    })
    .await;
    // Watches are cut every 300 ms; after a compaction the resume gets 410 and the watcher relists.
    c.compact();
    api.create(&PostParams::default(), &cm("two"))
        .await
        .unwrap();
    eventually("reflector sees two", 10, || async {
        (reader.state().len() == 2).then_some(())
    })
    .await;
    api.delete("one", &DeleteParams::default()).await.unwrap();
    eventually("reflector drops one", 10, || async {
        (reader
            .state()
            .iter()
            .map(|o| o.name_any())
            .collect::<Vec<_>>()
            == ["two"])
        .then_some(())
    })
    .await;
    task.abort();
    c.shutdown().await;
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_with_owns_converges_and_repairs() {
    let c = cluster().await;
    let client = c.client();
    let parents: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let children: Api<Secret> = Api::namespaced(client.clone(), "default");
    let count = Arc::new(AtomicUsize::new(0));
    let ctx = Arc::new((client.clone(), count.clone()));
    async fn reconcile(
        p: Arc<ConfigMap>,
        ctx: Arc<(kube::Client, Arc<AtomicUsize>)>,
    ) -> Result<Action, ReconcileError> {
        ctx.1.fetch_add(1, Ordering::SeqCst);
        let secrets: Api<Secret> = Api::namespaced(ctx.0.clone(), "default");
        let oref = p.controller_owner_ref(&()).unwrap();
        let child = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{}-child", p.name_any()), "ownerReferences": [oref]},
            "stringData": {"owner": p.name_any()}});
        secrets
            .patch(
                &format!("{}-child", p.name_any()),
                &PatchParams::apply("test-ctrl").force(),
                &Patch::Apply(&child),
            )
            .await?;
        Ok(Action::await_change())
    }
    fn error_policy(
        _: Arc<ConfigMap>,
        _: &ReconcileError,
        _: Arc<(kube::Client, Arc<AtomicUsize>)>,
    ) -> Action {
        Action::requeue(Duration::from_millis(100))
    }
    let ctrl = Controller::new(parents.clone(), watcher::Config::default())
        .owns(children.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let task = tokio::spawn(ctrl);
    parents
        .create(&PostParams::default(), &cm("p"))
        .await
        .unwrap();
    let first = eventually("child created", 10, || async {
        children.get_opt("p-child").await.unwrap()
    })
    .await;
    // Converges: the re-applied identical child is a no-op and triggers nothing more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = count.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        settled,
        "controller keeps reconciling"
    );
    assert!(settled <= 3, "too many reconciles: {settled}");
    // Deleting the owned child triggers a reconcile that recreates it.
    children
        .delete("p-child", &DeleteParams::default())
        .await
        .unwrap();
    let again = eventually("child recreated", 10, || async {
        children.get_opt("p-child").await.unwrap()
    })
    .await;
    assert_ne!(again.uid(), first.uid());
    // Deleting the parent garbage-collects the child.
    parents.delete("p", &DeleteParams::default()).await.unwrap();
    eventually("child collected", 10, || async {
        children
            .get_opt("p-child")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    task.abort();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorder_creates_and_updates_series() {
    let c = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let obj = api
        .create(&PostParams::default(), &cm("subject"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        c.client(),
        Reporter {
            controller: "serin-test".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some("hello".into()),
        action: "Sync".into(),
        secondary: None,
    };
    recorder.publish(&ev, &obj.object_ref(&())).await.unwrap();
    recorder.publish(&ev, &obj.object_ref(&())).await.unwrap();
    let events: Api<K8sEvent> = Api::namespaced(c.client(), "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Synced"));
    assert_eq!(e.series.as_ref().unwrap().count, 2);
    c.shutdown().await;
}

/// The next watch event of a stream, as (type, object), within 5 s.
async fn next_watch<K: Clone + std::fmt::Debug>(
    s: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> (&'static str, K) {
    let ev = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("watch event in time")
        .expect("open stream")
        .unwrap();
    match ev {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        other => panic!("unexpected watch event {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_events_are_core_events_and_back() {
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let subject = cms
        .create(&PostParams::default(), &cm("subject"))
        .await
        .unwrap();
    let other = cms
        .create(&PostParams::default(), &cm("other"))
        .await
        .unwrap();
    let core: Api<CoreEvent> = Api::namespaced(c.client(), "default");
    let v1: Api<K8sEvent> = Api::namespaced(c.client(), "default");
    let rv = c.resource_version().to_string();
    let mut core_watch = core
        .watch(
            &WatchParams::default().fields("involvedObject.name=subject"),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    let mut v1_watch = v1
        .watch(
            &WatchParams::default().fields("regarding.name=subject"),
            &rv,
        )
        .await
        .unwrap()
        .boxed();

    let recorder = Recorder::new(
        c.client(),
        Reporter {
            controller: "serin-test".into(),
            instance: Some("serin-test-0".into()),
        },
    );
    let warning = Event {
        type_: EventType::Warning,
        reason: "Halted".into(),
        note: Some("canary analysis failed".into()),
        action: "Analyse".into(),
        secondary: None,
    };
    recorder
        .publish(&warning, &subject.object_ref(&()))
        .await
        .unwrap();
    let normal = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some("unrelated".into()),
        action: "Sync".into(),
        secondary: None,
    };
    recorder
        .publish(&normal, &other.object_ref(&()))
        .await
        .unwrap();

    // The core view, selected as `kubectl describe` selects.
    let uid = subject.uid().unwrap();
    let selector = format!(
        "involvedObject.kind=ConfigMap,involvedObject.name=subject,involvedObject.namespace=default,involvedObject.uid={uid}"
    );
    let listed = core
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1, "{:?}", listed.items);
    let e = &listed.items[0];
    assert_eq!(e.message.as_deref(), Some("canary analysis failed"));
    assert_eq!(e.reason.as_deref(), Some("Halted"));
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.reporting_component.as_deref(), Some("serin-test"));
    assert_eq!(e.reporting_instance.as_deref(), Some("serin-test-0"));
    assert_eq!(e.action.as_deref(), Some("Analyse"));
    assert!(e.event_time.is_some());
    assert_eq!(e.involved_object.uid.as_deref(), Some(uid.as_str()));
    for (fields, want) in [
        ("reason=Halted", 1),
        ("type=Warning", 1),
        ("type=Normal", 1),
        ("reason=Halted,type=Normal", 0),
        ("reportingComponent=serin-test", 2),
        ("involvedObject.name=nothing", 0),
    ] {
        let n = core
            .list(&ListParams::default().fields(fields))
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(n, want, "core {fields}");
    }
    for (fields, want) in [
        ("regarding.name=subject", 1),
        ("regarding.uid=nothing", 0),
        ("reason=Synced", 1),
        ("type=Warning", 1),
        ("reportingController=serin-test", 2),
    ] {
        let n = v1
            .list(&ListParams::default().fields(fields))
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(n, want, "events.k8s.io {fields}");
    }
    // One object, two views, in both watches.
    let (t, ce) = next_watch(&mut core_watch).await;
    assert_eq!(t, "ADDED");
    assert_eq!(ce.message.as_deref(), Some("canary analysis failed"));
    let (t, ve) = next_watch(&mut v1_watch).await;
    assert_eq!(t, "ADDED");
    assert_eq!(ve.note.as_deref(), Some("canary analysis failed"));
    assert_eq!(ve.metadata.name, ce.metadata.name);
    assert_eq!(ve.metadata.resource_version, ce.metadata.resource_version);

    // The series update (a merge patch through events.k8s.io) reaches the core view.
    recorder
        .publish(&warning, &subject.object_ref(&()))
        .await
        .unwrap();
    let (t, ce) = next_watch(&mut core_watch).await;
    assert_eq!(t, "MODIFIED");
    assert_eq!(ce.series.as_ref().unwrap().count, Some(2));
    let (t, ve) = next_watch(&mut v1_watch).await;
    assert_eq!(t, "MODIFIED");
    assert_eq!(ve.series.as_ref().unwrap().count, 2);
    assert_eq!(
        v1.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );

    // A core event (as client-go's legacy recorder writes it) in the events.k8s.io view.
    let legacy: CoreEvent = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "subject.legacy"},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "subject",
            "namespace": "default", "uid": uid},
        "reason": "Scaled", "message": "scaled up", "type": "Normal",
        "source": {"component": "old-controller"}, "count": 4,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z",
    }))
    .unwrap();
    core.create(&PostParams::default(), &legacy).await.unwrap();
    let got = v1.get("subject.legacy").await.unwrap();
    assert_eq!(got.note.as_deref(), Some("scaled up"));
    assert_eq!(got.deprecated_count, Some(4));
    assert_eq!(
        got.deprecated_source.as_ref().unwrap().component.as_deref(),
        Some("old-controller")
    );
    assert!(got.deprecated_last_timestamp.is_some());
    assert_eq!(
        got.regarding.as_ref().unwrap().name.as_deref(),
        Some("subject")
    );
    let (t, ve) = next_watch(&mut v1_watch).await;
    assert_eq!(
        (t, ve.metadata.name.as_deref()),
        ("ADDED", Some("subject.legacy"))
    );
    let (t, _) = next_watch(&mut core_watch).await;
    assert_eq!(t, "ADDED");
    let scaled = v1
        .list(&ListParams::default().fields("regarding.name=subject,reason=Scaled"))
        .await
        .unwrap();
    assert_eq!(scaled.items.len(), 1);
    assert_eq!(
        core.list(&ListParams::default().fields("source=old-controller"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Deleting through one view deletes the object.
    v1.delete("subject.legacy", &DeleteParams::default())
        .await
        .unwrap();
    assert!(core.get_opt("subject.legacy").await.unwrap().is_none());
    let (t, ce) = next_watch(&mut core_watch).await;
    assert_eq!(
        (t, ce.metadata.name.as_deref()),
        ("DELETED", Some("subject.legacy"))
    );
    c.shutdown().await;
}

fn deploy(name: &str, annotations: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"replicas": 2, "progressDeadlineSeconds": 1, "selector": {"matchLabels": {"app": name}},
          "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}}))
    .unwrap()
}

fn cond(d: &Deployment, t: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_rollouts_and_scripts() {
    let c = cluster().await;
    let api: Api<Deployment> = Api::namespaced(c.client(), "default");
    let t0 = std::time::Instant::now();
    api.create(&PostParams::default(), &deploy("web", json!({})))
        .await
        .unwrap();
    let ready = eventually("web ready", 5, || async {
        let d = api.get("web").await.unwrap();
        (d.status.as_ref()?.available_replicas == Some(2)).then_some(d)
    })
    .await;
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "became ready before the delay"
    );
    assert_eq!(ready.status.as_ref().unwrap().observed_generation, Some(1));
    assert_eq!(
        cond(&ready, "Progressing").unwrap().1,
        "NewReplicaSetAvailable"
    );
    // A new template takes the delay again.
    let img = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(&img))
        .await
        .unwrap();
    let rolling = eventually("rollout observed", 5, || async {
        let d = api.get("web").await.unwrap();
        (d.status.as_ref()?.observed_generation == Some(2)).then_some(d)
    })
    .await;
    assert_ne!(rolling.status.as_ref().unwrap().available_replicas, Some(2));
    eventually("rollout done", 5, || async {
        let d = api.get("web").await.unwrap();
        (d.status.as_ref()?.available_replicas == Some(2)).then_some(())
    })
    .await;
    // Scale to zero.
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    eventually("scaled to zero", 5, || async {
        let d = api.get("web").await.unwrap();
        let s = d.status.as_ref()?;
        (s.observed_generation == Some(3)
            && s.replicas.unwrap_or(0) == 0
            && s.ready_replicas.unwrap_or(0) == 0)
            .then_some(())
    })
    .await;
    // Never ready via annotation: progress deadline exceeded after 1 s.
    api.create(
        &PostParams::default(),
        &deploy(
            "stuck",
            json!({devcluster::simulator::ANNOTATION_BEHAVIOUR: "never-ready"}),
        ),
    )
    .await
    .unwrap();
    eventually("deadline exceeded", 5, || async {
        let d = api.get("stuck").await.unwrap();
        (cond(&d, "Progressing")? == ("False".into(), "ProgressDeadlineExceeded".into()))
            .then_some(())
    })
    .await;
    // Ready then unready via the test API.
    c.simulator().script(
        "Deployment",
        "default",
        "flaky",
        devcluster::Script {
            ready_delay: Some(Duration::from_millis(50)),
            behaviour: devcluster::Behaviour::ReadyThenUnready {
                unready_after: Duration::from_millis(300),
            },
        },
    );
    api.create(&PostParams::default(), &deploy("flaky", json!({})))
        .await
        .unwrap();
    eventually("flaky ready", 5, || async {
        (api.get("flaky").await.unwrap().status?.ready_replicas == Some(2)).then_some(())
    })
    .await;
    eventually("flaky unready", 5, || async {
        (api.get("flaky")
            .await
            .unwrap()
            .status?
            .ready_replicas
            .unwrap_or(0)
            == 0)
            .then_some(())
    })
    .await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_hooks() {
    let c = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    api.create(&PostParams::default(), &cm("x")).await.unwrap();
    // kube-rs retries 503 on its own, so the exact share is checked with 500s.
    c.faults().set_error_share("get", 500, 0.5).unwrap();
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(match api.get("x").await {
            Ok(_) => 200,
            Err(kube::Error::Api(s)) => s.code,
            Err(e) => panic!("{e}"),
        });
    }
    assert_eq!(codes, [200, 500, 200, 500]);
    c.faults().clear();
    c.faults().set_error_share("get", 503, 0.5).unwrap();
    api.get("x").await.unwrap();
    api.get("x").await.unwrap();
    c.faults().set_error_share("patch", 409, 1.0).unwrap();
    let err = api
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "b"}})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.is_conflict()));
    c.faults().clear();
    c.faults().set_latency(Duration::from_millis(150));
    let t = std::time::Instant::now();
    api.get("x").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    c.shutdown().await;
}
