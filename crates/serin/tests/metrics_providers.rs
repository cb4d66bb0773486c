//! Every metric backend against an HTTP server on 127.0.0.1:0 that records the exact request and
//! answers with the backend's real response shapes, errors, empty results and delays.
#![allow(clippy::unwrap_used)]

mod metrics_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use metrics_support::{Answer, FakeServer, credentials, prom_empty, prom_vector};
use serin::api::metric_template::MetricTemplateProvider;
use serin::metrics::providers::sigv4::{self, AwsCredentials};
use serin::metrics::providers::{self, MetricsProvider, ProviderEnv, ProviderError};

fn template(kind: &str, address: Option<&str>) -> MetricTemplateProvider {
    MetricTemplateProvider {
        provider_type: kind.into(),
        address: address.map(String::from),
        ..Default::default()
    }
}

fn env(interval: &str, creds: &[(&str, &str)]) -> ProviderEnv {
    ProviderEnv {
        interval: interval.into(),
        credentials: if creds.is_empty() {
            None
        } else {
            Some(credentials(creds))
        },
        kube_config: None,
    }
}

fn build(provider: &MetricTemplateProvider, env: ProviderEnv) -> Box<dyn MetricsProvider> {
    providers::build(provider, env).unwrap()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// Prometheus

#[tokio::test]
async fn prometheus_request_bearer_headers_and_answers() {
    let server = FakeServer::start(|r| match r.param("query").as_str() {
        "vector(1)" => Answer::json(200, prom_vector("1")),
        "empty" => Answer::json(200, prom_empty()),
        "bad" => Answer::json(
            400,
            serde_json::json!({"status":"error","errorType":"bad_data","error":"parse error"}),
        ),
        _ => Answer::json(200, prom_vector("99.5")),
    })
    .await;
    let mut provider = template("prometheus", Some(&format!("{}/prom/", server.url)));
    provider.headers = Some(
        [("X-Scope-OrgID".to_string(), vec!["tenant-1".to_string()])]
            .into_iter()
            .collect(),
    );
    let p = build(&provider, env("1m", &[("token", "s3cr3t-token")]));

    let v = p
        .run_query("sum(\n  rate(x{a=\"b\"}[1m])\n)   * 100\n")
        .await
        .unwrap();
    assert_eq!(v, 99.5);
    let r = server.last();
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/prom/api/v1/query");
    assert_eq!(r.param("query"), "sum( rate(x{a=\"b\"}[1m]) ) * 100");
    assert_eq!(r.header("authorization"), "Bearer s3cr3t-token");
    assert_eq!(r.header("x-scope-orgid"), "tenant-1");

    assert_eq!(
        p.run_query("empty").await.unwrap_err(),
        ProviderError::NoValuesFound
    );
    let err = p.run_query("bad").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"prometheus returned HTTP 400: {"error":"parse error","errorType":"bad_data","status":"error"}"#
    );
    p.is_online().await.unwrap();
    assert_eq!(server.last().param("query"), "vector(1)");
}

#[tokio::test]
async fn prometheus_basic_auth_and_offline() {
    let server = FakeServer::start(|_| Answer::json(200, prom_vector("0"))).await;
    let p = build(
        &template("prometheus", Some(&server.url)),
        env("1m", &[("username", "admin"), ("password", "pa55word")]),
    );
    // vector(1) must return 1.
    let err = p.is_online().await.unwrap_err();
    assert!(err.to_string().contains("expected 1"), "{err}");
    assert_eq!(
        server.last().header("authorization"),
        format!("Basic {}", STANDARD.encode("admin:pa55word"))
    );
    // Missing password is a configuration error.
    let err = providers::build(
        &template("prometheus", Some(&server.url)),
        env("1m", &[("username", "admin")]),
    )
    .err()
    .unwrap();
    assert!(matches!(err, ProviderError::Config(_)), "{err}");
    // Connection refused.
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let closed = format!("http://127.0.0.1:{}", unused_port());
    let p = build(&template("prometheus", Some(&closed)), env("1m", &[]));
    let err = p.is_online().await.unwrap_err();
    assert!(matches!(err, ProviderError::Request(_)), "{err:?}");
    assert!(!err.to_string().contains("127.0.0.1"), "URL leaked: {err}");
}

fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn prometheus_times_out_after_five_seconds() {
    let server =
        FakeServer::start(|_| Answer::json(200, prom_vector("1")).delayed(Duration::from_secs(8)))
            .await;
    let p = build(&template("prometheus", Some(&server.url)), env("1m", &[]));
    let started = std::time::Instant::now();
    let err = p.run_query("up").await.unwrap_err();
    assert_eq!(err, ProviderError::Timeout("5s".into()));
    assert!(started.elapsed() < Duration::from_secs(7));
}

#[tokio::test]
async fn secrets_never_appear_in_errors() {
    // A backend that echoes the credentials back in its error body.
    let server = FakeServer::start(|r| {
        let auth = r.headers.get("authorization").cloned().unwrap_or_default();
        let dd = r.headers.get("dd-api-key").cloned().unwrap_or_default();
        Answer::text(401, "text/plain", &format!("denied for {auth} {dd}"))
    })
    .await;
    let p = build(
        &template("prometheus", Some(&server.url)),
        env("1m", &[("token", "tok-123456")]),
    );
    let err = p.run_query("up").await.unwrap_err().to_string();
    assert!(!err.contains("tok-123456"), "{err}");
    assert!(err.contains("Bearer [redacted]"), "{err}");

    let p = build(
        &template("datadog", Some(&server.url)),
        env(
            "1m",
            &[
                ("datadog_api_key", "dd-api-secret"),
                ("datadog_application_key", "dd-app-secret"),
            ],
        ),
    );
    let err = p.run_query("avg:x{*}").await.unwrap_err().to_string();
    assert!(!err.contains("dd-api-secret"), "{err}");
    assert!(err.contains("[redacted]"), "{err}");

    // User info in the address.
    let with_userinfo = server.url.replace("http://", "http://bob:hunter22@");
    let p = build(
        &template("prometheus", Some(&with_userinfo)),
        env("1m", &[]),
    );
    let err = p.run_query("up").await.unwrap_err().to_string();
    assert!(!err.contains("hunter22"), "{err}");
    assert_eq!(
        server.last().header("authorization"),
        format!("Basic {}", STANDARD.encode("bob:hunter22"))
    );
}

// ---------------------------------------------------------------------------------------------
// Datadog

#[tokio::test]
async fn datadog_request_and_answers() {
    let server = FakeServer::start(|r| match (r.path.as_str(), r.params().get("query")) {
        ("/api/v1/validate", _) => Answer::json(200, serde_json::json!({"valid": true})),
        (_, Some(q)) if q == "empty" => {
            Answer::json(200, serde_json::json!({"status": "ok", "series": []}))
        }
        (_, Some(q)) if q == "forbidden" => {
            Answer::json(403, serde_json::json!({"errors": ["Forbidden"]}))
        }
        _ => Answer::json(
            200,
            serde_json::json!({
                "status": "ok", "res_type": "time_series",
                "series": [{"metric": "x", "pointlist": [[1700000000000.0, 0.25], [1700000060000.0, 0.75]]}]
            }),
        ),
    })
    .await;
    let p = build(
        &template("datadog", Some(&server.url)),
        env(
            "2m",
            &[
                ("datadog_api_key", "api-key"),
                ("datadog_application_key", "app-key"),
            ],
        ),
    );
    let before = now_secs();
    assert_eq!(
        p.run_query("sum:requests.error{service:podinfo}.as_count()")
            .await
            .unwrap(),
        0.25
    );
    let r = server.last();
    assert_eq!(r.path, "/api/v1/query");
    assert_eq!(r.header("dd-api-key"), "api-key");
    assert_eq!(r.header("dd-application-key"), "app-key");
    assert_eq!(
        r.param("query"),
        "sum:requests.error{service:podinfo}.as_count()"
    );
    let from: u64 = r.param("from").parse().unwrap();
    let to: u64 = r.param("to").parse().unwrap();
    assert_eq!(to - from, 1200, "window = 10 × 2m");
    assert!(to >= before && to <= now_secs());
    assert_eq!(
        p.run_query("empty").await.unwrap_err(),
        ProviderError::NoValuesFound
    );
    let err = p.run_query("forbidden").await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Http { status: 403, .. }),
        "{err}"
    );
    p.is_online().await.unwrap();
    assert_eq!(server.last().path, "/api/v1/validate");

    // Both keys are required; the interval must parse.
    assert!(
        providers::build(
            &template("datadog", Some(&server.url)),
            env("1m", &[("datadog_api_key", "a")])
        )
        .is_err()
    );
    assert!(
        providers::build(
            &template("datadog", Some(&server.url)),
            env(
                "",
                &[("datadog_api_key", "a"), ("datadog_application_key", "b")]
            )
        )
        .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// CloudWatch

#[tokio::test]
async fn cloudwatch_signed_get_metric_data() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let server = FakeServer::start(move |r| {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let queries = body["MetricDataQueries"].as_array().unwrap().clone();
        if queries.is_empty() {
            return Answer::json(
                400,
                serde_json::json!({"__type": "com.amazon.coral.validate#ValidationException", "message": "MetricDataQueries is empty"}),
            );
        }
        let id = queries[0]["Id"].as_str().unwrap().to_string();
        match id.as_str() {
            "flaky" => {
                // Two throttled answers, then a result.
                if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Answer::json(
                        400,
                        serde_json::json!({"__type": "Throttling", "message": "Rate exceeded"}),
                    );
                }
                Answer::json(
                    200,
                    serde_json::json!({"MetricDataResults": [{"Id": "flaky", "Label": "x", "Timestamps": [1700000000], "Values": [7.0], "StatusCode": "Complete"}], "Messages": []}),
                )
            }
            "empty" => Answer::json(
                200,
                serde_json::json!({"MetricDataResults": [{"Id": "empty", "Timestamps": [], "Values": [], "StatusCode": "Complete"}], "Messages": []}),
            ),
            _ => Answer::json(
                200,
                serde_json::json!({"MetricDataResults": [{"Id": "e1", "Label": "errors", "Timestamps": [1700000060, 1700000000], "Values": [2.5, 1.0], "StatusCode": "Complete"}], "Messages": []}),
            ),
        }
    })
    .await;
    let mut provider = template("cloudwatch", Some(&server.url));
    provider.region = Some("eu-west-1".into());
    let creds = [
        ("aws_access_key_id", "AKIDTEST"),
        ("aws_secret_access_key", "secret/KEY+value"),
        ("aws_session_token", "session-tok"),
    ];
    let p = build(&provider, env("1m", &creds));
    let query = r#"[
      {"Id": "e1", "Expression": "m1 / m2", "Label": "errors"},
      {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "MyKubernetesCluster", "MetricName": "ErrorCount", "Dimensions": [{"Name": "appName", "Value": "podinfo.test"}]}, "Period": 60, "Stat": "Sum"}, "ReturnData": false}
    ]"#;
    assert_eq!(p.run_query(query).await.unwrap(), 2.5);
    let r = server.last();
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/");
    assert_eq!(
        r.header("x-amz-target"),
        "GraniteServiceVersion20100801.GetMetricData"
    );
    assert_eq!(r.header("content-type"), "application/x-amz-json-1.0");
    assert_eq!(r.header("x-amz-security-token"), "session-tok");
    let body = r.body_json();
    assert_eq!(
        body["MetricDataQueries"],
        serde_json::from_str::<serde_json::Value>(query).unwrap()
    );
    assert_eq!(body["MaxDatapoints"], 20);
    assert_eq!(
        body["EndTime"].as_u64().unwrap() - body["StartTime"].as_u64().unwrap(),
        600
    );
    // Recompute the signature independently from what was received.
    let url = reqwest::Url::parse(&format!("{}/", server.url)).unwrap();
    let host = url.host_str().unwrap().to_string() + ":" + &url.port().unwrap().to_string();
    let expected = sigv4::sign(
        &AwsCredentials {
            access_key_id: "AKIDTEST".into(),
            secret_access_key: "secret/KEY+value".into(),
            session_token: Some("session-tok".into()),
        },
        ("eu-west-1", "monitoring"),
        &sigv4::Request {
            method: "POST",
            url: &url,
            headers: &[
                ("content-type".into(), r.header("content-type")),
                ("host".into(), host),
                ("x-amz-target".into(), r.header("x-amz-target")),
            ],
            payload: &r.body,
        },
        &r.header("x-amz-date"),
    );
    let authorization = r.header("authorization");
    assert_eq!(authorization, expected.last().unwrap().1);
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            && authorization.contains("/eu-west-1/monitoring/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="),
        "{authorization}"
    );

    assert_eq!(
        p.run_query(r#"[{"Id": "empty", "Expression": "x"}]"#)
            .await
            .unwrap_err(),
        ProviderError::NoValuesFound
    );
    // Throttling is retried (3 attempts).
    assert_eq!(
        p.run_query(r#"[{"Id": "flaky", "Expression": "x"}]"#)
            .await
            .unwrap(),
        7.0
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Not a JSON array.
    assert!(matches!(
        p.run_query("SELECT 1").await.unwrap_err(),
        ProviderError::Config(_)
    ));
    // The empty call answers 400 ValidationException: online.
    p.is_online().await.unwrap();
    // Region is required.
    assert!(
        providers::build(
            &template("cloudwatch", Some(&server.url)),
            env("1m", &creds)
        )
        .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// New Relic

#[tokio::test]
async fn newrelic_request_and_answers() {
    let server = FakeServer::start(|r| {
        let nrql = r.param("nrql");
        if nrql.starts_with("SELECT * FROM Metric") {
            Answer::json(200, serde_json::json!({"results": [{"events": []}]}))
        } else if nrql.starts_with("EMPTY") {
            Answer::json(200, serde_json::json!({"results": []}))
        } else if nrql.starts_with("BAD") {
            Answer::json(400, serde_json::json!({"error": "NRQL Syntax Error"}))
        } else {
            Answer::json(
                200,
                serde_json::json!({"results": [{"result": 1.25}], "metadata": {"eventTypes": ["Transaction"]}}),
            )
        }
    })
    .await;
    let p = build(
        &template("newrelic", Some(&server.url)),
        env(
            "30s",
            &[
                ("newrelic_account_id", "1234567"),
                ("newrelic_query_key", "nrq-key"),
            ],
        ),
    );
    let q = "SELECT filter(sum(nginx_ingress_controller_requests), WHERE status >= '500') / sum(nginx_ingress_controller_requests) * 100 AS result FROM Metric WHERE metricName = 'nginx_ingress_controller_requests'";
    assert_eq!(p.run_query(q).await.unwrap(), 1.25);
    let r = server.last();
    assert_eq!(r.path, "/v1/accounts/1234567/query");
    assert_eq!(r.header("x-query-key"), "nrq-key");
    assert_eq!(r.param("nrql"), format!("{q} SINCE 30 seconds ago"));
    assert_eq!(
        p.run_query("EMPTY").await.unwrap_err(),
        ProviderError::NoValuesFound
    );
    assert!(matches!(
        p.run_query("BAD").await.unwrap_err(),
        ProviderError::Http { status: 400, .. }
    ));
    p.is_online().await.unwrap();
    assert_eq!(server.last().param("nrql"), "SELECT * FROM Metric");
}

// ---------------------------------------------------------------------------------------------
// Graphite

#[tokio::test]
async fn graphite_request_and_answers() {
    let server = FakeServer::start(|r| match r.param("target").as_str() {
        "test" => Answer::json(200, serde_json::json!([])),
        "nulls" => Answer::json(
            200,
            serde_json::json!([{"target": "nulls", "datapoints": [[null, 1], [null, 2]]}]),
        ),
        "boom" => Answer::text(500, "text/html", "<h1>Internal Server Error</h1>"),
        _ => Answer::json(
            200,
            serde_json::json!([
                {"target": "a", "tags": {}, "datapoints": [[1.5, 1700000000], [null, 1700000060]]},
                {"target": "b", "tags": {}, "datapoints": [[3, 1700000000], [4.25, 1700000060], [null, 1700000120]]}
            ]),
        ),
    })
    .await;
    let p = build(
        &template("graphite", Some(&format!("{}/graphite", server.url))),
        env("1m", &[("username", "g"), ("password", "gp")]),
    );
    let q = "target=sumSeries(stats.timers.podinfo.*.count)\n  &from=-1min";
    assert_eq!(p.run_query(q).await.unwrap(), 4.25);
    let r = server.last();
    assert_eq!(r.path, "/graphite/render");
    assert_eq!(
        r.query,
        "format=json&from=-1min&target=sumSeries%28stats.timers.podinfo.%2A.count%29"
    );
    assert_eq!(
        r.header("authorization"),
        format!("Basic {}", STANDARD.encode("g:gp"))
    );
    assert_eq!(
        p.run_query("target=nulls").await.unwrap_err(),
        ProviderError::NoValuesFound
    );
    assert!(matches!(
        p.run_query("target=boom").await.unwrap_err(),
        ProviderError::Http { status: 500, .. }
    ));
    p.is_online().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// InfluxDB

#[tokio::test]
async fn influxdb_flux_request_and_csv_answers() {
    let server = FakeServer::start(|r| {
        let query = r.body_json()["query"].as_str().unwrap().to_string();
        if query.contains("missing") {
            return Answer::json(
                404,
                serde_json::json!({"code": "not found", "message": "failed to initialize execute state: could not find bucket \"missing\""}),
            );
        }
        if query.contains("nothing") {
            return Answer::text(200, "text/csv; charset=utf-8", "\r\n");
        }
        Answer::text(
            200,
            "text/csv; charset=utf-8",
            "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,double\r\n#group,false,false,true,true,false\r\n#default,_result,,,,\r\n,result,table,_start,_stop,_value\r\n,,0,2024-01-01T00:00:00Z,2024-01-01T00:01:00Z,0.42\r\n\r\n",
        )
    })
    .await;
    let p = build(
        &template("influxdb", Some(&server.url)),
        env("1m", &[("token", "influx-tok"), ("org", "my-org")]),
    );
    let flux = r#"from(bucket: "k8s") |> range(start: -1m) |> filter(fn: (r) => r._measurement == "errors") |> mean()"#;
    assert_eq!(p.run_query(flux).await.unwrap(), 0.42);
    let r = server.last();
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/api/v2/query");
    assert_eq!(r.param("org"), "my-org");
    assert_eq!(r.header("authorization"), "Token influx-tok");
    let body = r.body_json();
    assert_eq!(body["query"], flux);
    assert_eq!(body["type"], "flux");
    // No records: 0 without an error (Flagger's behaviour).
    assert_eq!(p.run_query("nothing").await.unwrap(), 0.0);
    let err = p.run_query("from(bucket: \"missing\")").await.unwrap_err();
    assert!(err.to_string().contains("could not find bucket"), "{err}");
    p.is_online().await.unwrap();
    // token and org are both required with a secretRef.
    assert!(
        providers::build(
            &template("influxdb", Some(&server.url)),
            env("1m", &[("token", "t")])
        )
        .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// Stackdriver

/// A throwaway RSA key made for this test (PKCS#8) and its public key (PKCS#1 DER, base64).
const TEST_KEY_PEM: &str = include_str!("metrics_support/test_rsa_key.pem");
const TEST_PUBLIC_KEY_B64: &str = include_str!("metrics_support/test_rsa_key.pub.b64");

#[tokio::test]
async fn stackdriver_service_account_token_and_mql_query() {
    let server = FakeServer::start(|r| match r.path.as_str() {
        "/token" => {
            let form: std::collections::BTreeMap<String, String> =
                reqwest::Url::parse(&format!("http://x/?{}", r.body_str()))
                    .unwrap()
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
            assert_eq!(
                form["grant_type"],
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
            );
            let jwt = &form["assertion"];
            let (signing_input, signature) = jwt.rsplit_once('.').unwrap();
            let public_key = STANDARD.decode(TEST_PUBLIC_KEY_B64.trim()).unwrap();
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                public_key,
            )
            .verify(
                signing_input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .expect("JWT signature verifies with the service account's public key");
            let claims: serde_json::Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(signing_input.split('.').nth(1).unwrap())
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(claims["iss"], "flagger@my-project.iam.gserviceaccount.com");
            assert_eq!(
                claims["scope"],
                "https://www.googleapis.com/auth/monitoring.read"
            );
            assert!(claims["aud"].as_str().unwrap().ends_with("/token"));
            assert_eq!(
                claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
                3600
            );
            Answer::json(
                200,
                serde_json::json!({"access_token": "ya29.test-access", "expires_in": 3599, "token_type": "Bearer"}),
            )
        }
        "/v3/projects/my-project/timeSeries:query" => {
            let query = r.body_json()["query"].as_str().unwrap().to_string();
            if query.is_empty() {
                Answer::json(
                    400,
                    serde_json::json!({"error": {"code": 400, "message": "Query is empty.", "status": "INVALID_ARGUMENT"}}),
                )
            } else if query.contains("nodata") {
                Answer::json(200, serde_json::json!({"timeSeriesDescriptor": {}}))
            } else {
                Answer::json(
                    200,
                    serde_json::json!({
                        "timeSeriesDescriptor": {"pointDescriptors": [{"key": "value", "valueType": "DOUBLE"}]},
                        "timeSeriesData": [{"labelValues": [], "pointData": [
                            {"values": [{"doubleValue": 0.987}], "timeInterval": {"startTime": "2024-01-01T00:00:00Z", "endTime": "2024-01-01T00:01:00Z"}}
                        ]}]
                    }),
                )
            }
        }
        other => panic!("unexpected path {other}"),
    })
    .await;
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": "abc",
        "private_key": TEST_KEY_PEM,
        "client_email": "flagger@my-project.iam.gserviceaccount.com",
        "token_uri": format!("{}/token", server.url),
    })
    .to_string();
    let p = build(
        &template("stackdriver", Some(&server.url)),
        env(
            "1m",
            &[("project", "my-project"), ("serviceAccountKey", &key)],
        ),
    );
    let mql = "fetch k8s_container | metric 'istio.io/service/server/request_count' | within 1m";
    assert_eq!(p.run_query(mql).await.unwrap(), 0.987);
    let r = server.last();
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("authorization"), "Bearer ya29.test-access");
    assert_eq!(r.body_json(), serde_json::json!({"query": mql}));
    assert_eq!(
        p.run_query("nodata").await.unwrap_err(),
        ProviderError::NoValuesFound
    );
    p.is_online().await.unwrap();
    // One token for the provider's lifetime.
    let token_calls = server
        .requests()
        .iter()
        .filter(|r| r.path == "/token")
        .count();
    assert_eq!(token_calls, 1);
    // project is required.
    assert!(providers::build(&template("stackdriver", None), env("1m", &[("x", "y")])).is_err());
}

// ---------------------------------------------------------------------------------------------
// Dynatrace

#[tokio::test]
async fn dynatrace_request_and_answers() {
    let server = FakeServer::start(|r| match r.path.as_str() {
        "/e/env-id/api/v2/metrics" => {
            Answer::json(200, serde_json::json!({"totalCount": 1, "metrics": []}))
        }
        _ if r.param("metricSelector") == "empty" => Answer::json(
            200,
            serde_json::json!({"totalCount": 0, "resolution": "Inf", "result": []}),
        ),
        _ if r.param("metricSelector") == "bad" => Answer::json(
            400,
            serde_json::json!({"error": {"code": 400, "message": "Invalid metric selector"}}),
        ),
        _ => Answer::json(
            200,
            serde_json::json!({"totalCount": 1, "resolution": "Inf", "result": [{"metricId": "x", "data": [
                {"dimensions": [], "timestamps": [1], "values": [10.0]},
                {"dimensions": [], "timestamps": [1], "values": [12.5]}
            ]}]}),
        ),
    })
    .await;
    let p = build(
        &template("dynatrace", Some(&format!("{}/e/env-id", server.url))),
        env("1m", &[("dynatrace_token", "dt0c01.abc")]),
    );
    let before = now_secs() * 1000;
    let selector =
        "builtin:service.response.time:filter(eq(\"dt.entity.service\",\"SERVICE-1\")):avg";
    assert_eq!(p.run_query(selector).await.unwrap(), 12.5);
    let r = server.last();
    assert_eq!(r.path, "/e/env-id/api/v2/metrics/query");
    assert_eq!(r.header("authorization"), "Api-Token dt0c01.abc");
    assert_eq!(r.param("metricSelector"), selector);
    assert_eq!(r.param("resolution"), "Inf");
    let from: u64 = r.param("from").parse().unwrap();
    let to: u64 = r.param("to").parse().unwrap();
    assert_eq!(to - from, 600_000);
    assert!(to >= before);
    assert_eq!(
        p.run_query("empty").await.unwrap_err(),
        ProviderError::NoValuesFound
    );
    assert!(matches!(
        p.run_query("bad").await.unwrap_err(),
        ProviderError::Http { status: 400, .. }
    ));
    p.is_online().await.unwrap();
    assert_eq!(server.last().param("pageSize"), "1");
}

// ---------------------------------------------------------------------------------------------
// Splunk

#[tokio::test]
async fn splunk_signalflow_execute_and_answers() {
    let server = FakeServer::start(|r| match r.path.as_str() {
        "/v2/metric" => Answer::json(200, serde_json::json!({"count": 1, "results": []})),
        _ => {
            let program = r.body_str();
            let body = if program.contains("two") {
                "event: data\ndata: {\"data\":[{\"tsId\":\"AAA\",\"value\":1.0},{\"tsId\":\"BBB\",\"value\":2.0}],\"logicalTimestampMs\":1}\n\n".to_string()
            } else if program.contains("none") {
                "event: control-message\ndata: {\"event\":\"STREAM_START\"}\n\nevent: control-message\ndata: {\"event\":\"END_OF_CHANNEL\"}\n\n".to_string()
            } else {
                "event: control-message\ndata: {\"event\":\"STREAM_START\"}\n\nevent: metadata\ndata: {\"tsId\":\"AAA\",\"properties\":{}}\n\nevent: data\ndata: {\"data\":[{\"tsId\":\"AAA\",\"value\":3.0}],\"logicalTimestampMs\":1}\n\nevent: data\ndata: {\"data\":[{\"tsId\":\"AAA\",\"value\":null}],\"logicalTimestampMs\":2}\n\nevent: data\ndata: {\"data\":[{\"tsId\":\"AAA\",\"value\":4.5}],\"logicalTimestampMs\":3}\n\n".to_string()
            };
            Answer::text(200, "text/event-stream", &body)
        }
    })
    .await;
    let p = build(
        &template("splunk", Some(&server.url)),
        env("1m", &[("sf_token_key", "sf-token")]),
    );
    let program =
        "data('demo.trans.latency', filter=filter('demo_datacenter', 'Paris')).mean().publish()";
    assert_eq!(p.run_query(program).await.unwrap(), 4.5);
    let r = server.last();
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v2/signalflow/execute");
    assert_eq!(r.header("x-sf-token"), "sf-token");
    assert_eq!(r.body_str(), program);
    assert_eq!(r.param("immediate"), "true");
    let start: u64 = r.param("start").parse().unwrap();
    let stop: u64 = r.param("stop").parse().unwrap();
    assert_eq!(stop - start, 600_000);
    assert_eq!(
        p.run_query("two").await.unwrap_err(),
        ProviderError::MultipleValues
    );
    assert_eq!(
        p.run_query("none").await.unwrap_err(),
        ProviderError::NoValuesFound
    );
    p.is_online().await.unwrap();
    assert_eq!(server.last().path, "/v2/metric");
}

// ---------------------------------------------------------------------------------------------
// Keptn and external metrics (through a fake Kubernetes API server)

fn kube_config(url: &str) -> kube::Config {
    kube::Config::new(url.parse().unwrap())
}

#[tokio::test]
async fn keptn_metric_and_analysis() {
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let server = FakeServer::start(move |r| {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/apis/metrics.keptn.sh/v1beta1/namespaces/prod/keptnmetrics/podinfo-errors") => {
                Answer::json(
                    200,
                    serde_json::json!({"apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetric",
                        "metadata": {"name": "podinfo-errors", "namespace": "prod"},
                        "spec": {"provider": {"name": "prom"}, "query": "x", "fetchIntervalSeconds": 5},
                        "status": {"value": "0.75", "rawValue": "MC43NQ==", "lastUpdated": "2024-01-01T00:00:00Z"}}),
                )
            }
            ("GET", "/apis/metrics.keptn.sh/v1beta1/namespaces/prod/keptnmetrics/empty") => Answer::json(
                200,
                serde_json::json!({"apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetric", "metadata": {"name": "empty"}, "status": {}}),
            ),
            ("POST", "/apis/metrics.keptn.sh/v1beta1/namespaces/prod/analyses") => {
                let mut object = r.body_json();
                object["metadata"]["uid"] = "u1".into();
                Answer::json(201, object)
            }
            ("GET", p) if p.starts_with("/apis/metrics.keptn.sh/v1beta1/namespaces/prod/analyses/") => {
                let state = if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    serde_json::json!({"state": "Progressing"})
                } else {
                    serde_json::json!({"state": "Completed", "pass": true})
                };
                Answer::json(200, serde_json::json!({"apiVersion": "metrics.keptn.sh/v1beta1", "kind": "Analysis", "metadata": {"name": "x"}, "status": state}))
            }
            ("DELETE", _) => Answer::json(
                200,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ),
            _ => Answer::json(
                404,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "not found", "reason": "NotFound", "code": 404}),
            ),
        }
    })
    .await;
    let provider_env = ProviderEnv {
        interval: "1m".into(),
        credentials: None,
        kube_config: Some(kube_config(&server.url)),
    };
    let p = build(&template("keptn", None), provider_env.clone());
    assert_eq!(
        p.run_query("keptnmetric/Prod/Podinfo-Errors")
            .await
            .unwrap(),
        0.75
    );
    assert_eq!(
        p.run_query("keptnmetric/prod/empty").await.unwrap_err(),
        ProviderError::NoValuesFound
    );
    let err = p.run_query("keptnmetric/prod/absent").await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Http { status: 404, .. }),
        "{err:?}"
    );

    assert_eq!(
        p.run_query("analysis/prod/ed-def/5m/workload=podinfo;Phase=Canary")
            .await
            .unwrap(),
        1.0
    );
    let requests = server.requests();
    let create = requests
        .iter()
        .find(|r| r.method == "POST")
        .expect("Analysis created");
    let object = create.body_json();
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("ed-def-") && name.len() == "ed-def-".len() + 6,
        "{name}"
    );
    assert_eq!(object["kind"], "Analysis");
    assert_eq!(object["spec"]["analysisDefinition"]["name"], "ed-def");
    assert_eq!(object["spec"]["timeframe"]["recent"], "5m");
    assert_eq!(
        object["spec"]["args"],
        serde_json::json!({"workload": "podinfo", "phase": "canary"})
    );
    let delete = requests.iter().find(|r| r.method == "DELETE").unwrap();
    assert_eq!(
        delete.path,
        format!("/apis/metrics.keptn.sh/v1beta1/namespaces/prod/analyses/{name}")
    );
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    p.is_online().await.unwrap();

    // Without Kubernetes access the provider cannot be built.
    assert!(providers::build(&template("keptn", None), env("1m", &[])).is_err());
}

#[tokio::test]
async fn external_metrics_request_and_answers() {
    let server = FakeServer::start(|r| match r.path.as_str() {
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/queue_depth" => Answer::json(
            200,
            serde_json::json!({"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1", "metadata": {},
                "items": [{"metricName": "queue_depth", "metricLabels": {"app": "web"}, "timestamp": "2024-01-01T00:00:00Z", "value": "1500m"}]}),
        ),
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/idle" => Answer::json(
            200,
            serde_json::json!({"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1", "metadata": {}, "items": []}),
        ),
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/kube-system/dummy-metric" => Answer::json(
            200,
            serde_json::json!({"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1", "metadata": {}, "items": []}),
        ),
        _ => Answer::json(
            404,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404}),
        ),
    })
    .await;
    // The address overrides the API server and the Secret's token is the bearer.
    let mut provider = template("externalmetrics", Some(&server.url));
    provider.insecure_skip_verify = Some(true);
    let p = build(
        &provider,
        ProviderEnv {
            interval: "1m".into(),
            credentials: Some(credentials(&[("token", "ext-token")])),
            kube_config: Some(kube_config("http://127.0.0.1:1")),
        },
    );
    assert_eq!(
        p.run_query("prod/queue_depth?labelSelector=app%3Dweb")
            .await
            .unwrap(),
        1.5
    );
    let r = server.last();
    assert_eq!(r.query, "labelSelector=app%3Dweb");
    assert_eq!(r.header("authorization"), "Bearer ext-token");
    assert_eq!(
        p.run_query("idle").await.unwrap_err(),
        ProviderError::NoValuesFound
    );
    assert!(matches!(
        p.run_query("prod/unknown").await.unwrap_err(),
        ProviderError::Http { status: 404, .. }
    ));
    p.is_online().await.unwrap();
}
