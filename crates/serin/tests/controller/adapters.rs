//! The kube adapters against the dev cluster (or the real control plane): status writes by
//! server-side apply, one request each; the finalizer's conditional patch; Kubernetes Event
//! aggregation.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::request::PauseStatus;
use serin::api::{CanaryPhase, CanaryStatus};
use serin::controller::adapters::status::apply_body;
use serin::controller::adapters::{KubeEventSink, KubeStatusStore};
use serin::controller::ports::{EventKind, EventSink, StatusStore};
use serin::k8s::error::Category;

use crate::support::*;

/// The requests the dev cluster answered since the last call (`None` on a real cluster, which
/// keeps no such log): verb, path and query.
fn requests(cluster: &Cluster) -> Option<Vec<(String, String, String)>> {
    if real_cluster().is_some() {
        return None;
    }
    let log = cluster.dev().requests();
    let taken = log
        .take()
        .into_iter()
        .map(|r| (r.verb, r.path, r.query))
        .collect();
    log.set_enabled(true);
    Some(taken)
}

/// Asserts that the requests since the last call were exactly one `verb` of the Canary's
/// status subresource (on the dev cluster; a real cluster keeps no request log).
fn assert_one_status_write(cluster: &Cluster, verb: &str) {
    let Some(seen) = requests(cluster) else {
        return;
    };
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (v, path, query) = &seen[0];
    assert_eq!(v, verb, "{seen:?}");
    assert_eq!(
        path,
        &format!("/apis/flagger.app/v1beta1/namespaces/{NS}/canaries/podinfo/status")
    );
    assert!(query.contains("fieldManager=serin"), "{query}");
    if verb == "patch" {
        assert!(query.contains("force=true"), "{query}");
    }
}

fn status_of(phase: CanaryPhase, weight: i32) -> CanaryStatus {
    CanaryStatus {
        phase,
        canary_weight: weight,
        ..CanaryStatus::default()
    }
}

fn configs(keys: &[&str]) -> Option<BTreeMap<String, String>> {
    Some(
        keys.iter()
            .map(|k| (k.to_string(), "1".to_string()))
            .collect(),
    )
}

/// Each status write is one server-side apply (manager `serin`, forced) of the status
/// subresource, with no read before it; a status equal to the one read is not written; the
/// fields a write leaves out are gone from the stored status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_are_one_apply_that_drops_what_serin_stops_setting() {
    guarded(async {
        let cluster = Cluster::start().await;
        let hooks = Hooks::start().await;
        cluster
            .create_canary(podinfo_canary(&hooks, json!({})))
            .await;
        let store = KubeStatusStore::new(cluster.client.clone());
        let canary = store.get(NS, "podinfo").await.unwrap().unwrap();
        requests(&cluster);

        let held = Time(Timestamp::from_second(1_800_000_000).unwrap());
        let first = CanaryStatus {
            tracked_configs: configs(&["configmap/a", "secret/b"]),
            last_applied_spec: Some("abc".into()),
            comparison_held_since: Some(held.clone()),
            paused: Some(PauseStatus {
                by: "jane".into(),
                since: held,
            }),
            ..status_of(CanaryPhase::Progressing, 10)
        };
        let written = store.write_status(&canary, &first).await.unwrap().unwrap();
        assert_one_status_write(&cluster, "patch");
        assert_eq!(written.status.as_ref(), Some(&first));
        assert_eq!(
            cluster.canary("podinfo").await.unwrap().status,
            Some(first.clone())
        );
        let entry = written
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .find(|e| e.manager.as_deref() == Some("serin"))
            .unwrap();
        assert_eq!(entry.operation.as_deref(), Some("Apply"));
        assert_eq!(entry.subresource.as_deref(), Some("status"));

        // The same status again: nothing to write, no request.
        requests(&cluster);
        assert!(
            store
                .write_status(&written, &first)
                .await
                .unwrap()
                .is_none()
        );
        if let Some(seen) = requests(&cluster) {
            assert!(seen.is_empty(), "{seen:?}");
        }

        // Fields (a scalar, a struct) and a tracked config left out are gone.
        requests(&cluster);
        let second = CanaryStatus {
            tracked_configs: configs(&["configmap/a"]),
            last_applied_spec: Some("abc".into()),
            ..status_of(CanaryPhase::Progressing, 20)
        };
        let written = store
            .write_status(&written, &second)
            .await
            .unwrap()
            .unwrap();
        assert_one_status_write(&cluster, "patch");
        let live = cluster.canary("podinfo").await.unwrap();
        assert_eq!(live.status, Some(second));
        assert_eq!(
            written.metadata.resource_version,
            live.metadata.resource_version
        );
        // A status write keeps the spec as it is.
        assert_eq!(live.spec, canary.spec);
        cluster.shutdown().await;
    })
    .await;
}

/// A status last written by an update of another field manager (an older Serin's replace,
/// Flagger's controller): the first write that drops one of its fields replaces the status,
/// then the writes are applies again, and nothing Serin stopped setting stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_written_by_an_update_keeps_no_stale_field() {
    guarded(async {
        let cluster = Cluster::start().await;
        let hooks = Hooks::start().await;
        cluster
            .create_canary(podinfo_canary(&hooks, json!({})))
            .await;
        let mut control = podinfo_canary(&hooks, json!({}));
        control["metadata"]["name"] = json!("control");
        cluster.create_canary(control).await;
        let old = CanaryStatus {
            iterations: 2,
            tracked_configs: configs(&["configmap/a", "secret/b"]),
            last_tracked_revision: Some("old".into()),
            ..status_of(CanaryPhase::Progressing, 30)
        };
        let params = PostParams {
            field_manager: Some("flagger".into()),
            ..PostParams::default()
        };
        for name in ["podinfo", "control"] {
            let mut by_update = cluster.canary(name).await.unwrap();
            by_update.status = Some(old.clone());
            cluster
                .canaries()
                .replace_status(name, &params, &by_update)
                .await
                .unwrap();
        }
        // The control: an apply alone leaves the fields the update owns.
        let dropping = CanaryStatus {
            iterations: 2,
            ..status_of(CanaryPhase::Progressing, 40)
        };
        let body = apply_body(NS, "control", &dropping);
        cluster
            .canaries()
            .patch_status(
                "control",
                &PatchParams::apply("serin").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap();
        let left = cluster.canary("control").await.unwrap().status.unwrap();
        assert_eq!(left.canary_weight, 40);
        assert_eq!(left.last_tracked_revision.as_deref(), Some("old"));
        assert_eq!(left.tracked_configs, old.tracked_configs);

        let store = KubeStatusStore::new(cluster.client.clone());
        let canary = store.get(NS, "podinfo").await.unwrap().unwrap();
        requests(&cluster);

        // Drops lastTrackedRevision and a tracked config, both owned by `flagger`: a replace.
        let steps = [
            (
                CanaryStatus {
                    iterations: 2,
                    tracked_configs: configs(&["configmap/a"]),
                    ..status_of(CanaryPhase::Progressing, 40)
                },
                "update",
            ),
            // Drops the tracked configs, still owned by `flagger` (the replace kept them).
            (
                CanaryStatus {
                    iterations: 2,
                    ..status_of(CanaryPhase::Promoting, 40)
                },
                "update",
            ),
            // Drops nothing: an apply.
            (
                CanaryStatus {
                    last_applied_spec: Some("abc".into()),
                    ..status_of(CanaryPhase::Finalising, 0)
                },
                "patch",
            ),
            // Drops what only the apply set: an apply again.
            (status_of(CanaryPhase::Succeeded, 0), "patch"),
        ];
        let mut current = canary;
        for (status, verb) in steps {
            requests(&cluster);
            current = store
                .write_status(&current, &status)
                .await
                .unwrap()
                .unwrap();
            assert_one_status_write(&cluster, verb);
            let live = cluster.canary("podinfo").await.unwrap().status.unwrap();
            assert_eq!(live, status);
        }
        cluster.shutdown().await;
    })
    .await;
}

/// The finalizer is patched from the Canary as read, on the condition of its resourceVersion:
/// one request, and a Canary changed since the read is a conflict, returned, not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizer_writes_are_one_conditional_patch() {
    guarded(async {
        let cluster = Cluster::start().await;
        let hooks = Hooks::start().await;
        cluster
            .create_canary(podinfo_canary(&hooks, json!({})))
            .await;
        let store = KubeStatusStore::new(cluster.client.clone());
        let canary = store.get(NS, "podinfo").await.unwrap().unwrap();
        requests(&cluster);

        let c = store.set_finalizer(&canary, true).await.unwrap().unwrap();
        if let Some(seen) = requests(&cluster) {
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert_eq!(seen[0].0, "patch");
        }
        // The object as stored is returned: its resourceVersion conditions the next write.
        let live = cluster.canary("podinfo").await.unwrap();
        assert_eq!(c.metadata.resource_version, live.metadata.resource_version);
        assert_eq!(
            live.metadata.finalizers.clone().unwrap_or_default(),
            ["finalizer.flagger.app"]
        );
        // Already there: nothing to write.
        requests(&cluster);
        assert!(store.set_finalizer(&c, true).await.unwrap().is_none());
        if let Some(seen) = requests(&cluster) {
            assert!(seen.is_empty(), "{seen:?}");
        }

        // Someone writes the Canary after `c` was read: removing the finalizer from `c` is a
        // conflict.
        store
            .write_status(&c, &status_of(CanaryPhase::Initializing, 0))
            .await
            .unwrap();
        requests(&cluster);
        let err = store.set_finalizer(&c, false).await.unwrap_err();
        assert_eq!(err.category(), Category::Conflict);
        assert!(
            err.to_string().starts_with(&format!(
                "canary podinfo.{NS} finalizer update error: the API server answered HTTP 409 Conflict"
            )),
            "{err}"
        );
        if let Some(seen) = requests(&cluster) {
            assert_eq!(seen.len(), 1, "one attempt, no retry: {seen:?}");
        }
        let c = cluster.canary("podinfo").await.unwrap();
        assert_eq!(
            c.metadata.finalizers.clone().unwrap_or_default(),
            ["finalizer.flagger.app"]
        );
        store.set_finalizer(&c, false).await.unwrap();
        let c = cluster.canary("podinfo").await.unwrap();
        assert!(c.metadata.finalizers.unwrap_or_default().is_empty());
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_are_aggregated() {
    guarded(async {
        let cluster = Cluster::start().await;
        let hooks = Hooks::start().await;
        cluster
            .create_canary(podinfo_canary(&hooks, json!({})))
            .await;
        let canary = cluster.canary("podinfo").await.unwrap();
        let sink = KubeEventSink::new(cluster.client.clone(), "test-host".into());
        for _ in 0..3 {
            sink.publish(&canary, EventKind::Warning, "waiting").await;
        }
        sink.publish(&canary, EventKind::Normal, "waiting").await;
        sink.publish(&canary, EventKind::Normal, "done").await;
        let events: Vec<Event> = Api::<Event>::namespaced(cluster.client.clone(), NS)
            .list(&Default::default())
            .await
            .unwrap()
            .items;
        let mut seen: Vec<(String, String, i32)> = events
            .iter()
            .map(|e| {
                (
                    e.type_.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default(),
                    e.count.unwrap_or_default(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("Normal".to_string(), "done".to_string(), 1),
                ("Normal".to_string(), "waiting".to_string(), 1),
                ("Warning".to_string(), "waiting".to_string(), 3),
            ]
        );
        for e in &events {
            assert_eq!(e.reason.as_deref(), Some("Synced"));
            assert_eq!(e.reporting_component.as_deref(), Some("flagger"));
            assert_eq!(e.reporting_instance.as_deref(), Some("test-host"));
            assert_eq!(e.involved_object.kind.as_deref(), Some("Canary"));
            assert_eq!(
                e.involved_object.api_version.as_deref(),
                Some("flagger.app/v1beta1")
            );
            assert_eq!(e.involved_object.uid, canary.metadata.uid);
            assert!(e.last_timestamp >= e.first_timestamp);
        }
        cluster.shutdown().await;
    })
    .await;
}

/// Reads of the analysis' own inputs survive a flaky API server: transient failures are retried
/// within the step; when the server keeps failing the error is marked transient (the step is
/// held), while a real answer such as "not found" is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_template_reads_retry_transient_api_errors() {
    use serin::api::metric_template::MetricTemplate;
    use serin::controller::adapters::KubeMetricsEnv;
    use serin::metrics::analysis::MetricsEnv;

    if dev_cluster_only("injects API faults") {
        return;
    }
    guarded(async {
        let cluster = Cluster::start().await;
        let template: MetricTemplate = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": "latency", "namespace": NS},
            "spec": {"provider": {"type": "prometheus", "address": "http://127.0.0.1:1"},
                     "query": "up"}
        }))
        .unwrap();
        Api::<MetricTemplate>::namespaced(cluster.client.clone(), NS)
            .create(&Default::default(), &template)
            .await
            .unwrap();
        let env = KubeMetricsEnv::new(cluster.client.clone(), None);

        // Every second GET answers 500: every read still succeeds.
        cluster
            .dev()
            .faults()
            .set_error_share("get", 500, 0.5)
            .unwrap();
        for _ in 0..6 {
            let read = env.template(NS, "latency").await.unwrap();
            assert_eq!(read.spec.query, "up");
        }

        // Every GET answers 500 (kube-rs itself retries only 429, 503 and 504): a transient
        // error in words, after the retries.
        cluster
            .dev()
            .faults()
            .set_error_share("get", 500, 1.0)
            .unwrap();
        let err = env.template(NS, "latency").await.unwrap_err();
        assert!(err.transient, "{err:?}");
        assert!(
            err.message
                .starts_with("the API server answered HTTP 500 Internal Server Error"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("Status {"), "{}", err.message);

        // A missing template is an answer: not transient, Flagger's text.
        cluster.dev().faults().clear();
        let err = env.template(NS, "absent").await.unwrap_err();
        assert!(!err.transient);
        assert_eq!(
            err.message,
            "metrictemplates.flagger.app \"absent\" not found"
        );
    })
    .await;
}
