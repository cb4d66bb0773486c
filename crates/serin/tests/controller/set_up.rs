//! The set-up steps of a tick (Services, primary, routing objects) are skipped while nothing
//! they read has changed; what others change during a run is still put back on the next tick,
//! as Flagger's set-up, run on every tick, does.

use std::time::Duration;

use crate::support::*;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_others_change_during_a_run_is_put_back() {
    guarded(put_back()).await;
}

async fn put_back() {
    // Ten steps of 1 s: time for the set-up to be found in place before anything changes.
    let (cluster, _prom, _hooks, ctrl, _rec) = initialized_scene(
        json!({"maxWeight": 50, "stepWeight": 5, "metrics": null}),
        json!({}),
    )
    .await;
    cluster
        .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
        .await;
    wait_phase(&cluster, "podinfo", "Progressing", Duration::from_secs(5)).await;
    wait_for("two analysis steps", Duration::from_secs(10), || async {
        let (_, canary) = cluster.vs_weights("podinfo").await?;
        (canary >= 10).then_some(())
    })
    .await;

    // A Service deleted by someone: created again.
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), NS);
    let old_uid = services.get("podinfo-primary").await.unwrap().metadata.uid;
    services
        .delete("podinfo-primary", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "podinfo-primary created again",
        Duration::from_secs(10),
        || async {
            let svc = services.get_opt("podinfo-primary").await.unwrap()?;
            (svc.metadata.uid != old_uid && svc.metadata.deletion_timestamp.is_none()).then_some(())
        },
    )
    .await;

    // A host added to the VirtualService by hand: removed again.
    let vss = cluster.virtual_services();
    vss.patch(
        "podinfo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"hosts": ["podinfo", "intruder.example.com"]}})),
    )
    .await
    .unwrap();
    wait_for(
        "the VirtualService's hosts put back",
        Duration::from_secs(10),
        || async {
            let vs = vss.get("podinfo").await.unwrap();
            let hosts = vs
                .data
                .pointer("/spec/hosts")
                .and_then(Value::as_array)?
                .clone();
            (!hosts.contains(&json!("intruder.example.com"))).then_some(())
        },
    )
    .await;

    // And the run goes on to its end.
    wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(30)).await;
    ctrl.stop().await.unwrap();
    cluster.shutdown().await;
}
