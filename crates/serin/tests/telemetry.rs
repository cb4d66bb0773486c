//! The HTTP server on 127.0.0.1:0, the JSON log format written to a buffer, and the log line of
//! a failed alert.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use serin::metrics::recorder::Recorder;
use serin::notify::{
    Alert, AlertOrigin, Field, NotifierConfig, NotifierKind, Severity, build, deliver,
};
use serin::telemetry::logging::{JsonLayer, LogArgs, LogFormat, filter_for};
use serin::telemetry::server::{Readiness, ServerArgs, router, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

/// A minimal HTTP/1.1 GET, so the test needs no HTTP client of its own.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

#[tokio::test]
async fn server_endpoints_and_graceful_shutdown() {
    let recorder = Recorder::new();
    recorder.set_info("0.1.0", "istio");
    recorder.set_status("podinfo", "test", 2);
    let readiness = Readiness::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        router(recorder.clone(), readiness.clone()),
        async {
            let _ = stopped.await;
        },
    ));

    let (status, _, body) = get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "OK"));

    let (status, _, _) = get(addr, "/readyz").await;
    assert_eq!(status, 503);
    readiness.set_ready();
    let (status, _, body) = get(addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "OK"));
    readiness.set_not_ready();
    assert_eq!(get(addr, "/readyz").await.0, 503);

    let (status, content_type, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(
        body.contains(r#"flagger_info{version="0.1.0",mesh_provider="istio"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(r#"flagger_canary_status{name="podinfo",namespace="test"} 2"#),
        "{body}"
    );
    // Later updates show up on the next scrape.
    recorder.set_status("podinfo", "test", 1);
    let (_, _, body) = get(addr, "/metrics").await;
    assert!(body.contains(r#"flagger_canary_status{name="podinfo",namespace="test"} 1"#));

    assert_eq!(get(addr, "/nope").await.0, 404);

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops after the shutdown signal")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_hanging_client_longer_than_the_grace_period() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        router(Recorder::new(), Readiness::new()),
        async {
            let _ = stopped.await;
        },
    ));
    // A client that sends half a request and then waits.
    let mut hanging = TcpStream::connect(addr).await.unwrap();
    hanging
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops within the grace period")
        .unwrap();
    assert!(result.is_ok());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(hanging);
}

#[test]
fn server_args_default_port() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }
    assert_eq!(Cli::try_parse_from(["serin"]).unwrap().server.port, 8080);
    assert_eq!(
        Cli::try_parse_from(["serin", "--port", "9999"])
            .unwrap()
            .server
            .port,
        9999
    );
}

#[test]
fn log_args_accept_flagger_and_serin_spellings() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
    }
    let parse = |args: &[&str]| {
        let mut argv = vec!["serin"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().log
    };
    let d = parse(&[]);
    assert_eq!((d.log_level.as_str(), d.format), ("debug", LogFormat::Json));
    assert_eq!(
        parse(&["--zap-encoding", "console"]).format,
        LogFormat::Console
    );
    assert_eq!(parse(&["--log-format=console"]).format, LogFormat::Console);
    assert_eq!(parse(&["--log-level", "warning"]).log_level, "warning");
    assert!(parse(&["--zap-replace-globals"]).zap_replace_globals);
    assert!(!parse(&["--zap-replace-globals=false"]).zap_replace_globals);
    assert!(Cli::try_parse_from(["serin", "--zap-encoding", "yaml"]).is_err());
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn json_subscriber(buffer: &Buffer) -> impl tracing::Subscriber + Send + Sync {
    let writer = buffer.clone();
    tracing_subscriber::registry().with(JsonLayer::new(move || writer.clone()))
}

#[test]
fn json_lines_have_zap_keys_and_flattened_fields() {
    let buffer = Buffer::default();
    tracing::subscriber::with_default(json_subscriber(&buffer), || {
        let span = tracing::info_span!("reconcile", canary = "podinfo.test", attempt = 1_u64);
        let _guard = span.enter();
        tracing::info!(weight = 10_i64, "Advance podinfo.test canary weight 10");
        span.record("attempt", 2_u64);
        tracing::warn!(ok = false, ratio = 0.5, "Halt \"quoted\" advancement");
        tracing::debug!(canary = "override.ns", "inner field wins");
        // What tracing-log makes of a `log` crate record.
        tracing::info!("log.target" = "kube_client", "log.line" = 7_u64, "from log");
    });
    let lines = buffer.lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let fourth: Value = serde_json::from_str(&lines[3]).unwrap();
    assert_eq!(fourth["logger"], "kube_client");
    assert!(fourth.get("log.line").is_none(), "{}", lines[3]);

    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    // Key order as zap writes it: level, ts, caller, msg, then fields.
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted_expected = vec![
        "level", "ts", "caller", "msg", "canary", "attempt", "weight",
    ];
    sorted_expected.sort_unstable();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort_unstable();
    assert_eq!(sorted_keys, sorted_expected);
    assert!(
        lines[0].starts_with(r#"{"level":"info","ts":""#),
        "{}",
        lines[0]
    );
    let msg_at = lines[0].find(r#""msg""#).unwrap();
    let canary_at = lines[0].find(r#""canary""#).unwrap();
    assert!(lines[0].find(r#""caller""#).unwrap() < msg_at && msg_at < canary_at);

    assert_eq!(first["msg"], "Advance podinfo.test canary weight 10");
    assert_eq!(first["canary"], "podinfo.test");
    assert_eq!(first["attempt"], 1);
    assert_eq!(first["weight"], 10);
    let caller = first["caller"].as_str().unwrap();
    assert!(caller.starts_with("tests/telemetry.rs:"), "{caller}");
    let ts = first["ts"].as_str().unwrap();
    // ISO 8601 UTC: 2026-01-02T03:04:05.123456Z
    assert_eq!(ts.len(), 27, "{ts}");
    assert_eq!((&ts[4..5], &ts[10..11], &ts[26..]), ("-", "T", "Z"), "{ts}");

    let second: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["level"], "warn");
    assert_eq!(second["msg"], "Halt \"quoted\" advancement");
    assert_eq!(second["ok"], false);
    assert_eq!(second["ratio"], 0.5);
    assert_eq!(second["attempt"], 2, "span record() is reflected");

    let third: Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(third["level"], "debug");
    assert_eq!(third["canary"], "override.ns");
}

#[test]
fn failed_alert_is_logged_with_flagger_message_and_no_secret() {
    let buffer = Buffer::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Through Serin's filter: hyper's and reqwest's trace/debug lines stay out.
    let subscriber = json_subscriber(&buffer).with(filter_for(LevelFilter::DEBUG));
    let delivered = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            let notifier = build(&NotifierConfig {
                kind: NotifierKind::Slack,
                url: format!("http://{addr}/services/T1/B1/HOOKSECRET"),
                channel: Some("general".into()),
                username: Some("flagger".into()),
                proxy: None,
                token: Some("xoxb-TOKENSECRET".into()),
            })
            .unwrap();
            let alert = Alert {
                canary: "podinfo".into(),
                namespace: "test".into(),
                message: "Failed checks threshold reached 5".into(),
                fields: vec![Field::new("Cluster", "prod")],
                severity: Severity::Error,
            };
            let origin = AlertOrigin::Provider {
                name: "on-call".into(),
                namespace: "flagger-system".into(),
            };
            let provider = deliver(&notifier, &alert, &origin).await;
            let global = deliver(&notifier, &alert, &AlertOrigin::Global).await;
            provider || global
        })
    });
    assert!(!delivered);
    let lines = buffer.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let provider: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(provider["level"], "error");
    assert_eq!(provider["canary"], "podinfo.test");
    let msg = provider["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("alert provider on-call.flagger-system send error: posting to slack at http://127.0.0.1:"),
        "{msg}"
    );
    let global: Value = serde_json::from_str(&lines[1]).unwrap();
    assert!(
        global["msg"]
            .as_str()
            .unwrap()
            .starts_with("alert can't be sent: posting to slack"),
        "{}",
        lines[1]
    );
    for line in &lines {
        assert!(!line.contains("HOOKSECRET"), "{line}");
        assert!(!line.contains("TOKENSECRET"), "{line}");
    }
}
