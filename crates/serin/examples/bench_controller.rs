//! Controller benchmark (issue 4): N Canaries on an in-process dev cluster, analysed by the real
//! `serin controller` binary running as its own process. See `bench/controller/README.md`.
//!
//! ```sh
//! cargo build --release -p serin --bin serin --example bench_controller
//! target/release/examples/bench_controller --canaries 1000 --duration 120s
//! ```
//!
//! Measures, over the analysis window (from the first new revision to the end of `--duration`):
//! the lag of analysis steps behind their due time (the controller's
//! `serin_analysis_step_delay_seconds` histogram), the controller's resident memory (VmRSS,
//! VmHWM), its CPU time per analysis step, the API requests it made per step (the dev cluster's
//! request log, the benchmark's own requests excluded by a header), and the latency from a
//! Deployment change to the Canary's `New revision detected!` Event as seen by a watch.
#![forbid(unsafe_code)]

mod bench_common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_common::{
    BoxError, Pending, clock_ticks_per_second, create_objects, free_port, latency_summary,
    metric_value, name, parse_duration, phases, proc_cpu_ticks, proc_status_kb, set_image,
    spawn_canary_tracker, spawn_detection_watch,
};
use clap::Parser;
use devcluster::{Config, DevCluster};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;

/// The dev cluster in this process allocates as `serin dev-cluster` does (jemalloc): with the
/// C library's allocator, half of its CPU at 10,000 Canaries went to `malloc` and `free`, and
/// the dev cluster, not the controller, set the pace.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's run-time settings (tikv-jemallocator's name for `MALLOC_CONF`). The workspace
/// builds jemalloc with the controller's settings, freed pages returned to the system at once
/// (`.cargo/config.toml`), and that build is this process's too. The dev cluster here stands in
/// for a remote API server, whose memory is not measured: bench/controller/README.md runs the
/// benchmark with [`DEV_CLUSTER_MALLOC_CONF`], so that the dev cluster does not pay for giving
/// pages back and faulting them in again (a few per cent of its CPU in a profile; docs/
/// performance.md, issue 18's fourteenth pass). The controller child never inherits the
/// variable: it runs with the settings it ships with.
const MALLOC_CONF_VAR: &str = "_RJEM_MALLOC_CONF";
/// jemalloc's default decay of freed pages (ten seconds), for the dev cluster.
const DEV_CLUSTER_MALLOC_CONF: &str = "dirty_decay_ms:10000,muzzy_decay_ms:0";

const NS: &str = "bench";
/// Header on every request of the benchmark's own client, so that the request count of the
/// controller can leave them out.
const BENCH_HEADER: &str = "x-serin-bench";
const ISTIO_CRDS: &str = include_str!("../../../examples/istio-crds.yaml");

#[derive(Parser, Debug)]
#[command(about = "Benchmark of `serin controller` on the dev cluster")]
struct Args {
    /// Number of Deployments and Canaries.
    #[arg(long, default_value_t = 100)]
    canaries: usize,
    /// Analysis window after the new revisions start (e.g. 120s, 3m).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    duration: Duration,
    /// The new revisions of all Canaries are spread evenly over this long.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    spread: Duration,
    /// Detection-latency sample: this many single image changes, one at a time, during the
    /// analysis window (each restarts that Canary's analysis).
    #[arg(long, default_value_t = 200)]
    detections: usize,
    /// Pause between two detection-sample changes.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    detection_gap: Duration,
    /// The `serin` binary to run as the controller.
    #[arg(long, default_value = "target/release/serin")]
    serin: PathBuf,
    /// `serin controller --threadiness`.
    #[arg(long, default_value_t = 2)]
    threadiness: usize,
    /// Delay after which the dev cluster's simulated workloads become ready.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    ready_delay: Duration,
    /// How often the dev cluster's workload simulator writes Deployment status (the dev
    /// cluster's own default). Each tick walks every Deployment under the store lock.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    simulator_tick: Duration,
    /// Give up when not all Canaries are Initialized after this long.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    init_timeout: Duration,
    /// Analysis interval of every Canary.
    #[arg(long, default_value = "10s")]
    interval: String,
    /// Latency the dev cluster adds to every API request once the objects are created (as a
    /// remote API server would; the dev cluster's `--latency-ms`).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    latency: Duration,
}

/// `10s` → 10 s (the Canaries' interval; Go durations in whole units are enough here).
fn interval_of(s: &str) -> Duration {
    parse_duration(s).unwrap_or(Duration::from_secs(10))
}

/// Per-request counts of the controller (requests without [`BENCH_HEADER`]).
#[derive(Default)]
struct RequestCounts {
    by_verb_resource: BTreeMap<(String, String), u64>,
    total: u64,
    bench: u64,
}

/// `/apis/networking.istio.io/v1beta1/namespaces/bench/virtualservices/app-1` → `virtualservices`
/// (`/status` kept as `canaries/status`).
fn resource_of(path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let after_ns = parts.iter().position(|p| *p == "namespaces").map(|i| i + 2);
    let base = match after_ns {
        Some(i) if i < parts.len() => i,
        _ => match parts.first() {
            Some(&"api") => 2,
            _ => 3,
        },
    };
    let mut r = parts.get(base).copied().unwrap_or("?").to_string();
    if let Some(sub) = parts.get(base + 2) {
        r.push('/');
        r.push_str(sub);
    }
    r
}

/// A point-in-time view of the controller process and its metrics.
struct Snapshot {
    at: Instant,
    cpu_ticks: u64,
    /// This process: the dev cluster, its workload simulator and the benchmark's own watches.
    own_cpu_ticks: u64,
    rss_kb: u64,
    /// The part of `rss_kb` that is heap and stacks (`RssAnon`); the rest is mostly the binary's
    /// code pages (`RssFile`), which the kernel maps in ahead of use and can drop at will.
    anon_kb: u64,
    hwm_kb: u64,
    metrics: String,
    requests: u64,
}
/// Cumulative buckets `(le, count)` of the histogram `name`, `+Inf` last.
fn buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, tail) = rest.split_once('"')?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count = tail.rsplit_once(' ')?.1.parse().ok()?;
            Some((le, count))
        })
        .collect()
}

/// Bucket-wise `after - before`.
fn bucket_delta(after: &[(f64, f64)], before: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, c - b)
        })
        .collect()
}

/// Prometheus' `histogram_quantile`: linear interpolation inside the bucket holding rank `q`.
fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_count = 0.0;
    for (le, count) in buckets {
        if *count >= rank {
            if le.is_infinite() {
                return Some(prev_le);
            }
            let in_bucket = count - prev_count;
            let frac = if in_bucket > 0.0 {
                (rank - prev_count) / in_bucket
            } else {
                1.0
            };
            return Some(prev_le + (le - prev_le) * frac);
        }
        prev_le = *le;
        prev_count = *count;
    }
    None
}

/// The upper bound of the highest non-empty bucket (the maximum is at most that).
fn histogram_max_bound(buckets: &[(f64, f64)]) -> Option<f64> {
    let mut prev = 0.0;
    let mut bound = None;
    for (le, count) in buckets {
        if *count > prev {
            bound = Some(*le);
        }
        prev = *count;
    }
    bound
}

async fn bench_client(kubeconfig: &Path) -> Result<Client, BoxError> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    config.headers.push((
        http::HeaderName::from_static(BENCH_HEADER),
        http::HeaderValue::from_static("1"),
    ));
    Ok(Client::try_from(config)?)
}

async fn install(client: &Client) -> Result<(), BoxError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crds = serin::api::crd::all();
    for doc in ISTIO_CRDS.split("\n---\n") {
        if doc.trim().is_empty() {
            continue;
        }
        crds.push(serde_saphyr::from_str(doc)?);
    }
    for crd in crds {
        api.create(&PostParams::default(), &crd).await?;
    }
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NS}}))?,
    )
    .await?;
    Ok(())
}

async fn fetch_metrics(url: &str) -> Result<String, BoxError> {
    Ok(reqwest::get(url).await?.error_for_status()?.text().await?)
}

fn snapshot(pid: u32, metrics: String, requests: u64) -> Result<Snapshot, BoxError> {
    Ok(Snapshot {
        at: Instant::now(),
        cpu_ticks: proc_cpu_ticks(pid)?,
        own_cpu_ticks: proc_cpu_ticks(std::process::id())?,
        rss_kb: proc_status_kb(pid, "VmRSS:")?,
        anon_kb: proc_status_kb(pid, "RssAnon:")?,
        hwm_kb: proc_status_kb(pid, "VmHWM:")?,
        metrics,
        requests,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // SIGINT/SIGTERM end the run by dropping it, so that the controller child (`kill_on_drop`)
    // does not outlive an interrupted benchmark.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = run() => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        _ = term.recv() => Err("terminated".into()),
    }
}

async fn run() -> Result<(), BoxError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let n = args.canaries;
    if !args.serin.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p serin` or pass --serin",
            args.serin.display()
        )
        .into());
    }
    let dev_cluster_malloc_conf = std::env::var(MALLOC_CONF_VAR).ok();
    if dev_cluster_malloc_conf.is_none() {
        eprintln!(
            "note: the dev cluster runs with the controller's allocator settings (freed pages returned at once); \
             the recorded figures set {MALLOC_CONF_VAR}={DEV_CLUSTER_MALLOC_CONF} for the benchmark (bench/controller/README.md)"
        );
    }
    let work = std::env::temp_dir().join(format!("serin-bench-controller-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let kubeconfig = work.join("kubeconfig");
    println!(
        "canaries={n} interval={} duration={:?} spread={:?} threadiness={} ready_delay={:?} simulator_tick={:?} latency={:?} cpus={} dev_cluster_malloc_conf={}",
        args.interval,
        args.duration,
        args.spread,
        args.threadiness,
        args.ready_delay,
        args.simulator_tick,
        args.latency,
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        dev_cluster_malloc_conf.as_deref().unwrap_or("(built in)"),
    );

    let dev = DevCluster::start_with(Config {
        ready_delay: args.ready_delay,
        simulator_tick: args.simulator_tick,
        event_log_capacity: 200_000,
        ..Config::default()
    })
    .await?;
    dev.write_kubeconfig(&kubeconfig)?;
    let client = bench_client(&kubeconfig).await?;
    install(&client).await?;
    let t = Instant::now();
    create_objects(&client, NS, n, &args.interval, false).await?;
    println!(
        "created {n} Deployments and {n} Canaries in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    dev.faults().set_latency(args.latency);
    // Count the controller's requests from here on (the request log is drained every 200 ms).
    let counts = Arc::new(Mutex::new(RequestCounts::default()));
    // Only counted: the bodies are not parsed again.
    dev.requests().set_bodies(false);
    dev.requests().set_enabled(true);
    let drain_requests = |counts: &Arc<Mutex<RequestCounts>>| {
        let taken = dev.requests().take();
        let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
        for r in taken {
            if r.header(BENCH_HEADER).is_some() {
                c.bench += 1;
                continue;
            }
            c.total += 1;
            *c.by_verb_resource
                .entry((r.verb.clone(), resource_of(&r.path)))
                .or_insert(0) += 1;
        }
        c.total
    };

    let (track, tracker) = spawn_canary_tracker(client.clone(), NS);
    let port = free_port()?;
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let log_path = work.join("controller.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = tokio::process::Command::new(&args.serin)
        .arg("controller")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--port", &port.to_string()])
        .args(["--log-level", "warn"])
        .args(["--threadiness", &args.threadiness.to_string()])
        .args(["--metrics-server", "http://127.0.0.1:1"])
        .env_remove(MALLOC_CONF_VAR)
        .stderr(log.try_clone()?)
        .stdout(log)
        .kill_on_drop(true)
        .spawn()?;
    let started = Instant::now();
    let pid = child.id().ok_or("controller exited at once")?;
    println!("controller pid {pid}, log {}", log_path.display());

    // Initialisation of all Canaries.
    let t = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("controller exited: {status}; see {}", log_path.display()).into());
        }
        let p = track.lock().unwrap_or_else(|e| e.into_inner()).phases(n);
        drain_requests(&counts);
        if p.get("Initialized").copied().unwrap_or(0) == n {
            break;
        }
        if t.elapsed() > args.init_timeout {
            return Err(format!("not all Initialized after {:?}: {p:?}", args.init_timeout).into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let init_secs = t.elapsed().as_secs_f64();
    // Its figures are taken; the final phases are listed once at the end.
    tracker.abort();
    let first: Vec<f64> = track
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first_status
        .values()
        .map(|at| at.duration_since(started).as_secs_f64())
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let init_requests = drain_requests(&counts);
    let idle = snapshot(pid, fetch_metrics(&metrics_url).await?, init_requests)?;
    println!(
        "all {n} Initialized {init_secs:.1} s after the controller started; {init_requests} controller requests so far; RSS {:.1} MB",
        idle.rss_kb as f64 / 1024.0
    );
    latency_summary(
        "first reconcile (first status) after the controller started",
        first,
        n,
    );
    // Idle: every Canary Initialized, nothing to analyse; one interval and a half.
    let idle_window = interval_of(&args.interval).mul_f64(1.5);
    let idle_from = drain_requests(&counts);
    let idle_cpu = proc_cpu_ticks(pid)?;
    tokio::time::sleep(idle_window).await;
    let idle_requests = drain_requests(&counts) - idle_from;
    let idle_cpu = (proc_cpu_ticks(pid)? - idle_cpu) as f64 / clock_ticks_per_second();
    // The memory at the end of the idle period too: the one above is taken right after the
    // start-up's burst of requests, with what that burst left open.
    let (rested_kb, rested_anon_kb) = (
        proc_status_kb(pid, "VmRSS:")?,
        proc_status_kb(pid, "RssAnon:")?,
    );
    println!(
        "idle ({:.0} s, all Initialized): {idle_requests} controller requests ({:.1}/s), CPU {idle_cpu:.2} s, RSS at its end {:.1} MB ({:.1} MB anonymous)",
        idle_window.as_secs_f64(),
        idle_requests as f64 / idle_window.as_secs_f64(),
        rested_kb as f64 / 1024.0,
        rested_anon_kb as f64 / 1024.0,
    );

    // Detection watch, then the new revisions of all Canaries spread over `spread`.
    let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
    let burst_latencies = Arc::new(Mutex::new(Vec::new()));
    let ready = spawn_detection_watch(
        client.clone(),
        NS,
        pending.clone(),
        burst_latencies.clone(),
        None,
    );
    let _ = tokio::time::timeout(Duration::from_secs(30), ready).await;
    let start = snapshot(
        pid,
        fetch_metrics(&metrics_url).await?,
        drain_requests(&counts),
    )?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let gap = args.spread.div_f64(n.max(1) as f64);
    let t0 = Instant::now();
    for i in 0..n {
        let due = t0 + gap.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name(i), Instant::now());
        set_image(&deployments, &name(i), "example/app:2.0.0").await?;
    }
    println!(
        "new revisions sent to all {n} in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // Detection sample: one change at a time while the analysis runs (restarts that Canary's
    // analysis). Wait for each detection (up to 10 s) before the next change.
    let wait = Instant::now();
    while !pending.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
        && wait.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let burst: Vec<(String, f64)> =
        std::mem::take(&mut *burst_latencies.lock().unwrap_or_else(|e| e.into_inner()));
    let burst_missing = {
        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
        let missing = p.len();
        p.clear();
        missing
    };
    let detections = args.detections.min(n);
    let deadline = t0 + args.duration;
    let mut sent = 0;
    for k in 0..detections {
        if Instant::now() + Duration::from_secs(10) > deadline {
            break;
        }
        // Spread the sample over the Canaries.
        let app = name(k * n / detections.max(1));
        pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(app.clone(), Instant::now());
        set_image(&deployments, &app, &format!("example/app:3.0.{k}")).await?;
        sent += 1;
        let wait = Instant::now();
        while pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&app)
            && wait.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(args.detection_gap).await;
        drain_requests(&counts);
    }
    let sampled: Vec<(String, f64)> =
        std::mem::take(&mut *burst_latencies.lock().unwrap_or_else(|e| e.into_inner()));

    // The rest of the analysis window.
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("controller exited: {status}; see {}", log_path.display()).into());
        }
        drain_requests(&counts);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let end = snapshot(
        pid,
        fetch_metrics(&metrics_url).await?,
        drain_requests(&counts),
    )?;
    let final_phases = phases(&client, NS).await?;

    // Report.
    let window = end.at.duration_since(start.at).as_secs_f64();
    let hist = "serin_analysis_step_delay_seconds";
    let delta = bucket_delta(&buckets(&end.metrics, hist), &buckets(&start.metrics, hist));
    let steps = metric_value(&end.metrics, &format!("{hist}_count"))
        - metric_value(&start.metrics, &format!("{hist}_count"));
    let delay_sum = metric_value(&end.metrics, &format!("{hist}_sum"))
        - metric_value(&start.metrics, &format!("{hist}_sum"));
    let reconciles = metric_value(&end.metrics, "serin_reconcile_total{result=\"success\"}")
        - metric_value(&start.metrics, "serin_reconcile_total{result=\"success\"}");
    let reconcile_errors = metric_value(&end.metrics, "serin_reconcile_total{result=\"error\"}")
        - metric_value(&start.metrics, "serin_reconcile_total{result=\"error\"}");
    let tck = clock_ticks_per_second();
    let cpu = (end.cpu_ticks - start.cpu_ticks) as f64 / tck;
    let own_cpu = (end.own_cpu_ticks - start.own_cpu_ticks) as f64 / tck;
    let requests = end.requests - start.requests;
    println!();
    println!("== analysis window: {window:.1} s (from the first new revision)");
    println!("final phases: {final_phases:?}");
    println!(
        "analysis steps (serin_analysis_step_delay_seconds_count): {steps}; reconciles: {reconciles} ok, {reconcile_errors} errors"
    );
    let q = |x: f64| {
        histogram_quantile(x, &delta).map_or("n/a".to_string(), |v| format!("{:.1} ms", v * 1000.0))
    };
    // A window total per analysis step (NaN when no step was taken).
    let per_step = |total: f64| if steps > 0.0 { total / steps } else { f64::NAN };
    println!(
        "step delay: p50={} p90={} p99={} mean={:.1} ms max<={}",
        q(0.5),
        q(0.9),
        q(0.99),
        per_step(delay_sum) * 1000.0,
        histogram_max_bound(&delta).map_or("n/a".to_string(), |v| format!("{v} s")),
    );
    println!("step delay buckets (le: count in window): {delta:?}");
    // Where a step's time goes: how long each reconcile holds one of the `--threadiness`
    // workers, and how many workers were busy on average.
    let rhist = "serin_reconcile_duration_seconds";
    let rdelta = bucket_delta(
        &buckets(&end.metrics, rhist),
        &buckets(&start.metrics, rhist),
    );
    let rsum = metric_value(&end.metrics, &format!("{rhist}_sum"))
        - metric_value(&start.metrics, &format!("{rhist}_sum"));
    let rcount = metric_value(&end.metrics, &format!("{rhist}_count"))
        - metric_value(&start.metrics, &format!("{rhist}_count"));
    let rq = |x: f64| {
        histogram_quantile(x, &rdelta)
            .map_or("n/a".to_string(), |v| format!("{:.1} ms", v * 1000.0))
    };
    println!(
        "reconcile duration: p50={} p90={} p99={} mean={:.1} ms; {:.2} reconciles per step; {:.2} reconciles in flight on average (working or waiting for an answer; {} workers)",
        rq(0.5),
        rq(0.9),
        rq(0.99),
        if rcount > 0.0 {
            rsum / rcount * 1000.0
        } else {
            f64::NAN
        },
        per_step(rcount),
        rsum / window,
        args.threadiness,
    );
    println!(
        "memory: RSS idle (all Initialized) {:.1} MB ({:.1} MB anonymous), RSS end {:.1} MB ({:.1} MB anonymous), peak (VmHWM) {:.1} MB",
        idle.rss_kb as f64 / 1024.0,
        idle.anon_kb as f64 / 1024.0,
        end.rss_kb as f64 / 1024.0,
        end.anon_kb as f64 / 1024.0,
        end.hwm_kb as f64 / 1024.0
    );
    println!(
        "CPU: {cpu:.2} s in the window ({:.1} % of one core); {:.2} ms per step; initialisation {:.2} s",
        cpu / window * 100.0,
        per_step(cpu) * 1000.0,
        (idle.cpu_ticks as f64) / tck,
    );
    println!(
        "CPU of the benchmark process (the dev cluster, its simulator, the benchmark's watches): {own_cpu:.2} s in the window ({:.1} % of one core); {:.2} ms per step",
        own_cpu / window * 100.0,
        per_step(own_cpu) * 1000.0,
    );
    println!(
        "API requests by the controller: {requests} in the window ({:.1} per step, {:.1}/s); {} during start-up and initialisation",
        per_step(requests as f64),
        requests as f64 / window,
        start.requests,
    );
    {
        let c = counts.lock().unwrap_or_else(|e| e.into_inner());
        println!("  all controller requests by verb and resource (whole run):");
        for ((verb, res), count) in &c.by_verb_resource {
            println!("    {verb:>6} {res:<40} {count}");
        }
        println!("  benchmark's own requests (excluded): {}", c.bench);
    }
    latency_summary(
        &format!(
            "revision detection, burst of {n} changes over {:?}",
            args.spread
        ),
        burst.iter().map(|(_, v)| *v).collect(),
        n,
    );
    if burst_missing > 0 {
        println!("  ({burst_missing} burst changes not detected within 30 s of the last one)");
    }
    latency_summary(
        "revision detection, one change at a time during the analysis",
        sampled.iter().map(|(_, v)| *v).collect(),
        sent,
    );

    let _ = child.kill().await;
    dev.shutdown().await;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
