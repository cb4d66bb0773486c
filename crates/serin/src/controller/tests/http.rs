//! The scheduler with the real HTTP webhook client against an axum server: the exact payload
//! of every hook type, and failures reported as events, never crashes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode as AxumStatus;
use axum::routing::post;

use super::*;
use crate::controller::webhook::{HttpWebhookClient, checksum};

type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// Records every body by path; `/rollback` answers 403 (no rollback), the rest 200.
async fn server() -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/{hook}",
            post(
                |State(r): State<Received>,
                 Path(hook): Path<String>,
                 Json(body): Json<serde_json::Value>| async move {
                    let code = if hook == "rollback" {
                        AxumStatus::FORBIDDEN
                    } else {
                        AxumStatus::OK
                    };
                    lock(&r).push((hook, body));
                    (code, "no rollback requested")
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

fn http_world(analysis: serde_json::Value) -> World {
    let mut w = World::new(canary(Some(analysis), serde_json::json!({})));
    w.client = Arc::new(HttpWebhookClient::new().unwrap());
    w.restart();
    w
}

#[tokio::test]
async fn every_hook_type_over_http() {
    let (base, received) = server().await;
    let webhooks: Vec<serde_json::Value> = [
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "post-rollout",
        "rollback",
        "event",
    ]
    .iter()
    .map(|t| {
        serde_json::json!({"name": format!("{t}-hook"), "type": t, "url": format!("{base}/{t}"),
            "timeout": "5s", "metadata": {"kind": *t}})
    })
    .collect();
    let analysis = serde_json::json!({"interval": "1m", "maxWeight": 10, "stepWeight": 10,
        "webhooks": webhooks});
    let w = http_world(analysis);
    w.initialized().await;
    lock(&received).clear();
    w.push("rev2");
    w.reconcile().await;
    let run_checksum = checksum(&w.status());
    w.tick_until(CanaryPhase::Succeeded, 10).await;

    let got = lock(&received).clone();
    let first = |hook: &str| -> serde_json::Value {
        got.iter()
            .find(|(h, _)| h == hook)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| panic!("{hook} not called"))
    };
    let expect = |phase: &str, kind: &str, sum: &str| {
        serde_json::json!({"name": "podinfo", "namespace": "test", "phase": phase,
            "checksum": sum, "metadata": {"kind": kind}})
    };
    // confirm-rollout is called before the run starts: the status still describes rev1.
    let mut before = w.status();
    before.last_applied_spec = Some("rev1".into());
    assert_eq!(
        first("confirm-rollout"),
        expect("Initialized", "confirm-rollout", &checksum(&before))
    );
    for t in [
        "pre-rollout",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
    ] {
        assert_eq!(first(t), expect("Progressing", t, &run_checksum), "{t}");
    }
    assert_eq!(
        first("rollback"),
        expect("Progressing", "rollback", &run_checksum)
    );
    assert_eq!(
        first("post-rollout"),
        expect("Succeeded", "post-rollout", &run_checksum)
    );
    let event = first("event");
    assert_eq!(event["phase"], "Initialized");
    assert_eq!(
        event["metadata"]["eventMessage"],
        "Confirm-rollout check confirm-rollout-hook passed"
    );
    let new_revision = got
        .iter()
        .find(|(h, b)| {
            h == "event"
                && b["metadata"]["eventMessage"]
                    .as_str()
                    .unwrap()
                    .starts_with("New revision")
        })
        .map(|(_, b)| b.clone())
        .unwrap();
    assert_eq!(
        new_revision["phase"], "Progressing",
        "sent as the phase it starts"
    );
    assert_eq!(event["metadata"]["eventType"], "Normal");
    assert_eq!(event["metadata"]["kind"], "event");
    assert_eq!(event["metadata"]["timestamp"], (START * 1000).to_string());
    assert!(
        w.messages()
            .contains(&"Rollback hook rollback-hook not signaling a rollback".to_string())
    );
    // Every event reached the event hook, in order.
    let event_messages: Vec<String> = got
        .iter()
        .filter(|(h, _)| h == "event")
        .map(|(_, b)| b["metadata"]["eventMessage"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(event_messages, w.messages());
}

#[tokio::test]
async fn unreachable_hooks_are_failed_checks_with_a_clear_event() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let analysis = serde_json::json!({"interval": "1m", "threshold": 5, "stepWeight": 10,
    "webhooks": [
        {"name": "load-test", "url": format!("http://{addr}/"), "timeout": "1s"},
        {"name": "typo", "type": "post-rollout", "url": "htp:/nowhere"},
    ]});
    let w = http_world(analysis);
    w.initialized().await;
    w.push("rev2");
    w.reconcile().await;
    w.tick().await;
    w.clear();
    w.tick().await;
    let msgs = w.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let prefix = format!(
        "Halt podinfo.test advancement external check load-test failed POST http://{addr}/ giving up after 1 attempt(s): "
    );
    assert!(msgs[0].starts_with(&prefix), "{}", msgs[0]);
    assert_eq!(w.status().failed_checks, 1);
    // A malformed URL on a post-rollout hook is reported, and the run still completes.
    w.edit(|c| {
        let hooks = c.spec.analysis.as_mut().unwrap().webhooks.as_mut().unwrap();
        hooks.remove(0);
    });
    w.tick_until(CanaryPhase::Succeeded, 20).await;
    assert!(
        w.messages()
            .iter()
            .any(|m| m.starts_with("Post-rollout hook typo failed invalid webhook URL")),
        "{:?}",
        w.messages()
    );
}
