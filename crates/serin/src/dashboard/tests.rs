#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::state::{self, Change, View};
use super::{Dashboard, DashboardArgs};
use crate::api::Canary;
use crate::controller::ports::EventKind;
use crate::controller::runtime::CanaryObserver;
use crate::k8s::packed::PackedStore;
use crate::tls::{Alpn, Verification};

fn canary(name: &str, phase: &str, weight: i32, at: &str, decisions: Value) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 3, "maxWeight": 50, "stepWeight": 10}
        },
        "status": {
            "phase": phase, "canaryWeight": weight, "failedChecks": 0, "iterations": 0,
            "lastTransitionTime": at, "decisions": decisions
        }
    }))
    .unwrap()
}

fn tick(at: &str, weight: i32, value: f64) -> Value {
    json!({
        "time": at, "phase": "Progressing", "canaryWeight": weight,
        "checks": [{"name": "request-success-rate", "value": value, "min": 99.0,
                    "verdict": if value >= 99.0 { "pass" } else { "fail" }}],
        "step": {"action": "advance", "summary": format!("canary weight → {weight}")}
    })
}

/// A view fed the way the controller's watch feeds it: the cache first, then the observer.
struct Fed {
    view: Arc<View>,
    store: PackedStore<Canary>,
}

impl Fed {
    fn new() -> Self {
        let view = Arc::new(View::new());
        let store = PackedStore::default();
        CanaryObserver::cache(view.as_ref(), store.clone());
        Self { view, store }
    }

    fn send(&mut self, event: watcher::Event<Canary>) {
        self.store.apply(&event);
        CanaryObserver::event(self.view.as_ref(), &event);
    }

    fn apply(&mut self, canary: Canary) {
        self.send(watcher::Event::Apply(canary));
    }
}

#[test]
fn the_weight_history_gains_a_point_per_change_and_restarts_with_a_run() {
    let mut fed = Fed::new();
    fed.apply(canary(
        "a",
        "Initialized",
        0,
        "2026-01-01T00:00:00Z",
        json!([]),
    ));
    fed.apply(canary(
        "a",
        "Progressing",
        0,
        "2026-01-01T00:01:00Z",
        json!([]),
    ));
    fed.apply(canary(
        "a",
        "Progressing",
        10,
        "2026-01-01T00:02:00Z",
        json!([]),
    ));
    // A status write that changed neither weight nor phase adds nothing.
    fed.apply(canary(
        "a",
        "Progressing",
        10,
        "2026-01-01T00:02:30Z",
        json!([]),
    ));
    fed.apply(canary(
        "a",
        "Succeeded",
        0,
        "2026-01-01T00:03:00Z",
        json!([]),
    ));
    let d = fed.view.detail("test", "a").unwrap();
    let weights: Vec<(i32, &str)> = d
        .weights
        .iter()
        .map(|p| (p.weight, p.phase.as_str()))
        .collect();
    // The plot starts with the run (Initialized is before it).
    assert_eq!(
        weights,
        [(0, "Progressing"), (10, "Progressing"), (0, "Succeeded")]
    );
    assert_eq!(d.weights[1].t, 1_767_225_720_000);
    assert_eq!(d.max_weight, 50);
    assert_eq!(d.threshold, Some(3));

    // The next run starts a new plot.
    fed.apply(canary(
        "a",
        "Progressing",
        0,
        "2026-01-01T01:00:00Z",
        json!([]),
    ));
    let d = fed.view.detail("test", "a").unwrap();
    assert_eq!(d.weights.len(), 1);
}

#[test]
fn decisions_become_metric_points_once_each() {
    let mut fed = Fed::new();
    let first = tick("2026-01-01T00:01:00Z", 10, 99.5);
    let second = tick("2026-01-01T00:02:00Z", 20, 98.0);
    fed.apply(canary(
        "a",
        "Progressing",
        10,
        "2026-01-01T00:01:00Z",
        json!([first]),
    ));
    // The record is written again with the old tick and a new one.
    fed.apply(canary(
        "a",
        "Progressing",
        20,
        "2026-01-01T00:02:00Z",
        json!([first, second]),
    ));
    let d = fed.view.detail("test", "a").unwrap();
    assert_eq!(d.metrics.len(), 1);
    let series = &d.metrics[0];
    assert_eq!(series.name, "request-success-rate");
    let values: Vec<(Option<f64>, Option<f64>, &str)> = series
        .points
        .iter()
        .map(|p| (p.value, p.min, p.verdict.as_str()))
        .collect();
    assert_eq!(
        values,
        [
            (Some(99.5), Some(99.0), "pass"),
            (Some(98.0), Some(99.0), "fail")
        ]
    );
    assert_eq!(d.decisions.len(), 2);
}

#[test]
fn a_tick_written_again_replaces_its_points() {
    let mut fed = Fed::new();
    let at = "2026-01-01T00:01:00Z";
    let mut first = tick(at, 10, 99.5);
    first["checks"] = json!([]);
    fed.apply(canary("a", "Progressing", 10, at, json!([first])));
    fed.apply(canary(
        "a",
        "Progressing",
        10,
        at,
        json!([tick(at, 10, 99.5)]),
    ));
    // Seen again unchanged with the next status write: still one point.
    fed.apply(canary(
        "a",
        "Progressing",
        10,
        at,
        json!([tick(at, 10, 99.5)]),
    ));
    let d = fed.view.detail("test", "a").unwrap();
    assert_eq!(d.metrics.len(), 1);
    assert_eq!(d.metrics[0].points.len(), 1);
    assert_eq!(d.metrics[0].points[0].value, Some(99.5));
}

#[test]
fn histories_are_bounded_per_canary() {
    let mut fed = Fed::new();
    let start = 1_767_225_600i64;
    for i in 0..(state::MAX_METRIC_POINTS as i64 + 50) {
        let at = k8s_openapi::jiff::Timestamp::from_second(start + i)
            .unwrap()
            .to_string();
        let weight = i32::try_from(i % 50).unwrap();
        fed.apply(canary(
            "a",
            "Progressing",
            weight,
            &at,
            json!([tick(&at, weight, 99.0)]),
        ));
    }
    let long = "x".repeat(4 * state::MAX_EVENT_CHARS);
    let c = canary("a", "Progressing", 0, "2026-01-01T00:00:00Z", json!([]));
    for _ in 0..(state::MAX_EVENTS + 10) {
        fed.view.event(&c, EventKind::Warning, &long);
    }
    let d = fed.view.detail("test", "a").unwrap();
    assert_eq!(d.weights.len(), state::MAX_WEIGHT_POINTS);
    assert_eq!(d.metrics[0].points.len(), state::MAX_METRIC_POINTS);
    assert_eq!(d.events.len(), state::MAX_EVENTS);
    assert_eq!(d.events[0].event_type, "Warning");
    assert_eq!(d.events[0].message.chars().count(), state::MAX_EVENT_CHARS);
    // The newest points are the ones kept.
    let last = d.weights.last().unwrap();
    assert_eq!(
        last.t,
        (start + state::MAX_METRIC_POINTS as i64 + 49) * 1000
    );
}

#[test]
fn deleted_canaries_leave_no_history() {
    let mut fed = Fed::new();
    let a = canary("a", "Progressing", 10, "2026-01-01T00:00:00Z", json!([]));
    let b = canary("b", "Progressing", 10, "2026-01-01T00:00:00Z", json!([]));
    fed.apply(a.clone());
    fed.apply(b.clone());
    fed.send(watcher::Event::Delete(a.clone()));
    // An event recorded while `a` was going away, after its deletion was seen.
    fed.view.event(&a, EventKind::Normal, "Canary deleted");
    assert_eq!(fed.view.histories_len(), 2);
    fed.send(watcher::Event::Delete(b));
    assert_eq!(fed.view.histories_len(), 0);
    assert!(fed.view.list().is_empty());
}

#[test]
fn changes_reach_subscribers() {
    let mut fed = Fed::new();
    let mut rx = fed.view.subscribe();
    let a = canary("a", "Progressing", 10, "2026-01-01T00:00:00Z", json!([]));
    fed.apply(a.clone());
    fed.view.event(
        &a,
        EventKind::Normal,
        "Advance podinfo.test canary weight 10",
    );
    fed.send(watcher::Event::Delete(a));
    fed.send(watcher::Event::Init);
    fed.send(watcher::Event::InitDone);
    let seen: Vec<Change> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(
        seen,
        [
            Change::Updated("test/a".into()),
            Change::Updated("test/a".into()),
            Change::Removed("test/a".into()),
            Change::Resync
        ]
    );
}

// ---- HTTP ----------------------------------------------------------------------------------

/// The dashboard on 127.0.0.1:0 over a fed view; stopped by `stop`.
struct Served {
    fed: Fed,
    base: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve() -> Served {
    let fed = Fed::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = watch::channel(false);
    let router = super::server::router(fed.view.clone(), rx.clone());
    let mut rx_stop = rx;
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx_stop.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
    });
    Served {
        fed,
        base,
        stop,
        task,
    }
}

impl Served {
    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the dashboard did not stop")
            .unwrap();
    }
}

fn http() -> reqwest::Client {
    crate::tls::http_client(Verification::Platform, Alpn::Http2OrHttp1)
        .unwrap()
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test]
async fn json_endpoints_answer_from_the_view() {
    let mut s = serve().await;
    let c = canary(
        "podinfo",
        "Progressing",
        20,
        "2026-01-01T00:02:00Z",
        json!([tick("2026-01-01T00:02:00Z", 20, 99.9)]),
    );
    s.fed.apply(c.clone());
    s.fed.view.event(
        &c,
        EventKind::Normal,
        "Advance podinfo.test canary weight 20",
    );
    let client = http();

    let list: Value = client
        .get(format!("{}/api/canaries", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list,
        json!([{"key": "test/podinfo", "namespace": "test", "name": "podinfo",
                "target": "Deployment/podinfo", "phase": "Progressing", "canaryWeight": 20,
                "failedChecks": 0, "iterations": 0, "lastTransitionTime": 1_767_225_720_000i64}])
    );

    let detail: Value = client
        .get(format!("{}/api/canaries/test/podinfo", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        detail["weights"],
        json!([{"t": 1_767_225_720_000i64, "weight": 20, "phase": "Progressing"}])
    );
    assert_eq!(
        detail["metrics"][0]["points"][0],
        json!({"t": 1_767_225_720_000i64, "value": 99.9, "min": 99.0, "verdict": "pass"})
    );
    assert_eq!(
        detail["events"][0]["message"],
        "Advance podinfo.test canary weight 20"
    );
    assert_eq!(detail["events"][0]["type"], "Normal");
    assert_eq!(
        detail["decisions"][0]["step"]["summary"],
        "canary weight → 20"
    );
    assert_eq!(detail["maxWeight"], 50);

    let missing = client
        .get(format!("{}/api/canaries/test/nope", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "no canary test/nope");

    let page = client.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'")
    );
    assert!(page.text().await.unwrap().contains("id=\"weight-plot\""));
    let script = client
        .get(format!("{}/page.js", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );

    // Read-only: nothing but GET.
    let post = client
        .post(format!("{}/api/canaries", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    s.stop().await;
}

/// Reads the stream until `want` appears in what was received; fails after 5 s.
async fn read_until(response: &mut reqwest::Response, seen: &mut String, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(want) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} on the stream; got {seen:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before {want:?}; got {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_stream_sends_changes_and_ends_on_shutdown() {
    let mut s = serve().await;
    let client = http();
    let mut stream = client
        .get(format!("{}/api/stream", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // The handler subscribes before it answers: changes from now on reach this stream.
    let c = canary(
        "podinfo",
        "Progressing",
        30,
        "2026-01-01T00:03:00Z",
        json!([]),
    );
    s.fed.apply(c.clone());
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\"canaryWeight\":30").await;
    assert!(seen.contains("event: canary\n"), "{seen}");
    assert!(seen.contains("\"key\":\"test/podinfo\""), "{seen}");

    s.fed.send(watcher::Event::Delete(c));
    read_until(
        &mut stream,
        &mut seen,
        "event: removed\ndata: {\"key\":\"test/podinfo\"}",
    )
    .await;
    s.fed.send(watcher::Event::InitDone);
    read_until(&mut stream, &mut seen, "event: resync\n").await;

    let _ = s.stop.send(true);
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(_chunk) = stream.chunk().await.unwrap() {}
    })
    .await;
    assert!(end.is_ok(), "the stream stayed open after shutdown");
    s.stop().await;
}

#[tokio::test]
async fn off_unless_a_port_is_given() {
    let (_tx, rx) = watch::channel(false);
    let off = DashboardArgs::default();
    assert!(Dashboard::start(&off, rx.clone()).await.unwrap().is_none());
    assert!(off.bound.get().is_none());

    let on = DashboardArgs {
        port: Some(0),
        ..DashboardArgs::default()
    };
    let (tx, rx) = watch::channel(false);
    let dashboard = Dashboard::start(&on, rx).await.unwrap().unwrap();
    let addr = on.bound.get().unwrap();
    assert_eq!(addr, dashboard.addr());
    assert!(addr.ip().is_loopback());
    let status = http()
        .get(format!("http://{addr}/api/canaries"))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    let _ = tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), dashboard.stopped())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_dropped_dashboard_stops_listening() {
    let args = DashboardArgs {
        port: Some(0),
        ..DashboardArgs::default()
    };
    let (_tx, rx) = watch::channel(false);
    let dashboard = Dashboard::start(&args, rx).await.unwrap().unwrap();
    let addr = dashboard.addr();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    // The controller returned early (e.g. another flag was wrong): nothing is left listening.
    drop(dashboard);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
