//! Notifiers against local HTTP servers: exact payloads per service, headers, errors without
//! secrets, and `deliver` never failing the caller.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use serde_json::{Value, json};
use serin::notify::{
    Alert, AlertOrigin, AnyNotifier, Field, Notifier, NotifierConfig, NotifierKind, NotifyError,
    Severity, build, deliver,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    content_type: Option<String>,
    authorization: Option<String>,
    body: Value,
}

#[derive(Clone)]
struct Hook {
    requests: Arc<Mutex<Vec<Recorded>>>,
    status: StatusCode,
    delay: Duration,
}

/// A webhook receiver on 127.0.0.1:0. It answers `status` after `delay`; error answers echo the
/// request path and Authorization header so that tests can check the client scrubs them.
struct Server {
    base: String,
    hook: Hook,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(status: StatusCode, delay: Duration) -> Server {
        let hook = Hook {
            requests: Arc::default(),
            status,
            delay,
        };
        let app = Router::new()
            .fallback(post(receive))
            .with_state(hook.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Server {
            base,
            hook,
            stop: Some(stop),
            task,
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.hook.requests.lock().unwrap().clone()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // A handler may still be sleeping (the timeout test): do not wait for it forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        self.task.abort();
    }
}

async fn receive(
    State(hook): State<Hook>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header("authorization");
    hook.requests.lock().unwrap().push(Recorded {
        path: uri.path().to_owned(),
        content_type: header("content-type"),
        authorization: authorization.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    if !hook.delay.is_zero() {
        tokio::time::sleep(hook.delay).await;
    }
    if hook.status.is_success() {
        (hook.status, "ok".to_owned())
    } else {
        (
            hook.status,
            format!(
                "rejected {} auth={}",
                uri.path(),
                authorization.unwrap_or_default()
            ),
        )
    }
}

fn alert(severity: Severity) -> Alert {
    Alert {
        canary: "podinfo".into(),
        namespace: "test".into(),
        message: "New revision detected, progressing canary analysis.".into(),
        fields: vec![
            Field::new("Cluster", "prod-eu"),
            Field::new("Target", "Deployment/podinfo.test"),
            Field::new("Failed checks threshold", "5"),
        ],
        severity,
    }
}

fn config(kind: NotifierKind, url: String) -> NotifierConfig {
    NotifierConfig {
        kind,
        url,
        channel: Some("on-call".into()),
        username: Some("flagger".into()),
        proxy: None,
        token: None,
    }
}

async fn post_one(cfg: &NotifierConfig, alert: &Alert) -> Result<(), NotifyError> {
    let notifier = build(cfg).unwrap();
    notifier.post(alert).await
}

fn slack_body(color: &str) -> Value {
    json!({
        "channel": "on-call",
        "username": "flagger",
        "icon_url": "",
        "icon_emoji": ":rocket:",
        "attachments": [{
            "color": color,
            "author_name": "podinfo.test",
            "text": "New revision detected, progressing canary analysis.",
            "mrkdwn_in": ["text"],
            "fields": [
                {"title": "Cluster", "value": "prod-eu", "short": false},
                {"title": "Target", "value": "Deployment/podinfo.test", "short": false},
                {"title": "Failed checks threshold", "value": "5", "short": false}
            ]
        }]
    })
}

#[tokio::test]
async fn slack_payload_headers_and_colors() {
    let server = Server::start(StatusCode::OK, Duration::ZERO).await;
    let mut cfg = config(
        NotifierKind::Slack,
        format!("{}/services/T000/B000/XXXX", server.base),
    );
    post_one(&cfg, &alert(Severity::Info)).await.unwrap();
    post_one(&cfg, &alert(Severity::Warn)).await.unwrap();
    post_one(&cfg, &alert(Severity::Error)).await.unwrap();
    cfg.token = Some("xoxb-test-token".into());
    post_one(&cfg, &alert(Severity::Info)).await.unwrap();

    let got = server.requests();
    assert_eq!(got.len(), 4);
    for r in &got {
        assert_eq!(r.path, "/services/T000/B000/XXXX");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    assert_eq!(got[0].body, slack_body("good"));
    assert_eq!(got[1].body, slack_body("good"));
    assert_eq!(got[2].body, slack_body("danger"));
    assert_eq!(got[0].authorization, None);
    assert_eq!(
        got[3].authorization.as_deref(),
        Some("Bearer xoxb-test-token")
    );
    // The top-level "text" key is omitted, exactly as Flagger does.
    assert!(got[0].body.get("text").is_none());
    server.stop().await;
}

#[tokio::test]
async fn discord_posts_slack_body_to_slack_endpoint() {
    let server = Server::start(StatusCode::NO_CONTENT, Duration::ZERO).await;
    let cfg = config(
        NotifierKind::Discord,
        format!("{}/api/webhooks/123/abc", server.base),
    );
    post_one(&cfg, &alert(Severity::Error)).await.unwrap();
    let got = server.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/api/webhooks/123/abc/slack");
    assert_eq!(got[0].body, slack_body("danger"));
    assert_eq!(got[0].authorization, None);
    server.stop().await;
}

#[tokio::test]
async fn rocket_uses_its_own_colors() {
    let server = Server::start(StatusCode::OK, Duration::ZERO).await;
    let cfg = config(NotifierKind::Rocket, format!("{}/hooks/abc", server.base));
    post_one(&cfg, &alert(Severity::Info)).await.unwrap();
    post_one(&cfg, &alert(Severity::Error)).await.unwrap();
    let got = server.requests();
    assert_eq!(got[0].path, "/hooks/abc");
    assert_eq!(got[0].body, slack_body("#0076D7"));
    assert_eq!(got[1].body, slack_body("#FF0000"));
    server.stop().await;
}

#[tokio::test]
async fn msteams_message_card() {
    let server = Server::start(StatusCode::OK, Duration::ZERO).await;
    let cfg = config(
        NotifierKind::MsTeams,
        format!("{}/webhookb2/xyz", server.base),
    );
    post_one(&cfg, &alert(Severity::Warn)).await.unwrap();
    post_one(&cfg, &alert(Severity::Error)).await.unwrap();
    let got = server.requests();
    let card = |color: &str| {
        json!({
            "@type": "MessageCard",
            "@context": "http://schema.org/extensions",
            "themeColor": color,
            "summary": "podinfo.test",
            "sections": [{
                "activityTitle": "New revision detected, progressing canary analysis.",
                "activitySubtitle": "podinfo.test",
                "facts": [
                    {"name": "Cluster", "value": "prod-eu"},
                    {"name": "Target", "value": "Deployment/podinfo.test"},
                    {"name": "Failed checks threshold", "value": "5"}
                ]
            }]
        })
    };
    assert_eq!(got[0].path, "/webhookb2/xyz");
    assert_eq!(got[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(got[0].body, card("0076D7"));
    assert_eq!(got[1].body, card("FF0000"));
    server.stop().await;
}

#[tokio::test]
async fn gchat_cards() {
    let server = Server::start(StatusCode::OK, Duration::ZERO).await;
    let cfg = config(
        NotifierKind::GChat,
        format!("{}/v1/spaces/AAA/messages", server.base),
    );
    post_one(&cfg, &alert(Severity::Error)).await.unwrap();
    let got = server.requests();
    let text = |t: &str| json!({"widgets": [{"textParagraph": {"text": t}}]});
    let want = json!({
        "cards": [{
            "header": {
                "title": "Flagger",
                "subtitle": "podinfo.test",
                "imageUrl": "https://flagger.app/favicon.png"
            },
            "sections": [
                text("<font color=#848484><strong>New revision detected, progressing canary analysis.</strong></font>"),
                text("Cluster<br><font color=#848484><strong>prod-eu</strong></font>"),
                text("Target<br><font color=#848484><strong>Deployment/podinfo.test</strong></font>"),
                text("Failed checks threshold<br><font color=#848484><strong>5</strong></font>")
            ]
        }]
    });
    assert_eq!(got[0].path, "/v1/spaces/AAA/messages");
    assert_eq!(got[0].body, want);
    server.stop().await;
}

#[tokio::test]
async fn error_answers_are_errors_without_secrets() {
    let server = Server::start(StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO).await;
    let mut cfg = config(
        NotifierKind::Slack,
        format!("{}/services/T111/B222/SUPERSECRETPATH", server.base),
    );
    cfg.token = Some("xoxb-very-secret-token".into());
    let err = post_one(&cfg, &alert(Severity::Info)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, NotifyError::Status { status: 500, .. }),
        "{text}"
    );
    // The server echoed path and token: both are scrubbed, the rest of the body is kept.
    assert!(text.contains("rejected"), "{text}");
    assert!(!text.contains("SUPERSECRETPATH"), "{text}");
    assert!(!text.contains("xoxb-very-secret-token"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn connection_errors_do_not_leak_the_url() {
    // A port that was just free: nothing listens there any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    for kind in [
        NotifierKind::Slack,
        NotifierKind::MsTeams,
        NotifierKind::Discord,
        NotifierKind::Rocket,
        NotifierKind::GChat,
    ] {
        let mut cfg = config(kind, format!("http://{addr}/hook/SECRETPART?key=QSECRET"));
        cfg.token = Some("tok-SECRET-123".into());
        let err = post_one(&cfg, &alert(Severity::Info)).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, NotifyError::Request { .. }), "{kind}: {text}");
        assert!(text.contains(kind.as_str()), "{text}");
        for secret in ["SECRETPART", "QSECRET", "tok-SECRET-123"] {
            assert!(!text.contains(secret), "{kind}: {text}");
        }
    }
}

#[tokio::test]
async fn proxy_is_used_for_the_post() {
    // The "proxy" is our recording server: an HTTP proxy receives the absolute URL as the
    // request target, so the recorded path is the webhook's path.
    let proxy = Server::start(StatusCode::OK, Duration::ZERO).await;
    let mut cfg = config(
        NotifierKind::MsTeams,
        "http://teams.invalid/webhook/abc".to_owned(),
    );
    cfg.proxy = Some(proxy.base.clone());
    post_one(&cfg, &alert(Severity::Info)).await.unwrap();
    let got = proxy.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/webhook/abc");
    assert_eq!(got[0].body["summary"], "podinfo.test");
    proxy.stop().await;
}

#[tokio::test]
async fn deliver_never_fails_and_never_waits_past_the_timeout() {
    let slow = Server::start(StatusCode::OK, Duration::from_secs(30)).await;
    let notifier: AnyNotifier =
        build(&config(NotifierKind::GChat, format!("{}/x", slow.base))).unwrap();
    let origin = AlertOrigin::Provider {
        name: "chat".into(),
        namespace: "test".into(),
    };
    let started = Instant::now();
    let delivered = deliver(&notifier, &alert(Severity::Info), &origin).await;
    let waited = started.elapsed();
    assert!(!delivered);
    assert!(waited >= Duration::from_secs(4), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    slow.stop().await;

    let ok = Server::start(StatusCode::OK, Duration::ZERO).await;
    let notifier = build(&config(NotifierKind::GChat, format!("{}/x", ok.base))).unwrap();
    assert!(deliver(&notifier, &alert(Severity::Info), &AlertOrigin::Global).await);
    let handle =
        serin::notify::spawn_deliver(notifier, alert(Severity::Error), AlertOrigin::Global);
    assert!(handle.await.unwrap());
    assert_eq!(ok.requests().len(), 2);
    ok.stop().await;
}
