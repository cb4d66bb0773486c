//! Controller end to end on the dev cluster: a full canary promotion with the Istio router.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canary_promotion_with_istio() {
    guarded(promotion()).await;
}

async fn promotion() {
    let cluster = Cluster::start().await;
    // From here: on a real cluster, setting it up may wait for the garbage collector.
    let started = Instant::now();
    let prom = FakeProm::start(100.0, 100.0).await;
    let hooks = Hooks::start().await;
    cluster
        .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
        .await;
    let slack = format!("--slack-url={}/global", hooks.url);
    let ctrl = Controller::start(
        &cluster,
        &prom,
        &[
            slack.as_str(),
            "--slack-channel=deploys",
            "--cluster-name=dev-1",
        ],
    );
    let rec = Recorder::start(&cluster, "podinfo");
    cluster
        .create_canary(podinfo_canary(&hooks, json!({})))
        .await;

    wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
    // Initialisation: primary created, target scaled to zero, all traffic to the primary.
    assert_eq!(
        cluster.image("podinfo-primary").await.as_deref(),
        Some("ghcr.io/stefanprodan/podinfo:6.0.0")
    );
    assert_eq!(cluster.replicas("podinfo").await, Some(0));
    assert_eq!(cluster.vs_weights("podinfo").await, Some((100, 0)));
    let c = cluster.canary("podinfo").await.unwrap();
    assert!(
        c.metadata.finalizers.unwrap_or_default().is_empty(),
        "no finalizer without revertOnDeletion"
    );

    // A new revision starts the analysis.
    let t0 = Instant::now();
    cluster
        .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
        .await;
    wait_phase(&cluster, "podinfo", "Progressing", Duration::from_secs(5)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "new revision detected after {:?}",
        t0.elapsed()
    );
    wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(20)).await;

    assert_eq!(
        cluster.image("podinfo-primary").await.as_deref(),
        Some("ghcr.io/stefanprodan/podinfo:6.0.1"),
        "primary promoted"
    );
    assert_eq!(
        cluster.replicas("podinfo").await,
        Some(0),
        "canary scaled down"
    );
    assert_eq!(cluster.vs_weights("podinfo").await, Some((100, 0)));

    // Weights step by step: 10, 20, 30, then all traffic back to the promoted primary.
    let weights = rec.weights();
    assert_eq!(
        weights,
        [(100, 0), (90, 10), (80, 20), (70, 30), (100, 0)],
        "weights {weights:?}"
    );
    let phases = rec.phases();
    let wanted = [
        "Initialized",
        "Progressing",
        "Promoting",
        "Finalising",
        "Succeeded",
    ];
    let from = phases.iter().position(|p| p == "Initialized").unwrap();
    assert_eq!(&phases[from..], wanted, "phases {phases:?}");
    assert!(
        phases[..from]
            .iter()
            .all(|p| p.is_empty() || p == "Initializing"),
        "phases {phases:?}"
    );

    // Events, in order, through the event webhook and as Kubernetes Events.
    let expected = [
        "Initialization done! podinfo.test",
        "New revision detected! Scaling up podinfo.test",
        "Starting canary analysis for podinfo.test",
        "Advance podinfo.test canary weight 10",
        "Advance podinfo.test canary weight 20",
        "Advance podinfo.test canary weight 30",
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Routing all traffic to primary",
        "Promotion completed! Scaling down podinfo.test",
    ];
    hooks.wait_events_in_order(&expected).await;
    let events = wait_for("the Kubernetes Events", Duration::from_secs(5), || async {
        let events = cluster.k8s_events("podinfo").await;
        let messages: Vec<String> = events.iter().filter_map(|e| e.message.clone()).collect();
        expected
            .iter()
            .all(|m| messages.iter().any(|k| k == m))
            .then_some(events)
    })
    .await;
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e.reason.as_deref(), Some("Synced"));
        assert_eq!(e.involved_object.kind.as_deref(), Some("Canary"));
        assert_eq!(
            e.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("flagger")
        );
    }
    let k8s_messages: Vec<String> = events.iter().filter_map(|e| e.message.clone()).collect();
    for m in expected {
        assert!(
            k8s_messages.iter().any(|k| k == m),
            "missing event {m}: {k8s_messages:#?}"
        );
    }

    // The global notifier (no analysis.alerts): initialisation and success alerts.
    let global: Vec<String> = wait_for("global alerts", Duration::from_secs(5), || async {
        let bodies: Vec<String> = hooks
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == "/global")
            .map(|(_, v)| v.to_string())
            .collect();
        bodies
            .iter()
            .any(|b| b.contains("Canary analysis completed successfully, promotion finished."))
            .then_some(bodies)
    })
    .await;
    let init = global
        .iter()
        .find(|b| b.contains("New Deployment detected, initialization completed."))
        .expect("initialisation alert");
    assert!(init.contains("dev-1"), "cluster name field: {init}");
    assert!(init.contains("deploys"), "channel: {init}");

    ctrl.stop().await.unwrap();
    cluster.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
