//! Serin's query pre-flight: a MetricTemplate whose query finds no series for the primary holds
//! the run at weight 0 (one Warning event, the `MetricsReady` condition) until the template is
//! fixed, or rolls it back after the progress deadline.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use serin::api::metric_template::MetricTemplate;
use serin::api::status::{CanaryCondition, ConditionStatus, METRICS_READY_CONDITION};

use crate::support::*;

/// A Prometheus whose series carry `reporter="destination"`: a query asking for another
/// reporter finds nothing; every other query answers 0.5. Records every query.
struct LabelledProm {
    url: String,
    queries: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LabelledProm {
    async fn start() -> Self {
        async fn query(
            State(seen): State<Arc<Mutex<Vec<String>>>>,
            Query(q): Query<BTreeMap<String, String>>,
        ) -> Json<Value> {
            let text = q.get("query").cloned().unwrap_or_default();
            seen.lock().unwrap().push(text.clone());
            let result = if text.contains("reporter=") && !text.contains("reporter=\"destination\"")
            {
                json!([])
            } else {
                json!([{"metric": {}, "value": [1.0, "0.5"]}])
            };
            Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
        }
        let queries = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/api/v1/query", get(query).post(query))
            .with_state(queries.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, queries, task }
    }
}

impl Drop for LabelledProm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error_rate_query(reporter: &str) -> String {
    format!(
        "sum(rate(errors_total{{reporter=\"{reporter}\",namespace=\"{{{{ namespace }}}}\",workload=\"{{{{ target }}}}\"}}[{{{{ interval }}}}]))"
    )
}

const WRONG_LABEL: &str = "Query pre-flight: metric error-rate (prometheus) returned no values for the primary podinfo-primary.test; likely cause: no traffic yet: podinfo-primary.test received no requests in the last 1m; or a label the query requires is missing from the series: reporter=\"source\"; query: sum(rate(errors_total{reporter=\"source\",namespace=\"test\",workload=\"podinfo-primary\"}[1m]))";

/// The template, a Canary using it with `progressDeadlineSeconds`, the controller; waits for
/// `Initialized`.
async fn scene(
    cluster: &Cluster,
    labelled: &LabelledProm,
    deadline: i64,
) -> (FakeProm, Hooks, Controller, Recorder) {
    let template: MetricTemplate = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
        "metadata": {"name": "error-rate", "namespace": NS},
        "spec": {"provider": {"type": "prometheus", "address": labelled.url},
                 "query": error_rate_query("source")}
    }))
    .unwrap();
    Api::<MetricTemplate>::namespaced(cluster.client.clone(), NS)
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
    let prom = FakeProm::start(100.0, 100.0).await;
    let hooks = Hooks::start().await;
    cluster
        .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
        .await;
    let ctrl = Controller::start(cluster, &prom, &[]);
    let rec = Recorder::start(cluster, "podinfo");
    let mut canary = podinfo_canary(
        &hooks,
        json!({"metrics": [{"name": "error-rate", "templateRef": {"name": "error-rate"},
                             "thresholdRange": {"max": 1}, "interval": "1m"}]}),
    );
    canary["spec"]["progressDeadlineSeconds"] = json!(deadline);
    cluster.create_canary(canary).await;
    wait_phase(cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
    (prom, hooks, ctrl, rec)
}

async fn metrics_ready(cluster: &Cluster) -> Option<CanaryCondition> {
    cluster
        .canary("podinfo")
        .await?
        .status?
        .condition(METRICS_READY_CONDITION)
        .cloned()
}

fn count(messages: &[String], starting: &str) -> usize {
    messages.iter().filter(|m| m.starts_with(starting)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_label_holds_the_run_until_the_template_is_fixed() {
    guarded(async {
        let cluster = Cluster::start().await;
        let labelled = LabelledProm::start().await;
        let (_prom, hooks, ctrl, rec) = scene(&cluster, &labelled, 60).await;
        let held = format!("{WRONG_LABEL}; the canary gets no traffic until every query answers (progress deadline 60s)");
        // Initialisation already reports it (and holds nothing).
        let c = metrics_ready(&cluster).await.unwrap();
        assert_eq!((c.status, c.reason.as_str()), (ConditionStatus::False, "NoValues"));
        assert_eq!(c.message.as_deref(), Some(held.as_str()));

        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_phase(&cluster, "podinfo", "Progressing", Duration::from_secs(10)).await;
        // Several 1 s intervals: held at weight 0, one Warning for this run.
        wait_for("three held pre-flights", Duration::from_secs(15), || async {
            let primary = labelled
                .queries
                .lock()
                .unwrap()
                .iter()
                .filter(|q| q.contains("podinfo-primary"))
                .count();
            (primary >= 4).then_some(())
        })
        .await;
        let c = metrics_ready(&cluster).await.unwrap();
        assert_eq!((c.status, c.message.as_deref()), (ConditionStatus::False, Some(held.as_str())));
        let status = cluster.canary("podinfo").await.unwrap().status.unwrap();
        assert_eq!(
            (status.phase.as_str(), status.canary_weight, status.iterations, status.failed_checks),
            ("Progressing", 0, 0, 0)
        );
        assert_eq!(cluster.vs_weights("podinfo").await, Some((100, 0)));
        assert!(rec.weights().iter().all(|w| *w == (100, 0)), "{:?}", rec.weights());
        let messages = hooks.event_messages();
        assert_in_order(&messages, &[&held, "New revision detected! Scaling up podinfo.test", &held]);
        assert_eq!(count(&messages, "Query pre-flight"), 2, "{messages:#?}");
        assert_eq!(count(&messages, "Starting canary analysis"), 0, "{messages:#?}");
        let warning = cluster
            .k8s_events("podinfo")
            .await
            .into_iter()
            .find(|e| e.message.as_deref() == Some(held.as_str()))
            .unwrap();
        assert_eq!(warning.type_.as_deref(), Some("Warning"));

        // Fix the template: the run proceeds and promotes.
        Api::<MetricTemplate>::namespaced(cluster.client.clone(), NS)
            .patch(
                "error-rate",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"query": error_rate_query("destination")}})),
            )
            .await
            .unwrap();
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(30)).await;
        let c = metrics_ready(&cluster).await.unwrap();
        assert_eq!((c.status, c.reason.as_str()), (ConditionStatus::True, "QueriesAnswered"));
        assert!(rec.weights().contains(&(90, 10)), "{:?}", rec.weights());
        hooks
            .wait_events_in_order(&[
                "Starting canary analysis for podinfo.test",
                "Advance podinfo.test canary weight 10",
                "Promotion completed! Scaling down podinfo.test",
            ])
            .await;
        assert_eq!(count(&hooks.event_messages(), "Query pre-flight"), 2);

        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_failing_past_the_progress_deadline_rolls_back() {
    guarded(async {
        let cluster = Cluster::start().await;
        let labelled = LabelledProm::start().await;
        let (_prom, hooks, ctrl, rec) = scene(&cluster, &labelled, 4).await;
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_phase(&cluster, "podinfo", "Failed", Duration::from_secs(20)).await;
        assert_eq!(cluster.vs_weights("podinfo").await, Some((100, 0)));
        assert!(
            rec.weights().iter().all(|w| *w == (100, 0)),
            "{:?}",
            rec.weights()
        );
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.0"),
            "primary keeps the old revision"
        );
        let expired =
            format!("the query pre-flight still fails after the progress deadline: {WRONG_LABEL}");
        hooks
            .wait_events_in_order(&[
                "New revision detected! Scaling up podinfo.test",
                &expired,
                "Canary failed! Scaling down podinfo.test",
            ])
            .await;
        let c = metrics_ready(&cluster).await.unwrap();
        assert_eq!(c.status, ConditionStatus::False);

        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}
