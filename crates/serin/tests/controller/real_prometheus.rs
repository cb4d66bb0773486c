//! The controller's analysis reading a real Prometheus (Debian package `prometheus`) that
//! scrapes a test exporter of Istio's request metrics: the canary is promoted while the exporter
//! reports healthy traffic and rolled back when it reports errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::prometheus_support;
use crate::support::*;

/// Istio's request metrics for the canary workload `podinfo` in `test`, advancing on every
/// scrape: 20 requests per scrape, all answered 200 in under 100 ms while healthy; half of them
/// 500s (and slow) while failing.
struct Exporter {
    url: String,
    failing: Arc<AtomicBool>,
    scrapes: Arc<AtomicU64>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

#[derive(Default)]
struct Counts {
    ok: u64,
    errors: u64,
    fast: u64,
    slow: u64,
}

impl Exporter {
    async fn start() -> Self {
        let failing = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicU64::new(0));
        let counts = Arc::new(std::sync::Mutex::new(Counts::default()));
        let (f, n, c) = (failing.clone(), scrapes.clone(), counts.clone());
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (f, n, c) = (f.clone(), n.clone(), c.clone());
                async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    let mut c = c.lock().unwrap();
                    if f.load(Ordering::SeqCst) {
                        c.ok += 10;
                        c.errors += 10;
                        c.slow += 20;
                    } else {
                        c.ok += 20;
                        c.fast += 20;
                    }
                    exposition(&c)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = listener.local_addr().unwrap().to_string();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            url,
            failing,
            scrapes,
            _stop: stop,
        }
    }
}

/// The canary's series as counted, and the primary's (as a real mesh has them: the primary
/// serves traffic throughout, here all of it fast and successful). Each metric family is one
/// group, as the text format wants.
fn exposition(c: &Counts) -> String {
    let primary = Counts {
        ok: c.ok + c.errors,
        errors: 0,
        fast: c.fast + c.slow,
        slow: 0,
    };
    let workloads = [("podinfo", c), ("podinfo-primary", &primary)];
    let labels = |workload: &str| {
        format!(
            r#"reporter="destination",destination_workload_namespace="test",destination_workload="{workload}""#
        )
    };
    let mut out = String::from("# TYPE istio_requests_total counter\n");
    for (workload, c) in workloads {
        let labels = labels(workload);
        out.push_str(&format!(
            "istio_requests_total{{{labels},response_code=\"200\"}} {ok}\n\
             istio_requests_total{{{labels},response_code=\"500\"}} {errors}\n",
            ok = c.ok,
            errors = c.errors,
        ));
    }
    out.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
    for (workload, c) in workloads {
        let labels = labels(workload);
        let total = c.fast + c.slow;
        out.push_str(&format!(
            "istio_request_duration_milliseconds_bucket{{{labels},le=\"100\"}} {fast}\n\
             istio_request_duration_milliseconds_bucket{{{labels},le=\"1000\"}} {total}\n\
             istio_request_duration_milliseconds_bucket{{{labels},le=\"+Inf\"}} {total}\n\
             istio_request_duration_milliseconds_sum{{{labels}}} {sum}\n\
             istio_request_duration_milliseconds_count{{{labels}}} {total}\n",
            fast = c.fast,
            sum = c.fast * 50 + c.slow * 800,
        ));
    }
    out
}

fn canary(metrics_interval: &str) -> Value {
    json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "progressDeadlineSeconds": 60,
            "service": {"port": 9898},
            "analysis": {
                "interval": "1s", "threshold": 2, "maxWeight": 50, "stepWeight": 25,
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": metrics_interval},
                    {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": metrics_interval}
                ]
            }
        }
    })
}

/// Starts Prometheus scraping a fresh exporter and waits for enough samples for `rate()`.
async fn prometheus(test: &str) -> Option<(prometheus_support::PrometheusProcess, Exporter)> {
    let binary = prometheus_support::require_prometheus(test)?;
    let exporter = Exporter::start().await;
    let prometheus = prometheus_support::start_prometheus(&binary, &exporter.url);
    wait_for("four scrapes", Duration::from_secs(30), || async {
        (exporter.scrapes.load(Ordering::SeqCst) >= 4).then_some(())
    })
    .await;
    Some((prometheus, exporter))
}

/// Waits (up to 5 s) until `expected` appear in order among the Canary's Kubernetes Events.
async fn wait_k8s_events_in_order(cluster: &Cluster, expected: &[&str]) {
    let messages = || async {
        cluster
            .k8s_events("podinfo")
            .await
            .into_iter()
            .filter_map(|e| e.message)
            .collect::<Vec<_>>()
    };
    let start = std::time::Instant::now();
    while !contains_in_order(&messages().await, expected)
        && start.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_in_order(&messages().await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promotes_on_healthy_traffic_and_rolls_back_on_errors() {
    init_logs();
    let Some((prom, exporter)) = prometheus("real_prometheus").await else {
        return;
    };
    guarded(async {
        let cluster = Cluster::start().await;
        cluster
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let ctrl = Controller::start_with_metrics_server(&cluster, &prom.url, &[]);
        cluster.create_canary(canary("5s")).await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(15)).await;

        // Healthy traffic: the new revision is analysed against Prometheus and promoted.
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(25)).await;
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.1")
        );
        wait_k8s_events_in_order(
            &cluster,
            &[
                "New revision detected! Scaling up podinfo.test",
                "Advance podinfo.test canary weight 25",
                "Advance podinfo.test canary weight 50",
                "Copying podinfo.test template spec to podinfo-primary.test",
                "Promotion completed! Scaling down podinfo.test",
            ],
        )
        .await;

        // Errors and latency: the next revision is rolled back.
        exporter.failing.store(true, Ordering::SeqCst);
        // Let the 5 s rate window fill with failing traffic only.
        tokio::time::sleep(Duration::from_secs(6)).await;
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.2")
            .await;
        wait_phase(&cluster, "podinfo", "Failed", Duration::from_secs(25)).await;
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.1")
        );
        assert_eq!(cluster.vs_weights("podinfo").await, Some((100, 0)));
        wait_k8s_events_in_order(
            &cluster,
            &[
                "Halt podinfo.test advancement success rate 50.00% < 99%",
                "Canary failed! Scaling down podinfo.test",
            ],
        )
        .await;

        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
    drop(prom);
}
