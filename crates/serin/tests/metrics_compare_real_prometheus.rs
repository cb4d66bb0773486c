//! Comparison checks (`analysis.metrics[].compare`, Serin only) against a real Prometheus
//! (Debian package `prometheus`) scraping a test exporter on loopback: a canary slower than its
//! primary fails, an equal one passes, more errors fail the proportion test, and a canary
//! without samples is inconclusive.
//!
//! The exporter publishes, per workload, a latency gauge that takes a new pseudo-random value
//! on every scrape (so the range query returns one sample per second) and request counters.
#![allow(clippy::unwrap_used)]

mod metrics_support;
mod prometheus_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics_support::{FakeEnv, canary};
use serin::metrics::analysis::{self, MetricsContext};
use serin::metrics::providers::MetricsProvider;
use serin::metrics::providers::prometheus::PrometheusProvider;

/// `(workload, latency factor, seed, errors per 1000 requests)`.
const WORKLOADS: [(&str, f64, u64, u64); 4] = [
    ("slow", 1.5, 1, 50),
    ("slow-primary", 1.0, 2, 10),
    ("same", 1.0, 3, 10),
    ("same-primary", 1.0, 4, 10),
];

/// A value in [0, 1) from a seed and the scrape number (SplitMix64).
fn unit(seed: u64, n: u64) -> f64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(n.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn exposition(scrape: u64) -> String {
    let mut out = String::from("# TYPE serin_test_latency_seconds gauge\n");
    for (workload, factor, seed, _) in WORKLOADS {
        let latency = 0.1 * factor * (1.0 + 0.3 * unit(seed, scrape));
        out.push_str(&format!(
            "serin_test_latency_seconds{{workload=\"{workload}\"}} {latency}\n"
        ));
    }
    out.push_str("# TYPE serin_test_requests_total counter\n");
    for (workload, _, _, errors) in WORKLOADS {
        out.push_str(&format!(
            "serin_test_requests_total{{workload=\"{workload}\",code=\"500\"}} {}\n",
            errors * scrape
        ));
        out.push_str(&format!(
            "serin_test_requests_total{{workload=\"{workload}\",code=\"200\"}} {}\n",
            (1000 - errors) * scrape
        ));
    }
    out
}

async fn start_exporter() -> (String, Arc<AtomicU64>, tokio::sync::oneshot::Sender<()>) {
    let scrapes = Arc::new(AtomicU64::new(0));
    let counter = scrapes.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move { exposition(counter.fetch_add(1, Ordering::SeqCst) + 1) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (addr.to_string(), scrapes, tx)
}

fn spec(target: &str, metrics: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "service": {"port": 9898},
        "analysis": {"interval": "1m", "threshold": 2, "stepWeight": 10, "metrics": metrics},
    })
}

fn latency() -> serde_json::Value {
    serde_json::json!([{
        "name": "latency", "interval": "30s",
        "query": "serin_test_latency_seconds{workload=\"{{ target }}\"}",
        "compare": {"relativeDegradation": 0.05, "minSamples": 20, "step": "1s"}
    }])
}

fn errors() -> serde_json::Value {
    serde_json::json!([{
        "name": "errors", "interval": "30s",
        "query": "sum(increase(serin_test_requests_total{workload=\"{{ target }}\",code=\"500\"}[{{ interval }}]))",
        "compare": {
            "statistic": "proportion", "relativeDegradation": 0.5, "minSamples": 1000,
            "totalQuery": "sum(increase(serin_test_requests_total{workload=\"{{ target }}\"}[{{ interval }}]))"
        }
    }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slower_canary_fails_equal_canary_passes() {
    let Some(binary) = prometheus_support::require_prometheus("metrics_compare_real_prometheus")
    else {
        return;
    };
    let (exporter, scrapes, _stop_exporter) = start_exporter().await;
    let prometheus = prometheus_support::start_prometheus(&binary, &exporter);
    let client = PrometheusProvider::for_metrics_server(&prometheus.url).unwrap();

    // Wait for about 30 s of samples.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = client.is_online().await;
        if ready.is_ok() && scrapes.load(Ordering::SeqCst) >= 32 {
            break;
        }
        if Instant::now() > deadline {
            let log =
                std::fs::read_to_string(prometheus.dir.join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus did not produce data in time: {ready:?}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let samples = client
        .run_range_query(
            "serin_test_latency_seconds{workload=\"same\"}",
            Duration::from_secs(30),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert!(samples.len() >= 25, "{} samples", samples.len());

    let env = FakeEnv::default();
    let ctx = MetricsContext {
        metrics_server: &prometheus.url,
        mesh_provider: "istio",
        env: &env,
    };

    // Latency: 50 % slower fails, equal passes with its verdict recorded.
    let slow = canary("slow", "test", spec("slow", latency()));
    let failed = analysis::run_checks(&slow, &ctx).await.unwrap_err();
    assert!(!failed.inconclusive);
    assert!(
        failed.message.starts_with(
            "Halt slow.test advancement latency canary worse than primary: mann-whitney U="
        ),
        "{}",
        failed.message
    );
    let same = canary("same", "test", spec("same", latency()));
    let passed = analysis::run_checks(&same, &ctx).await.unwrap();
    let verdict = passed[0].verdict.as_deref().unwrap();
    assert!(
        verdict.starts_with("same.test latency canary not worse than primary: mann-whitney U="),
        "{verdict}"
    );

    // Errors: 5 % against 1 % fails with 50 % allowed; 1 % against 1 % passes.
    let failed = analysis::run_checks(&canary("slow", "test", spec("slow", errors())), &ctx)
        .await
        .unwrap_err();
    assert!(
        failed
            .message
            .starts_with("Halt slow.test advancement errors canary worse than primary: proportion difference=0.04"),
        "{}",
        failed.message
    );
    analysis::run_checks(&canary("same", "test", spec("same", errors())), &ctx)
        .await
        .unwrap();

    // No series for the canary: inconclusive, the step holds.
    let absent = canary("absent", "test", spec("absent", latency()));
    let held = analysis::run_checks(&absent, &ctx).await.unwrap_err();
    assert!(held.inconclusive, "{}", held.message);
    assert_eq!(
        held.message,
        "Hold absent.test advancement latency comparison inconclusive: too few samples (canary 0, primary 0, at least 20 needed)"
    );
}
