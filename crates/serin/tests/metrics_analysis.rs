//! `run_checks` / `check_providers` as the controller calls them, against a recording fake
//! Prometheus and in-memory templates and secrets: order, observers, and every message.
#![allow(clippy::unwrap_used)]

mod metrics_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use metrics_support::{Answer, FakeEnv, FakeServer, canary, prom_empty, prom_vector};
use serin::metrics::analysis::{self, MetricsContext, Severity};

fn spec(provider: Option<&str>, metrics: serde_json::Value) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10, "metrics": metrics},
    });
    if let Some(p) = provider {
        spec["provider"] = p.into();
    }
    spec
}

/// A fake Prometheus answering by query substring.
async fn prometheus(answers: Vec<(&'static str, Answer)>) -> FakeServer {
    FakeServer::start(move |r| {
        let query = r.param("query");
        answers
            .iter()
            .find(|(needle, _)| query.contains(needle))
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| Answer::json(200, prom_empty()))
    })
    .await
}

fn ctx<'a>(server: &'a FakeServer, mesh: &'a str, env: &'a FakeEnv) -> MetricsContext<'a> {
    MetricsContext {
        metrics_server: &server.url,
        mesh_provider: mesh,
        env,
    }
}

#[tokio::test]
async fn builtins_follow_the_canary_provider_and_run_in_order() {
    let server = prometheus(vec![
        (
            "nginx_ingress_controller_requests",
            Answer::json(200, prom_vector("99.9")),
        ),
        (
            "nginx_ingress_controller_response_duration",
            Answer::json(200, prom_vector("120.7")),
        ),
        ("my_custom", Answer::json(200, prom_vector("3"))),
    ])
    .await;
    let env = FakeEnv::default();
    let mut s = spec(
        Some("nginx"),
        serde_json::json!([
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "30s"},
            {"name": "request-duration", "thresholdRange": {"max": 500}},
            {"name": "custom", "query": "my_custom{ns=\"{{ namespace }}\"}", "thresholdRange": {"max": 5}},
        ]),
    );
    s["ingressRef"] = serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo-ing"});
    let c = canary("podinfo", "test", s);
    let results = analysis::run_checks(&c, &ctx(&server, "istio", &env))
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].value, 99.9);
    assert_eq!(
        results[1].value, 0.12,
        "duration gauge in seconds, ms-truncated"
    );
    assert_eq!(results[2].value, 3.0);
    let queries: Vec<String> = server.requests().iter().map(|r| r.param("query")).collect();
    assert_eq!(
        queries[0],
        r#"sum( rate( nginx_ingress_controller_requests{ namespace="test", ingress="podinfo-ing", canary!="", status!~"5.*" }[30s] ) ) / sum( rate( nginx_ingress_controller_requests{ namespace="test", ingress="podinfo-ing", canary!="" }[30s] ) ) * 100"#
    );
    assert!(
        queries[1].contains("[1m]"),
        "default interval: {}",
        queries[1]
    );
    assert_eq!(queries[2], r#"my_custom{ns="test"}"#);
}

#[tokio::test]
async fn linkerd_global_provider_wins_and_service_targets_keep_their_observer() {
    let server = prometheus(vec![(
        "response_total",
        Answer::json(200, prom_vector("100")),
    )])
    .await;
    let env = FakeEnv::default();
    let c = canary(
        "podinfo",
        "test",
        spec(
            Some("kubernetes"),
            serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
        ),
    );
    analysis::run_checks(&c, &ctx(&server, "linkerd", &env))
        .await
        .unwrap();
    assert!(
        server
            .last()
            .param("query")
            .contains("response_total{ namespace=\"test\"")
    );

    // A plain-Service target: the metrics provider is "nginx:service", still the NGINX queries,
    // and the provider string appears in the no-values message.
    let server = prometheus(vec![]).await;
    let mut s = spec(
        Some("nginx"),
        serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
    );
    s["targetRef"] = serde_json::json!({"apiVersion": "v1", "kind": "Service", "name": "podinfo"});
    let c = canary("podinfo", "test", s);
    let failed = analysis::run_checks(&c, &ctx(&server, "istio", &env))
        .await
        .unwrap_err();
    assert!(
        server
            .last()
            .param("query")
            .contains("nginx_ingress_controller_requests")
    );
    assert_eq!(
        failed.message,
        "Halt advancement no values found for nginx:service metric request-success-rate probably podinfo.test is not receiving traffic: running query failed: no values found"
    );
}

#[tokio::test]
async fn knative_route_is_the_latest_created_revision() {
    let server = prometheus(vec![(
        "envoy_cluster_upstream_rq",
        Answer::json(200, prom_vector("100")),
    )])
    .await;
    let mut env = FakeEnv::default();
    let c = canary(
        "podinfo",
        "test",
        spec(
            Some("knative"),
            serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
        ),
    );
    let failed = analysis::run_checks(&c, &ctx(&server, "istio", &env))
        .await
        .unwrap_err();
    assert_eq!(
        failed.message,
        "Error fetching Knative service test/podinfo services.serving.knative.dev \"podinfo\" not found"
    );
    assert_eq!(failed.severity, Severity::Error);
    env.knative_revisions
        .insert(("test".into(), "podinfo".into()), "podinfo-00002".into());
    analysis::run_checks(&c, &ctx(&server, "istio", &env))
        .await
        .unwrap();
    assert!(
        server
            .last()
            .param("query")
            .contains(r#"envoy_cluster_name=~"test/podinfo-00002""#)
    );
}

#[tokio::test]
async fn no_values_and_query_failure_messages() {
    let server = prometheus(vec![
        (
            "broken",
            Answer::json(
                422,
                serde_json::json!({"status": "error", "errorType": "execution", "error": "boom"}),
            ),
        ),
        ("histogram_quantile", Answer::json(200, prom_empty())),
    ])
    .await;
    let env = FakeEnv::default();
    let run = |metrics: serde_json::Value| {
        let c = canary("podinfo", "test", spec(None, metrics));
        let env = &env;
        let server = &server;
        async move {
            analysis::run_checks(&c, &ctx(server, "istio", env))
                .await
                .unwrap_err()
        }
    };

    let f = run(serde_json::json!([{"name": "request-duration", "thresholdRange": {"max": 500}}]))
        .await;
    assert_eq!(
        f.message,
        "Halt advancement no values found for istio metric request-duration probably podinfo.test is not receiving traffic"
    );
    assert_eq!(f.severity, Severity::Warning);

    let f = run(serde_json::json!([{"name": "errors", "query": "sum(errors)", "thresholdRange": {"max": 1}}])).await;
    assert_eq!(
        f.message,
        "Halt advancement no values found for metric: errors"
    );

    let f = run(
        serde_json::json!([{"name": "errors", "query": "broken", "thresholdRange": {"max": 1}}]),
    )
    .await;
    assert_eq!(
        f.message,
        r#"Prometheus query failed for errors: prometheus returned HTTP 422: {"error":"boom","errorType":"execution","status":"error"}"#
    );
    assert_eq!(f.severity, Severity::Error);

    let f =
        run(serde_json::json!([{"name": "errors", "query": "{{ if namespace }}x{{ end }}"}])).await;
    assert!(
        f.message.starts_with("Prometheus query failed for errors: query render error: unsupported template construct \"if\""),
        "{}",
        f.message
    );

    let f =
        run(serde_json::json!([{"name": "nothing-to-run", "thresholdRange": {"max": 1}}])).await;
    assert_eq!(
        f.message,
        "Metric query failed for no usable metrics template and query were configured"
    );

    // Unreachable Prometheus.
    let c = canary(
        "podinfo",
        "test",
        spec(
            None,
            serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
        ),
    );
    let dead = MetricsContext {
        metrics_server: "http://127.0.0.1:9",
        mesh_provider: "istio",
        env: &env,
    };
    let f = analysis::run_checks(&c, &dead).await.unwrap_err();
    assert!(
        f.message
            .starts_with("Prometheus query failed: running query failed: error sending request"),
        "{}",
        f.message
    );
    let err = analysis::check_providers(&c, &dead).await.unwrap_err();
    assert!(err.starts_with("prometheus not available: "), "{err}");
    // spec.metricsServer overrides the global server.
    let mut s = spec(
        None,
        serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
    );
    s["metricsServer"] = "not a url".into();
    let f = analysis::run_checks(&canary("podinfo", "test", s), &ctx(&server, "istio", &env))
        .await
        .unwrap_err();
    assert!(
        f.message.starts_with(
            "Error building Prometheus client for not a url prometheus: invalid address"
        ),
        "{}",
        f.message
    );
}

fn template_env(server_url: &str) -> FakeEnv {
    FakeEnv::default()
        .with_template(
            "istio-system",
            serde_json::json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
                "metadata": {"name": "error-rate", "namespace": "istio-system"},
                "spec": {
                    "provider": {"type": "prometheus", "address": server_url,
                                 "secretRef": {"name": "prom-auth"}},
                    "query": "errors{ns=\"{{ namespace }}\",target=\"{{ target }}\",x=\"{{ variables.extra }}\"}[{{ interval }}]",
                }
            }),
        )
        .with_secret("istio-system", "prom-auth", &[("token", "very-secret-token")])
}

#[tokio::test]
async fn template_checks_and_their_messages() {
    let server = prometheus(vec![
        (
            "errors{ns=\"test\",target=\"podinfo\",x=\"a\"}[30s]",
            Answer::json(200, prom_vector("31")),
        ),
        ("x=\"empty\"", Answer::json(200, prom_empty())),
        (
            "x=\"fail\"",
            Answer::json(
                500,
                serde_json::json!({"status": "error", "error": "storage down"}),
            ),
        ),
    ])
    .await;
    let env = template_env(&server.url);
    let ctx = ctx(&server, "istio", &env);
    let metric = |extra: &str, max: f64| {
        serde_json::json!([{
            "name": "error-rate",
            "templateRef": {"name": "error-rate", "namespace": "istio-system"},
            "templateVariables": {"extra": extra},
            "thresholdRange": {"max": max},
            "interval": "30s",
        }])
    };
    let run = |metrics: serde_json::Value| {
        let c = canary("podinfo", "test", spec(None, metrics));
        async move { analysis::run_checks(&c, &ctx).await }
    };

    let results = run(metric("a", 50.0)).await.unwrap();
    assert_eq!(results[0].value, 31.0);
    let r = server.last();
    assert_eq!(r.header("authorization"), "Bearer very-secret-token");

    let f = run(metric("a", 1.0)).await.unwrap_err();
    assert_eq!(
        f.message,
        "Halt podinfo.test advancement error-rate 31.00 > 1"
    );
    assert_eq!(f.results.len(), 1, "the failing value is still reported");

    let f = run(metric("empty", 1.0)).await.unwrap_err();
    assert_eq!(
        f.message,
        "Halt advancement no values found for custom metric: error-rate: no values found"
    );

    let f = run(metric("fail", 1.0)).await.unwrap_err();
    assert_eq!(
        f.message,
        r#"Metric query failed for error-rate: prometheus returned HTTP 500: {"error":"storage down","status":"error"}"#
    );

    // Missing variable: a render error on the Canary, not a crash.
    let f = run(serde_json::json!([{
        "name": "error-rate", "templateRef": {"name": "error-rate", "namespace": "istio-system"},
        "thresholdRange": {"max": 1},
    }]))
    .await
    .unwrap_err();
    assert_eq!(
        f.message,
        "Metric template error-rate.istio-system query render error: map has no entry for key \"extra\" (set it in the metric's templateVariables)"
    );

    // Template in the canary's namespace by default, and absent.
    let f = run(serde_json::json!([{"name": "x", "templateRef": {"name": "latency"}}]))
        .await
        .unwrap_err();
    assert_eq!(
        f.message,
        "Metric template latency.test error: metrictemplates.flagger.app \"latency\" not found"
    );
    assert_eq!(f.severity, Severity::Error);

    // The API server failing to answer (after the reader's retries) holds the step instead.
    let flaky = FakeEnv {
        unavailable: Some("the API server answered HTTP 500 Internal Server Error".into()),
        ..template_env(&server.url)
    };
    let c = canary("podinfo", "test", spec(None, metric("a", 50.0)));
    let f = analysis::run_checks(&c, &MetricsContext { env: &flaky, ..ctx })
        .await
        .unwrap_err();
    assert_eq!(
        f.message,
        "Halt advancement: metric template error-rate.istio-system cannot be read, retrying at the next interval (not counted as a failed check): the API server answered HTTP 500 Internal Server Error"
    );
    assert_eq!(f.severity, Severity::Held);

    // Secret missing.
    let env2 = FakeEnv {
        secrets: Default::default(),
        ..template_env(&server.url)
    };
    let c = canary("podinfo", "test", spec(None, metric("a", 50.0)));
    let f = analysis::run_checks(&c, &MetricsContext { env: &env2, ..ctx })
        .await
        .unwrap_err();
    assert_eq!(
        f.message,
        "Metric template error-rate.istio-system secret prom-auth error: secrets \"prom-auth\" not found"
    );

    // Provider configuration error.
    let env3 = FakeEnv::default()
        .with_template(
            "test",
            serde_json::json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
                "metadata": {"name": "dd", "namespace": "test"},
                "spec": {"provider": {"type": "datadog", "secretRef": {"name": "dd"}}, "query": "avg:x{*}"}
            }),
        )
        .with_secret("test", "dd", &[("datadog_api_key", "k")]);
    let c = canary(
        "podinfo",
        "test",
        spec(
            None,
            serde_json::json!([{"name": "dd", "templateRef": {"name": "dd"}, "thresholdRange": {"max": 1}}]),
        ),
    );
    let f = analysis::run_checks(&c, &MetricsContext { env: &env3, ..ctx })
        .await
        .unwrap_err();
    assert_eq!(
        f.message,
        "Metric template dd.test provider datadog error: datadog credentials do not contain the key \"datadog_application_key\" (set provider.secretRef to a Secret with it)"
    );
    let err = analysis::check_providers(&c, &MetricsContext { env: &env3, ..ctx })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        "metric template dd.test provider datadog error: datadog credentials do not contain the key \"datadog_application_key\" (set provider.secretRef to a Secret with it)"
    );
}

#[tokio::test]
async fn builtin_checks_run_before_templates_and_first_failure_wins() {
    let server = prometheus(vec![
        ("errors{", Answer::json(200, prom_vector("0"))),
        (
            "istio_requests_total",
            Answer::json(200, prom_vector("69.1666")),
        ),
    ])
    .await;
    let env = template_env(&server.url);
    let c = canary(
        "podinfo",
        "test",
        spec(
            None,
            serde_json::json!([
                {"name": "error-rate", "templateRef": {"name": "error-rate", "namespace": "istio-system"},
                 "templateVariables": {"extra": "a"}, "thresholdRange": {"max": 1}},
                {"name": "request-success-rate", "thresholdRange": {"min": 99}},
            ]),
        ),
    );
    let f = analysis::run_checks(&c, &ctx(&server, "istio", &env))
        .await
        .unwrap_err();
    assert_eq!(
        f.message,
        "Halt podinfo.test advancement success rate 69.17% < 99%"
    );
    // The template was never queried.
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn availability_check() {
    let server = prometheus(vec![("vector(1)", Answer::json(200, prom_vector("1")))]).await;
    let env = template_env(&server.url);
    let c = canary(
        "podinfo",
        "test",
        spec(
            None,
            serde_json::json!([
                {"name": "request-success-rate", "thresholdRange": {"min": 99}},
                {"name": "request-duration", "thresholdRange": {"max": 500}},
                {"name": "error-rate", "templateRef": {"name": "error-rate", "namespace": "istio-system"}},
            ]),
        ),
    );
    analysis::check_providers(&c, &ctx(&server, "istio", &env))
        .await
        .unwrap();
    // Prometheus probed once for the built-ins, once for the template (with its token).
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.param("query") == "vector(1)"));
    assert_eq!(
        requests[1].header("authorization"),
        "Bearer very-secret-token"
    );
    assert_eq!(
        analysis::PROVIDERS_AVAILABLE,
        "all the metrics providers are available!"
    );

    // A template whose backend is down.
    let down = prometheus(vec![(
        "vector(1)",
        Answer::json(503, serde_json::json!({"error": "unavailable"})),
    )])
    .await;
    let env = template_env(&down.url);
    let err = analysis::check_providers(&c, &ctx(&server, "istio", &env))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        r#"prometheus in metric template error-rate.istio-system not available: prometheus returned HTTP 503: {"error":"unavailable"}"#
    );
}

/// A `tracing` writer collecting everything that is logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_stay_out_of_messages_and_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // The backend rejects the token and quotes it back.
    let server = FakeServer::start(|r| {
        let auth = r.headers.get("authorization").cloned().unwrap_or_default();
        Answer::text(401, "text/plain", &format!("invalid credentials: {auth}"))
    })
    .await;
    let env = template_env(&server.url);
    let c = canary(
        "podinfo",
        "test",
        spec(
            None,
            serde_json::json!([{"name": "error-rate", "templateRef": {"name": "error-rate", "namespace": "istio-system"},
                                "templateVariables": {"extra": "a"}, "thresholdRange": {"max": 1}}]),
        ),
    );
    let ctx = ctx(&server, "istio", &env);
    let f = analysis::run_checks(&c, &ctx).await.unwrap_err();
    let e = analysis::check_providers(&c, &ctx).await.unwrap_err();
    assert_eq!(
        server.requests()[0].header("authorization"),
        "Bearer very-secret-token"
    );
    for text in [&f.message, &e] {
        assert!(!text.contains("very-secret-token"), "{text}");
        assert!(text.contains("Bearer [redacted]"), "{text}");
    }

    // Basic auth in the metrics server URL.
    let with_userinfo = server.url.replace("http://", "http://admin:hunter22pw@");
    let builtin = canary(
        "podinfo",
        "test",
        spec(
            None,
            serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
        ),
    );
    let ctx2 = MetricsContext {
        metrics_server: &with_userinfo,
        ..ctx
    };
    let f = analysis::run_checks(&builtin, &ctx2).await.unwrap_err();
    let e = analysis::check_providers(&builtin, &ctx2)
        .await
        .unwrap_err();
    for text in [&f.message, &e] {
        assert!(!text.contains("hunter22pw"), "{text}");
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains("very-secret-token"), "{logs}");
    assert!(!logs.contains("hunter22pw"), "{logs}");
    assert!(
        logs.contains("Metric template error-rate.istio-system query"),
        "debug log of the query expected: {logs}"
    );
}
