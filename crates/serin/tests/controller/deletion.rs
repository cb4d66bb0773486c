//! deleting a Canary with and without `revertOnDeletion`.

use std::time::Duration;

use crate::support::*;
use kube::api::DeleteParams;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletion_with_revert_on_deletion() {
    guarded(async {
        let (cluster, _prom, hooks, ctrl, _rec) =
            initialized_scene(json!({}), json!({"revertOnDeletion": true})).await;
        let c = cluster.canary("podinfo").await.unwrap();
        assert_eq!(
            c.metadata.finalizers.unwrap_or_default(),
            ["finalizer.flagger.app"]
        );
        assert_eq!(cluster.replicas("podinfo").await, Some(0));

        cluster
            .canaries()
            .delete("podinfo", &DeleteParams::default())
            .await
            .unwrap();
        wait_for("canary gone", Duration::from_secs(15), || async {
            cluster.canary("podinfo").await.is_none().then_some(())
        })
        .await;
        // The target runs again and the events tell the story.
        let replicas = cluster.replicas("podinfo").await;
        assert!(
            replicas.is_some_and(|r| r > 0),
            "target scaled back up: {replicas:?}"
        );
        // `Terminated` is recorded after the finalizer is removed (as in Flagger), so it may
        // reach the event webhook just after the Canary is gone.
        wait_for("the Terminated event", Duration::from_secs(5), || async {
            hooks
                .event_messages()
                .iter()
                .any(|m| m == "Terminated canary podinfo.test")
                .then_some(())
        })
        .await;
        hooks
            .wait_events_in_order(&[
                "Terminating canary podinfo.test",
                "Terminated canary podinfo.test",
            ])
            .await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletion_without_revert_on_deletion() {
    guarded(async {
        let (cluster, _prom, hooks, ctrl, _rec) = initialized_scene(json!({}), json!({})).await;
        cluster
            .canaries()
            .delete("podinfo", &DeleteParams::default())
            .await
            .unwrap();
        wait_for("canary gone", Duration::from_secs(5), || async {
            cluster.canary("podinfo").await.is_none().then_some(())
        })
        .await;
        // Generated objects are owned by the Canary and garbage-collected with it; the target
        // stays scaled to zero, as in Flagger.
        wait_for("primary collected", Duration::from_secs(5), || async {
            cluster
                .deployments()
                .get_opt("podinfo-primary")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
        assert_eq!(cluster.replicas("podinfo").await, Some(0));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !hooks
                .event_messages()
                .iter()
                .any(|m| m.starts_with("Terminat")),
            "no finalisation without revertOnDeletion"
        );
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}
