//! The kube adapters against the dev cluster: conflict-safe status and finalizer writes, and
//! Kubernetes Event aggregation.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use serde_json::json;
use serin::api::{CanaryPhase, CanaryStatus};
use serin::controller::adapters::{KubeEventSink, KubeStatusStore};
use serin::controller::ports::{EventKind, EventSink, StatusStore};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_finalizer_writes_survive_conflicts() {
    if dev_cluster_only("injects 409 Conflict answers through the dev cluster's fault hooks") {
        return;
    }
    guarded(async {
        let cluster = Cluster::start().await;
        let hooks = Hooks::start().await;
        cluster
            .create_canary(podinfo_canary(&hooks, json!({})))
            .await;
        let store = KubeStatusStore::new(cluster.client.clone());
        let canary = store.get(NS, "podinfo").await.unwrap().unwrap();

        // Every second update answers 409: each write needs a re-read and a retry.
        cluster
            .dev()
            .faults()
            .set_error_share("update", 409, 0.5)
            .unwrap();
        let first = CanaryStatus {
            phase: CanaryPhase::Progressing,
            canary_weight: 10,
            tracked_configs: Some(BTreeMap::from([("configmap/a".into(), "1".into())])),
            ..CanaryStatus::default()
        };
        for _ in 0..3 {
            store.write_status(&canary, &first).await.unwrap();
        }
        let live = cluster.canary("podinfo").await.unwrap().status.unwrap();
        assert_eq!(live, first);
        // The whole status is replaced: fields the new status drops are gone.
        let second = CanaryStatus {
            phase: CanaryPhase::Promoting,
            canary_weight: 0,
            ..CanaryStatus::default()
        };
        store.write_status(&canary, &second).await.unwrap();
        let live = cluster.canary("podinfo").await.unwrap().status.unwrap();
        assert_eq!(live, second);
        assert!(live.tracked_configs.is_none());

        cluster.dev().faults().clear();
        cluster
            .dev()
            .faults()
            .set_error_share("patch", 409, 0.5)
            .unwrap();
        store.set_finalizer(&canary, true).await.unwrap();
        store.set_finalizer(&canary, true).await.unwrap();
        let c = cluster.canary("podinfo").await.unwrap();
        assert_eq!(
            c.metadata.finalizers.unwrap_or_default(),
            ["finalizer.flagger.app"]
        );
        store.set_finalizer(&canary, false).await.unwrap();
        let c = cluster.canary("podinfo").await.unwrap();
        assert!(c.metadata.finalizers.unwrap_or_default().is_empty());
        // A status write keeps the spec as it is.
        assert_eq!(c.spec, canary.spec);
        cluster.dev().faults().clear();
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
