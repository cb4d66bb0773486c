//! The built-in hey against a local HTTP server that counts what it receives: the generator's
//! report must match the server's own counts.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serin::loadtester::hey::parse_args;
use serin::loadtester::loadgen::{self, StopSignal};
use serin::loadtester::summary;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    connections: AtomicU64,
    posted_bytes: AtomicU64,
    last_user_agent: std::sync::Mutex<String>,
}

async fn target() -> (String, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.connections.fetch_add(1, Ordering::Relaxed);
            let c = c.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let c = c.clone();
                    async move {
                        use http_body_util::BodyExt;
                        c.requests.fetch_add(1, Ordering::Relaxed);
                        if let Some(ua) = req.headers().get("user-agent") {
                            *c.last_user_agent.lock().unwrap() =
                                ua.to_str().unwrap_or_default().to_owned();
                        }
                        let path = req.uri().path().to_owned();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        c.posted_bytes
                            .fetch_add(body.len() as u64, Ordering::Relaxed);
                        let resp = match path.as_str() {
                            "/fail" => Response::builder()
                                .status(503)
                                .body(Full::new(Bytes::from_static(b"no"))),
                            "/redirect" => Response::builder()
                                .status(302)
                                .header("location", "/")
                                .body(Full::new(Bytes::new())),
                            "/slow" => {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                                Response::builder().body(Full::new(Bytes::from_static(b"late")))
                            }
                            _ => Response::builder()
                                .body(Full::new(Bytes::from_static(b"hello world"))),
                        };
                        Ok::<_, Infallible>(resp.unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, counts)
}

async fn hey(args: &str) -> loadgen::Report {
    let words: Vec<&str> = args.split_whitespace().collect();
    let opts = parse_args(&words).unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        loadgen::run(&opts, StopSignal::new()),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_requests_are_exactly_what_the_server_saw() {
    let (base, counts) = target().await;
    // 100 is not a multiple of 7: every request is still sent (hey would drop the remainder).
    let report = hey(&format!("-n 100 -c 7 {base}/")).await;
    assert_eq!(counts.requests.load(Ordering::Relaxed), 100);
    assert_eq!(report.responses, 100);
    assert_eq!(report.error_count, 0);
    assert_eq!(report.status_codes.get(&200), Some(&100));
    assert_eq!(report.size_total, 100 * 11);
    assert_eq!(report.samples.len(), 100);
    assert_eq!(
        counts.connections.load(Ordering::Relaxed),
        7,
        "one keep-alive connection per worker"
    );
    assert_eq!(*counts.last_user_agent.lock().unwrap(), "hey/0.0.1");
    let phases = report.phases.unwrap();
    assert!(phases[loadgen::phase::RESP_WAIT].max_ns > 0);
    assert!(report.fastest_ns > 0 && report.fastest_ns <= report.slowest_ns);
    let text = summary::format_summary(&report);
    assert!(
        text.contains("Status code distribution:\n  [200]\t100 responses"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_runs_report_every_request_the_server_counted() {
    let (base, counts) = target().await;
    let report = hey(&format!("-z 1s -c 4 {base}/")).await;
    let served = counts.requests.load(Ordering::Relaxed);
    assert!(served > 50, "only {served} requests in 1s");
    assert_eq!(report.responses + report.error_count, served);
    assert_eq!(report.error_count, 0);
    assert!(
        report.total >= Duration::from_secs(1) && report.total < Duration::from_secs(5),
        "{:?}",
        report.total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_per_worker() {
    let (base, counts) = target().await;
    let report = hey(&format!("-z 1s -q 20 -c 2 {base}/")).await;
    let served = counts.requests.load(Ordering::Relaxed);
    assert_eq!(report.responses, served);
    // 2 workers x 20 req/s x 1 s, the first tick one period after the start (as hey); ticks
    // missed on a loaded machine are skipped, never made up.
    assert!((20..=42).contains(&served), "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_bodies_headers_and_keepalive_off() {
    let (base, counts) = target().await;
    let report = hey(&format!(
        "-n 20 -c 2 -m POST -d 0123456789 -H X-A:b -disable-keepalive {base}/"
    ))
    .await;
    assert_eq!(report.responses, 20);
    assert_eq!(counts.posted_bytes.load(Ordering::Relaxed), 200);
    assert_eq!(
        counts.connections.load(Ordering::Relaxed),
        20,
        "a new connection per request"
    );
    assert!(report.phases.unwrap()[loadgen::phase::DIALUP].min_ns > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_redirects_timeouts_and_errors() {
    let (base, counts) = target().await;
    let report = hey(&format!("-n 6 -c 2 {base}/fail")).await;
    assert_eq!(report.status_codes.get(&503), Some(&6));

    let before = counts.requests.load(Ordering::Relaxed);
    let report = hey(&format!("-n 4 -c 2 {base}/redirect")).await;
    assert_eq!(
        report.status_codes.get(&200),
        Some(&4),
        "redirects are followed"
    );
    assert_eq!(counts.requests.load(Ordering::Relaxed) - before, 8);
    let report = hey(&format!("-n 4 -c 2 -disable-redirects {base}/redirect")).await;
    assert_eq!(report.status_codes.get(&302), Some(&4));

    let report = hey(&format!("-n 2 -c 2 -t 1 {base}/slow")).await;
    assert_eq!(report.error_count, 2);
    assert_eq!(report.responses, 0);
    let (err, n) = report.errors.iter().next().unwrap();
    assert_eq!(*n, 2);
    assert!(
        err.starts_with(&format!("Get \"{base}/slow\": request timed out after 1s")),
        "{err}"
    );

    let report = hey("-n 3 -c 1 http://127.0.0.1:1/").await;
    assert_eq!(report.error_count, 3);
    let text = summary::format_summary(&report);
    assert!(text.contains("Error distribution:\n  [3]\tGet \"http://127.0.0.1:1/\": dial tcp 127.0.0.1:1: connect:"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_signal_ends_a_long_run() {
    let (base, counts) = target().await;
    let opts = parse_args(&["-z", "1h", "-c", "2", &format!("{base}/")]).unwrap();
    let stop = StopSignal::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.stop();
    });
    let report = tokio::time::timeout(Duration::from_secs(10), loadgen::run(&opts, stop))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.responses, counts.requests.load(Ordering::Relaxed));
    assert!(report.total < Duration::from_secs(5));
}

/// `serin hey` by hand: the printed summary counts what the server counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serin_hey_cli_prints_heys_summary() {
    let (base, counts) = target().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(["hey", "-n", "50", "-c", "5", &format!("{base}/")])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(counts.requests.load(Ordering::Relaxed), 50);
    for needle in [
        "\nSummary:\n  Total:\t",
        "  Requests/sec:\t",
        "  Total data:\t550 bytes\n  Size/request:\t11 bytes\n",
        "\nResponse time histogram:\n",
        "\nLatency distribution:\n  10% in ",
        "\n  99% in ",
        "\nDetails (average, fastest, slowest):\n  DNS+dialup:\t",
        "\n  resp read:\t",
        "\nStatus code distribution:\n  [200]\t50 responses\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(["hey", "-n", "1", "-c", "2", "http://x/"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("-n cannot be less than -c."));
}
