//! API compatibility of `serin loadtester`: payloads, answers, gates, tasks, safety options.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use serin::loadtester::{self, Config};
use tokio::sync::oneshot;

struct Api {
    base: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(config: Config) -> Api {
    let state = loadtester::state(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(loadtester::serve(listener, state, async move {
        let _ = rx.await;
    }));
    serin::tls::install_default();
    Api {
        base,
        http: reqwest::Client::new(),
        stop: Some(tx),
    }
}

fn config() -> Config {
    Config {
        timeout: Duration::from_secs(30),
        ..Config::default()
    }
}

impl Api {
    async fn post(&self, path: &str, body: serde_json::Value) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
    async fn post_raw(&self, path: &str, body: &'static str) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
    async fn metric(&self, name: &str) -> u64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

fn payload(name: &str, namespace: &str, metadata: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "namespace": namespace, "phase": "Progressing", "checksum": "c0ffee", "metadata": metadata})
}

fn canary() -> serde_json::Value {
    json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "c0ffee"})
}

#[tokio::test]
async fn health_approve_halt() {
    let api = start(config()).await;
    assert_eq!(api.get("/healthz").await, (200, "OK".into()));
    assert_eq!(api.post_raw("/healthz", "").await, (200, "OK".into()));
    assert_eq!(
        api.post_raw("/gate/approve", "not even json").await,
        (200, "OK".into())
    );
    assert_eq!(
        api.post("/gate/halt", canary()).await,
        (403, "Forbidden".into())
    );
}

#[tokio::test]
async fn gates_follow_open_and_close_per_canary() {
    let api = start(config()).await;
    assert_eq!(
        api.post("/gate/check", canary()).await,
        (403, "Forbidden".into())
    );
    assert_eq!(api.post("/gate/open", canary()).await, (202, String::new()));
    assert_eq!(
        api.post("/gate/check", canary()).await,
        (200, "Approved".into())
    );
    assert_eq!(
        api.post("/gate/check", canary()).await,
        (200, "Approved".into()),
        "stays open"
    );
    // Another canary and the rollback gate of the same canary are separate.
    let other = json!({"name": "podinfo", "namespace": "prod"});
    assert_eq!(api.post("/gate/check", other).await.0, 403);
    assert_eq!(
        api.post("/rollback/check", canary()).await,
        (403, "Forbidden".into())
    );
    assert_eq!(api.post("/rollback/open", canary()).await.0, 202);
    assert_eq!(
        api.post("/rollback/check", canary()).await,
        (200, "Approved".into())
    );
    assert_eq!(api.post("/rollback/close", canary()).await.0, 202);
    assert_eq!(api.post("/rollback/check", canary()).await.0, 403);
    assert_eq!(api.post("/gate/close", canary()).await.0, 202);
    assert_eq!(api.post("/gate/check", canary()).await.0, 403);
    assert_eq!(api.post_raw("/gate/check", "{").await.0, 400);
    assert_eq!(api.metric("serin_loadtester_gate_checks_total").await, 8);
}

#[tokio::test]
async fn task_request_errors() {
    let api = start(config()).await;
    assert_eq!(
        api.post("/", canary()).await,
        (400, "metadata not found in payload".into())
    );
    assert_eq!(
        api.post("/", payload("podinfo", "test", json!({}))).await.0,
        400
    );
    assert_eq!(
        api.post("/", payload("podinfo", "test", json!({"type": "cmd"})))
            .await,
        (400, "cmd not found in metadata".into())
    );
    assert_eq!(
        api.post("/", payload("podinfo", "test", json!({"type": "bash"})))
            .await,
        (400, "cmd not found in metadata".into())
    );
    assert_eq!(
        api.post(
            "/",
            payload("podinfo", "test", json!({"type": "gatling", "cmd": "x"}))
        )
        .await,
        (400, "unknown task type gatling".into())
    );
    assert_eq!(api.post_raw("/", "this is not json").await.0, 400);
    let (status, body) = api
        .post(
            "/",
            payload("podinfo", "test", json!({"cmd": "hey -z 1m -k http://x/"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("invalid hey command: flag provided but not defined: -k"),
        "{body}"
    );
    let (status, body) = api
        .post(
            "/",
            payload(
                "podinfo",
                "test",
                json!({"type": "ngrinder", "server": "http://x/"}),
            ),
        )
        .await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "server, clone, username and passwd are required metadata"
        )
    );
    let (status, body) = api
        .post(
            "/",
            payload(
                "podinfo",
                "test",
                json!({"type": "concord", "server": "http://x/"}),
            ),
        )
        .await;
    assert_eq!(
        (status, body.as_str()),
        (500, "`org` is required with type concord")
    );
    // Any path other than the named endpoints runs tasks, as in Flagger.
    assert_eq!(
        api.post(
            "/some/other/path",
            payload("podinfo", "test", json!({"type": "nope"}))
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn bash_exit_codes_become_answers() {
    let api = start(config()).await;
    let ok = payload(
        "podinfo",
        "test",
        json!({"type": "bash", "cmd": "echo acceptance; exit 0"}),
    );
    assert_eq!(api.post("/", ok).await, (200, String::new()));
    let with_output = payload(
        "podinfo",
        "test",
        json!({"type": "bash", "cmd": "echo acceptance", "returnCmdOutput": "true"}),
    );
    assert_eq!(
        api.post("/", with_output).await,
        (200, "acceptance\n".into())
    );
    let failing = payload(
        "podinfo",
        "test",
        json!({"type": "bash", "cmd": "echo broken >&2; exit 3"}),
    );
    let (status, body) = api.post("/", failing).await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "command echo broken >&2; exit 3 failed: broken\n: exit status 3"
    );
    // bash, not sh: [[ ]] works.
    let bashism = payload(
        "podinfo",
        "test",
        json!({"type": "bash", "cmd": "[[ 1 == 1 ]]"}),
    );
    assert_eq!(api.post("/", bashism).await.0, 200);
}

#[tokio::test]
async fn blocking_tasks_are_killed_at_the_timeout() {
    let api = start(Config {
        timeout: Duration::from_millis(500),
        ..config()
    })
    .await;
    let start = Instant::now();
    let (status, body) = api
        .post(
            "/",
            payload(
                "podinfo",
                "test",
                json!({"type": "bash", "cmd": "echo started; sleep 20"}),
            ),
        )
        .await;
    assert_eq!(status, 500);
    assert!(body.contains("killed after the timeout of 500ms"), "{body}");
    assert!(body.contains("started"), "{body}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn helm_reports_a_clear_error_when_missing() {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("helm").is_file()))
        .unwrap_or(false);
    let api = start(config()).await;
    let (status, body) = api
        .post(
            "/",
            payload(
                "podinfo",
                "test",
                json!({"type": "helmv3", "cmd": "version --short"}),
            ),
        )
        .await;
    if on_path {
        assert_eq!(status, 200, "{body}");
    } else {
        assert_eq!(
            (status, body.as_str()),
            (
                500,
                "command helm version --short failed: helm is not installed (not found on PATH)"
            )
        );
    }
}

#[tokio::test]
async fn background_commands_are_deduplicated_per_canary_and_command() {
    let dir = std::env::temp_dir().join(format!("serin-dedup-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let api = start(config()).await;
    let cmd = format!("echo run >> {}; sleep 1", dir.display());
    let task = payload(
        "podinfo",
        "test",
        json!({"cmd": cmd, "logCmdOutput": "true"}),
    );
    assert_eq!(api.post("/", task.clone()).await, (202, String::new()));
    assert_eq!(api.post("/", task.clone()).await.0, 202);
    assert_eq!(api.post("/", task.clone()).await.0, 202);
    let other_canary = payload("podinfo", "prod", json!({"cmd": cmd}));
    assert_eq!(api.post("/", other_canary).await.0, 202);
    assert_eq!(api.metric("serin_loadtester_tasks_started_total").await, 2);
    assert_eq!(api.metric("serin_loadtester_tasks_skipped_total").await, 2);
    // Once it has finished, the same request starts it again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.metric("serin_loadtester_tasks_running").await > 0 {
        assert!(Instant::now() < deadline, "tasks did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(api.post("/", task).await.0, 202);
    assert_eq!(api.metric("serin_loadtester_tasks_started_total").await, 3);
    let runs = std::fs::read_to_string(&dir).unwrap();
    assert!(runs.lines().count() >= 2, "{runs}");
    let _ = std::fs::remove_file(&dir);
}

#[tokio::test]
async fn background_commands_are_killed_at_the_timeout() {
    let api = start(Config {
        timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    assert_eq!(
        api.post("/", payload("podinfo", "test", json!({"cmd": "sleep 30"})))
            .await
            .0,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.metric("serin_loadtester_tasks_running").await > 0 {
        assert!(Instant::now() < deadline, "the task was not killed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(api.metric("serin_loadtester_tasks_failed_total").await, 1);
}

#[tokio::test]
async fn allow_cmd_limits_shell_commands() {
    let api = start(Config {
        allow_cmd: vec!["echo ".into(), "hey ".into()],
        ..config()
    })
    .await;
    let allowed = payload(
        "podinfo",
        "test",
        json!({"type": "bash", "cmd": "echo fine", "returnCmdOutput": "true"}),
    );
    assert_eq!(api.post("/", allowed).await, (200, "fine\n".into()));
    for cmd in [
        "rm -rf /tmp/nothing",
        "echo fine; id",
        "echo $(id)",
        "echo fine | sh",
    ] {
        let (status, body) = api
            .post(
                "/",
                payload("podinfo", "test", json!({"type": "bash", "cmd": cmd})),
            )
            .await;
        assert_eq!(status, 403, "{cmd}");
        assert!(body.contains("is not allowed"), "{body}");
    }
    let (status, _) = api
        .post(
            "/",
            payload(
                "podinfo",
                "test",
                json!({"type": "kubectl", "cmd": "get pods"}),
            ),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn namespace_regexp_restricts_callers() {
    let api = start(Config {
        namespace_regexp: "^test$".into(),
        ..config()
    })
    .await;
    let outsider = payload("podinfo", "prod", json!({"type": "bash", "cmd": "true"}));
    assert_eq!(api.post("/", outsider).await, (403, "Forbidden".into()));
    assert_eq!(
        api.post(
            "/gate/open",
            json!({"name": "podinfo", "namespace": "prod"})
        )
        .await
        .0,
        403
    );
    let insider = payload("podinfo", "test", json!({"type": "bash", "cmd": "true"}));
    assert_eq!(api.post("/", insider).await.0, 200);
    assert!(
        loadtester::state(&Config {
            namespace_regexp: "(".into(),
            ..config()
        })
        .is_err()
    );
}

#[tokio::test]
async fn bearer_token_protects_everything_but_health() {
    let api = start(Config {
        auth_token: Some("s3cret".into()),
        ..config()
    })
    .await;
    assert_eq!(api.get("/healthz").await.0, 200);
    assert_eq!(
        api.post("/gate/check", canary()).await,
        (401, "Unauthorized".into())
    );
    let resp = api
        .http
        .post(format!("{}/gate/open", api.base))
        .bearer_auth("s3cret")
        .json(&canary())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let resp = api
        .http
        .post(format!("{}/gate/check", api.base))
        .bearer_auth("wrong")
        .json(&canary())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        api.post("/gate/check?token=s3cret", canary()).await,
        (200, "Approved".into())
    );
}

/// A hey command runs in-process (no hey binary needed) against a local server that counts.
#[tokio::test]
async fn hey_commands_run_in_process() {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let api = start(config()).await;
    let cmd = format!("hey -n 30 -c 3 {target}");
    assert_eq!(
        api.post(
            "/",
            payload(
                "podinfo",
                "test",
                json!({"cmd": cmd, "logCmdOutput": "true"})
            )
        )
        .await
        .0,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.metric("serin_loadtester_tasks_running").await > 0
        || hits.load(Ordering::Relaxed) < 30
    {
        assert!(
            Instant::now() < deadline,
            "hey did not finish: {} hits",
            hits.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hits.load(Ordering::Relaxed), 30);
    assert_eq!(api.metric("serin_loadtester_tasks_failed_total").await, 0);
}
