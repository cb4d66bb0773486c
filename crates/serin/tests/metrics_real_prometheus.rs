//! The Prometheus provider, the Istio built-in queries and a seed MetricTemplate against a real
//! Prometheus (Debian package `prometheus`) scraping a test exporter on loopback.
//!
//! The exporter's counters grow by fixed amounts on every scrape, so every `rate()` is a fixed
//! multiple of the per-scrape increments and the expected success rate, P99 and not-found
//! percentage can be computed exactly from the exporter's own numbers.
#![allow(clippy::unwrap_used)]

mod metrics_support;
mod prometheus_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics_support::{FakeEnv, canary};
use serin::api::metric_template::MetricTemplateProvider;
use serin::metrics::analysis::{self, MetricsContext, Severity};
use serin::metrics::observers::ObserverKind;
use serin::metrics::providers::prometheus::PrometheusProvider;
use serin::metrics::providers::{self, MetricsProvider, ProviderEnv, ProviderError};
use serin::metrics::template::{QueryModel, render};

/// Per-scrape increments of `istio_requests_total` for the canary `podinfo` by response code.
const CANARY_CODES: [(&str, u64); 3] = [("200", 85), ("404", 5), ("500", 10)];
/// The primary must never be measured: a different mix.
const PRIMARY_CODES: [(&str, u64); 2] = [("200", 50), ("503", 50)];
/// Per-scrape increments of the cumulative duration buckets (ms) of the canary.
const BUCKETS: [(&str, u64); 5] = [
    ("100", 50),
    ("250", 90),
    ("500", 98),
    ("1000", 100),
    ("+Inf", 100),
];

/// Expected values from the exporter's numbers.
fn expected_success_rate() -> f64 {
    let total: u64 = CANARY_CODES.iter().map(|(_, n)| n).sum();
    let ok: u64 = CANARY_CODES
        .iter()
        .filter(|(c, _)| !c.starts_with('5'))
        .map(|(_, n)| n)
        .sum();
    ok as f64 / total as f64 * 100.0
}

fn expected_not_found_percentage() -> f64 {
    let total: u64 = CANARY_CODES.iter().map(|(_, n)| n).sum();
    let not_404: u64 = CANARY_CODES
        .iter()
        .filter(|(c, _)| *c != "404")
        .map(|(_, n)| n)
        .sum();
    100.0 - not_404 as f64 / total as f64 * 100.0
}

/// Prometheus' `histogram_quantile` (linear interpolation inside the bucket) over the
/// exporter's cumulative buckets.
fn expected_quantile(q: f64) -> f64 {
    let total = BUCKETS.last().unwrap().1 as f64;
    let rank = q * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for (le, count) in BUCKETS {
        let count = count as f64;
        if count >= rank {
            let upper: f64 = if le == "+Inf" {
                return lower_bound;
            } else {
                le.parse().unwrap()
            };
            return lower_bound
                + (upper - lower_bound) * (rank - lower_count) / (count - lower_count);
        }
        lower_bound = le.parse().unwrap_or(lower_bound);
        lower_count = count;
    }
    lower_bound
}

fn exposition(scrapes: u64) -> String {
    let mut out = String::from("# TYPE istio_requests_total counter\n");
    let labels = |workload: &str| {
        format!(
            r#"reporter="destination",destination_workload_namespace="test",destination_workload="{workload}""#
        )
    };
    for (code, n) in CANARY_CODES {
        out.push_str(&format!(
            "istio_requests_total{{{},response_code=\"{code}\"}} {}\n",
            labels("podinfo"),
            n * scrapes
        ));
    }
    for (code, n) in PRIMARY_CODES {
        out.push_str(&format!(
            "istio_requests_total{{{},response_code=\"{code}\"}} {}\n",
            labels("podinfo-primary"),
            n * scrapes
        ));
    }
    // Requests reported by the source side must be ignored too.
    out.push_str(&format!(
        "istio_requests_total{{reporter=\"source\",destination_workload_namespace=\"test\",destination_workload=\"podinfo\",response_code=\"500\"}} {}\n",
        1000 * scrapes
    ));
    out.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
    for (le, n) in BUCKETS {
        out.push_str(&format!(
            "istio_request_duration_milliseconds_bucket{{{},le=\"{le}\"}} {}\n",
            labels("podinfo"),
            n * scrapes
        ));
    }
    // The primary is slow; it must not affect the canary's P99.
    out.push_str(&format!(
        "istio_request_duration_milliseconds_bucket{{{},le=\"5000\"}} {}\n",
        labels("podinfo-primary"),
        10 * scrapes
    ));
    out.push_str(&format!(
        "istio_request_duration_milliseconds_bucket{{{},le=\"+Inf\"}} {}\n",
        labels("podinfo-primary"),
        10 * scrapes
    ));
    out.push_str(&format!(
        "istio_request_duration_milliseconds_count{{{}}} {}\n",
        labels("podinfo"),
        100 * scrapes
    ));
    out
}

/// The test exporter: counters advance once per scrape.
async fn start_exporter() -> (String, Arc<AtomicU64>, tokio::sync::oneshot::Sender<()>) {
    let scrapes = Arc::new(AtomicU64::new(0));
    let counter = scrapes.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                exposition(n)
            }
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

fn model(target: &str) -> QueryModel {
    QueryModel {
        name: target.into(),
        namespace: "test".into(),
        target: target.into(),
        service: target.into(),
        ingress: target.into(),
        route: target.into(),
        interval: "1m".into(),
        variables: Default::default(),
    }
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-6,
        "{what}: got {actual}, expected {expected}"
    );
}

/// The seeds' not-found-percentage template (001), verbatim.
const NOT_FOUND_PERCENTAGE: &str = r#"100 - sum(
    rate(
        istio_requests_total{
          reporter="destination",
          destination_workload_namespace="{{ namespace }}",
          destination_workload="{{ target }}",
          response_code!="404"
        }[{{ interval }}]
    )
)
/
sum(
    rate(
        istio_requests_total{
          reporter="destination",
          destination_workload_namespace="{{ namespace }}",
          destination_workload="{{ target }}"
        }[{{ interval }}]
    )
) * 100
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_builtins_and_templates_against_a_real_prometheus() {
    let Some(binary) = prometheus_support::require_prometheus("metrics_real_prometheus") else {
        return;
    };
    let (exporter, scrapes, _stop_exporter) = start_exporter().await;
    let prometheus = prometheus_support::start_prometheus(&binary, &exporter);
    let client = PrometheusProvider::for_metrics_server(&prometheus.url).unwrap();

    // Wait until Prometheus answers and has enough samples for rate() over 1m.
    let deadline = Instant::now() + Duration::from_secs(60);
    let success_query = ObserverKind::Istio
        .request_success_rate_query(&model("podinfo"))
        .unwrap();
    loop {
        let ready = client.run_query(&success_query).await;
        if ready.is_ok() && scrapes.load(Ordering::SeqCst) >= 4 {
            break;
        }
        if Instant::now() > deadline {
            let log =
                std::fs::read_to_string(prometheus.dir.join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus did not produce data in time: {ready:?}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    client.is_online().await.unwrap();

    // Built-in success rate: 90% (404s are successes, the primary and the source reporter are
    // ignored).
    let rate = client.run_query(&success_query).await.unwrap();
    assert_close(rate, expected_success_rate(), "success rate");
    assert_close(rate, 90.0, "success rate literal");

    // Built-in P99 from the histogram buckets: 750ms.
    let duration_query = ObserverKind::Istio
        .request_duration_query(&model("podinfo"))
        .unwrap();
    let p99 = client.run_query(&duration_query).await.unwrap();
    assert_close(p99, expected_quantile(0.99), "P99");
    assert_close(p99, 750.0, "P99 literal");
    assert_eq!(
        ObserverKind::Istio.duration_from_value(p99),
        Duration::from_millis(750)
    );

    // The seed's MetricTemplate, through the provider factory.
    let template_provider = providers::build(
        &MetricTemplateProvider {
            provider_type: "prometheus".into(),
            address: Some(prometheus.url.clone()),
            ..Default::default()
        },
        ProviderEnv {
            interval: "1m".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let rendered = render(NOT_FOUND_PERCENTAGE, &model("podinfo")).unwrap();
    let not_found = template_provider.run_query(&rendered).await.unwrap();
    assert_close(
        not_found,
        expected_not_found_percentage(),
        "not-found percentage",
    );
    assert_close(not_found, 5.0, "not-found percentage literal");

    // A workload without traffic has no values; a matrix selector is "multiple values"; a bad
    // query is an HTTP 400 with Prometheus' message.
    let none = client
        .run_query(
            &ObserverKind::Istio
                .request_success_rate_query(&model("absent"))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(none, ProviderError::NoValuesFound);
    let matrix = client
        .run_query("istio_requests_total{destination_workload=\"podinfo\"}[1m]")
        .await
        .unwrap_err();
    assert_eq!(matrix, ProviderError::MultipleValues);
    let bad = client.run_query("sum(rate(").await.unwrap_err();
    match &bad {
        ProviderError::Http {
            status: 400, body, ..
        } => {
            assert!(body.contains("parse error"), "{body}")
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }

    // The whole analysis, as the controller runs it.
    let env = FakeEnv::default().with_template(
        "istio-system",
        serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": "not-found-percentage", "namespace": "istio-system"},
            "spec": {
                "provider": {"type": "prometheus", "address": prometheus.url},
                "query": NOT_FOUND_PERCENTAGE,
            }
        }),
    );
    let ctx = MetricsContext {
        metrics_server: &prometheus.url,
        mesh_provider: "istio",
        env: &env,
    };
    let metrics = |min_success: f64, max_duration: f64, max_404: f64| {
        serde_json::json!([
            {"name": "request-success-rate", "thresholdRange": {"min": min_success}, "interval": "1m"},
            {"name": "request-duration", "thresholdRange": {"max": max_duration}, "interval": "1m"},
            {"name": "404s percentage", "templateRef": {"name": "not-found-percentage", "namespace": "istio-system"},
             "thresholdRange": {"max": max_404}, "interval": "1m"},
        ])
    };
    let spec = |metrics: serde_json::Value| {
        serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10, "metrics": metrics},
        })
    };

    analysis::check_providers(
        &canary("podinfo", "test", spec(metrics(99.0, 500.0, 5.0))),
        &ctx,
    )
    .await
    .unwrap();

    // Healthy thresholds: everything passes and the gauge values are reported.
    let healthy = canary("podinfo", "test", spec(metrics(80.0, 1000.0, 10.0)));
    let results = analysis::run_checks(&healthy, &ctx).await.unwrap();
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "request-success-rate",
            "request-duration",
            "404s percentage"
        ]
    );
    assert_close(results[0].value, 90.0, "gauge success rate");
    assert_close(results[1].value, 0.75, "gauge duration (seconds)");
    assert_close(results[2].value, 5.0, "gauge 404s");

    // The seed's thresholds: the success rate fails first.
    let strict = canary("podinfo", "test", spec(metrics(99.0, 500.0, 1.0)));
    let failed = analysis::run_checks(&strict, &ctx).await.unwrap_err();
    assert_eq!(
        failed.message,
        "Halt podinfo.test advancement success rate 90.00% < 99%"
    );
    assert_eq!(failed.severity, Severity::Warning);

    // Latency over the limit.
    let slow = canary("podinfo", "test", spec(metrics(80.0, 500.0, 10.0)));
    let failed = analysis::run_checks(&slow, &ctx).await.unwrap_err();
    assert_eq!(
        failed.message,
        "Halt podinfo.test advancement request duration 750ms > 500ms"
    );

    // The template's threshold.
    let not_found = canary("podinfo", "test", spec(metrics(80.0, 1000.0, 1.0)));
    let failed = analysis::run_checks(&not_found, &ctx).await.unwrap_err();
    assert_eq!(
        failed.message,
        "Halt podinfo.test advancement 404s percentage 5.00 > 1"
    );

    // No traffic to the canary.
    let absent = canary(
        "absent",
        "test",
        serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "absent"},
            "service": {"port": 9898},
            "analysis": {"metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]},
        }),
    );
    let failed = analysis::run_checks(&absent, &ctx).await.unwrap_err();
    assert_eq!(
        failed.message,
        "Halt advancement no values found for istio metric request-success-rate probably absent.test is not receiving traffic: running query failed: no values found"
    );
    assert_eq!(failed.severity, Severity::Warning);
}
