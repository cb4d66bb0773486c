//! A Knative Service target routed by the `knative` provider, end to end: the dev cluster (or
//! `serin simulate-workloads` on a real API server) plays Knative's controller, so revisions
//! appear when the template changes and `status.traffic` follows `spec.traffic`.

use std::time::Duration;

use crate::routers::{Case, install, wait_weights, weights};
use crate::support::*;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const ANNOTATION: &str = "flagger.app/primary-revision";

/// `(primary, canary)` percentages of `status.traffic`: the latest-revision entry is the
/// canary, the other entry naming the annotated revision is the primary.
fn status_weights(svc: &Value) -> Option<(i64, i64)> {
    let primary = svc
        .pointer("/metadata/annotations")?
        .get(ANNOTATION)?
        .as_str()?;
    let traffic = svc.pointer("/status/traffic")?.as_array()?;
    let latest = |t: &&Value| t.get("latestRevision").and_then(Value::as_bool) == Some(true);
    let canary = traffic.iter().find(latest)?;
    let primary = traffic
        .iter()
        .find(|t| !latest(t) && t.get("revisionName").and_then(Value::as_str) == Some(primary))?;
    Some((primary["percent"].as_i64()?, canary["percent"].as_i64()?))
}

fn case() -> Case {
    Case {
        provider: "knative",
        crds: include_str!("../fixtures/crds/knative.yaml"),
        service: json!({}),
        spec: json!({}),
        objects: vec![],
        routing: (
            "serving.knative.dev",
            "v1",
            "Service",
            "services",
            "podinfo",
        ),
        weights: status_weights,
        cluster_scoped: false,
    }
}

fn services(cluster: &Cluster) -> Api<DynamicObject> {
    cluster.dynamic("serving.knative.dev", "v1", "Service", "services")
}

async fn set_image(cluster: &Cluster, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": image}]}}}});
    services(cluster)
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn service(cluster: &Cluster) -> Value {
    serde_json::to_value(services(cluster).get("podinfo").await.unwrap()).unwrap()
}

async fn primary_revision(cluster: &Cluster) -> Option<String> {
    service(cluster)
        .await
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION))
        .and_then(Value::as_str)
        .map(str::to_string)
}

async fn wait_latest_revision(cluster: &Cluster, name: &str) {
    wait_for(
        &format!("Knative revision {name}"),
        Duration::from_secs(30),
        || async {
            (service(cluster)
                .await
                .pointer("/status/latestCreatedRevisionName")
                == Some(&json!(name)))
            .then_some(())
        },
    )
    .await;
}

/// A Knative Service `podinfo` at revision 1 and its Canary (spec keys of `spec_extra` and
/// analysis keys of `analysis_extra` added), initialized by a running controller.
async fn initialized(
    spec_extra: Value,
    analysis_extra: Value,
) -> (Case, Cluster, FakeProm, Hooks, Controller) {
    let case = case();
    let cluster = Cluster::start().await;
    install(&cluster, &case).await;
    // On a real cluster a previous scenario's Revisions may not be collected yet; revision
    // names start again at 1.
    let revisions = cluster.dynamic("serving.knative.dev", "v1", "Revision", "revisions");
    revisions
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    wait_for("no Revision left", Duration::from_secs(30), || async {
        revisions
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    let prom = FakeProm::start(100.0, 100.0).await;
    let hooks = Hooks::start().await;
    let svc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {"template": {"spec": {"containers": [
            {"image": "ghcr.io/stefanprodan/podinfo:6.0.0", "ports": [{"containerPort": 9898}]}
        ]}}}
    }))
    .unwrap();
    services(&cluster)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    wait_latest_revision(&cluster, "podinfo-00001").await;

    let ctrl = Controller::start(&cluster, &prom, &[]);
    let mut canary = podinfo_canary(&hooks, analysis_extra);
    canary["spec"]["provider"] = json!("knative");
    canary["spec"]["targetRef"] =
        json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "podinfo"});
    // As in Flagger's Knative manifests: no generated Services, so no `service`.
    canary["spec"].as_object_mut().unwrap().remove("service");
    for (k, v) in spec_extra.as_object().unwrap() {
        canary["spec"][k] = v.clone();
    }
    cluster.create_canary(canary).await;
    wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(15)).await;
    assert_eq!(
        primary_revision(&cluster).await.as_deref(),
        Some("podinfo-00001")
    );
    wait_weights(&cluster, &case, (100, 0)).await;
    (case, cluster, prom, hooks, ctrl)
}

/// Initializes a Canary of a Knative Service, promotes revision 2 through weights 10..30 and
/// rolls revision 3 back on failing metrics; the weights are read from `status.traffic`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn knative_promotion_and_rollback() {
    guarded(async {
        let (case, cluster, prom, hooks, ctrl) = initialized(json!({}), json!({})).await;
        let deployments = cluster
            .deployments()
            .list(&Default::default())
            .await
            .unwrap();
        assert!(
            deployments.items.is_empty(),
            "no primary workload for a Knative target"
        );

        let revision = cluster
            .dynamic("serving.knative.dev", "v1", "Revision", "revisions")
            .get("podinfo-00001")
            .await
            .unwrap();
        assert_eq!(
            revision.data.pointer("/status/conditions/2/type"),
            Some(&json!("Ready")),
            "the emulation creates ready Revisions"
        );

        // Promotion.
        set_image(&cluster, "ghcr.io/stefanprodan/podinfo:6.0.1").await;
        wait_weights(&cluster, &case, (90, 10)).await;
        wait_weights(&cluster, &case, (80, 20)).await;
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(20)).await;
        assert_eq!(
            primary_revision(&cluster).await.as_deref(),
            Some("podinfo-00002")
        );
        wait_weights(&cluster, &case, (100, 0)).await;

        // Rollback.
        set_image(&cluster, "ghcr.io/stefanprodan/podinfo:6.0.2").await;
        wait_weights(&cluster, &case, (90, 10)).await;
        prom.set(50.0, 100.0);
        wait_phase(&cluster, "podinfo", "Failed", Duration::from_secs(20)).await;
        wait_weights(&cluster, &case, (100, 0)).await;
        assert_eq!(
            primary_revision(&cluster).await.as_deref(),
            Some("podinfo-00002"),
            "the primary keeps the promoted revision"
        );
        assert_eq!(
            service(&cluster).await["spec"]["traffic"],
            json!([
                {"latestRevision": true, "percent": 0},
                {"revisionName": "podinfo-00002", "percent": 100}
            ])
        );
        assert_eq!(weights(&cluster, &case).await, Some((100, 0)));
        // The built-in checks query the latest created revision (the Knative observer's `route`).
        let canary = cluster.canary("podinfo").await.unwrap();
        let queries: Vec<String> = canary
            .status
            .and_then(|s| s.decisions)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|d| d.checks)
            .filter_map(|c| c.query)
            .collect();
        assert!(
            queries
                .iter()
                .any(|q| q.contains(r#"envoy_cluster_name=~"test/podinfo-00003""#)),
            "{queries:?}"
        );
        hooks
            .wait_events_in_order(&[
                "Initialization done! podinfo.test",
                "New revision detected! Scaling up podinfo.test",
                "Advance podinfo.test canary weight 10",
                "Promotion completed! Scaling down podinfo.test",
                "Advance podinfo.test canary weight 10",
                "Rolling back podinfo.test failed checks threshold reached 2",
            ])
            .await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

/// Deleting a Canary with `revertOnDeletion` removes the primary revision annotation; the
/// Knative Service keeps its traffic split.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn knative_revert_on_deletion() {
    guarded(async {
        let (_case, cluster, _prom, hooks, ctrl) =
            initialized(json!({"revertOnDeletion": true}), json!({})).await;
        cluster
            .canaries()
            .delete("podinfo", &DeleteParams::default())
            .await
            .unwrap();
        wait_for("canary gone", Duration::from_secs(15), || async {
            cluster.canary("podinfo").await.is_none().then_some(())
        })
        .await;
        assert_eq!(primary_revision(&cluster).await, None);
        assert_eq!(
            service(&cluster).await["spec"]["traffic"],
            json!([
                {"latestRevision": true, "percent": 0},
                {"revisionName": "podinfo-00001", "percent": 100}
            ])
        );
        hooks
            .wait_events_in_order(&["Terminating canary podinfo.test"])
            .await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

/// A new revision starts the analysis when Knative reports it (the controller watches Knative
/// Services), not at the next interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn knative_new_revision_is_seen_at_once() {
    guarded(async {
        let (_case, cluster, _prom, hooks, ctrl) =
            initialized(json!({}), json!({"interval": "30s"})).await;
        let t0 = std::time::Instant::now();
        set_image(&cluster, "ghcr.io/stefanprodan/podinfo:6.0.1").await;
        wait_for(
            "the new revision event",
            Duration::from_secs(15),
            || async {
                hooks
                    .event_messages()
                    .iter()
                    .any(|m| m == "New revision detected! Scaling up podinfo.test")
                    .then_some(())
            },
        )
        .await;
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "seen after {:?}, not through the watch",
            t0.elapsed()
        );
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}
