#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::testing::TestCluster;
use crate::testing::assert_golden;
use crate::workload::knative::tests::{CRDS, canary, service, stored};

fn parsed(v: Value) -> KnativeService {
    serde_json::from_value(v).unwrap()
}

const PRIMARY: &str = "podinfo-00001";

fn annotated(latest: &str, traffic: Value) -> Value {
    service(
        latest,
        json!({"flagger.app/primary-revision": PRIMARY}),
        traffic,
    )
}

/// The `spec.traffic` blocks the router writes through a canary run.
#[test]
fn rendered_traffic() {
    let c = canary("Progressing");
    let svc = parsed(annotated("podinfo-00002", json!([])));
    let rendered: Vec<Value> = [(100, 0), (90, 10), (50, 50), (0, 100)]
        .into_iter()
        .map(|(p, w)| {
            let traffic = desired_traffic(&c, &svc, Routes::new(p, w, false))
                .unwrap()
                .unwrap();
            json!({"routes": {"primary": p, "canary": w}, "spec": {"traffic": traffic}})
        })
        .collect();
    assert_golden("router/testdata/knative/traffic.yaml", &rendered);
}

#[test]
fn unchanged_traffic_is_not_written_again() {
    let c = canary("Progressing");
    let svc = parsed(annotated(
        "podinfo-00002",
        json!([{"latestRevision": true, "percent": 10}, {"revisionName": PRIMARY, "percent": 90}]),
    ));
    assert_eq!(
        desired_traffic(&c, &svc, Routes::new(90, 10, false)).unwrap(),
        None
    );
    let bare = parsed(service("podinfo-00002", json!({}), json!([])));
    assert_eq!(
        desired_traffic(&c, &bare, Routes::new(90, 10, false))
            .unwrap_err()
            .to_string(),
        "Knative Service podinfo.test annotation not found"
    );
}

#[test]
fn routes_come_from_status_traffic() {
    let c = canary("Progressing");
    let mut v = annotated("podinfo-00002", json!([]));
    v["status"]["traffic"] = json!([
        {"latestRevision": true, "revisionName": "podinfo-00002", "percent": 20},
        {"latestRevision": false, "revisionName": PRIMARY, "percent": 80}
    ]);
    assert_eq!(
        routes_of(&c, &parsed(v.clone())).unwrap(),
        Routes::new(80, 20, false)
    );

    // Promoted: the latest revision is the primary too; its direct entry holds the primary's
    // share.
    let mut promoted = v.clone();
    promoted["metadata"]["annotations"]["flagger.app/primary-revision"] = json!("podinfo-00002");
    promoted["status"]["traffic"] = json!([
        {"latestRevision": true, "revisionName": "podinfo-00002", "percent": 0},
        {"revisionName": "podinfo-00002", "percent": 100}
    ]);
    assert_eq!(
        routes_of(&c, &parsed(promoted)).unwrap(),
        Routes::new(100, 0, false)
    );

    // Promoted, before the traffic moved: the latest-revision entry names the new primary.
    let mut just_promoted = v.clone();
    just_promoted["metadata"]["annotations"]["flagger.app/primary-revision"] =
        json!("podinfo-00002");
    assert_eq!(
        routes_of(&c, &parsed(just_promoted)).unwrap(),
        Routes::new(20, 20, false)
    );

    let mut stale = v.clone();
    stale["metadata"]["generation"] = json!(5);
    stale["status"]["observedGeneration"] = json!(4);
    assert_eq!(
        routes_of(&c, &parsed(stale.clone()))
            .unwrap_err()
            .to_string(),
        "Knative Service podinfo.test traffic is not reconciled yet (status.observedGeneration 4 < metadata.generation 5)"
    );
    stale["status"]["observedGeneration"] = json!(5);
    assert_eq!(
        routes_of(&c, &parsed(stale)).unwrap(),
        Routes::new(80, 20, false)
    );

    let mut lagging = v.clone();
    lagging["status"]["traffic"] =
        json!([{"latestRevision": true, "revisionName": "podinfo-00002", "percent": 100}]);
    assert_eq!(
        routes_of(&c, &parsed(lagging)).unwrap_err().to_string(),
        "Knative Service podinfo.test traffic spec invalid: status.traffic needs an entry with latestRevision true and one with revisionName podinfo-00001"
    );
    let mut no_percent = v;
    no_percent["status"]["traffic"][0]
        .as_object_mut()
        .unwrap()
        .remove("percent");
    assert_eq!(
        routes_of(&c, &parsed(no_percent)).unwrap_err().to_string(),
        "Knative Service podinfo.test canary revision traffic percent does not exist"
    );
}

#[tokio::test]
async fn writes_only_the_traffic_and_the_annotation() {
    let fake = TestCluster::start().await;
    fake.install_crds(CRDS).await;
    fake.insert(service(
        "podinfo-00001",
        json!({"owner": "team-a"}),
        json!([{"latestRevision": true, "percent": 100}]),
    ))
    .await;
    let router = KnativeRouter::new(fake.client());
    let c = canary("Initialized");

    router.reconcile(&c).await.unwrap();
    let svc = stored(&fake).await;
    assert_eq!(
        svc["metadata"]["annotations"],
        json!({"owner": "team-a", "flagger.app/primary-revision": PRIMARY})
    );
    fake.clear_writes();
    router.reconcile(&c).await.unwrap();
    assert!(fake.writes().is_empty(), "annotated already: no write");

    let mut status = CanaryStatus::default();
    router
        .set_routes(&c, &mut status, Routes::new(70, 30, false))
        .await
        .unwrap();
    let writes = fake.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].method, "PATCH");
    assert_eq!(writes[0].content_type, "application/merge-patch+json");
    assert_eq!(
        writes[0].body,
        json!({"spec": {"traffic": [
            {"latestRevision": true, "percent": 30},
            {"revisionName": PRIMARY, "percent": 70}
        ]}})
    );
    let svc = stored(&fake).await;
    assert_eq!(
        svc["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/stefanprodan/podinfo:6.0.0"
    );

    // Knative has not reconciled the new split yet: status.traffic still routes everything to
    // the latest revision.
    assert!(router.get_routes(&c).await.is_err());
    fake.set_status(
        "serving.knative.dev/v1",
        "Service",
        "test",
        "podinfo",
        json!({"traffic": [
            {"latestRevision": true, "revisionName": PRIMARY, "percent": 30},
            {"revisionName": PRIMARY, "percent": 70}
        ]}),
    )
    .await;
    assert_eq!(
        router.get_routes(&c).await.unwrap(),
        Routes::new(70, 30, false)
    );

    fake.clear_writes();
    router.finalize(&c).await.unwrap();
    assert_eq!(
        stored(&fake).await["metadata"]["annotations"],
        json!({"owner": "team-a"})
    );
    router.finalize(&c).await.unwrap();
    assert_eq!(fake.writes().len(), 1, "the annotation is removed once");
}
