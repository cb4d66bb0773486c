//! The dashboard's JSON and server-sent-event routes over plain HTTP, fed by the real controller
//! (no browser): a stream opened before the Canary exists sees every row change of a promotion
//! and the deletion; the detail route matches what the controller wrote on the Canary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::dashboard::DashboardController;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_routes_follow_the_controller() {
    if dev_cluster_only("the dashboard's routes are checked once, on the dev cluster") {
        return;
    }
    guarded(scenario()).await;
}

/// One server-sent event: its `event:` name and its `data:` as JSON.
fn parse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            Some((name?, data?))
        })
        .collect()
}

async fn scenario() {
    let cluster = Cluster::start().await;
    let prom = FakeProm::start(100.0, 100.0).await;
    let hooks = Hooks::start().await;
    cluster
        .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
        .await;
    let ctrl = DashboardController::start(&cluster, &prom).await;
    let base = format!("http://{}", ctrl.addr);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // The stream is open before the Canary exists: every change after this reaches it.
    let mut stream = http.get(format!("{base}/api/stream")).send().await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let received = Arc::new(Mutex::new(String::new()));
    let sink = received.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(chunk)) = stream.chunk().await {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk));
        }
    });

    cluster
        .create_canary(podinfo_canary(&hooks, json!({})))
        .await;
    wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
    cluster
        .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
        .await;
    wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(30)).await;

    // The rows on the stream went through every step, in order, and ended Succeeded.
    let rows = || -> Vec<(i64, String)> {
        let text = received.lock().unwrap().clone();
        let mut out: Vec<(i64, String)> = Vec::new();
        for (name, data) in parse_events(&text) {
            if name != "canary" || data["key"] != "test/podinfo" {
                continue;
            }
            let row = (
                data["canaryWeight"].as_i64().unwrap_or(-1),
                data["phase"].as_str().unwrap_or_default().to_string(),
            );
            if out.last() != Some(&row) {
                out.push(row);
            }
        }
        out
    };
    wait_for(
        "the Succeeded row on the stream",
        Duration::from_secs(5),
        || {
            let done = rows().last() == Some(&(0, "Succeeded".to_string()));
            async move { done.then_some(()) }
        },
    )
    .await;
    let seen = rows();
    let progressing = |w: i64| (w, "Progressing".to_string());
    let steps = [progressing(10), progressing(20), progressing(30)];
    let mut at = 0;
    for row in &seen {
        if at < steps.len() && *row == steps[at] {
            at += 1;
        }
    }
    assert_eq!(at, steps.len(), "missing {:?} in {seen:?}", steps.get(at));

    // The detail is what the controller wrote, plus the history the dashboard kept.
    let detail = wait_for(
        "the promotion's last event in the detail",
        Duration::from_secs(5),
        || {
            let http = http.clone();
            let url = format!("{base}/api/canaries/test/podinfo");
            async move {
                let d: Value = http.get(url).send().await.ok()?.json().await.ok()?;
                let events = d["events"].as_array()?;
                events
                    .iter()
                    .any(|e| e["message"] == "Promotion completed! Scaling down podinfo.test")
                    .then_some(d)
            }
        },
    )
    .await;
    let canary = cluster.canary("podinfo").await.unwrap();
    let status = canary.status.unwrap();
    assert_eq!(
        detail["decisions"],
        serde_json::to_value(status.decisions.unwrap_or_default()).unwrap()
    );
    assert_eq!(detail["phase"], "Succeeded");
    assert_eq!(detail["maxWeight"], 30);
    let weights: Vec<i64> = detail["weights"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["phase"] == "Progressing")
        .map(|p| p["weight"].as_i64().unwrap())
        .collect();
    assert_eq!(weights, [0, 10, 20, 30], "{detail:#}");
    let metrics: Vec<&str> = detail["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(metrics, ["request-success-rate", "request-duration"]);
    let last = &detail["metrics"][0]["points"]
        .as_array()
        .unwrap()
        .last()
        .cloned();
    assert_eq!(
        last.as_ref()
            .map(|p| (&p["value"], &p["min"], &p["verdict"])),
        Some((&json!(100.0), &json!(99.0), &json!("pass")))
    );

    // A deleted Canary leaves the list and the stream says so.
    cluster
        .canaries()
        .delete("podinfo", &Default::default())
        .await
        .unwrap();
    wait_for("the removal on the stream", Duration::from_secs(10), || {
        let text = received.lock().unwrap().clone();
        let removed = parse_events(&text)
            .iter()
            .any(|(name, data)| name == "removed" && data["key"] == "test/podinfo");
        async move { removed.then_some(()) }
    })
    .await;
    let list: Value = http
        .get(format!("{base}/api/canaries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    let gone = http
        .get(format!("{base}/api/canaries/test/podinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    // Stopping the controller ends the open stream (it does not hold the shutdown up).
    ctrl.stop().await;
    tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the stream stayed open after the controller stopped")
        .unwrap();
    cluster.shutdown().await;
}
