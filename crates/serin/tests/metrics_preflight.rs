//! The query pre-flight (`serin::metrics::preflight::run`) against a recording fake Prometheus
//! and in-memory templates: queries rendered for the primary, and what each failure reports.
#![allow(clippy::unwrap_used)]

mod metrics_support;

use metrics_support::{Answer, FakeEnv, FakeServer, canary, prom_empty, prom_vector};
use serin::metrics::analysis::MetricsContext;
use serin::metrics::preflight::{self, Problem};

fn spec(metrics: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "provider": "istio",
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10, "metrics": metrics},
    })
}

/// A fake Prometheus answering one sample for queries containing one of `with_data`, and no
/// series for the others.
async fn prometheus(with_data: &'static [&'static str]) -> FakeServer {
    FakeServer::start(move |r| {
        let query = r.param("query");
        if with_data.iter().any(|n| query.contains(n)) {
            Answer::json(200, prom_vector("1"))
        } else {
            Answer::json(200, prom_empty())
        }
    })
    .await
}

fn ctx<'a>(server: &'a FakeServer, env: &'a FakeEnv) -> MetricsContext<'a> {
    MetricsContext {
        metrics_server: &server.url,
        mesh_provider: "istio",
        env,
    }
}

fn template(address: &str, query: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
        "metadata": {"name": "error-rate", "namespace": "test"},
        "spec": {"provider": {"type": "prometheus", "address": address}, "query": query}
    })
}

#[tokio::test]
async fn every_query_is_rendered_for_the_primary_and_run_once() {
    let server = prometheus(&["podinfo-primary"]).await;
    let env = FakeEnv::default().with_template(
        "test",
        template(
            &server.url,
            "sum(rate(http_requests_total{namespace=\"{{ namespace }}\",pod=~\"{{ target }}-.*\"}[{{ interval }}]))",
        ),
    );
    let c = canary(
        "podinfo",
        "test",
        spec(serde_json::json!([
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
            {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"},
            {"name": "error-rate", "templateRef": {"name": "error-rate"}, "interval": "30s",
             "thresholdRange": {"max": 1}},
        ])),
    );
    preflight::run(&c, &ctx(&server, &env)).await.unwrap();
    let queries: Vec<String> = server.requests().iter().map(|r| r.param("query")).collect();
    assert_eq!(queries.len(), 3, "{queries:#?}");
    assert!(queries[0].contains(r#"destination_workload=~"podinfo-primary""#));
    assert!(queries[1].starts_with("histogram_quantile"));
    assert_eq!(
        queries[2],
        r#"sum(rate(http_requests_total{namespace="test",pod=~"podinfo-primary-.*"}[30s]))"#
    );
}

#[tokio::test]
async fn a_template_with_a_wrong_label_names_the_metric_query_and_cause() {
    // The series have no `reporter` label: the template's query finds nothing.
    let server = prometheus(&["request"]).await;
    let env = FakeEnv::default().with_template(
        "test",
        template(
            &server.url,
            "sum(rate(errors_total{reporter=\"source\",namespace=\"{{ namespace }}\",workload=\"{{ target }}\"}[{{ interval }}]))",
        ),
    );
    let c = canary(
        "podinfo",
        "test",
        spec(serde_json::json!([
            {"name": "error-rate", "templateRef": {"name": "error-rate"}, "interval": "1m",
             "thresholdRange": {"max": 1}},
        ])),
    );
    let finding = preflight::run(&c, &ctx(&server, &env)).await.unwrap_err();
    assert_eq!(finding.problem, Problem::NoValues);
    assert_eq!(finding.problem.reason(), "NoValues");
    assert_eq!(
        finding.message(),
        "Query pre-flight: metric error-rate (prometheus) returned no values for the primary \
         podinfo-primary.test; likely cause: no traffic yet: podinfo-primary.test received no \
         requests in the last 1m; or a label the query requires is missing from the series: \
         reporter=\"source\"; query: sum(rate(errors_total{reporter=\"source\",\
         namespace=\"test\",workload=\"podinfo-primary\"}[1m]))"
    );
}

#[tokio::test]
async fn an_unreachable_provider_and_a_missing_template_are_reported() {
    // Nothing listens on the address once the server is dropped.
    let dead = {
        let server = prometheus(&[]).await;
        server.url.clone()
    };
    let env = FakeEnv::default().with_template("test", template(&dead, "up{job=\"x\"}"));
    let c = canary(
        "podinfo",
        "test",
        spec(serde_json::json!([
            {"name": "error-rate", "templateRef": {"name": "error-rate"}, "thresholdRange": {"max": 1}},
        ])),
    );
    let server = prometheus(&[]).await;
    let finding = preflight::run(&c, &ctx(&server, &env)).await.unwrap_err();
    assert_eq!(
        finding.problem.reason(),
        "ProviderUnreachable",
        "{finding:?}"
    );
    assert!(
        finding
            .cause
            .starts_with("the metrics provider is unreachable"),
        "{}",
        finding.cause
    );

    let missing = canary(
        "podinfo",
        "test",
        spec(serde_json::json!([
            {"name": "latency", "templateRef": {"name": "latency"}, "thresholdRange": {"max": 1}},
        ])),
    );
    let finding = preflight::run(&missing, &ctx(&server, &FakeEnv::default()))
        .await
        .unwrap_err();
    assert_eq!(finding.problem.reason(), "InvalidMetric", "{finding:?}");
    assert!(finding.message().starts_with(
        "Query pre-flight: metric latency cannot be run for the primary podinfo-primary.test; likely cause: the metric cannot be queried (metric template latency.test:"
    ), "{}", finding.message());
}

#[tokio::test]
async fn a_rejected_query_is_not_a_missing_series() {
    let server = FakeServer::start(|_| {
        Answer::json(
            400,
            serde_json::json!({"status": "error", "errorType": "bad_data", "error": "parse error"}),
        )
    })
    .await;
    let env = FakeEnv::default();
    let c = canary(
        "podinfo",
        "test",
        spec(serde_json::json!([
            {"name": "custom", "query": "rate(x[{{ interval }}]", "thresholdRange": {"max": 1}},
        ])),
    );
    let finding = preflight::run(&c, &ctx(&server, &env)).await.unwrap_err();
    assert_eq!(finding.problem.reason(), "QueryRejected", "{finding:?}");
    assert_eq!(finding.query.as_deref(), Some("rate(x[1m]"));
}
