//! A Slack-compatible webhook receiver on 127.0.0.1 that keeps the notifications the controller
//! sends (`-slack-url`), for the demo to print.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One received notification, flattened for a terminal line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notification {
    /// `author_name` of the attachment: `<canary>.<namespace>`.
    pub subject: String,
    /// `good` or `danger`.
    pub color: String,
    pub text: String,
}

/// The notifications of a Slack payload (one per attachment; a plain `text` payload is one).
pub fn notifications(payload: &Value) -> Vec<Notification> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match payload.get("attachments").and_then(Value::as_array) {
        Some(atts) if !atts.is_empty() => atts
            .iter()
            .map(|a| Notification {
                subject: s(a, "author_name"),
                color: s(a, "color"),
                text: s(a, "text"),
            })
            .collect(),
        _ => vec![Notification {
            subject: String::new(),
            color: String::new(),
            text: s(payload, "text"),
        }],
    }
}

type Inbox = Arc<Mutex<Vec<Notification>>>;

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    inbox: Inbox,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn receive(State(inbox): State<Inbox>, Json(payload): Json<Value>) -> &'static str {
    inbox
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .extend(notifications(&payload));
    "ok"
}

impl Receiver {
    /// Starts on a free port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let inbox = Inbox::default();
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(inbox.clone());
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        Ok(Self {
            addr,
            inbox,
            stop,
            task,
        })
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Notification> {
        self.inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn attachments_become_lines() {
        let p = json!({"channel": "general", "username": "flagger", "attachments": [
            {"color": "danger", "author_name": "backend.prod", "text": "Canary analysis failed, rollback finished.", "fields": []}
        ]});
        assert_eq!(
            notifications(&p),
            vec![Notification {
                subject: "backend.prod".into(),
                color: "danger".into(),
                text: "Canary analysis failed, rollback finished.".into()
            }]
        );
        assert_eq!(notifications(&json!({"text": "hi"}))[0].text, "hi");
    }
}
