//! The built-in hey: an async HTTP load generator.
//!
//! Each of the `-c` workers is one tokio task that owns one keep-alive connection (as hey's
//! transport effectively gives each worker one). Plain `http://` targets without a proxy and
//! without `-h2` take the fast path: the request bytes are built once and written as they are,
//! responses are parsed by [`rawhttp`](crate::loadtester::rawhttp) and their bodies counted
//! without copying, and every phase of hey's "Details" is measured from socket events. `https://` targets, `-x` proxies and `-h2` use a
//! reqwest client instead (certificate checks off, as hey does); there only the total latency is
//! measured and the summary says so.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONNECTION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::loadtester::hey::HeyOptions;
use crate::loadtester::rawhttp::{RawConn, RawHttpError};

mod client;
mod fast;

use client::{build_client, client_request};
use fast::{Conn, build_request, fast_request};

/// Latency samples kept for the distributions (hey keeps the first million too).
pub const MAX_RESULTS: usize = 1_000_000;
const MAX_REDIRECTS: usize = 10;

/// Errors that prevent a run from starting.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The options do not make a valid request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The fallback HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Asks a running generator to stop after the requests in flight.
#[derive(Debug, Clone)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
    tx: Arc<watch::Sender<bool>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl StopSignal {
    /// A signal that has not fired.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(false);
        Self {
            flag: Arc::new(AtomicBool::new(false)),
            tx: Arc::new(tx),
        }
    }

    /// Fires the signal.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.tx.send_replace(true);
    }

    /// Whether it fired.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in self, so wait_for cannot fail with a closed channel.
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Phase indexes of [`Report::phases`].
pub mod phase {
    /// DNS lookup + TCP connect (0 on a reused connection).
    pub const DIALUP: usize = 0;
    /// DNS lookup.
    pub const DNS: usize = 1;
    /// Writing the request.
    pub const REQ_WRITE: usize = 2;
    /// From the end of the write to the first response byte.
    pub const RESP_WAIT: usize = 3;
    /// From the first response byte to the end of the body.
    pub const RESP_READ: usize = 4;
}

/// Average/min/max of one phase over successful requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseStats {
    /// Sum of the durations in nanoseconds.
    pub sum_ns: u128,
    /// Shortest.
    pub min_ns: u64,
    /// Longest.
    pub max_ns: u64,
}

impl Default for PhaseStats {
    fn default() -> Self {
        Self {
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }
}

impl PhaseStats {
    fn add(&mut self, ns: u64) {
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }
    fn merge(&mut self, other: &PhaseStats) {
        self.sum_ns += other.sum_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Wall time of the run.
    pub total: Duration,
    /// Requests that got a response (any status).
    pub responses: u64,
    /// Requests that failed without a response.
    pub error_count: u64,
    /// Sum of response latencies (ns).
    pub latency_sum_ns: u128,
    /// Fastest response (ns).
    pub fastest_ns: u64,
    /// Slowest response (ns).
    pub slowest_ns: u64,
    /// Latency samples (ns) for the distributions, sorted ascending; at most [`MAX_RESULTS`].
    pub samples: Vec<u64>,
    /// Per-phase statistics, `None` when the phases were not measured (https/proxy/h2 path).
    pub phases: Option<[PhaseStats; 5]>,
    /// Responses per status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Failures per error text.
    pub errors: BTreeMap<String, u64>,
    /// Response body bytes received.
    pub size_total: u64,
    /// With `-o csv`: per response `[total, dialup, dns, write, wait, read]` in ns.
    pub csv_rows: Vec<[u64; 6]>,
}

impl Report {
    /// Requests answered per second of wall time, counting failed requests too (as hey does).
    pub fn requests_per_sec(&self) -> f64 {
        let secs = self.total.as_secs_f64();
        if secs > 0.0 {
            (self.responses + self.error_count) as f64 / secs
        } else {
            0.0
        }
    }

    /// Mean response latency in seconds.
    pub fn average_secs(&self) -> f64 {
        if self.responses == 0 {
            0.0
        } else {
            self.latency_sum_ns as f64 / self.responses as f64 / 1e9
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared request description

struct Plan {
    url: String,
    go_method: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    host_override: Option<HeaderValue>,
    body: Bytes,
    timeout: Option<Duration>,
    keepalive: bool,
    follow_redirects: bool,
    csv: bool,
    /// `Name: value\r\n` lines (without Host and Content-Length) for the fast path.
    header_lines: String,
    /// The complete first request of the fast path.
    request_bytes: Vec<u8>,
}

impl Plan {
    fn new(opts: &HeyOptions) -> Result<Self, LoadgenError> {
        let uri: Uri = opts
            .url
            .parse()
            .map_err(|e| LoadgenError::InvalidRequest(format!("{}: {e}", opts.url)))?;
        let method = Method::from_bytes(opts.method.as_bytes())
            .map_err(|e| LoadgenError::InvalidRequest(format!("method {}: {e}", opts.method)))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &opts.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| LoadgenError::InvalidRequest(format!("header {name}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| LoadgenError::InvalidRequest(format!("header {name}: {e}")))?;
            headers.insert(name, value);
        }
        if !opts.disable_compression && !headers.contains_key(ACCEPT_ENCODING) {
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if opts.disable_keepalive {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let host_override = match &opts.host {
            Some(h) => Some(
                HeaderValue::from_str(h)
                    .map_err(|e| LoadgenError::InvalidRequest(format!("-host {h}: {e}")))?,
            ),
            None => None,
        };
        let mut header_lines = String::new();
        for (name, value) in &opts.headers {
            header_lines.push_str(&format!("{name}: {value}\r\n"));
        }
        if !opts.disable_compression && opts.header("Accept-Encoding").is_none() {
            header_lines.push_str("Accept-Encoding: gzip\r\n");
        }
        if opts.disable_keepalive {
            header_lines.push_str("Connection: close\r\n");
        }
        let host = match &opts.host {
            Some(h) => h.clone(),
            None => uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
        };
        let body = opts.body.clone().unwrap_or_default();
        let request_bytes = build_request(&method, &uri, &host, &header_lines, &body);
        let mut go_method = opts.method.to_ascii_lowercase();
        if let Some(first) = go_method.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        Ok(Self {
            url: opts.url.clone(),
            go_method,
            method,
            uri,
            headers,
            host_override,
            body: Bytes::from(body),
            timeout: opts.timeout,
            keepalive: !opts.disable_keepalive,
            follow_redirects: !opts.disable_redirects,
            csv: opts.csv,
            header_lines,
            request_bytes,
        })
    }

    fn fast_path(opts: &HeyOptions) -> bool {
        opts.url.starts_with("http://")
            && opts.proxy.is_none()
            && !opts.h2
            && !env_proxy_applies(&opts.url, |k| std::env::var(k).ok())
    }

    fn error_text(&self, url: &str, err: &str) -> String {
        format!("{} \"{url}\": {err}", self.go_method)
    }
}

/// Env var that makes hey's fast path honour `http_proxy` (see [`env_proxy_applies`]).
pub const PROXY_FROM_ENV: &str = "SERIN_HEY_PROXY_FROM_ENV";

/// Whether, with `SERIN_HEY_PROXY_FROM_ENV=true`, an `http_proxy`/`HTTP_PROXY` environment
/// variable applies to `url` (its host is not listed in `no_proxy`/`NO_PROXY`): then requests go
/// through the reqwest engine, which honours these variables, instead of the fast path's direct
/// connections. Hey ignores them, and so does Serin by default; `serin demo` opts in so that its
/// loadtester, outside any cluster, reaches cluster service names through the dev mesh.
fn env_proxy_applies(url: &str, env: impl Fn(&str) -> Option<String>) -> bool {
    if !env(PROXY_FROM_ENV).is_some_and(|v| v == "true" || v == "1") {
        return false;
    }
    let set = |a: &str, b: &str| env(a).or_else(|| env(b)).filter(|v| !v.trim().is_empty());
    if set("http_proxy", "HTTP_PROXY").is_none() {
        return false;
    }
    let Ok(uri) = url.parse::<Uri>() else {
        return false;
    };
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    let no_proxy = set("no_proxy", "NO_PROXY").unwrap_or_default();
    !no_proxy.split(',').map(str::trim).any(|entry| {
        let entry = entry.trim_start_matches('.').to_ascii_lowercase();
        entry == "*"
            || (!entry.is_empty() && (host == entry || host.ends_with(&format!(".{entry}"))))
    })
}

// ---------------------------------------------------------------------------------------------
// Worker statistics

struct WorkerStats {
    cap: usize,
    samples: Vec<u64>,
    responses: u64,
    errors_n: u64,
    latency_sum: u128,
    fastest: u64,
    slowest: u64,
    phases: [PhaseStats; 5],
    codes: Vec<(u16, u64)>,
    errors: HashMap<String, u64>,
    size: u64,
    csv: Option<Vec<[u64; 6]>>,
}

impl WorkerStats {
    fn new(cap: usize, csv: bool) -> Self {
        Self {
            cap,
            samples: Vec::with_capacity(cap.min(4096)),
            responses: 0,
            errors_n: 0,
            latency_sum: 0,
            fastest: u64::MAX,
            slowest: 0,
            phases: [PhaseStats::default(); 5],
            codes: Vec::new(),
            errors: HashMap::new(),
            size: 0,
            csv: csv.then(Vec::new),
        }
    }

    fn record(&mut self, outcome: Outcome) {
        match outcome.result {
            Ok((status, size)) => {
                self.responses += 1;
                self.latency_sum += u128::from(outcome.total_ns);
                self.fastest = self.fastest.min(outcome.total_ns);
                self.slowest = self.slowest.max(outcome.total_ns);
                if self.samples.len() < self.cap {
                    self.samples.push(outcome.total_ns);
                    if let Some(rows) = self.csv.as_mut() {
                        let p = outcome.phases;
                        rows.push([outcome.total_ns, p[0], p[1], p[2], p[3], p[4]]);
                    }
                }
                for (stats, ns) in self.phases.iter_mut().zip(outcome.phases) {
                    stats.add(ns);
                }
                match self.codes.iter_mut().find(|(c, _)| *c == status) {
                    Some((_, n)) => *n += 1,
                    None => self.codes.push((status, 1)),
                }
                self.size += size;
            }
            Err(text) => {
                self.errors_n += 1;
                *self.errors.entry(text).or_insert(0) += 1;
            }
        }
    }
}

struct Outcome {
    result: Result<(u16, u64), String>,
    total_ns: u64,
    phases: [u64; 5],
}

// ---------------------------------------------------------------------------------------------
// Run

enum Engine {
    Fast,
    Client(reqwest::Client),
}

/// Runs the load described by `opts` until `-n` requests are done, `-z` elapses or `stop` fires.
pub async fn run(opts: &HeyOptions, stop: StopSignal) -> Result<Report, LoadgenError> {
    let plan = Arc::new(Plan::new(opts)?);
    let engine = Arc::new(if Plan::fast_path(opts) {
        Engine::Fast
    } else {
        Engine::Client(build_client(opts)?)
    });
    let workers = opts.concurrency.max(1);
    let cap = (MAX_RESULTS / workers).max(1);
    let per_worker = |i: usize| -> u64 {
        if opts.duration.is_some() {
            u64::MAX
        } else {
            let w = workers as u64;
            opts.requests / w + u64::from((i as u64) < opts.requests % w)
        }
    };
    let period = (opts.qps > 0.0).then(|| Duration::from_secs_f64(1.0 / opts.qps));

    let start = Instant::now();
    let timer = opts.duration.map(|d| {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            stop.stop();
        })
    });
    let mut set = tokio::task::JoinSet::new();
    for i in 0..workers {
        let quota = per_worker(i);
        let plan = plan.clone();
        let engine = engine.clone();
        let stop = stop.clone();
        set.spawn(async move { worker(plan, engine, stop, quota, period, cap).await });
    }
    let mut all = Vec::with_capacity(workers);
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(stats) => all.push(stats),
            Err(e) => {
                // A worker panicked: record it rather than losing the whole run.
                let mut stats = WorkerStats::new(0, false);
                stats.record(Outcome {
                    result: Err(format!("worker failed: {e}")),
                    total_ns: 0,
                    phases: [0; 5],
                });
                all.push(stats);
            }
        }
    }
    let total = start.elapsed();
    if let Some(timer) = timer {
        timer.abort();
    }
    Ok(merge(all, total, matches!(*engine, Engine::Fast)))
}

async fn worker(
    plan: Arc<Plan>,
    engine: Arc<Engine>,
    stop: StopSignal,
    quota: u64,
    period: Option<Duration>,
    cap: usize,
) -> WorkerStats {
    let mut stats = WorkerStats::new(cap, plan.csv);
    let mut conn: Option<Conn> = None;
    let mut ticker = period.map(|p| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + p, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    });
    let mut done = 0u64;
    while done < quota && !stop.is_stopped() {
        if let Some(t) = ticker.as_mut() {
            tokio::select! {
                _ = t.tick() => {}
                _ = stop.stopped() => break,
            }
        }
        let request = async {
            match &*engine {
                Engine::Fast => fast_request(&plan, &mut conn).await,
                Engine::Client(client) => client_request(&plan, client).await,
            }
        };
        let outcome = match plan.timeout {
            Some(limit) => match tokio::time::timeout(limit, request).await {
                Ok(o) => o,
                Err(_) => {
                    conn = None;
                    Outcome {
                        result: Err(plan.error_text(
                            &plan.url,
                            &format!(
                                "request timed out after {}s (Client.Timeout exceeded)",
                                limit.as_secs()
                            ),
                        )),
                        total_ns: limit.as_nanos() as u64,
                        phases: [0; 5],
                    }
                }
            },
            None => request.await,
        };
        stats.record(outcome);
        done += 1;
    }
    stats
}

fn merge(all: Vec<WorkerStats>, total: Duration, phases_measured: bool) -> Report {
    let mut report = Report {
        total,
        fastest_ns: u64::MAX,
        ..Report::default()
    };
    let mut phases = [PhaseStats::default(); 5];
    for w in all {
        report.responses += w.responses;
        report.error_count += w.errors_n;
        report.latency_sum_ns += w.latency_sum;
        report.fastest_ns = report.fastest_ns.min(w.fastest);
        report.slowest_ns = report.slowest_ns.max(w.slowest);
        report.samples.extend_from_slice(&w.samples);
        for (p, q) in phases.iter_mut().zip(&w.phases) {
            p.merge(q);
        }
        for (code, n) in w.codes {
            *report.status_codes.entry(code).or_insert(0) += n;
        }
        for (e, n) in w.errors {
            *report.errors.entry(e).or_insert(0) += n;
        }
        report.size_total += w.size;
        if let Some(rows) = w.csv {
            report.csv_rows.extend(rows);
        }
    }
    if report.responses == 0 {
        report.fastest_ns = 0;
    }
    report.samples.sort_unstable();
    report.phases = phases_measured.then_some(phases);
    report
}

#[cfg(test)]
mod tests {
    use super::fast::resolve_location;
    use super::*;

    #[test]
    fn redirect_locations_resolve_like_a_browser() -> Result<(), String> {
        let base: Uri = "http://h:1/a/b?q=1".parse().map_err(|e| format!("{e}"))?;
        assert_eq!(resolve_location(&base, "/x")?.to_string(), "http://h:1/x");
        assert_eq!(resolve_location(&base, "c")?.to_string(), "http://h:1/a/c");
        assert_eq!(
            resolve_location(&base, "//o:2/p")?.to_string(),
            "http://o:2/p"
        );
        assert_eq!(
            resolve_location(&base, "https://s/")?.to_string(),
            "https://s/"
        );
        Ok(())
    }

    #[test]
    fn env_proxy_applies_unless_no_proxy_lists_the_host() {
        let env = |proxy: Option<&'static str>, no: Option<&'static str>| {
            move |k: &str| match k {
                "HTTP_PROXY" => proxy.map(str::to_string),
                "NO_PROXY" => no.map(str::to_string),
                PROXY_FROM_ENV => Some("true".to_string()),
                _ => None,
            }
        };
        let url = "http://backend-canary.prod:9898/";
        // Off unless opted in, as in hey.
        assert!(!env_proxy_applies(url, |k| {
            (k == "HTTP_PROXY").then(|| "http://127.0.0.1:1".to_string())
        }));
        assert!(!env_proxy_applies(url, env(None, None)));
        assert!(env_proxy_applies(
            url,
            env(Some("http://127.0.0.1:1"), None)
        ));
        assert!(env_proxy_applies(
            url,
            env(Some("http://127.0.0.1:1"), Some("127.0.0.1,localhost"))
        ));
        assert!(!env_proxy_applies(
            "http://127.0.0.1:8080/",
            env(Some("http://127.0.0.1:1"), Some("127.0.0.1,localhost"))
        ));
        assert!(!env_proxy_applies(
            url,
            env(Some("http://p:1"), Some(".prod"))
        ));
        assert!(!env_proxy_applies(url, env(Some("http://p:1"), Some("*"))));
    }

    #[test]
    fn phase_stats_merge() {
        let mut a = PhaseStats::default();
        a.add(5);
        a.add(1);
        let mut b = PhaseStats::default();
        b.add(9);
        a.merge(&b);
        assert_eq!((a.sum_ns, a.min_ns, a.max_ns), (15, 1, 9));
    }
}
