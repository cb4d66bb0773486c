//! The demo's users: steady requests to the frontend through the ingress gateway (a mix of
//! Firefox users, users with the `type=insider` cookie and others) and to the backend through
//! the mesh, counting which workload and version answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::tls::{Alpn, TlsError, Verification};

/// The traffic's HTTP clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Which users a request stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Users {
    Firefox,
    Insider,
    Others,
    /// Requests to the backend through the mesh (also every stream of
    /// [`Traffic::through_mesh`]).
    Backend,
}

impl Users {
    /// The headers this kind of user sends.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Firefox => &[(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            )],
            Self::Insider => &[
                ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"),
                ("cookie", "type=insider"),
            ],
            Self::Others | Self::Backend => {
                &[("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0")]
            }
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Firefox => "Firefox users",
            Self::Insider => "type=insider cookie",
            Self::Others => "other users",
            Self::Backend => "backend callers",
        }
    }
}

/// Who answered: the primary or the canary workload, and the version it reported; or the
/// status code when it was not a podinfo answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Answer {
    pub workload: String,
    pub version: String,
}

/// Reads a podinfo answer of app `app`: its hostname is the pod name, `<app>-primary-…` for
/// the primary and `<app>-…` for the canary.
pub fn classify(app: &str, code: u16, body: &str) -> Answer {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match (field("hostname"), field("version")) {
        (Some(host), Some(version)) if code < 400 => Answer {
            workload: if host.starts_with(&format!("{app}-primary-")) {
                format!("{app}-primary")
            } else {
                app.to_string()
            },
            version,
        },
        _ => Answer {
            workload: format!("HTTP {code}"),
            version: String::new(),
        },
    }
}

/// Counts per kind of user and answer.
pub type Counts = BTreeMap<(Users, Answer), u64>;

/// The running users.
pub struct Traffic {
    counting: Arc<AtomicBool>,
    window: Arc<Mutex<Counts>>,
    total: Arc<Mutex<Counts>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Where to send requests.
pub struct Targets {
    /// `http://127.0.0.1:PORT/` of the ingress gateway.
    pub ingress: String,
    /// The mesh as an HTTP proxy.
    pub proxy: String,
    /// Requests per second per stream.
    pub rate: u32,
}

/// One stream of requests: a client, a URL, the app whose answers are classified and the kinds
/// of users it cycles through.
struct Stream {
    client: reqwest::Client,
    url: String,
    app: String,
    cycle: Vec<Users>,
}

impl Traffic {
    /// Starts sending: the frontend's users through the ingress gateway and the backend's
    /// callers through the mesh.
    pub fn start(t: &Targets) -> Result<Self, TrafficError> {
        let direct = crate::tls::http_client(Verification::Platform, Alpn::Http2OrHttp1)?
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let streams = vec![
            Stream {
                client: direct,
                url: t.ingress.clone(),
                app: "frontend".into(),
                cycle: vec![Users::Firefox, Users::Insider, Users::Others, Users::Others],
            },
            Stream {
                client: proxied(&t.proxy)?,
                url: "http://backend.prod:9898/".to_string(),
                app: "backend".into(),
                cycle: vec![Users::Backend],
            },
        ];
        Ok(Self::run(streams, t.rate))
    }

    /// Starts sending `rate` requests per second to each `(app, url)` through the mesh at
    /// `proxy` (as callers inside the mesh: the apex Service's weights pick the version).
    pub fn through_mesh(
        proxy: &str,
        apps: &[(&str, &str)],
        rate: u32,
    ) -> Result<Self, TrafficError> {
        let client = proxied(proxy)?;
        let streams = apps
            .iter()
            .map(|(app, url)| Stream {
                client: client.clone(),
                url: (*url).to_string(),
                app: (*app).to_string(),
                cycle: vec![Users::Backend],
            })
            .collect();
        Ok(Self::run(streams, rate))
    }

    fn run(streams: Vec<Stream>, rate: u32) -> Self {
        let counting = Arc::new(AtomicBool::new(false));
        let window = Arc::new(Mutex::new(Counts::new()));
        let total = Arc::new(Mutex::new(Counts::new()));
        let (stop, stopped) = watch::channel(false);
        let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let limit = Arc::new(Semaphore::new(32));
        let mut tasks = Vec::new();
        for Stream {
            client,
            url,
            app,
            cycle,
        } in streams
        {
            let (counting, window, total, limit) = (
                counting.clone(),
                window.clone(),
                total.clone(),
                limit.clone(),
            );
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                let mut i = 0usize;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.wait_for(|s| *s) => break,
                    }
                    let users = cycle[i % cycle.len()];
                    i += 1;
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        continue;
                    };
                    let mut req = client.get(&url);
                    for (k, v) in users.headers() {
                        req = req.header(*k, *v);
                    }
                    let (counting, window, total, app) =
                        (counting.clone(), window.clone(), total.clone(), app.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        let (code, body) = match req.send().await {
                            Ok(r) => {
                                let code = r.status().as_u16();
                                (code, r.text().await.unwrap_or_default())
                            }
                            Err(_) => (0, String::new()),
                        };
                        let answer = classify(&app, code, &body);
                        let key = (users, answer);
                        if counting.load(Ordering::Relaxed) {
                            *lock(&window).entry(key.clone()).or_insert(0) += 1;
                        }
                        *lock(&total).entry(key).or_insert(0) += 1;
                    });
                }
            }));
        }
        Self {
            counting,
            window,
            total,
            stop,
            tasks,
        }
    }

    /// Starts (true) or stops (false) counting into the window; starting clears it.
    pub fn count_window(&self, on: bool) {
        if on {
            lock(&self.window).clear();
        }
        self.counting.store(on, Ordering::Relaxed);
    }

    /// The counts of the last window.
    pub fn window(&self) -> Counts {
        lock(&self.window).clone()
    }

    /// Every answer since the start.
    pub fn total(&self) -> Counts {
        lock(&self.total).clone()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// A client that sends every request through the mesh as an HTTP proxy.
fn proxied(proxy: &str) -> Result<reqwest::Client, TrafficError> {
    Ok(
        crate::tls::http_client(Verification::Platform, Alpn::Http2OrHttp1)?
            .proxy(reqwest::Proxy::http(proxy)?)
            .timeout(Duration::from_secs(5))
            .build()?,
    )
}

fn lock(m: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_pod_name() {
        let body = |h: &str, v: &str| format!(r#"{{"hostname":"{h}","version":"{v}"}}"#);
        assert_eq!(
            classify("frontend", 200, &body("frontend-primary-1a2b-xyz", "5.0.0")),
            Answer {
                workload: "frontend-primary".into(),
                version: "5.0.0".into()
            }
        );
        assert_eq!(
            classify("frontend", 200, &body("frontend-3c4d-abc", "5.0.1")).workload,
            "frontend"
        );
        assert_eq!(
            classify("backend", 500, "{}").workload,
            "HTTP 500".to_string()
        );
        assert_eq!(classify("backend", 0, "").workload, "HTTP 0");
    }
}
