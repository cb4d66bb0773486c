//! `concord` and `ngrinder` tasks against fake Concord / nGrinder servers on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::json;
use serin::loadtester::{self, Config};

async fn spawn(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn loadtester() -> (String, reqwest::Client) {
    let state = loadtester::state(&Config {
        timeout: Duration::from_secs(20),
        ..Config::default()
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(loadtester::serve(listener, state, std::future::pending()));
    serin::tls::install_default();
    (base, reqwest::Client::new())
}

#[derive(Default)]
struct Concord {
    final_status: &'static str,
    polls: AtomicU64,
    auth: Mutex<String>,
    form: Mutex<String>,
}

#[tokio::test]
async fn concord_process_is_started_and_polled() {
    for (final_status, expected) in [("FINISHED", 200), ("FAILED", 500)] {
        let fake = Arc::new(Concord {
            final_status,
            ..Concord::default()
        });
        let app = Router::new()
            .route(
                "/api/v1/process",
                post(
                    |State(s): State<Arc<Concord>>, headers: HeaderMap, body: String| async move {
                        *s.auth.lock().unwrap() = headers
                            .get("authorization")
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .to_owned();
                        *s.form.lock().unwrap() = body;
                        axum::Json(json!({"instanceId": "abc", "ok": true}))
                    },
                ),
            )
            .route(
                "/api/v1/process/{id}",
                get(
                    |State(s): State<Arc<Concord>>, Path(id): Path<String>| async move {
                        let n = s.polls.fetch_add(1, Ordering::Relaxed);
                        let status = if n == 0 { "RUNNING" } else { s.final_status };
                        axum::Json(json!({"instanceId": id, "status": status}))
                    },
                ),
            )
            .with_state(fake.clone());
        let concord = spawn(app).await;
        let key = std::env::temp_dir().join(format!("serin-concord-test-{}", std::process::id()));
        std::fs::write(&key, "api-key\n").unwrap();
        let (api, http) = loadtester().await;
        let body = json!({"name": "podinfo", "namespace": "test", "metadata": {
            "type": "concord", "server": concord, "org": "myorg", "project": "myproj", "repo": "myrepo",
            "entrypoint": "test", "apiKeyPath": key.to_str().unwrap(), "endpoint": "http://podinfo-canary/",
            "arguments.depth": "3", "pollInterval": "1", "pollTimeout": "10"}});
        let resp = http
            .post(format!("{api}/"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, expected, "{text}");
        if expected == 500 {
            assert_eq!(text, "concord instanceID: abc failed");
        }
        assert_eq!(fake.polls.load(Ordering::Relaxed), 2);
        assert_eq!(*fake.auth.lock().unwrap(), "api-key");
        let form = fake.form.lock().unwrap().clone();
        for field in [
            ("org", "myorg"),
            ("entryPoint", "test"),
            ("arguments.endpoint", "http://podinfo-canary/"),
            ("arguments.depth", "3"),
        ] {
            assert!(
                form.contains(&format!("name=\"{}\"\r\n\r\n{}\r\n", field.0, field.1)),
                "{form}"
            );
        }
        let _ = std::fs::remove_file(&key);
    }
}

#[derive(Default)]
struct Grinder {
    final_status: &'static str,
    started: AtomicU64,
    polls: AtomicU64,
    auth: Mutex<String>,
}

#[tokio::test]
async fn ngrinder_test_is_cloned_started_and_followed_in_the_background() {
    for (final_status, failed) in [("FINISHED", 0), ("STOP_BY_ERROR", 1)] {
        let fake = Arc::new(Grinder {
            final_status,
            ..Grinder::default()
        });
        let app =
            Router::new()
                .route(
                    "/perftest/api/{clone}/clone_and_start",
                    post(
                        |State(s): State<Arc<Grinder>>,
                         Path(clone): Path<u64>,
                         headers: HeaderMap| async move {
                            assert_eq!(clone, 7);
                            s.started.fetch_add(1, Ordering::Relaxed);
                            *s.auth.lock().unwrap() = headers
                                .get("authorization")
                                .unwrap()
                                .to_str()
                                .unwrap()
                                .to_owned();
                            axum::Json(json!({"id": 42}))
                        },
                    ),
                )
                .route(
                    "/perftest/api/{id}/status",
                    get(
                        |State(s): State<Arc<Grinder>>, Path(id): Path<u64>| async move {
                            assert_eq!(id, 42);
                            let n = s.polls.fetch_add(1, Ordering::Relaxed);
                            let status = if n < 2 { "TESTING" } else { s.final_status };
                            axum::Json(json!({"status": [{"status_id": status}]}))
                        },
                    ),
                )
                .with_state(fake.clone());
        let grinder = spawn(app).await;
        let (api, http) = loadtester().await;
        let body = json!({"name": "podinfo", "namespace": "test", "metadata": {
            "type": "ngrinder", "server": format!("{grinder}/"), "clone": "7", "username": "admin",
            "passwd": "YWRtaW4=", "pollInterval": "50ms"}});
        let resp = http
            .post(format!("{api}/"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        // Deduplicated while running.
        assert_eq!(
            http.post(format!("{api}/"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            202
        );
        let metric = |name: &'static str| {
            let http = http.clone();
            let api = api.clone();
            async move {
                let text = http
                    .get(format!("{api}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
                    .unwrap()
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric("serin_loadtester_tasks_running").await > 0
            || fake.polls.load(Ordering::Relaxed) < 3
        {
            assert!(Instant::now() < deadline, "ngrinder task did not end");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(fake.started.load(Ordering::Relaxed), 1);
        assert_eq!(*fake.auth.lock().unwrap(), "Basic YWRtaW46YWRtaW4=");
        assert_eq!(metric("serin_loadtester_tasks_failed_total").await, failed);
        assert_eq!(metric("serin_loadtester_tasks_skipped_total").await, 1);
    }
}
